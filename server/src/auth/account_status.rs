//! Whether a token and its account may keep their open connections,
//! answered from memory (the hot path: every WebSocket message and heartbeat)
//! and kept in step with the database by one refresher task.
//!
//! What is held per account: whether it is enabled, its role, and its token
//! generation (docs/security.md, "Sessions and tokens"); and the ids (`jti`)
//! of tokens revoked by logout until they expire. The refresher learns of
//! changes three ways: this process's own logouts (at once, [`AccountStatus::deny`]);
//! a poll every `CAMPUS_ACCOUNT_POLL_MS` (1 s) of the rows changed since the
//! last poll ([`crate::store::Store::account_changes`]: two index range scans,
//! empty while nothing changes), which is how `campus user passwd`, `disable`
//! and `role` in another process, and other instances' logouts, reach this
//! server; and the heartbeat re-check of each connected account (every half
//! heartbeat, one query per account), the backstop. When it finds a token or
//! an account revoked, it ends the affected connections at once through the
//! hub (close code 4013, the reason shown to the user) and stops the user's
//! run (`revoked`).
//!
//! A heartbeat never waits for the database, many tabs of one user cost
//! one query per TTL, and while the database is unreachable a connected user
//! keeps the last known state (a re-check that cannot reach it changes
//! nothing). The last known state also lets a connected user's HTTP requests
//! (file downloads and uploads) through during an outage
//! ([`AccountStatus::last_known`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use campus_protocol::{close_codes, EndReason, Role, UserInfo};
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::Claims;
use crate::hub::{Hub, Revocation};
use crate::runner::Runner;
use crate::store::{now_ms, DynStore, RevokedToken, User};

/// Re-check requests waiting for the refresher.
const QUEUE: usize = 1024;
/// Known states of users without a live connection are forgotten after this.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Each poll looks this far behind the previous poll's database clock, so a
/// change stamped just before a poll but committed just after it is not missed
/// (re-seeing a change is harmless: only what is new is acted on).
const POLL_OVERLAP_MS: i64 = 2_000;
/// How long revoking waits for the session to confirm its run stopped.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Close reason: this token was logged out.
pub const LOGGED_OUT: Revocation = (
    close_codes::REVOKED,
    "Signed out: this session was logged out (in this or another tab). Log in again.",
);
/// Close reason: the account's password changed (all its tokens are revoked).
pub const PASSWORD_CHANGED: Revocation = (
    close_codes::REVOKED,
    "Signed out: the password of this account was changed. Log in again.",
);
/// Close reason: the account's role changed (all its tokens are revoked).
pub const ROLE_CHANGED: Revocation = (
    close_codes::REVOKED,
    "Signed out: the role of this account was changed. Log in again.",
);
/// Close reason: the account was disabled or removed.
pub const DISABLED: Revocation = (
    close_codes::REVOKED,
    "Signed out: this account was disabled.",
);
/// Close reason: the token expired while connected.
pub const EXPIRED: Revocation = (
    close_codes::UNAUTHORIZED,
    "session expired or account disabled",
);

/// What was last learned about one account.
#[derive(Debug, Clone)]
struct Known {
    /// When the database last answered for it (`None`: not yet).
    at: Option<Instant>,
    /// The account as it was then; `None` once found disabled or removed.
    user: Option<UserInfo>,
    /// A re-check is queued or running.
    refreshing: bool,
    /// Its token generation, as last known (never goes back).
    generation: i64,
}

impl Known {
    fn unseen() -> Self {
        Known {
            at: None,
            user: None,
            refreshing: false,
            generation: 0,
        }
    }
}

/// Last known account states and revoked tokens, refreshed in the background.
#[derive(Debug)]
pub struct AccountStatus {
    ttl: Duration,
    known: DashMap<i64, Known>,
    /// Tokens revoked by logout: `jti` -> expiry (ms since the epoch).
    denied: DashMap<String, i64>,
    tx: mpsc::Sender<i64>,
}

