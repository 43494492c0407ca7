//! Throttles: an in-memory sliding window for request floods, and attempt budgets with
//! backoff for guesses.
//!
//! [`RateLimiter`] is keyed by whatever should be throttled (a credential, a tenant). Memory is
//! bounded: a key whose last attempt left the window is dropped, and past
//! [`RateLimiter::with_max_keys`] keys the least recently allowed key is evicted, so a flood of
//! new keys cannot exhaust memory (at worst it resets some other key's count early). Its state
//! is per process, so it only sheds load; it decides nobody's access.
//!
//! [`AttemptPolicy`] decides guesses (passwords, second-factor codes): it is a pure function
//! from the stored [`AttemptRecord`] to the next one, so the record lives in the store and
//! every panel process on one store spends the same budget.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::secret::SecretHash;
use crate::clock::Clock;

/// Refused: how long until the oldest counted attempt leaves the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts; retry after {} s", self.secs())]
pub struct RetryAfter(Duration);

impl RetryAfter {
    /// The exact wait.
    pub fn duration(&self) -> Duration {
        self.0
    }

    /// Whole seconds, rounded up and at least 1, for a `Retry-After` header.
    pub fn secs(&self) -> u64 {
        let whole = self.0.as_secs();
        let ceil = if self.0.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        };
        ceil.max(1)
    }
}

/// Allows at most `limit` attempts per key in any window of `window`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: TimeDelta,
    max_keys: usize,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, Entry>,
    /// Keys by the sequence number of their last allowed attempt: the first is the key whose
    /// newest attempt is oldest, so expiry and eviction both take from the front.
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry {
    /// Allowed attempts still inside the window; never empty while stored.
    hits: VecDeque<DateTime<Utc>>,
    seq: u64,
}

impl RateLimiter {
    /// Keys tracked at most, unless changed with [`RateLimiter::with_max_keys`].
    pub const DEFAULT_MAX_KEYS: usize = 100_000;
    /// Longer keys are tracked by their SHA-256, so a key's size is bounded too.
    pub const MAX_KEY_LEN: usize = 256;

    /// A limiter allowing `limit` attempts per key in any `window` (a limit of 0 refuses every
    /// attempt), reading the time from `clock`.
    pub fn new(limit: u32, window: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit,
            window: TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX),
            max_keys: Self::DEFAULT_MAX_KEYS,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// Tracks at most `max_keys` keys (at least 1), evicting the least recently allowed key.
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// Counts an attempt for `key` if it is within the limit; otherwise refuses it (a refused
    /// attempt is not counted) and says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), RetryAfter> {
        let now = self.clock.now();
        let key = bounded_key(key);
        let mut state = self.lock();
        state.expire(now, self.window);

        let seq = state.next_seq;
        let tracked = state.keys.get_mut(key.as_ref());
        let old_seq = match tracked {
            Some(entry) => {
                entry.hits.retain(|&hit| !expired(hit, now, self.window));
                if entry.hits.len() >= self.limit as usize {
                    return Err(self.retry_after(entry.hits.iter().min().copied(), now));
                }
                entry.hits.push_back(now);
                Some(std::mem::replace(&mut entry.seq, seq))
            }
            None => {
                if self.limit == 0 {
                    return Err(self.retry_after(None, now));
                }
                if state.keys.len() >= self.max_keys {
                    state.evict_oldest();
                }
                state.keys.insert(
                    key.clone().into_owned(),
                    Entry {
                        hits: VecDeque::from([now]),
                        seq,
                    },
                );
                None
            }
        };
        if let Some(old) = old_seq {
            state.order.remove(&old);
        }
        state.order.insert(seq, key.into_owned());
        state.next_seq += 1;
        Ok(())
    }

    /// Forgets every attempt of `key` (e.g. after a successful login).
    pub fn reset(&self, key: &str) {
        let key = bounded_key(key);
        let mut state = self.lock();
        if let Some(entry) = state.keys.remove(key.as_ref()) {
            state.order.remove(&entry.seq);
        }
    }

    /// How many keys are tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.lock().keys.len()
    }

    fn retry_after(&self, oldest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> RetryAfter {
        let wait = oldest
            .and_then(|hit| hit.checked_add_signed(self.window))
            .map_or(self.window, |free_at| free_at - now);
        RetryAfter(wait.to_std().unwrap_or(Duration::ZERO))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the maps consistent before anything that could panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Drops keys whose newest attempt has left the window, oldest first.
    fn expire(&mut self, now: DateTime<Utc>, window: TimeDelta) {
        while let Some((_, key)) = self.order.first_key_value() {
            let stale = self
                .keys
                .get(key)
                .is_none_or(|entry| entry.hits.iter().all(|&hit| expired(hit, now, window)));
            if !stale {
                break;
            }
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.keys.remove(&key);
        }
    }
}

fn expired(hit: DateTime<Utc>, now: DateTime<Utc>, window: TimeDelta) -> bool {
    hit.checked_add_signed(window).is_some_and(|end| end <= now)
}

fn bounded_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() > RateLimiter::MAX_KEY_LEN {
        SecretHash::of(key.as_bytes()).to_hex().into()
    } else {
        key.into()
    }
}

