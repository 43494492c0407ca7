//! Where "now" comes from.
//!
//! Expiry, lockouts and throttling all compare against the current time; taking it from a
//! [`Clock`] instead of calling `Utc::now()` lets a test (or an embedder replaying events) move
//! time by hand with [`ManualClock`] instead of sleeping.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share one time, so a test keeps a clone and
/// advances the clock it handed to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward by `by`, stopping at the latest representable time.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now = add_saturating(*now, by);
    }

    /// Sets the clock to `to`, which may be earlier than now (clocks do step back).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A panic elsewhere while holding the lock cannot leave a half-written DateTime.
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    /// A clock stopped at the Unix epoch.
    fn default() -> Self {
        Self::new(DateTime::UNIX_EPOCH)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

/// `at + by`, saturating at the latest time chrono represents instead of overflowing.
fn add_saturating(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::default();
        let handle = clock.clone();
        handle.advance(Duration::from_secs(90));
        assert_eq!(clock.now().timestamp(), 90);
        let at = DateTime::from_timestamp(1_000, 0).unwrap_or_default();
        handle.set(at);
        assert_eq!(clock.now(), at);
    }

    #[test]
    fn advance_saturates() {
        let clock = ManualClock::default();
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn system_clock_is_a_dyn_clock() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        assert!(clock.now() > DateTime::UNIX_EPOCH);
    }
}
