//! Denied calls audited per burst: the first denial of a credential and action is written at
//! once; the ones after it within the burst window are only counted, and written as one entry
//! that carries the count when the burst ends. A token hammering a forbidden endpoint then
//! costs the audit log two rows a window instead of one row a request.
//!
//! The counts are per process and kept in memory; a closed burst is written by the next denial
//! of its key or by [`super::Panel::flush_denied_audit`] (the server calls it periodically and
//! at shutdown). Bursts are bounded: past [`Denials::MAX_BURSTS`] keys each denial is written
//! on its own again, so memory cannot grow with the number of attackers.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::model::NewAuditEntry;

/// The open bursts of denied calls.
#[derive(Debug, Default)]
pub(super) struct Denials {
    bursts: Mutex<HashMap<String, Burst>>,
}

#[derive(Debug)]
struct Burst {
    started: DateTime<Utc>,
    /// Denials after the first, not written yet.
    repeats: u64,
    /// The first denial's entry, the template of the summary.
    first: NewAuditEntry,
}

impl Burst {
    fn closed(&self, now: DateTime<Utc>, window: TimeDelta) -> bool {
        self.started + window <= now
    }

    fn summary(self, window: Duration) -> Option<NewAuditEntry> {
        (self.repeats > 0).then(|| {
            let detail = format!(
                "denied {} more times within {} s of the first: {}",
                self.repeats,
                window.as_secs().max(1),
                self.first.detail
            );
            self.first.with_detail(detail)
        })
    }
}

impl Denials {
    /// Keys tracked at most.
    pub(super) const MAX_BURSTS: usize = 10_000;

    /// Notes a denied call keyed by `key` (who and what). Returns the entries to write now:
    /// `entry` itself when it opens a burst (or bursts are full), and the summary of the
    /// key's previous burst when that one has ended.
    pub(super) fn note(
        &self,
        key: String,
        entry: NewAuditEntry,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Vec<NewAuditEntry> {
        let span = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
        let mut bursts = self.lock();
        let mut out = Vec::new();
        match bursts.get_mut(&key) {
            Some(burst) if !burst.closed(now, span) => {
                burst.repeats = burst.repeats.saturating_add(1);
                return out;
            }
            Some(_) => {
                if let Some(old) = bursts.remove(&key) {
                    out.extend(old.summary(window));
                }
            }
            None => {}
        }
        if bursts.len() < Self::MAX_BURSTS {
            bursts.insert(
                key,
                Burst {
                    started: now,
                    repeats: 0,
                    first: entry.clone(),
                },
            );
        }
        out.push(entry);
        out
    }

    /// Takes the summaries of the bursts that ended by `now` (every burst when `all`).
    pub(super) fn take_closed(
        &self,
        now: DateTime<Utc>,
        window: Duration,
        all: bool,
    ) -> Vec<NewAuditEntry> {
        let span = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
        let mut bursts = self.lock();
        let closed: Vec<String> = bursts
            .iter()
            .filter(|(_, b)| all || b.closed(now, span))
            .map(|(k, _)| k.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|k| bursts.remove(&k))
            .filter_map(|b| b.summary(window))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Burst>> {
        // Every update leaves the map consistent before anything that could panic.
        self.bursts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::model::AuditOutcome;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid")
    }

    #[test]
    fn a_burst_is_one_entry_then_one_count() {
        let denials = Denials::default();
        let window = Duration::from_secs(60);
        let entry = NewAuditEntry::by_operator("user.create", "user:1", AuditOutcome::Denied)
            .with_detail("no");
        assert_eq!(
            denials.note("k".into(), entry.clone(), at(0), window).len(),
            1
        );
        for i in 1..1000 {
            assert!(
                denials
                    .note("k".into(), entry.clone(), at(i % 60), window)
                    .is_empty()
            );
        }
        assert!(denials.take_closed(at(59), window, false).is_empty());
        let written = denials.note("k".into(), entry.clone(), at(60), window);
        assert_eq!(written.len(), 2, "the summary and the next burst's first");
        assert_eq!(
            written[0].detail,
            "denied 999 more times within 60 s of the first: no"
        );
        denials.note("k".into(), entry, at(61), window);
        let flushed = denials.take_closed(at(62), window, true);
        assert_eq!(flushed.len(), 1);
        assert!(flushed[0].detail.starts_with("denied 1 more times"));
        assert!(denials.take_closed(at(200), window, true).is_empty());
    }
}
