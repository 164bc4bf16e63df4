//! Shared application state, passed to every handler through axum `State`
//! (no globals, so tests can run several servers in one process).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use campus_protocol::Limits;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::account_status::AccountStatus;
use crate::auth::login_guard::LoginGuard;
use crate::auth::TokenKeys;
use crate::config::ServeArgs;
use crate::conn::ConnLimits;
use crate::error::AppError;
use crate::http::origin::OriginPolicy;
use crate::hub::Hub;
use crate::records::Records;
use crate::sandbox::Sandbox;
use crate::store::{DbHealth, DynStore};

/// Everything a request handler may need.
#[derive(Debug)]
pub struct AppState {
    /// Configuration.
    pub cfg: ServeArgs,
    /// The database, behind its breaker (calls fail fast while it is down).
    pub store: DynStore,
    /// Whether the database is reachable (the breaker's flag).
    pub db: Arc<DbHealth>,
    /// The background writer of run records and audit entries.
    pub records: Records,
    /// JWT keys.
    pub keys: TokenKeys,
    /// Login limiting: backoff per username and address, device cookies.
    pub login_guard: LoginGuard,
    /// Connection limits (per address before authentication, per user, in total).
    pub conns: Arc<ConnLimits>,
    /// Which browser origins may use a cookie; `Secure` cookies.
    pub origins: OriginPolicy,
    /// Last known account states for the heartbeat re-check (refreshed in the background).
    pub accounts: Arc<AccountStatus>,
    /// Concurrent password hashes (each costs 19 MiB and a core for ~20 ms):
    /// a login storm queues here instead of exhausting memory.
    pub hash_slots: tokio::sync::Semaphore,
    /// File operations per user (WebSocket and HTTP share it).
    pub file_ops: KeyedLimiter,
    /// Live connections per user.
    pub hub: Arc<Hub>,
    /// The host sandbox.
    pub sandbox: Arc<Sandbox>,
    /// The sandbox probe run and its last result (for `/readyz`).
    pub sandbox_probe: Arc<crate::runner::probe::SandboxProbe>,
    /// Workspaces.
    pub files: Arc<crate::files::FileService>,
    /// Sessions and runs.
    pub runner: Arc<crate::runner::Runner>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Readiness probe cache.
    pub ready: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// Limits announced in `hello`.
    pub limits: Limits,
    /// Extra browser origins allowed for CORS (`CAMPUS_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
}

/// Shared handle.
pub type SharedState = Arc<AppState>;

/// A per-key rate limiter with a clock to compute wait hints.
pub struct KeyedLimiter {
    limiter: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
    what: &'static str,
}

impl std::fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyedLimiter({})", self.what)
    }
}

impl KeyedLimiter {
    /// `per_min` events per minute per key, with a burst of the same size.
    pub fn per_minute(per_min: u32, what: &'static str) -> Self {
        let n = NonZeroU32::new(per_min.max(1)).unwrap_or(NonZeroU32::MIN);
        KeyedLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
            what,
        }
    }

    /// Count one event for `key`, or refuse with `rate_limited` + `retry_after_ms`.
    pub fn check(&self, key: i64) -> Result<(), AppError> {
        self.limiter
            .check_key(&key)
            .map_err(|nu| AppError::rate_limited(self.what, nu.wait_time_from(self.clock.now())))
    }

    /// Forget keys that are back at full quota.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

impl AppState {
    /// DB reachability, cached for a second so a probe storm cannot load the DB.
    /// Answers at once while the breaker says the database is down.
    pub async fn db_ready(&self) -> bool {
        if !self.db.is_up() {
            return false;
        }
        let mut guard = self.ready.lock().await;
        if let Some((at, ok)) = *guard {
            if at.elapsed() < Duration::from_millis(1000) {
                return ok;
            }
        }
        // The guarded ping has its own (sub-second) budget.
        let ok = self.store.ping().await.is_ok();
        *guard = Some((Instant::now(), ok));
        ok
    }
}
