//! Rate limits: the one type for every "at most N events per window" rule of
//! the server (a connection's messages and pings, a user's file operations,
//! a user's runs; failed logins have their own backoff in
//! `auth/login_guard.rs`). A GCRA over [governor]: the first N
//! events pass at once (the burst), then one more every `window / N`.
//! A refusal is a [`Refused`] naming what was limited and when the next event
//! would pass; the server boundary turns it into `rate_limited` with
//! `retry_after_ms` (`From<Refused> for AppError`). This module depends on no
//! other part of the server, so the runner can count runs with it too.
//!
//! [`RateLimit::direct`] counts one stream (an atomic; a connection owns one),
//! [`RateLimit::keyed`] counts per key (a map; shared, and shrunk by
//! housekeeping so keys back at full quota cost nothing).

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

/// A refused event: what was limited, and how long until the next one passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The limited events, plural ("messages", "file operations").
    pub what: &'static str,
    /// Wait this long before the next event passes.
    pub wait: Duration,
}

/// One minute, the window of most limits.
pub const MINUTE: Duration = Duration::from_secs(60);

/// At most `events` per `window` (see the module docs). `S` is governor's
/// state: [`InMemoryState`] for one stream, a keyed store for many.
pub struct RateLimit<S: StateStore> {
    limiter: RateLimiter<S::Key, S, DefaultClock>,
    clock: DefaultClock,
    what: &'static str,
}

/// A limit per key (user id, username + address, …).
pub type KeyedRateLimit<K> = RateLimit<DefaultKeyedStateStore<K>>;

/// A limit on one stream of events.
pub type DirectRateLimit = RateLimit<InMemoryState>;

impl<S: StateStore> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RateLimit({})", self.what)
    }
}

/// `events` per `window` with a burst of `events` (at least one of each).
fn quota(events: u32, window: Duration) -> Quota {
    let n = NonZeroU32::new(events).unwrap_or(NonZeroU32::MIN);
    // Never zero: governor needs a period, and a zero window means "no real limit".
    let period = (window / n.get()).max(Duration::from_nanos(1));
    Quota::with_period(period).map_or_else(|| Quota::per_minute(n), |q| q.allow_burst(n))
}

impl<S: StateStore> RateLimit<S> {
    /// The refusal for a check that did not pass at `not_until`.
    fn refusal(&self, not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Refused {
        Refused {
            what: self.what,
            wait: not_until.wait_time_from(self.clock.now()),
        }
    }
}

impl RateLimit<InMemoryState> {
    /// `events` per `window` for one stream; `what` names the events in refusals
    /// ("too many messages; …").
    pub fn direct(events: u32, window: Duration, what: &'static str) -> Self {
        RateLimit {
            limiter: RateLimiter::<NotKeyed, _, _>::direct(quota(events, window)),
            clock: DefaultClock::default(),
            what,
        }
    }

    /// Count one event, or refuse it.
    pub fn check(&self) -> Result<(), Refused> {
        self.limiter.check().map_err(|nu| self.refusal(nu))
    }
}

impl<K: Hash + Eq + Clone> RateLimit<DefaultKeyedStateStore<K>> {
    /// `events` per `window` for each key; `what` names the events in refusals.
    pub fn keyed(events: u32, window: Duration, what: &'static str) -> Self {
        RateLimit {
            limiter: RateLimiter::keyed(quota(events, window)),
            clock: DefaultClock::default(),
            what,
        }
    }

    /// Count one event for `key`, or refuse it.
    pub fn check_key(&self, key: &K) -> Result<(), Refused> {
        self.limiter.check_key(key).map_err(|nu| self.refusal(nu))
    }

    /// Count `n` events for `key` at once (an operation whose cost grows with
    /// its size), or refuse it; a cost above the whole burst waits for a full
    /// bucket.
    pub fn check_key_n(&self, key: &K, n: u32) -> Result<(), Refused> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(nu)) => Err(self.refusal(nu)),
            // More than the burst: never admissible as one charge; take the whole burst.
            Err(governor::InsufficientCapacity(cap)) => self.check_key_n(key, cap),
        }
    }

    /// Forget keys that are back at full quota (housekeeping: bounded memory).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::AppError;
    use campus_protocol::ErrorCode;

    #[test]
    fn a_burst_passes_then_refusals_say_when_to_retry() {
        let limit = RateLimit::direct(3, MINUTE, "messages");
        for _ in 0..3 {
            limit.check().unwrap();
        }
        let e = AppError::from(limit.check().unwrap_err());
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(
            e.message.starts_with("too many messages; try again in "),
            "{}",
            e.message
        );
        // One event comes back every 20 s.
        let ms = e.retry_after_ms().unwrap();
        assert!(ms > 19_000 && ms <= 20_000, "{ms}");
    }

    #[test]
    fn keys_are_counted_apart_and_forgotten_when_back_at_full_quota() {
        let limit = KeyedRateLimit::<i64>::keyed(2, MINUTE, "file operations");
        limit.check_key(&1).unwrap();
        limit.check_key(&1).unwrap();
        let e = AppError::from(limit.check_key(&1).unwrap_err());
        assert!(
            e.message
                .starts_with("too many file operations; try again in "),
            "{}",
            e.message
        );
        limit.check_key(&2).unwrap();
        assert_eq!(limit.len(), 2);
        // Keys still in their window are kept.
        limit.shrink();
        assert_eq!(limit.len(), 2);

        let quick = KeyedRateLimit::<i64>::keyed(1, Duration::from_millis(1), "pings");
        quick.check_key(&7).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        quick.shrink();
        assert!(quick.is_empty());
    }

    #[test]
    fn the_window_is_spread_over_the_events() {
        // 10 login attempts per 15 minutes: one more every 90 s once spent.
        let limit =
            KeyedRateLimit::<(String, u8)>::keyed(10, Duration::from_secs(900), "login attempts");
        let key = ("ann".to_string(), 1);
        for _ in 0..10 {
            limit.check_key(&key).unwrap();
        }
        let ms = limit.check_key(&key).unwrap_err().wait.as_millis();
        assert!(ms > 89_000 && ms <= 90_000, "{ms}");
        // Zero counts as one.
        let one = RateLimit::direct(0, MINUTE, "runs");
        one.check().unwrap();
        assert!(one.check().is_err());
    }
}
