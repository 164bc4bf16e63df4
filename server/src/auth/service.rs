//! The auth service: everything that decides who a caller is. It owns the
//! token keys, the login guard, the hash slots and the account status (last
//! known account states, token generations and logged-out tokens, kept in step
//! with the database by its refresher), and reaches the database (through the
//! breaker) and the audit log (through the record writer) itself; handlers
//! give it credentials and get a user or a refusal.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use campus_protocol::{ErrorCode, Role, UserInfo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::account_status::{AccountStatus, Refresher};
use super::hash_slots::HashSlots;
use super::login_guard::{LoginGuard, Refusal};
use super::{AuthError, Claims, TokenKeys};
use crate::error::AppError;
use crate::hub::{Hub, Revocation};
use crate::records::Records;
use crate::runner::Runner;
use crate::store::{now_ms, DbHealth, DynStore, NewAudit, RevokedToken, User};

/// The refusal of a login, whatever was wrong (no user enumeration).
const BAD_CREDENTIALS: &str = "wrong username or password";

/// What the auth service is built from.
#[derive(Debug)]
pub struct AuthDeps {
    /// Signing and verification keys.
    pub keys: TokenKeys,
    /// The database, behind its breaker.
    pub store: DynStore,
    /// Whether the database is reachable (the breaker's flag).
    pub db: Arc<DbHealth>,
    /// Where audit entries go.
    pub records: Records,
    /// Live connections (closed when an account is disabled).
    pub hub: Arc<Hub>,
    /// How failed logins are slowed down, with the device cookies' key
    /// (see [`super::login_guard`]).
    pub login_guard: LoginGuard,
    /// Password verifications at once.
    pub hash_slots: usize,
    /// A known account state older than this is re-checked in the background.
    pub recheck_after: Duration,
    /// Runs, stopped when their user's tokens are revoked.
    pub runner: Arc<Runner>,
    /// How often the database is polled for account changes made elsewhere
    /// (`CAMPUS_ACCOUNT_POLL_MS`).
    pub account_poll: Duration,
    /// The first poll's cursor (the database clock at start-up).
    pub account_cursor_ms: i64,
    /// Tokens logged out and not yet expired (loaded at start-up).
    pub revocations: Vec<RevokedToken>,
}

/// Logins, token checks and account re-checks (see the module docs).
#[derive(Debug)]
pub struct AuthService {
    keys: TokenKeys,
    store: DynStore,
    db: Arc<DbHealth>,
    records: Records,
    hub: Arc<Hub>,
    runner: Arc<Runner>,
    login_guard: LoginGuard,
    hashes: HashSlots,
    accounts: Arc<AccountStatus>,
}

/// A successful login.
#[derive(Debug)]
pub struct LoggedIn {
    /// Who logged in.
    pub user: UserInfo,
    /// The new token.
    pub token: String,
    /// Its expiry, seconds since the epoch.
    pub expires_at: u64,
    /// A fresh device cookie for this browser (`Set-Cookie` value).
    pub device_cookie: Option<String>,
}

impl AuthService {
    /// Build the service and start its account refresher (tracked, ends with `shutdown`).
    pub fn start(deps: AuthDeps, tracker: &TaskTracker, shutdown: CancellationToken) -> Self {
        let (accounts, rechecks) = AccountStatus::new(deps.recheck_after);
        let accounts = Arc::new(accounts);
        for t in &deps.revocations {
            accounts.deny(t);
        }
        tracker.spawn(Arc::clone(&accounts).refresher(
            rechecks,
            Refresher {
                store: Arc::clone(&deps.store),
                hub: Arc::clone(&deps.hub),
                runner: Arc::clone(&deps.runner),
                poll: deps.account_poll,
                since_ms: deps.account_cursor_ms,
            },
            shutdown,
        ));
        AuthService {
            keys: deps.keys,
            store: deps.store,
            db: deps.db,
            records: deps.records,
            hub: deps.hub,
            runner: deps.runner,
            login_guard: deps.login_guard,
            hashes: HashSlots::new(deps.hash_slots),
            accounts,
        }
    }