/// A budget of guesses with exponential backoff: `free` attempts, then each further attempt
/// only after a wait that doubles from `first_wait` up to `max_wait`. A record untouched for
/// `forget` starts afresh. Every attempt is spent before it is checked (so concurrent guesses
/// cannot overdraw the budget); a success gives its attempt back or clears the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Attempts allowed before waits begin.
    pub free: u32,
    /// The first wait; each further attempt doubles it.
    pub first_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
    /// A record with no attempt for this long is forgotten.
    pub forget: Duration,
}

/// The stored state of one attempt budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Attempts spent and not given back.
    pub spent: u32,
    /// No attempt is allowed before then.
    pub blocked_until: Option<DateTime<Utc>>,
    /// The last change.
    pub updated_at: DateTime<Utc>,
    /// When the record may be deleted: it would be forgotten and nothing is blocked.
    pub expires_at: DateTime<Utc>,
}

impl AttemptPolicy {
    /// Spends one attempt at `now`: the new record, or how long to wait (the record is then
    /// unchanged, so a refused attempt costs nothing and extends nothing).
    pub fn spend(
        &self,
        current: Option<&AttemptRecord>,
        now: DateTime<Utc>,
    ) -> Result<AttemptRecord, RetryAfter> {
        let current = current.filter(|r| !self.forgotten(r, now));
        if let Some(until) = current.and_then(|r| r.blocked_until)
            && until > now
        {
            return Err(RetryAfter((until - now).to_std().unwrap_or(Duration::ZERO)));
        }
        let spent = current.map_or(0, |r| r.spent).saturating_add(1);
        let blocked_until = (spent >= self.free).then(|| {
            let doublings = spent - self.free;
            let wait = self
                .first_wait
                .checked_mul(2u32.saturating_pow(doublings.min(31)))
                .unwrap_or(self.max_wait)
                .min(self.max_wait);
            later(now, wait)
        });
        Ok(self.record(spent, blocked_until, now))
    }

    /// Gives one attempt back after a success that must not clear the budget (a source that
    /// logged in may still be guessing other accounts): the wait ends when the count drops
    /// below `free`. `None` when nothing is left to keep.
    pub fn give_back(
        &self,
        current: Option<&AttemptRecord>,
        now: DateTime<Utc>,
    ) -> Option<AttemptRecord> {
        let current = current.filter(|r| !self.forgotten(r, now))?;
        let spent = current.spent.saturating_sub(1);
        if spent == 0 {
            return None;
        }
        let blocked_until = current.blocked_until.filter(|_| spent >= self.free);
        Some(self.record(spent, blocked_until, now))
    }

    fn forgotten(&self, record: &AttemptRecord, now: DateTime<Utc>) -> bool {
        record.blocked_until.is_none_or(|until| until <= now)
            && later(record.updated_at, self.forget) <= now
    }

    fn record(
        &self,
        spent: u32,
        blocked_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> AttemptRecord {
        let forgotten_at = later(now, self.forget);
        AttemptRecord {
            spent,
            blocked_until,
            updated_at: now,
            expires_at: blocked_until.map_or(forgotten_at, |b| b.max(forgotten_at)),
        }
    }
}

fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::clock::ManualClock;

