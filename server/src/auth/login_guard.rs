//! Login limiting that slows a password-guessing attack without letting it
//! lock the real student out (OWASP's "device cookie" scheme).
//!
//! Only failed attempts count; a successful login costs nothing, so a whole
//! classroom behind one NAT address logging in at once is never refused. An
//! attempt is refused (`rate_limited`, `retry_after_ms`) *before* the password
//! is looked at, so the refusal says nothing about it, and unknown usernames
//! count exactly like known ones.
//!
//! A browser that logged in successfully as a user carries a signed device
//! cookie (`campus_device`, HttpOnly, `Path=/api/auth`) naming that user. Its
//! attempts for that user are limited only by the cookie's own failures
//! (exponential backoff after [`LoginRules::device_free`]): an attacker
//! guessing the student's password from anywhere, also from the same NAT
//! address, cannot slow down the student's own browser.
//!
//! Attempts without a valid device cookie for the user face three rules,
//! and wait for the strictest:
//! - per username and address: after [`LoginRules::pair_free`] failures,
//!   each further attempt waits `backoff × 2^(n − free)` after the last
//!   failure, up to [`LoginRules::backoff_max`] (a single-address guesser
//!   gets a few dozen guesses a day); forgotten when [`LoginRules::window`]
//!   passes after the wait ended, and on a success;
//! - per username, all addresses: at most [`LoginRules::user_budget`]
//!   failures per window, then one per `window / budget` (a distributed
//!   guesser is slowed, the student from another address waits seconds);
//! - per address, all usernames: at most [`LoginRules::address_budget`]
//!   failures per window, then one per `window / budget` (password spraying
//!   from one address; high, because a classroom shares one).
//!
//! State is bounded: fixed-size keys (a hash of the username), idle entries
//! dropped by [`LoginGuard::shrink`], and at most [`MAX_KEYS`] per rule.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::LoginArgs;
use crate::conn::AddrKey;

/// Name of the device cookie.
pub const DEVICE_COOKIE: &str = "campus_device";
/// Keys tracked per rule; beyond, new keys are not tracked by that rule (the
/// other rules still apply).
pub const MAX_KEYS: usize = 200_000;

/// The rules' numbers.
#[derive(Debug, Clone)]
pub struct LoginRules {
    /// Free failures per username+address.
    pub pair_free: u32,
    /// Free failures per device cookie.
    pub device_free: u32,
    /// First backoff wait (doubles per failure).
    pub backoff: Duration,
    /// Longest backoff wait.
    pub backoff_max: Duration,
    /// Backoff failures are forgotten this long after their wait ended; the budgets' period.
    pub window: Duration,
    /// Failures per username per window without its device cookie.
    pub user_budget: u32,
    /// Failures per address per window without a device cookie.
    pub address_budget: u32,
    /// Device cookie lifetime.
    pub device_ttl: Duration,
    /// Cookies get `Secure`.
    pub secure_cookies: bool,
}

impl LoginRules {
    /// From the configuration.
    pub fn from_args(a: &LoginArgs, secure_cookies: bool) -> LoginRules {
        LoginRules {
            pair_free: a.login_attempts,
            device_free: a.login_device_attempts,
            backoff: Duration::from_millis(a.login_backoff_ms.max(1)),
            backoff_max: Duration::from_secs(a.login_backoff_max_secs.max(1)),
            window: Duration::from_secs(a.login_window_secs.max(1)),
            user_budget: a.login_user_failures.max(1),
            address_budget: a.login_address_failures.max(1),
            device_ttl: Duration::from_secs(a.device_cookie_days.max(1) * 86_400),
            secure_cookies,
        }
    }
}

/// A fixed-size key for a username (case-insensitive).
type UserKey = [u8; 16];

