//! Whether an account may keep its open connections, cached briefly: every
//! open socket re-checks its account at each heartbeat, and with many tabs per
//! user (5,000 idle connections of 50 users: 250 queries/s) most of those
//! checks would ask the database the same question.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::store::DynStore;

/// Per-user "still enabled" answers, each kept for `ttl`.
#[derive(Debug)]
pub struct AccountStatus {
    ttl: Duration,
    cache: DashMap<i64, (Instant, bool)>,
}

impl AccountStatus {
    /// Answers are reused for `ttl` (half a heartbeat keeps detection within one heartbeat).
    pub fn new(ttl: Duration) -> Self {
        AccountStatus {
            ttl,
            cache: DashMap::new(),
        }
    }

    /// True while the user exists and is not disabled. A database error keeps
    /// the connection (not the user's fault) and is not cached.
    pub async fn enabled(&self, store: &DynStore, user_id: i64) -> bool {
        if let Some(hit) = self.cache.get(&user_id) {
            let (at, ok) = *hit;
            if at.elapsed() < self.ttl {
                return ok;
            }
        }
        let ok = match store.user_by_id(user_id).await {
            Ok(Some(u)) => !u.disabled,
            Ok(None) => false,
            Err(_) => return true,
        };
        self.cache.insert(user_id, (Instant::now(), ok));
        ok
    }

    /// Drop expired answers (called by the housekeeping loop).
    pub fn shrink(&self) {
        let ttl = self.ttl;
        self.cache.retain(|_, (at, _)| at.elapsed() < ttl);
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}