    /// Check a username and password from `ip` and issue a token, with the
    /// login guard's limits (`device` is the browser's device cookie, if
    /// any). Every outcome is audited (in the background: the only database
    /// call a login waits for is the account lookup); a refusal only once
    /// per wait, so hammering during one writes nothing. While the database
    /// is known to be down this is `unavailable` at once.
    pub async fn login(
        &self,
        username: &str,
        password: String,
        ip: IpAddr,
        device: Option<&str>,
    ) -> Result<LoggedIn, AppError> {
        if !self.db.is_up() {
            return Err(AppError::unavailable());
        }
        let audit = |action: &str, actor_id: Option<i64>| NewAudit {
            actor_id,
            actor: Some(username.to_string()),
            action: action.to_string(),
            target: None,
            detail: None,
            ip: Some(ip.to_string()),
        };
        let refused = |r: Refusal| {
            if r.first {
                self.records.audit(audit("login.rate_limited", None));
            }
            AppError::rate_limited("failed login attempts", r.wait)
        };
        let attempt = self
            .login_guard
            .begin(username, ip, device)
            .map_err(refused)?;
        let user = match self.store.user_by_username(username).await {
            Ok(u) => u,
            Err(e) => {
                self.login_guard.abandoned(&attempt);
                return Err(e.into());
            }
        };
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self
            .hashes
            .verify_admitted(password, phc, || {
                self.login_guard.recheck(&attempt).map_err(refused)
            })
            .await?;
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            Some(u) if ok => {
                // Counted like a wrong password: the answer must not tell them apart.
                self.login_guard.failed(&attempt);
                self.records.audit(audit("login.disabled", Some(u.id)));
                return Err(AppError::new(ErrorCode::Unauthorized, BAD_CREDENTIALS));
            }
            other => {
                self.login_guard.failed(&attempt);
                self.records
                    .audit(audit("login.failed", other.map(|u| u.id)));
                return Err(AppError::new(ErrorCode::Unauthorized, BAD_CREDENTIALS));
            }
        };
        let device_cookie = self.login_guard.succeeded(&attempt);
        let (token, expires_at) = self
            .keys
            .issue(user.id, &user.username, user.role, user.token_generation)
            .map_err(AppError::internal)?;
        self.records.audit(audit("login.ok", Some(user.id)));
        let info = UserInfo {
            id: user.id,
            username: user.username,
            role: user.role,
        };
        self.accounts.remember(&info, user.token_generation);
        Ok(LoggedIn {
            user: info,
            token,
            expires_at,
            device_cookie,
        })
    }

    /// Verify the token, that it was not logged out, and that its user still
    /// exists, is enabled and has the token's generation (no password or role
    /// change since; asks the database); remembers the account.
    async fn authenticate(&self, token: &str) -> Result<(UserInfo, Claims), AuthError> {
        let claims = self.keys.verify(token).map_err(|_| AuthError::Invalid)?;
        let id = claims.user_id().ok_or(AuthError::Invalid)?;
        if self.accounts.is_denied(&claims.jti) {
            return Err(AuthError::Revoked);
        }
        let user = self
            .store
            .user_by_id(id)
            .await?
            .ok_or(AuthError::Disabled)?;
        if user.disabled || user.username != claims.username {
            return Err(AuthError::Disabled);
        }
        if user.token_generation != claims.generation {
            return Err(AuthError::Revoked);
        }
        let info = UserInfo {
            id: user.id,
            username: user.username,
            role: user.role,
        };
        self.accounts.remember(&info, user.token_generation);
        Ok((info, claims))
    }

    /// The caller of an HTTP request. While the database cannot be asked, a
    /// user with a live connection keeps its last known account state
    /// (downloads and uploads go on); anyone else is told to come back
    /// (`unavailable`).
    pub async fn authenticate_request(&self, token: &str) -> Result<UserInfo, AppError> {
        match self.authenticate(token).await {
            Ok((user, _)) => Ok(user),
            Err(AuthError::Store(e)) if e.is_unavailable() => self
                .keys
                .verify(token)
                .ok()
                .and_then(|claims| self.accounts.last_known(&claims))
                .filter(|user| self.hub.is_connected(user.id))
                .ok_or_else(|| e.into()),
            Err(e) => Err(refusal(e)),
        }
    }

    /// The user opening a WebSocket: a new connection needs the database's
    /// word on the account (while it is unreachable this is `unavailable`
    /// within a second, the breaker's budget, never a wait for the pool).
    pub async fn authenticate_connection(
        &self,
        token: &str,
    ) -> Result<(UserInfo, Claims), AppError> {
        self.authenticate(token).await.map_err(refusal)
    }

    /// Heartbeat re-check: why the connection must end (token expired or
    /// logged out, account disabled, password or role changed), as last
    /// known; `None` to go on. Never waits for the database; schedules a
    /// background re-check of a stale account (see [`super::account_status`]).
    pub fn still_authorized(&self, claims: &Claims) -> Option<Revocation> {
        self.accounts.check(claims)
    }

    /// The same answer from memory only, without scheduling anything: checked
    /// before every WebSocket message is handled (two map lookups).
    pub fn refusal(&self, claims: &Claims) -> Option<Revocation> {
        self.accounts.refusal(claims)
    }

    /// Log out the token the request carries (already verified or not): it is
    /// refused from this moment (every tab and device using it: their
    /// WebSockets close with 4013 at once); the revocation is recorded through
    /// the record writer, so it survives a database outage and reaches every
    /// instance sharing the database. The user's run is stopped when no other
    /// of their connections is left. An invalid or expired token is ignored.
    pub async fn logout(&self, token: &str, ip: IpAddr) {
        let Ok(claims) = self.keys.verify(token) else {
            return;
        };
        let Some(user_id) = claims.user_id() else {
            return;
        };
        let revoked = RevokedToken {
            jti: claims.jti.clone(),
            user_id,
            expires_at_ms: i64::try_from(claims.exp.saturating_mul(1000)).unwrap_or(i64::MAX),
        };
        // Memory first (refused from now on), then the durable record.
        let fresh = self.accounts.deny(&revoked);
        self.records.token_revoked(revoked.clone());
        if fresh {
            self.records.audit(NewAudit {
                actor_id: Some(user_id),
                actor: Some(claims.username.clone()),
                action: "logout".into(),
                target: None,
                detail: None,
                ip: Some(ip.to_string()),
            });
        }
        self.accounts
            .token_revoked(&revoked, &self.hub, &self.runner)
            .await;
    }

    /// Every account, by username (the admin view's list).
    pub async fn list_accounts(&self) -> Result<Vec<campus_protocol::AdminAccount>, AppError> {
        let mut users = self.store.list_users().await?;
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users
            .into_iter()
            .map(|u| campus_protocol::AdminAccount {
                user_id: u.id,
                username: u.username,
                role: u.role,
                disabled: u.disabled,
                created_at_ms: u.created_at_ms,
            })
            .collect())
    }

    /// The login name of `user_id`, if the account exists.
    pub async fn username_of(&self, user_id: i64) -> Result<Option<String>, AppError> {
        Ok(self.store.user_by_id(user_id).await?.map(|u| u.username))
    }

    /// Disable (or enable again) the account `user_id`, as an admin does it:
    /// the database first (every instance sharing it sees the change at its
    /// next poll), then this server's connections, run and known state at
    /// once. Returns the username and whether anything changed; `not_found`
    /// for an unknown id.
    pub async fn set_disabled(
        &self,
        user_id: i64,
        disabled: bool,
    ) -> Result<(String, bool), AppError> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such user"))?;
        if user.disabled == disabled {
            return Ok((user.username, false));
        }
        if disabled && user.role == Role::Admin {
            // Never the last enabled admin: nobody could enable anyone again
            // without the command line.
            let users = self.store.list_users().await?;
            let enabled = users
                .iter()
                .filter(|u| u.role == Role::Admin && !u.disabled)
                .count();
            if enabled <= 1 {
                return Err(AppError::new(
                    ErrorCode::BadRequest,
                    "this is the last enabled administrator account",
                ));
            }
        }
        self.store
            .set_user_disabled(&user.username, disabled)
            .await?;
        // What this server knows and holds, at once; a failed re-read still
        // applies what was written.
        let now = match self.store.user_by_id(user_id).await {
            Ok(Some(u)) => u,
            _ => User {
                disabled,
                token_generation: user.token_generation + 1,
                ..user
            },
        };
        self.accounts.apply(&now, &self.hub, &self.runner).await;
        Ok((now.username, true))
    }

    /// How long issued tokens are valid.
    pub fn token_ttl(&self) -> Duration {
        self.keys.ttl()
    }

    /// Housekeeping: forget login-guard entries and account states nobody needs any more.
    pub fn shrink(&self) {
        self.login_guard.shrink();
        self.accounts.shrink();
    }

    /// Housekeeping: delete revocations of tokens that have expired anyway.
    pub async fn purge_revocations(&self) {
        match self.store.purge_revocations(now_ms()).await {
            Ok(n) if n > 0 => tracing::debug!(purged = n, "forgot revocations of expired tokens"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot purge expired revocations now"),
        }
    }
}

/// The protocol refusal for a failed authentication.
fn refusal(e: AuthError) -> AppError {
    match e {
        AuthError::Store(e) => e.into(),
        e => AppError::new(ErrorCode::Unauthorized, e.to_string()),
    }
}