/// Where the refresher acts and how often it polls.
#[derive(Debug)]
pub struct Refresher {
    /// The database (behind its breaker).
    pub store: DynStore,
    /// Live connections, ended on revocation.
    pub hub: Arc<Hub>,
    /// Runs, stopped on revocation.
    pub runner: Arc<Runner>,
    /// Poll interval (`CAMPUS_ACCOUNT_POLL_MS`).
    pub poll: Duration,
    /// The first poll's cursor (the database clock at start-up).
    pub since_ms: i64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl AccountStatus {
    /// Answers are re-checked once older than `ttl` (half a heartbeat keeps
    /// detection within about 1.5 heartbeats even without the poll). Returns
    /// the cache and the receiver its refresher ([`AccountStatus::refresher`]) drains.
    pub fn new(ttl: Duration) -> (Self, mpsc::Receiver<i64>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            AccountStatus {
                ttl,
                known: DashMap::new(),
                denied: DashMap::new(),
                tx,
            },
            rx,
        )
    }

    /// The database just confirmed `user` is enabled with token `generation`
    /// (login, WebSocket gate, an authenticated HTTP request). The known
    /// generation never goes back (a slow request must not undo a revocation
    /// the refresher saw after it).
    pub fn remember(&self, user: &UserInfo, generation: i64) {
        let mut e = self.known.entry(user.id).or_insert_with(Known::unseen);
        e.at = Some(Instant::now());
        e.user = Some(user.clone());
        e.refreshing = false;
        e.generation = e.generation.max(generation);
    }

    /// Why `claims` may no longer be used, from memory only (never waits):
    /// expired, logged out, account disabled, or an older token generation.
    /// `None`: go on. An account never seen counts as enabled (its connection
    /// passed the gate, which asked the database).
    pub fn refusal(&self, claims: &Claims) -> Option<Revocation> {
        if claims.exp <= now_secs() {
            return Some(EXPIRED);
        }
        if self.denied.contains_key(&claims.jti) {
            return Some(LOGGED_OUT);
        }
        let Some(id) = claims.user_id() else {
            return Some(EXPIRED);
        };
        let known = self.known.get(&id)?;
        if known.at.is_some() && known.user.is_none() {
            return Some(DISABLED);
        }
        if claims.generation < known.generation {
            let role_changed = known.user.as_ref().is_some_and(|u| u.role != claims.role);
            return Some(if role_changed {
                ROLE_CHANGED
            } else {
                PASSWORD_CHANGED
            });
        }
        None
    }

    /// True when the token `jti` was logged out.
    pub fn is_denied(&self, jti: &str) -> bool {
        self.denied.contains_key(jti)
    }

    /// Refuse the token from now on (logout); true if it was not already.
    pub fn deny(&self, token: &RevokedToken) -> bool {
        self.denied
            .insert(token.jti.clone(), token.expires_at_ms)
            .is_none()
    }

    /// Heartbeat re-check: [`AccountStatus::refusal`], at once; schedules a
    /// background re-check of the account when its answer is stale.
    pub fn check(&self, claims: &Claims) -> Option<Revocation> {
        if let Some(why) = self.refusal(claims) {
            return Some(why);
        }
        let id = claims.user_id()?;
        let mut entry = self.known.entry(id).or_insert_with(Known::unseen);
        let stale = entry.at.is_none_or(|at| at.elapsed() >= self.ttl);
        if stale && !entry.refreshing {
            // A full queue is retried at the next heartbeat.
            entry.refreshing = self.tx.try_send(id).is_ok();
        }
        None
    }

    /// The last known account of a token's user, if it is known to be enabled
    /// and the token is not revoked (used only while the database cannot be asked).
    pub fn last_known(&self, claims: &Claims) -> Option<UserInfo> {
        if self.refusal(claims).is_some() {
            return None;
        }
        let id = claims.user_id()?;
        let known = self.known.get(&id)?;
        known.user.clone().filter(|u| u.username == claims.username)
    }

