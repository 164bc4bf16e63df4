//! Login brute-force limiter: a bounded number of attempts per username+IP per
//! window (default 10 per 15 minutes), answered with 429 and `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keyed limiter over (lower-cased username, client IP).
pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<(String, IpAddr)>,
    clock: DefaultClock,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter")
    }
}

impl LoginLimiter {
    /// `attempts` per `window` for each username+IP.
    pub fn new(attempts: u32, window: Duration) -> Self {
        let attempts = NonZeroU32::new(attempts.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = window / attempts.get();
        let quota = Quota::with_period(period.max(Duration::from_millis(1)))
            .unwrap_or_else(|| Quota::per_minute(attempts))
            .allow_burst(attempts);
        LoginLimiter {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Count one attempt; `Err(wait)` when the key is over its limit.
    pub fn check(&self, username: &str, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&(username.to_lowercase(), ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drop state of keys that are back to full quota (bounded memory).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
