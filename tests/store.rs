//! The store, auth-store and job-store conformance suites on every engine. Test names start
//! with the engine, so a run shows which engines executed: `sqlite_*` always, `postgres_*` and
//! `mariadb_*` against the servers `scripts/test.sh` starts (skipped without them, failing under
//! CI=true).
#![allow(clippy::expect_used)] // test setup that cannot open a store should fail the test

use hosting_core::PanelStore;
use hosting_db::{SqlStore, StoreOptions};
use hosting_tests::{MARIADB_URL, POSTGRES_URL, fresh_database, fresh_sqlite, server_url};

/// A store on a fresh, empty database of the named engine, or `None` when its server is absent.
async fn open(engine: &str) -> Option<(SqlStore, Option<hosting_tests::TempDir>)> {
    let options = StoreOptions::default();
    let (url, dir) = match engine {
        "sqlite" => {
            let (dir, url) = fresh_sqlite();
            (url, Some(dir))
        }
        "postgres" => (fresh_database(&server_url(POSTGRES_URL)?).await, None),
        "mariadb" => (fresh_database(&server_url(MARIADB_URL)?).await, None),
        other => panic!("unknown engine {other}"),
    };
    let store = SqlStore::open(&url, &options).await.expect("open store");
    // For mysql:// URLs the store tells MariaDB from MySQL by asking the server.
    assert_eq!(store.info().engine, engine, "{:?}", store.info());
    Some((store, dir))
}

macro_rules! suite {
    ($engine:ident, $suite:ident: $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((store, _dir)) = super::open(stringify!($engine)).await else {
                    return;
                };
                hosting_core::conformance::$suite::$case(&store).await;
                store.close().await;
            }
        )+
    };
}

macro_rules! every_engine {
    ($($engine:ident),+) => {
        $(
            mod $engine {
                suite!($engine, store:
                    tenants_crud,
                    nodes_crud,
                    users_crud,
                    websites_crud,
                    settings_round_trip,
                    plugin_web_servers_round_trip,
                    deployments_set_the_status,
                    domains_are_unique_across_tenants,
                    pagination_walks_every_row_once,
                    cross_tenant_access_is_refused,
                    roles_scope_what_is_visible,
                    concurrent_creates_of_one_domain_have_one_winner,
                    referenced_rows_cannot_be_deleted,
                    tenant_limits_are_enforced,
                    alert_rules_crud,
                    audit_log_is_scoped,
                    node_accounts_crud,
                    node_account_names_and_uids_are_unique_per_node,
                    node_accounts_are_scoped_to_their_tenant,
                    node_accounts_go_with_their_tenant_and_keep_their_node,
                    hostile_values_never_reach_the_store,
                    the_saga_journal_keeps_changes_in_flight,
                    failure_reasons_are_kept_scoped_and_cleared,
                );
                suite!($engine, auth_store:
                    login_records_follow_the_user,
                    lockout_after_threshold_and_unlock_by_success,
                    second_factor_round_trip,
                    totp_step_is_used_once_under_concurrency,
                    recovery_code_is_used_once_under_concurrency,
                    refresh_tokens_rotate,
                    replayed_refresh_token_revokes_the_session,
                    concurrent_refresh_has_one_winner,
                    revoking_a_users_sessions_spares_others,
                    api_tokens_respect_the_role_ceiling,
                    api_tokens_are_scoped_to_owner_and_tenant,
                    deleting_a_user_removes_its_credentials,
                    ending_credentials_moves_the_generation,
                );
                suite!($engine, jobs:
                    jobs_enqueue_and_read_back,
                    job_visibility_follows_the_owner,
                    claim_takes_the_oldest_due_job,
                    concurrent_claims_never_share_a_job,
                    one_running_job_per_node,
                    expired_leases_pass_to_another_worker,
                    retries_back_off_until_attempts_run_out,
                );
            }
        )+
    };
}

every_engine!(sqlite, postgres, mariadb);

/// The store suite through [`hosting_core::TrackedStore`]: the wrapper that counts writes for
/// the panel's read cache changes nothing a store does, and every write the suite makes moves
/// its count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tracked_store_passes_the_store_suite() {
    let Some((store, _dir)) = open("sqlite").await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    let tracked = hosting_core::TrackedStore::new(store.clone());
    let tracker = tracked
        .changes()
        .expect("a tracked store counts its writes");
    let before = tracker.stamp().expect("no write under way");
    hosting_core::conformance::store::run_all(&tracked).await;
    let after = tracker.stamp().expect("no write under way");
    assert!(!tracker.is_current(before) && tracker.is_current(after));
    store.close().await;
}

