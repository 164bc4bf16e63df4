//! Whether an account may keep its open connections, answered without waiting
//! for the database. Every open socket re-checks its account at each
//! heartbeat; [`AccountStatus::check`] answers from the last known state at
//! once and, when that answer is older than the TTL, asks the refresher task
//! to look again. The refresher (one task, bounded queue, one request per
//! user at a time) asks the store and, when it finds an account disabled or
//! removed, closes that user's connections through the hub.
//!
//! So a heartbeat never waits for the database, many tabs of one user cost
//! one query per TTL, and while the database is unreachable a connected user
//! keeps the last known state (a re-check that cannot reach it changes
//! nothing). The last known state also lets a connected user's HTTP requests
//! (file downloads and uploads) through during an outage
//! ([`AccountStatus::last_known`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use campus_protocol::{close_codes, UserInfo};
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::Claims;
use crate::hub::Hub;
use crate::store::DynStore;

/// Re-check requests waiting for the refresher.
const QUEUE: usize = 1024;
/// Known states of users without a live connection are forgotten after this.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// What was last learned about one account.
#[derive(Debug, Clone)]
struct Known {
    /// When the database last answered for it (`None`: not yet).
    at: Option<Instant>,
    /// The account as it was then; `None` once found disabled or removed.
    user: Option<UserInfo>,
    /// A re-check is queued or running.
    refreshing: bool,
}

/// Last known account states, refreshed in the background.
#[derive(Debug)]
pub struct AccountStatus {
    ttl: Duration,
    known: DashMap<i64, Known>,
    tx: mpsc::Sender<i64>,
}

impl AccountStatus {
    /// Answers are re-checked once older than `ttl` (half a heartbeat keeps
    /// detection within about 1.5 heartbeats). Returns the cache and the receiver
    /// its refresher ([`AccountStatus::refresher`]) drains.
    pub fn new(ttl: Duration) -> (Self, mpsc::Receiver<i64>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            AccountStatus {
                ttl,
                known: DashMap::new(),
                tx,
            },
            rx,
        )
    }

    /// The database just confirmed `user` is enabled (login, WebSocket gate,
    /// an authenticated HTTP request).
    pub fn remember(&self, user: &UserInfo) {
        self.known.insert(
            user.id,
            Known {
                at: Some(Instant::now()),
                user: Some(user.clone()),
                refreshing: false,
            },
        );
    }

    /// Heartbeat re-check: the last known answer, at once. Schedules a
    /// background re-check when the answer is stale. An account never seen
    /// counts as enabled (its connection passed the gate, which asked the
    /// database) and is re-checked.
    pub fn check(&self, user_id: i64) -> bool {
        let mut entry = self.known.entry(user_id).or_insert_with(|| Known {
            at: None,
            user: None,
            refreshing: false,
        });
        let enabled = entry.at.is_none() || entry.user.is_some();
        let stale = entry.at.is_none_or(|at| at.elapsed() >= self.ttl);
        if stale && !entry.refreshing {
            // A full queue is retried at the next heartbeat.
            entry.refreshing = self.tx.try_send(user_id).is_ok();
        }
        enabled
    }

    /// The last known account of a token's user, if it is known to be enabled
    /// (used only while the database cannot be asked).
    pub fn last_known(&self, claims: &Claims) -> Option<UserInfo> {
        let id = claims.user_id()?;
        let known = self.known.get(&id)?;
        known.user.clone().filter(|u| u.username == claims.username)
    }

    /// Forget states of users not re-checked for a long time (housekeeping).
    pub fn shrink(&self) {
        self.known
            .retain(|_, k| k.refreshing || k.at.is_some_and(|at| at.elapsed() < FORGET_AFTER));
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The refresher: answers queued re-checks one at a time until `token` is
    /// cancelled. A database that cannot be asked leaves the known state as it
    /// was; an account found disabled or removed has its connections closed.
    pub async fn refresher(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<i64>,
        store: DynStore,
        hub: Arc<Hub>,
        token: CancellationToken,
    ) {
        loop {
            let user_id = tokio::select! {
                _ = token.cancelled() => break,
                next = rx.recv() => match next {
                    Some(id) => id,
                    None => break,
                },
            };
            let answer = tokio::select! {
                _ = token.cancelled() => break,
                a = store.user_by_id(user_id) => a,
            };
            let Some(mut entry) = self.known.get_mut(&user_id) else {
                continue;
            };
            entry.refreshing = false;
            let user = match answer {
                Ok(Some(u)) if !u.disabled => Some(UserInfo {
                    id: u.id,
                    username: u.username,
                    role: u.role,
                }),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(user_id, error = %e, "account re-check could not reach the database; keeping the last known state");
                    continue;
                }
            };
            let was_enabled = entry.user.is_some();
            entry.at = Some(Instant::now());
            entry.user = user;
            let now_disabled = entry.user.is_none();
            drop(entry);
            if now_disabled {
                if was_enabled {
                    tracing::info!(
                        user_id,
                        "account disabled or removed: closing its connections"
                    );
                }
                hub.close_user(
                    user_id,
                    close_codes::UNAUTHORIZED,
                    "session expired or account disabled",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use campus_protocol::Role;

    fn ann() -> UserInfo {
        UserInfo {
            id: 7,
            username: "ann".into(),
            role: Role::Student,
        }
    }

    #[test]
    fn check_answers_at_once_and_queues_one_recheck_per_stale_user() {
        let (status, mut rx) = AccountStatus::new(Duration::ZERO);
        status.remember(&ann());
        // Stale at once (TTL 0): answered from the known state, one re-check queued.
        assert!(status.check(7));
        assert!(status.check(7));
        assert_eq!(rx.try_recv().ok(), Some(7));
        assert!(
            rx.try_recv().is_err(),
            "a second re-check was queued while one is pending"
        );
    }

    #[test]
    fn fresh_answers_do_not_query() {
        let (status, mut rx) = AccountStatus::new(Duration::from_secs(3600));
        status.remember(&ann());
        assert!(status.check(7));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn last_known_needs_an_enabled_account_with_the_same_name() {
        let (status, _rx) = AccountStatus::new(Duration::from_secs(10));
        let claims = |sub: &str, name: &str| Claims {
            sub: sub.into(),
            username: name.into(),
            role: Role::Student,
            exp: u64::MAX,
            iat: 0,
        };
        assert!(
            status.last_known(&claims("7", "ann")).is_none(),
            "never seen"
        );
        status.remember(&ann());
        assert_eq!(status.last_known(&claims("7", "ann")), Some(ann()));
        assert!(status.last_known(&claims("7", "eve")).is_none());
        assert!(status.last_known(&claims("8", "ann")).is_none());
    }
}
