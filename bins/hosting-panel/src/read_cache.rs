//! Serialized answers to repeated reads, reused while the store has not changed.
//!
//! A panel's dashboards and scripts ask for the same pages again and again; reading and
//! encoding 50 websites costs a millisecond of CPU, sending kept bytes a few microseconds. An
//! answer is kept under the [`Stamp`] taken before its read and served only while the
//! store's [`ChangeTracker`] says no write has begun since (see `hosting_core::tracked`), so a
//! kept answer is always what a fresh read would return. Answers are keyed by everything the
//! read's authorization and scope depend on (the caller and its grant, the source address
//! excepted), so one actor's answer is never served to another. Each answer carries an `ETag`
//! and an `If-None-Match` that matches is a 304.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hosting_core::model::WebsiteId;
use hosting_core::page::PageRequest;
use hosting_core::panel::{Actor, Grant};
use hosting_core::rbac::Caller;
use hosting_core::tracked::{ChangeTracker, Stamp};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// Which read an answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Read {
    /// `GET /websites` with this page.
    Websites(PageRequest),
    /// `GET /websites/{id}`.
    Website(WebsiteId),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    caller: Caller,
    grant: Grant,
    read: Read,
}

#[derive(Debug, Clone)]
struct Answer {
    body: Bytes,
    etag: HeaderValue,
}

#[derive(Debug, Default)]
struct Entries {
    answers: HashMap<Key, (Stamp, Answer)>,
    bytes: usize,
}

/// Kept answers, at most `capacity` bytes of bodies.
#[derive(Debug)]
pub(crate) struct ReadCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl ReadCache {
    /// A cache of at most `capacity` bytes of answers; 0 keeps nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The answer to `read` for `actor`: a kept one while the store is unchanged, else
    /// `load`'s, serialized (and kept when nothing was written while it ran).
    pub(crate) async fn answer<T, F>(
        &self,
        tracker: Option<&ChangeTracker>,
        actor: &Actor,
        read: Read,
        request: &HeaderMap,
        load: F,
    ) -> ApiResult<Response>
    where
        T: Serialize,
        F: Future<Output = ApiResult<T>>,
    {
        let key = Key {
            caller: *actor.caller(),
            grant: actor.grant().clone(),
            read,
        };
        let tracker = tracker.filter(|_| self.capacity > 0);
        if let Some(tracker) = tracker
            && let Some(kept) = self.kept(&key, tracker)
        {
            return Ok(respond(kept, request));
        }
        let stamp = tracker.and_then(ChangeTracker::stamp);
        let value = load.await?;
        let body = Bytes::from(serde_json::to_vec(&value).map_err(|e| {
            ApiError::from(hosting_core::Error::backend(
                "panel-api",
                format!("cannot encode the answer: {e}"),
            ))
        })?);
        let answer = Answer {
            etag: etag_of(&body),
            body,
        };
        if let (Some(tracker), Some(stamp)) = (tracker, stamp)
            && tracker.is_current(stamp)
        {
            self.keep(tracker, key, stamp, answer.clone());
        }
        Ok(respond(answer, request))
    }

    fn kept(&self, key: &Key, tracker: &ChangeTracker) -> Option<Answer> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .answers
            .get(key)
            .filter(|(stamp, _)| tracker.is_current(*stamp))
            .map(|(_, answer)| answer.clone())
    }

    fn keep(&self, tracker: &ChangeTracker, key: Key, stamp: Stamp, answer: Answer) {
        let size = answer.body.len();
        if size > self.capacity {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = &mut *entries;
        if let Some((_, old)) = entries.answers.remove(&key) {
            entries.bytes -= old.body.len();
        }
        if entries.bytes + size > self.capacity {
            // Stale answers go first, then whatever the map yields (its order is random).
            entries
                .answers
                .retain(|_, (kept, _)| tracker.is_current(*kept));
            entries.bytes = entries.answers.values().map(|(_, a)| a.body.len()).sum();
        }
        while entries.bytes + size > self.capacity {
            let Some(victim) = entries.answers.keys().next().cloned() else {
                break;
            };
            if let Some((_, old)) = entries.answers.remove(&victim) {
                entries.bytes -= old.body.len();
            }
        }
        entries.bytes += size;
        entries.answers.insert(key, (stamp, answer));
    }
}

fn respond(answer: Answer, request: &HeaderMap) -> Response {
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/").as_bytes() == answer.etag.as_bytes()
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, answer.etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, answer.etag),
        ],
        Body::from(answer.body),
    )
        .into_response()
}

/// A strong validator for `body`: equal bodies, equal tags.
fn etag_of(body: &[u8]) -> HeaderValue {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    let tag = format!("\"{:016x}-{:x}\"", hasher.finish(), body.len());
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}