    /// Forget states of users not re-checked for a long time, and revocations
    /// of tokens that have expired anyway (housekeeping).
    pub fn shrink(&self) {
        self.known
            .retain(|_, k| k.refreshing || k.at.is_some_and(|at| at.elapsed() < FORGET_AFTER));
        let now = now_ms();
        self.denied.retain(|_, exp| *exp > now);
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Revoked tokens held in memory (for tests and `/readyz`).
    pub fn denied_count(&self) -> usize {
        self.denied.len()
    }

    /// A token was logged out here or elsewhere: end its connections at once
    /// and, when the user has no other connection left, stop their run.
    pub async fn token_revoked(&self, token: &RevokedToken, hub: &Hub, runner: &Runner) {
        self.deny(token);
        let others = hub.revoke_token(token.user_id, &token.jti, LOGGED_OUT);
        if others == 0 {
            runner
                .end_user_run(token.user_id, EndReason::Revoked, STOP_WAIT)
                .await;
        }
    }

    /// The database says `user` is as given: update what is known and, when
    /// it is now disabled or its generation moved on, end what it revoked.
    pub(super) async fn apply(&self, user: &User, hub: &Hub, runner: &Runner) {
        let (known_before, prev_gen, prev_role) = {
            if !self.known.contains_key(&user.id)
                && !hub.is_connected(user.id)
                && runner.handle(user.id).is_none()
            {
                // Nothing of theirs is here: nothing to update or end. A
                // session nobody is attached to counts: its run goes on.
                return;
            }
            let mut e = self.known.entry(user.id).or_insert_with(Known::unseen);
            let before = (
                e.at.is_some() && e.user.is_some(),
                e.generation,
                e.user.as_ref().map(|u| u.role),
            );
            e.at = Some(Instant::now());
            e.refreshing = false;
            e.generation = e.generation.max(user.token_generation);
            e.user = (!user.disabled).then(|| UserInfo {
                id: user.id,
                username: user.username.clone(),
                role: user.role,
            });
            before
        };
        if user.disabled {
            let ended = hub.revoke_user(user.id, DISABLED);
            let stopped = runner
                .end_user_run(user.id, EndReason::Revoked, STOP_WAIT)
                .await;
            if known_before || ended > 0 || stopped {
                tracing::info!(
                    user_id = user.id,
                    ended,
                    stopped,
                    "account disabled or removed: its connections closed and its run stopped"
                );
            }
            return;
        }
        let why = if prev_role.is_some_and(|r: Role| r != user.role) {
            ROLE_CHANGED
        } else {
            PASSWORD_CHANGED
        };
        let ended = hub.revoke_older(user.id, user.token_generation, why);
        if ended > 0 || (known_before && user.token_generation > prev_gen) {
            let stopped = runner
                .end_user_run(user.id, EndReason::Revoked, STOP_WAIT)
                .await;
            tracing::info!(
                user_id = user.id,
                generation = user.token_generation,
                ended,
                stopped,
                "tokens revoked (password or role change): older connections closed"
            );
        }
    }

    /// The refresher: answers queued re-checks one at a time and polls the
    /// database for changes, until `token` is cancelled. A database that
    /// cannot be asked leaves the known state as it was.
    pub async fn refresher(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<i64>,
        ctx: Refresher,
        token: CancellationToken,
    ) {
        let Refresher {
            store,
            hub,
            runner,
            poll,
            mut since_ms,
        } = ctx;
        let mut tick = tokio::time::interval(poll.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let user_id = tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {
                    let changes = tokio::select! {
                        _ = token.cancelled() => break,
                        c = store.account_changes(since_ms) => c,
                    };
                    match changes {
                        Ok(ch) => {
                            since_ms = since_ms.max(ch.now_ms - POLL_OVERLAP_MS);
                            for user in &ch.users {
                                self.apply(user, &hub, &runner).await;
                            }
                            for t in &ch.revoked {
                                // Our own logouts are already in; act on news only.
                                if !self.is_denied(&t.jti) {
                                    self.token_revoked(t, &hub, &runner).await;
                                }
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "account poll could not reach the database"),
                    }
                    continue;
                }
                next = rx.recv() => match next {
                    Some(id) => id,
                    None => break,
                },
            };
            let answer = tokio::select! {
                _ = token.cancelled() => break,
                a = store.user_by_id(user_id) => a,
            };
            if let Some(mut entry) = self.known.get_mut(&user_id) {
                entry.refreshing = false;
            }
            match answer {
                Ok(Some(u)) => self.apply(&u, &hub, &runner).await,
                Ok(None) => {
                    // Removed: the same as disabled.
                    if let Some(mut entry) = self.known.get_mut(&user_id) {
                        entry.at = Some(Instant::now());
                        entry.user = None;
                    }
                    hub.revoke_user(user_id, DISABLED);
                    runner
                        .end_user_run(user_id, EndReason::Revoked, STOP_WAIT)
                        .await;
                }
                Err(e) => {
                    tracing::debug!(user_id, error = %e, "account re-check could not reach the database; keeping the last known state");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> UserInfo {
        UserInfo {
            id: 7,
            username: "ann".into(),
            role: Role::Student,
        }
    }

    fn claims(sub: &str, name: &str, generation: i64, jti: &str) -> Claims {
        Claims {
            sub: sub.into(),
            username: name.into(),
            role: Role::Student,
            exp: u64::MAX,
            iat: 0,
            jti: jti.into(),
            generation,
        }
    }

    #[test]
    fn check_answers_at_once_and_queues_one_recheck_per_stale_user() {
        let (status, mut rx) = AccountStatus::new(Duration::ZERO);
        status.remember(&ann(), 0);
        let c = claims("7", "ann", 0, "t");
        // Stale at once (TTL 0): answered from the known state, one re-check queued.
        assert_eq!(status.check(&c), None);
        assert_eq!(status.check(&c), None);
        assert_eq!(rx.try_recv().ok(), Some(7));
        assert!(
            rx.try_recv().is_err(),
            "a second re-check was queued while one is pending"
        );
    }

    #[test]
    fn fresh_answers_do_not_query() {
        let (status, mut rx) = AccountStatus::new(Duration::from_secs(3600));
        status.remember(&ann(), 0);
        assert_eq!(status.check(&claims("7", "ann", 0, "t")), None);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn refusal_of_logged_out_and_older_tokens() {
        let (status, _rx) = AccountStatus::new(Duration::from_secs(3600));
        status.remember(&ann(), 2);
        assert_eq!(status.refusal(&claims("7", "ann", 2, "a")), None);
        assert_eq!(
            status.refusal(&claims("7", "ann", 1, "b")),
            Some(PASSWORD_CHANGED)
        );
        // A slow request that read generation 1 does not undo generation 2.
        status.remember(&ann(), 1);
        assert!(status.refusal(&claims("7", "ann", 1, "b")).is_some());
        assert!(status.deny(&RevokedToken {
            jti: "a".into(),
            user_id: 7,
            expires_at_ms: i64::MAX,
        }));
        assert_eq!(
            status.refusal(&claims("7", "ann", 2, "a")),
            Some(LOGGED_OUT)
        );
        let mut expired = claims("7", "ann", 2, "c");
        expired.exp = 1;
        assert_eq!(status.refusal(&expired), Some(EXPIRED));
    }

    #[test]
    fn last_known_needs_an_enabled_account_with_the_same_name() {
        let (status, _rx) = AccountStatus::new(Duration::from_secs(10));
        assert!(
            status.last_known(&claims("7", "ann", 0, "t")).is_none(),
            "never seen"
        );
        status.remember(&ann(), 0);
        assert_eq!(status.last_known(&claims("7", "ann", 0, "t")), Some(ann()));
        assert!(status.last_known(&claims("7", "eve", 0, "t")).is_none());
        assert!(status.last_known(&claims("8", "ann", 0, "t")).is_none());
        status.remember(&ann(), 1);
        assert!(
            status.last_known(&claims("7", "ann", 0, "t")).is_none(),
            "a revoked token gets nothing during an outage either"
        );
    }
}