    const CODES: AttemptPolicy = AttemptPolicy {
        free: 3,
        first_wait: Duration::from_secs(30),
        max_wait: Duration::from_secs(3_600),
        forget: Duration::from_secs(86_400),
    };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid")
    }

    #[test]
    fn attempts_are_free_then_wait_ever_longer_and_refusals_cost_nothing() {
        let mut record = None;
        for i in 0..2 {
            let next = CODES.spend(record.as_ref(), at(i)).expect("free");
            assert_eq!(next.blocked_until, None);
            record = Some(next);
        }
        // The third spends the last free attempt; from now on each attempt waits.
        let third = CODES.spend(record.as_ref(), at(2)).expect("free");
        assert_eq!(third.blocked_until, Some(at(32)));
        let refused = CODES.spend(Some(&third), at(10)).expect_err("blocked");
        assert_eq!(refused.secs(), 22);
        let fourth = CODES.spend(Some(&third), at(32)).expect("after the wait");
        assert_eq!(fourth.blocked_until, Some(at(92)), "the wait doubled");
        let fifth = CODES.spend(Some(&fourth), at(92)).expect("after the wait");
        assert_eq!(fifth.blocked_until, Some(at(212)));
        let mut record = fifth;
        for _ in 0..40 {
            let now = record.blocked_until.expect("blocked");
            record = CODES.spend(Some(&record), now).expect("after the wait");
            let wait = record.blocked_until.expect("blocked") - now;
            assert!(wait <= TimeDelta::seconds(3_600), "capped: {wait}");
        }
        assert_eq!(record.expires_at, later(record.updated_at, CODES.forget));
    }

    #[test]
    fn a_quiet_record_is_forgotten_and_a_success_gives_back() {
        let mut record = None;
        for i in 0..3 {
            record = Some(CODES.spend(record.as_ref(), at(i)).expect("free"));
        }
        let blocked = record.expect("record");
        // A day after the wait ended, the budget is whole again.
        let fresh = CODES
            .spend(Some(&blocked), at(32 + 86_400))
            .expect("forgotten");
        assert_eq!(fresh.spent, 1);
        // Giving back below the free count ends the wait.
        let back = CODES.give_back(Some(&blocked), at(3)).expect("two left");
        assert_eq!((back.spent, back.blocked_until), (2, None));
        assert_eq!(CODES.give_back(Some(&fresh), at(32 + 86_400)), None);
        assert_eq!(CODES.give_back(None, at(0)), None);
    }

    fn limiter(limit: u32, window_secs: u64) -> (RateLimiter, ManualClock) {
        let clock = ManualClock::default();
        let limiter = RateLimiter::new(
            limit,
            Duration::from_secs(window_secs),
            Arc::new(clock.clone()),
        );
        (limiter, clock)
    }

    #[test]
    fn ten_per_minute() {
        let (limiter, clock) = limiter(10, 60);
        for i in 0..10 {
            assert_eq!(limiter.check("1.2.3.4"), Ok(()), "attempt {i}");
            clock.advance(Duration::from_secs(1));
        }
        // t = 10 s; the first attempt (t = 0) leaves the window at t = 60.
        let refused = limiter.check("1.2.3.4").expect_err("11th refused");
        assert_eq!(refused.duration(), Duration::from_secs(50));
        assert_eq!(refused.secs(), 50);

        clock.advance(Duration::from_secs(49));
        assert!(limiter.check("1.2.3.4").is_err(), "t = 59: still full");
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.check("1.2.3.4"), Ok(()), "t = 60: one slot free");
        let refused = limiter.check("1.2.3.4").expect_err("full again");
        assert_eq!(
            refused.duration(),
            Duration::from_secs(1),
            "t = 1 leaves at 61"
        );

        // After a whole quiet window everything is allowed again.
        clock.advance(Duration::from_secs(60));
        for _ in 0..10 {
            assert_eq!(limiter.check("1.2.3.4"), Ok(()));
        }
        assert!(limiter.check("1.2.3.4").is_err());
    }

    #[test]
    fn keys_are_independent_and_reset_clears_one() {
        let (limiter, _clock) = limiter(2, 60);
        assert!(limiter.check("alice").is_ok());
        assert!(limiter.check("alice").is_ok());
        assert!(limiter.check("alice").is_err());
        assert!(limiter.check("bob").is_ok());
        assert!(limiter.check("bob").is_ok());
        assert!(limiter.check("bob").is_err());
        limiter.reset("alice");
        assert!(limiter.check("alice").is_ok());
        assert!(limiter.check("bob").is_err());
        limiter.reset("nobody");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1_001)).secs(), 2);
        assert_eq!(RetryAfter(Duration::from_millis(999)).secs(), 1);
        assert_eq!(RetryAfter(Duration::ZERO).secs(), 1);
        assert_eq!(
            RetryAfter(Duration::from_secs(5)).to_string(),
            "too many attempts; retry after 5 s"
        );
    }

    #[test]
    fn zero_limit_refuses_everything_and_stores_nothing() {
        let (limiter, _clock) = limiter(0, 60);
        assert_eq!(limiter.check("a"), Err(RetryAfter(Duration::from_secs(60))));
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[test]
    fn quiet_keys_are_dropped() {
        let (limiter, clock) = limiter(5, 10);
        for key in ["a", "b", "c"] {
            limiter.check(key).expect("allowed");
        }
        assert_eq!(limiter.tracked_keys(), 3);
        clock.advance(Duration::from_secs(10));
        limiter.check("d").expect("allowed");
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[test]
    fn the_cap_evicts_the_least_recently_allowed_key() {
        let (limiter, clock) = limiter(1, 3_600);
        let limiter = limiter.with_max_keys(2);
        limiter.check("a").expect("allowed");
        clock.advance(Duration::from_secs(1));
        limiter.check("b").expect("allowed");
        clock.advance(Duration::from_secs(1));
        limiter.check("c").expect("allowed");
        assert_eq!(limiter.tracked_keys(), 2);
        assert!(limiter.check("b").is_err(), "b is still tracked");
        assert!(limiter.check("c").is_err(), "c is still tracked");
        // a was evicted, so it starts afresh.
        assert!(limiter.check("a").is_ok());
    }

    #[test]
    fn long_keys_are_bounded_and_distinct() {
        let (limiter, _clock) = limiter(1, 60);
        let long_a = "a".repeat(10_000);
        let long_b = format!("{}b", "a".repeat(9_999));
        assert!(limiter.check(&long_a).is_ok());
        assert!(limiter.check(&long_b).is_ok());
        assert!(limiter.check(&long_a).is_err());
        let state = limiter.lock();
        assert!(
            state
                .keys
                .keys()
                .all(|k| k.len() <= RateLimiter::MAX_KEY_LEN)
        );
    }

    #[test]
    fn a_clock_stepping_back_does_not_panic_or_unblock() {
        let (limiter, clock) = limiter(2, 60);
        clock.set(DateTime::from_timestamp(1_000, 0).expect("valid"));
        assert!(limiter.check("k").is_ok());
        clock.set(DateTime::from_timestamp(500, 0).expect("valid"));
        assert!(limiter.check("k").is_ok());
        let refused = limiter.check("k").expect_err("full");
        assert!(refused.duration() <= Duration::from_secs(60));
    }

    #[test]
    fn shared_across_threads() {
        let (limiter, _clock) = limiter(100, 60);
        let limiter = Arc::new(limiter);
        let allowed: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let limiter = Arc::clone(&limiter);
                    scope.spawn(move || (0..50).filter(|_| limiter.check("k").is_ok()).count())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .sum()
        });
        assert_eq!(allowed, 100);
    }

    /// The limiter's rules written as plainly as possible: a list of keys in order of their
    /// last allowed attempt, each with its allowed attempts.
    #[derive(Default)]
    struct Model {
        keys: Vec<(String, Vec<i64>)>,
    }

    impl Model {
        fn check(
            &mut self,
            key: &str,
            now: i64,
            limit: usize,
            window: i64,
            cap: usize,
        ) -> Result<(), i64> {
            self.keys
                .retain(|(_, hits)| hits.iter().any(|&h| h + window > now));
            if let Some(index) = self.keys.iter().position(|(k, _)| k == key) {
                let (k, mut hits) = self.keys.remove(index);
                hits.retain(|&h| h + window > now);
                if hits.len() >= limit {
                    let oldest = hits.iter().copied().min().unwrap_or(now);
                    // Not allowed: it keeps its place in the order.
                    self.keys.insert(index, (k, hits));
                    return Err(oldest + window - now);
                }
                hits.push(now);
                self.keys.push((k, hits));
            } else {
                if self.keys.len() >= cap {
                    self.keys.remove(0);
                }
                self.keys.push((key.to_owned(), vec![now]));
            }
            Ok(())
        }

        fn reset(&mut self, key: &str) {
            self.keys.retain(|(k, _)| k != key);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Check(u8),
        Reset(u8),
        Advance(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..8).prop_map(Op::Check),
            1 => (0u8..8).prop_map(Op::Reset),
            3 => (0u8..20).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_the_model(
            limit in 1u32..4,
            window in 1u64..30,
            cap in 1usize..6,
            ops in prop::collection::vec(op(), 0..200),
        ) {
            let (limiter, clock) = limiter(limit, window);
            let limiter = limiter.with_max_keys(cap);
            let mut model = Model::default();
            let mut now = 0i64;
            for op in ops {
                match op {
                    Op::Check(k) => {
                        let key = format!("k{k}");
                        let got = limiter.check(&key).map_err(|r| r.duration().as_secs());
                        let want = model
                            .check(&key, now, limit as usize, i64::try_from(window).unwrap_or(1), cap)
                            .map_err(|secs| u64::try_from(secs).unwrap_or(0));
                        prop_assert_eq!(got, want, "check {} at {}", key, now);
                    }
                    Op::Reset(k) => {
                        let key = format!("k{k}");
                        limiter.reset(&key);
                        model.reset(&key);
                    }
                    Op::Advance(secs) => {
                        clock.advance(Duration::from_secs(u64::from(secs)));
                        now += i64::from(secs);
                    }
                }
                prop_assert!(limiter.tracked_keys() <= cap);
                prop_assert_eq!(limiter.tracked_keys(), model.keys.len());
            }
        }
    }
}