/// Waits (up to 10 s) until `holds` is true of `tracker`, polling; panics naming `what`.
async fn until(
    tracker: &hosting_core::ChangeTracker,
    what: &str,
    holds: impl Fn(&hosting_core::ChangeTracker) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !holds(tracker) {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// PostgreSQL's change feed: a commit by another store (another panel process) ends every
/// stamp; a lost listening connection leaves no stamp to take until it listens again, and
/// listening again ends the stamps from before.
/// A customer login on the store's PostgreSQL server cannot open the panel's database: the
/// store takes `CONNECT` from `PUBLIC` when it opens (its own login keeps it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_is_closed_to_other_logins() {
    use sqlx::Connection;
    let Some(admin) = server_url(POSTGRES_URL) else {
        return;
    };
    let url = fresh_database(&admin).await;
    let database = url.rsplit('/').next().expect("database").to_owned();
    let role = format!("cust_{}", hosting_core::conformance::unique_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw-{role}'"
    )))
    .execute(&mut conn)
    .await
    .expect("a customer-like login");
    // Before the store opens, a fresh database is open to every login (the default).
    let customer_url = {
        let (scheme, rest) = admin.split_once("://").expect("url");
        let host = rest.rsplit_once('@').expect("credentials").1;
        let host = host.split('/').next().expect("host");
        format!("{scheme}://{role}:pw-{role}@{host}/{database}")
    };
    sqlx::PgConnection::connect(&customer_url)
        .await
        .expect("before: the default lets every login in")
        .close()
        .await
        .expect("close");
    let store = SqlStore::open(&url, &StoreOptions::default())
        .await
        .expect("open store");
    match sqlx::PgConnection::connect(&customer_url).await {
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{e}");
        }
        other => panic!("the customer opened the panel store: {other:?}"),
    }
    assert!(store.info().engine == "postgres");
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE \"{role}\"")))
        .execute(&mut conn)
        .await
        .expect("drop role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_feed_hears_other_writers_and_its_own_loss() {
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let url = fresh_database(&url).await;
    let options = StoreOptions::default();
    let ours = SqlStore::open(&url, &options).await.expect("open store");
    let other = SqlStore::open(&url, &options)
        .await
        .expect("open a second store");
    assert!(ours.change_feed().is_some(), "PostgreSQL announces commits");

    let tracker = std::sync::Arc::new(hosting_core::ChangeTracker::with_other_writers());
    assert_eq!(
        tracker.stamp(),
        None,
        "nothing is known before the feed listens"
    );
    let following = ours.change_feed().expect("a feed").follow(tracker.clone());
    until(&tracker, "the feed listens", |t| t.stamp().is_some()).await;

    let stamp = tracker.stamp().expect("listening");
    tenant_elsewhere(&other, "feed1").await;
    until(&tracker, "another store's commit is heard", |t| {
        !t.is_current(stamp)
    })
    .await;

    // The listening connection is killed from outside, as a restart or a failover would.
    let stamp = tracker.stamp().expect("listening");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&sqlx::PgPool::connect(&url).await.expect("admin connection"))
    .await
    .expect("terminate the listener");
    assert_eq!(killed, [true], "one listening connection");
    until(&tracker, "the loss is noticed", |t| !t.is_current(stamp)).await;
    until(&tracker, "the feed listens again", |t| t.stamp().is_some()).await;
    let stamp = tracker.stamp().expect("listening again");
    tenant_elsewhere(&other, "feed2").await;
    until(&tracker, "a commit after the reconnection is heard", |t| {
        !t.is_current(stamp)
    })
    .await;

    drop(following);
    assert_eq!(
        tracker.stamp(),
        None,
        "a feed no longer followed vouches for nothing"
    );
    ours.close().await;
    other.close().await;
}

/// A tenant written through `store`, standing for another panel process's write.
async fn tenant_elsewhere(store: &SqlStore, slug: &str) {
    store
        .create_tenant(
            &hosting_core::rbac::Operator::assume(),
            hosting_core::model::NewTenant {
                name: slug.parse().expect("name"),
                slug: slug.parse().expect("slug"),
                quotas: Default::default(),
            },
        )
        .await
        .expect("a tenant written by the other store");
}