fn user_key(username: &str) -> UserKey {
    let digest = Sha256::digest(username.to_lowercase().as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

/// Exponential backoff after free failures.
#[derive(Debug, Clone)]
struct Backoff {
    failures: u32,
    last: Instant,
    refusal_noted: bool,
}

impl Backoff {
    /// The whole wait its failures earn (from the last one).
    fn penalty(&self, free: u32, r: &LoginRules) -> Duration {
        if self.failures < free {
            return Duration::ZERO;
        }
        let doublings = (self.failures - free).min(30);
        r.backoff
            .saturating_mul(1u32 << doublings)
            .min(r.backoff_max)
    }

    /// What is left of the wait.
    fn wait(&self, free: u32, r: &LoginRules, now: Instant) -> Duration {
        (self.last + self.penalty(free, r)).saturating_duration_since(now)
    }

    fn fail(&mut self, free: u32, r: &LoginRules, now: Instant) {
        if self.stale(free, r, now) {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last = now;
        self.refusal_noted = false;
    }

    /// Forgotten a window after its wait ended: a guesser trying again as
    /// soon as each wait ends stays at the longest wait.
    fn stale(&self, free: u32, r: &LoginRules, now: Instant) -> bool {
        now.duration_since(self.last) >= self.penalty(free, r) + r.window
    }
}

/// A leaky budget: `budget` failures per window, refilled steadily.
#[derive(Debug, Clone)]
struct Budget {
    level: f64,
    at: Instant,
    refusal_noted: bool,
}

impl Budget {
    fn rate(budget: u32, r: &LoginRules) -> f64 {
        f64::from(budget) / r.window.as_secs_f64()
    }

    fn level_at(&self, budget: u32, r: &LoginRules, now: Instant) -> f64 {
        let leaked = now.duration_since(self.at).as_secs_f64() * Self::rate(budget, r);
        (self.level - leaked).max(0.0)
    }

    fn wait(&self, budget: u32, r: &LoginRules, now: Instant) -> Duration {
        let over = self.level_at(budget, r, now) + 1.0 - f64::from(budget);
        if over <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(over / Self::rate(budget, r))
        }
    }

    fn fail(&mut self, budget: u32, r: &LoginRules, now: Instant) {
        self.level = self.level_at(budget, r, now) + 1.0;
        self.at = now;
        self.refusal_noted = false;
    }

    fn stale(&self, budget: u32, r: &LoginRules, now: Instant) -> bool {
        self.level_at(budget, r, now) <= 0.0
    }
}

/// How an attempt is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The browser holds a valid device cookie for this username.
    Device(String),
    /// Anything else.
    Untrusted,
}

/// A login attempt that may go ahead; report its outcome.
#[derive(Debug)]
pub struct Attempt {
    user: UserKey,
    username: String,
    addr: AddrKey,
    /// How the attempt was judged.
    pub trust: Trust,
}

/// A refused attempt.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// How long until an attempt is let through.
    pub wait: Duration,
    /// The first refusal since the last failure (worth an audit entry; the
    /// ones after it are not, so hammering cannot flood the audit log).
    pub first: bool,
}

/// The strictest wait of the rules looked at so far.
#[derive(Debug, Default)]
struct Verdict {
    wait: Duration,
    first: bool,
}

impl Verdict {
    /// A rule asks for `w`; `noted` is its "refusal already audited" flag.
    fn consider(&mut self, w: Duration, noted: &mut bool) {
        if w.is_zero() {
            return;
        }
        self.wait = self.wait.max(w);
        if !*noted {
            *noted = true;
            self.first = true;
        }
    }

