//! PostgreSQL's announcements of the commits made to the panel's records, by any process.
//!
//! The triggers of `migrations/postgres/0004_change_feed.sql` call `pg_notify` on every
//! statement that changes a panel record; PostgreSQL delivers the notification to every
//! listener when the transaction commits. [`ChangeFeed::follow`] listens and moves a
//! [`ChangeTracker`], so that a panel process keeping answers in memory drops them when
//! another panel process (or anything else) writes the same database.

use std::sync::Arc;
use std::time::Duration;

use hosting_core::ChangeTracker;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

/// The channel the triggers announce on.
const CHANNEL: &str = "hosting_store_changes";

/// The wait before listening again after the connection failed, doubled up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// The announced commits of one PostgreSQL store; get it from
/// [`SqlStore::change_feed`](crate::SqlStore::change_feed).
pub struct ChangeFeed {
    url: String,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the store's password.
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

impl ChangeFeed {
    pub(crate) fn new(url: String) -> Self {
        Self { url }
    }

    /// Listens on a task of its own until the returned [`Following`] is dropped: tells
    /// `tracker` when listening starts ([`ChangeTracker::feed_listening`]), of every announced
    /// commit, and when the connection is lost ([`ChangeTracker::feed_lost`]), then listens
    /// again with backoff. Needs a Tokio runtime.
    ///
    /// A connection that dies without the kernel noticing (a peer gone without a reset) is
    /// noticed only when TCP gives up on it; until then announcements are missed.
    pub fn follow(self, tracker: Arc<ChangeTracker>) -> Following {
        let task = tokio::spawn(self.relay(tracker.clone()));
        Following { task, tracker }
    }

    async fn relay(self, tracker: Arc<ChangeTracker>) {
        let mut retry = RETRY_FIRST;
        loop {
            match self.listen().await {
                Ok(mut listener) => {
                    tracker.feed_listening();
                    retry = RETRY_FIRST;
                    let lost = loop {
                        match listener.try_recv().await {
                            Ok(Some(_)) => tracker.changed_elsewhere(),
                            Ok(None) => break "the listening connection closed".to_owned(),
                            Err(e) => break e.to_string(),
                        }
                    };
                    tracker.feed_lost();
                    tracing::warn!(error = %lost, "the store's change feed was lost; listening again");
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?retry, "cannot listen to the store's change feed");
                }
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect(&self.url).await?;
        // A lost connection is reported, never silently replaced: announcements made while
        // it was down are gone, and the tracker must hear of that.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}

/// A change feed being followed; dropping it stops listening, and the tracker stops handing
/// out stamps.
#[derive(Debug)]
#[must_use = "the feed is followed only while this lives"]
pub struct Following {
    task: JoinHandle<()>,
    tracker: Arc<ChangeTracker>,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
        self.tracker.feed_lost();
    }
}