    fn result(self) -> Result<(), Refusal> {
        if self.wait.is_zero() {
            Ok(())
        } else {
            Err(Refusal {
                wait: self.wait,
                first: self.first,
            })
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DeviceClaims {
    /// The username (lower case).
    sub: String,
    /// Identifies this browser's cookie (its failures are counted under it).
    nonce: String,
    typ: String,
    iat: u64,
    exp: u64,
}

const DEVICE_TYP: &str = "campus-device";

/// The login limiter with its device cookies.
pub struct LoginGuard {
    rules: LoginRules,
    pairs: DashMap<(UserKey, AddrKey), Backoff>,
    devices: DashMap<String, Backoff>,
    users: DashMap<UserKey, Budget>,
    addrs: DashMap<AddrKey, Budget>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard")
            .field("rules", &self.rules)
            .field("tracked", &self.tracked())
            .finish_non_exhaustive()
    }
}

impl LoginGuard {
    /// A guard whose device cookies are signed with a key derived from `secret`
    /// (never usable as a session token, which uses `secret` itself).
    pub fn new(rules: LoginRules, secret: &[u8]) -> LoginGuard {
        let mut h = Sha256::new();
        h.update(b"campus device cookie v1\0");
        h.update(secret);
        let key = h.finalize();
        LoginGuard {
            rules,
            pairs: DashMap::new(),
            devices: DashMap::new(),
            users: DashMap::new(),
            addrs: DashMap::new(),
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &LoginRules {
        &self.rules
    }

    /// May an attempt for `username` from `ip`, with this device cookie (if
    /// any), go ahead? An attempt let through is charged to its
    /// username+address (or its device cookie) at once, as if it failed, so
    /// parallel attempts cannot slip past the backoff; a success undoes it.
    /// Report the outcome with [`LoginGuard::failed`] or [`LoginGuard::succeeded`].
    pub fn begin(
        &self,
        username: &str,
        ip: IpAddr,
        device_cookie: Option<&str>,
    ) -> Result<Attempt, Refusal> {
        let now = Instant::now();
        let r = &self.rules;
        let attempt = Attempt {
            user: user_key(username),
            username: username.to_lowercase(),
            addr: AddrKey::of(ip),
            trust: device_cookie
                .and_then(|c| self.device_nonce(c, username))
                .map_or(Trust::Untrusted, Trust::Device),
        };
        let mut verdict = Verdict::default();
        let fresh = || Backoff {
            failures: 0,
            last: now,
            refusal_noted: false,
        };
        // Check and charge under the entry's lock: atomic per key.
        let charge = |b: &mut Backoff, free: u32, verdict: &mut Verdict| {
            let w = b.wait(free, r, now);
            verdict.consider(w, &mut b.refusal_noted);
            if verdict.wait.is_zero() {
                b.fail(free, r, now);
            }
        };
        match &attempt.trust {
            Trust::Device(nonce) => {
                if let Some(mut b) = entry(&self.devices, nonce.clone(), fresh) {
                    charge(&mut b, r.device_free, &mut verdict);
                }
            }
            Trust::Untrusted => {
                self.budget_verdict(&attempt, now, &mut verdict);
                if let Some(mut b) = entry(&self.pairs, (attempt.user, attempt.addr), fresh) {
                    charge(&mut b, r.pair_free, &mut verdict);
                }
            }
        }
        verdict.result().map(|()| attempt)
    }

    /// Check the username and address budgets again, right before the
    /// password is verified (the attempts queued for a hashing slot in the
    /// meantime may have used them up). A refused attempt is not charged.
    pub fn recheck(&self, a: &Attempt) -> Result<(), Refusal> {
        if a.trust != Trust::Untrusted {
            return Ok(());
        }
        let mut verdict = Verdict::default();
        self.budget_verdict(a, Instant::now(), &mut verdict);
        let result = verdict.result();
        if result.is_err() {
            self.refund(a);
        }
        result
    }

    fn budget_verdict(&self, a: &Attempt, now: Instant, verdict: &mut Verdict) {
        let r = &self.rules;
        if let Some(mut b) = self.users.get_mut(&a.user) {
            let w = b.wait(r.user_budget, r, now);
            verdict.consider(w, &mut b.refusal_noted);
        }
        if let Some(mut b) = self.addrs.get_mut(&a.addr) {
            let w = b.wait(r.address_budget, r, now);
            verdict.consider(w, &mut b.refusal_noted);
        }
    }

    /// The attempt was not judged (the database could not be asked): undo
    /// the charge [`LoginGuard::begin`] made.
    pub fn abandoned(&self, a: &Attempt) {
        self.refund(a);
    }

    fn refund(&self, a: &Attempt) {
        let undo = |b: &mut Backoff| b.failures = b.failures.saturating_sub(1);
        match &a.trust {
            Trust::Device(nonce) => {
                if let Some(mut b) = self.devices.get_mut(nonce) {
                    undo(&mut b);
                }
            }
            Trust::Untrusted => {
                if let Some(mut b) = self.pairs.get_mut(&(a.user, a.addr)) {
                    undo(&mut b);
                }
            }
        }
    }

    /// The attempt's password was wrong (or the account unknown or disabled):
    /// the backoff runs from now, and it also counts against the username
    /// and address budgets.
    pub fn failed(&self, a: &Attempt) {
        let now = Instant::now();
        let r = &self.rules;
        match &a.trust {
            Trust::Device(nonce) => {
                if let Some(mut b) = self.devices.get_mut(nonce) {
                    b.last = now;
                }
                return;
            }
            Trust::Untrusted => {
                if let Some(mut b) = self.pairs.get_mut(&(a.user, a.addr)) {
                    b.last = now;
                }
            }
        }
        let empty = || Budget {
            level: 0.0,
            at: now,
            refusal_noted: false,
        };
        if let Some(mut b) = entry(&self.users, a.user, empty) {
            b.fail(r.user_budget, r, now);
        }
        if let Some(mut b) = entry(&self.addrs, a.addr, empty) {
            b.fail(r.address_budget, r, now);
        }
    }

    /// The attempt logged in: its username+address and device failures are
    /// forgotten (the username and address budgets are not: an attacker may
    /// share either). Returns the `Set-Cookie` value of a fresh device cookie.
    pub fn succeeded(&self, a: &Attempt) -> Option<String> {
        match &a.trust {
            Trust::Device(nonce) => {
                self.devices.remove(nonce);
            }
            Trust::Untrusted => {
                self.pairs.remove(&(a.user, a.addr));
            }
        }
        self.device_cookie(&a.username)
    }

    /// A signed device cookie for `username` (lower-cased) as a `Set-Cookie` value.
    fn device_cookie(&self, username: &str) -> Option<String> {
        let now = unix_now();
        let mut nonce = [0u8; 16];
        rand::Rng::fill(&mut rand::thread_rng(), &mut nonce);
        let claims = DeviceClaims {
            sub: username.to_string(),
            nonce: hex::encode(nonce),
            typ: DEVICE_TYP.into(),
            iat: now,
            exp: now + self.rules.device_ttl.as_secs(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).ok()?;
        let secure = if self.rules.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        Some(format!(
            "{DEVICE_COOKIE}={token}; Path=/api/auth; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.rules.device_ttl.as_secs()
        ))
    }

    /// The nonce of a valid device cookie issued for `username`.
    fn device_nonce(&self, cookie: &str, username: &str) -> Option<String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let claims = decode::<DeviceClaims>(cookie, &self.decoding, &v)
            .ok()?
            .claims;
        (claims.typ == DEVICE_TYP && claims.sub == username.to_lowercase()).then_some(claims.nonce)
    }

    /// Drop entries that no longer limit anything (housekeeping).
    pub fn shrink(&self) {
        let now = Instant::now();
        let r = &self.rules;
        self.pairs.retain(|_, b| !b.stale(r.pair_free, r, now));
        self.devices.retain(|_, b| !b.stale(r.device_free, r, now));
        self.users.retain(|_, b| !b.stale(r.user_budget, r, now));
        self.addrs.retain(|_, b| !b.stale(r.address_budget, r, now));
        self.pairs.shrink_to_fit();
        self.devices.shrink_to_fit();
        self.users.shrink_to_fit();
        self.addrs.shrink_to_fit();
    }

    /// Entries held, all rules together.
    pub fn tracked(&self) -> usize {
        self.pairs.len() + self.devices.len() + self.users.len() + self.addrs.len()
    }
}

/// The entry for `key`, created with `new` unless the map is full.
fn entry<K, V>(
    map: &DashMap<K, V>,
    key: K,
    new: impl FnOnce() -> V,
) -> Option<dashmap::mapref::one::RefMut<'_, K, V>>
where
    K: std::hash::Hash + Eq,
{
    if let Some(e) = map.get_mut(&key) {
        return Some(e);
    }
    if map.len() >= MAX_KEYS {
        return None;
    }
    Some(map.entry(key).or_insert_with(new))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The device cookie in a request's `Cookie` headers.
pub fn device_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(';'))
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, v)| *k == DEVICE_COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rules() -> LoginRules {
        LoginRules {
            pair_free: 3,
            device_free: 3,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            window: Duration::from_secs(900),
            user_budget: 10,
            address_budget: 20,
            device_ttl: Duration::from_secs(86_400),
            secure_cookies: true,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn cookie_value(set_cookie: &str) -> String {
        set_cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("campus_device=")
            .to_string()
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_and_is_capped() {
        let r = rules();
        let t0 = Instant::now();
        let mut b = Backoff {
            failures: 0,
            last: t0,
            refusal_noted: false,
        };
        let mut waits = Vec::new();
        for _ in 0..8 {
            b.fail(r.pair_free, &r, t0);
            waits.push(b.wait(r.pair_free, &r, t0).as_secs());
        }
        assert_eq!(waits, [0, 0, 1, 2, 4, 8, 8, 8]);
        // Waiting it out lets the next attempt through; the window forgets all.
        assert_eq!(
            b.wait(r.pair_free, &r, t0 + Duration::from_secs(8)),
            Duration::ZERO
        );
        // Trying again as soon as the wait ends keeps the longest wait…
        let later = t0 + Duration::from_secs(8);
        b.fail(r.pair_free, &r, later);
        assert_eq!(b.wait(r.pair_free, &r, later).as_secs(), 8);
        // …and a window of quiet after it forgets everything.
        assert!(!b.stale(r.pair_free, &r, later + r.window));
        assert!(b.stale(r.pair_free, &r, later + Duration::from_secs(8) + r.window));
        b.fail(r.pair_free, &r, later + Duration::from_secs(8) + r.window);
        assert_eq!(b.failures, 1);
    }

    #[test]
    fn budgets_allow_a_burst_then_refill_steadily() {
        let r = rules();
        let t0 = Instant::now();
        let mut b = Budget {
            level: 0.0,
            at: t0,
            refusal_noted: false,
        };
        for _ in 0..9 {
            b.fail(10, &r, t0);
            assert_eq!(b.wait(10, &r, t0), Duration::ZERO);
        }
        b.fail(10, &r, t0);
        // Full: one more per window/budget = 90 s.
        let w = b.wait(10, &r, t0);
        assert!((89..=90).contains(&w.as_secs()), "{w:?}");
        assert_eq!(b.wait(10, &r, t0 + Duration::from_secs(90)), Duration::ZERO);
        assert!(b.stale(10, &r, t0 + r.window));
    }

    #[test]
    fn a_guesser_cannot_lock_out_the_students_browser_or_other_addresses() {
        let g = LoginGuard::new(rules(), b"0123456789abcdef0123456789abcdef");
        // The student logged in once from this browser.
        let a = g.begin("Ann", ip(1), None).unwrap();
        let set = g.succeeded(&a).unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("Path=/api/auth") && set.contains("Secure")
        );
        let device = cookie_value(&set);

        // The attacker, same address, no cookie.
        for _ in 0..3 {
            let a = g.begin("ann", ip(1), None).unwrap();
            g.failed(&a);
        }
        let refused = g.begin("ann", ip(1), None).unwrap_err();
        assert!(refused.first && refused.wait > Duration::ZERO);
        assert!(
            !g.begin("ann", ip(1), None).unwrap_err().first,
            "noted once"
        );

        // The student's browser is not slowed; another address is not either.
        let mine = g.begin("ann", ip(1), Some(&device)).unwrap();
        assert!(matches!(mine.trust, Trust::Device(_)));
        assert!(g.begin("ann", ip(2), None).is_ok());
        // Nor is another user at the attacker's address.
        assert!(g.begin("bob", ip(1), None).is_ok());

        // A device cookie for another user, or a forged one, is no exemption.
        assert_eq!(
            g.begin("bob", ip(1), Some(&device)).unwrap().trust,
            Trust::Untrusted
        );
        let forged = LoginGuard::new(rules(), b"another-secret-another-secret-xx");
        let a = forged.begin("ann", ip(1), None).unwrap();
        let other = cookie_value(&forged.succeeded(&a).unwrap());
        assert!(g.begin("ann", ip(1), Some(&other)).is_err());
    }

    #[test]
    fn a_stolen_device_cookie_backs_off_on_its_own() {
        let g = LoginGuard::new(rules(), b"0123456789abcdef0123456789abcdef");
        let a = g.begin("ann", ip(1), None).unwrap();
        let device = cookie_value(&g.succeeded(&a).unwrap());
        for _ in 0..3 {
            let a = g.begin("ann", ip(9), Some(&device)).unwrap();
            g.failed(&a);
        }
        assert!(g.begin("ann", ip(9), Some(&device)).is_err());
        // Its failures were not charged to the untrusted rules.
        assert!(g.begin("ann", ip(9), None).is_ok());
    }

    #[test]
    fn distributed_guessing_and_spraying_use_up_the_budgets() {
        let g = LoginGuard::new(rules(), b"0123456789abcdef0123456789abcdef");
        // Ten addresses, one failure each, against ann: her budget (10) is spent.
        for i in 0..10 {
            let a = g.begin("ann", ip(i), None).unwrap();
            g.failed(&a);
        }
        assert!(g.begin("ann", ip(50), None).is_err());
        assert!(g.begin("bob", ip(50), None).is_ok());
        // Twenty usernames from one address: the address budget (20) is spent.
        for i in 0..20 {
            let a = g.begin(&format!("user{i}"), ip(60), None).unwrap();
            g.failed(&a);
        }
        assert!(g.begin("carl", ip(60), None).is_err());
        assert!(g.begin("carl", ip(61), None).is_ok());
    }

    #[test]
    fn successes_cost_nothing_and_reset_the_pair() {
        let g = LoginGuard::new(rules(), b"0123456789abcdef0123456789abcdef");
        for i in 0..500 {
            let a = g.begin(&format!("student{i}"), ip(1), None).unwrap();
            assert!(g.succeeded(&a).is_some());
        }
        for _ in 0..2 {
            let a = g.begin("ann", ip(1), None).unwrap();
            g.failed(&a);
        }
        let a = g.begin("ann", ip(1), None).unwrap();
        g.succeeded(&a);
        // The pair starts over: three more free failures.
        for _ in 0..3 {
            let a = g.begin("ann", ip(1), None).unwrap();
            g.failed(&a);
        }
        assert!(g.begin("ann", ip(1), None).is_err());
    }

    #[test]
    fn parallel_attempts_are_charged_before_their_outcome() {
        let g = LoginGuard::new(rules(), b"0123456789abcdef0123456789abcdef");
        // Three attempts in flight at once (free: 3): the fourth waits.
        let inflight: Vec<Attempt> = (0..3)
            .map(|_| g.begin("ann", ip(1), None).unwrap())
            .collect();
        assert!(g.begin("ann", ip(1), None).is_err());
        // A success among them resets the pair.
        g.succeeded(&inflight[0]);
        assert!(g.begin("ann", ip(1), None).is_ok());
        // The budgets are checked again before the password is: spent
        // meanwhile, the attempt is refused and not charged.
        let late = g.begin("zed", ip(7), None).unwrap();
        for i in 0..20 {
            let a = g.begin(&format!("spray{i}"), ip(7), None).unwrap();
            g.failed(&a);
        }
        assert!(g.recheck(&late).is_err());
        assert_eq!(g.pairs.get(&(late.user, late.addr)).unwrap().failures, 0);
    }

    #[test]
    fn device_cookies_are_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            axum::http::header::COOKIE,
            "a=1; campus_device=xyz; campus_token=t".parse().unwrap(),
        );
        assert_eq!(device_cookie(&h).as_deref(), Some("xyz"));
        assert_eq!(device_cookie(&axum::http::HeaderMap::new()), None);
    }
}
