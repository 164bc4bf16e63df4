//! Who is connected: every live WebSocket connection of every user, so an event
//! (a file change) can reach a user's other tabs and devices, and a revoked
//! token or a disabled account can end its connections at once. Entries are
//! removed by a guard's `Drop`, so every exit path cleans up.

use std::sync::{Arc, OnceLock};

use campus_protocol::ServerMsg;
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Something queued for a connection's socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A JSON message.
    Msg(ServerMsg),
    /// Close the connection with this code and reason (e.g. its account was disabled).
    Close(u16, &'static str),
}

/// Why a connection must end now (a close code and the reason the client shows).
pub type Revocation = (u16, &'static str);

/// One live connection.
#[derive(Debug)]
struct Entry {
    conn_id: String,
    tx: mpsc::Sender<Outbound>,
    /// The id (`jti`) of the token it authenticated with.
    jti: String,
    /// That token's generation.
    generation: i64,
    /// Fired to end the connection at once, whatever its queue holds.
    revoked: Arc<RevokeSignal>,
}

/// Ends one connection: cancelled once, with the first reason given.
#[derive(Debug, Default)]
struct RevokeSignal {
    token: CancellationToken,
    why: OnceLock<Revocation>,
}

impl RevokeSignal {
    fn fire(&self, why: Revocation) {
        let _ = self.why.set(why);
        self.token.cancel();
    }
}

/// Registry of live connections per user.
#[derive(Debug, Default)]
pub struct Hub {
    users: DashMap<i64, Vec<Entry>>,
}

/// Removes its connection from the hub when dropped.
#[derive(Debug)]
pub struct HubGuard {
    hub: Arc<Hub>,
    user_id: i64,
    conn_id: String,
    revoked: Arc<RevokeSignal>,
}

impl HubGuard {
    /// Resolves when the connection's token is revoked or its account
    /// disabled ([`Hub::revoke_token`], [`Hub::revoke_older`], [`Hub::revoke_user`]).
    /// Not bound by the outbound queue: a connection whose queue is full still
    /// ends at once.
    pub async fn revoked(&self) -> Revocation {
        self.revoked.token.cancelled().await;
        self.revoked
            .why
            .get()
            .copied()
            .unwrap_or((campus_protocol::close_codes::REVOKED, "signed out"))
    }
}

impl Hub {
    /// Register a connection authenticated by the token `jti` of `generation`;
    /// keep the guard for the connection's lifetime.
    pub fn register(
        self: &Arc<Self>,
        user_id: i64,
        conn_id: &str,
        tx: mpsc::Sender<Outbound>,
        jti: &str,
        generation: i64,
    ) -> HubGuard {
        let revoked = Arc::new(RevokeSignal::default());
        self.users.entry(user_id).or_default().push(Entry {
            conn_id: conn_id.to_string(),
            tx,
            jti: jti.to_string(),
            generation,
            revoked: Arc::clone(&revoked),
        });
        HubGuard {
            hub: Arc::clone(self),
            user_id,
            conn_id: conn_id.to_string(),
            revoked,
        }
    }

    /// Send to every connection of `user_id` except `except`. A connection whose
    /// queue is full misses the event (it is advisory; a reconnect relists).
    pub fn send_to_user(&self, user_id: i64, except: Option<&str>, msg: &ServerMsg) {
        if let Some(conns) = self.users.get(&user_id) {
            for e in conns.iter() {
                if Some(e.conn_id.as_str()) != except {
                    let _ = e.tx.try_send(Outbound::Msg(msg.clone()));
                }
            }
        }
    }

    /// Close every connection of `user_id` through its queue. A connection
    /// whose queue is full is closed at its next heartbeat re-check instead;
    /// revocations use [`Hub::revoke_user`], which does not wait.
    pub fn close_user(&self, user_id: i64, code: u16, reason: &'static str) {
        if let Some(conns) = self.users.get(&user_id) {
            for e in conns.iter() {
                let _ = e.tx.try_send(Outbound::Close(code, reason));
            }
        }
    }

    /// End at once every connection of `user_id` that authenticated with the
    /// token `jti`. Returns how many connections of the user remain on other
    /// tokens (0: nobody of theirs is left connected).
    pub fn revoke_token(&self, user_id: i64, jti: &str, why: Revocation) -> usize {
        self.revoke_where(user_id, why, |e| e.jti == jti).1
    }

    /// End at once every connection of `user_id` whose token is older than
    /// `generation`; returns how many were ended.
    pub fn revoke_older(&self, user_id: i64, generation: i64, why: Revocation) -> usize {
        self.revoke_where(user_id, why, |e| e.generation < generation)
            .0
    }

    /// End at once every connection of `user_id`; returns how many.
    pub fn revoke_user(&self, user_id: i64, why: Revocation) -> usize {
        self.revoke_where(user_id, why, |_| true).0
    }

    /// Fire the matching connections: (ended, others left).
    fn revoke_where(
        &self,
        user_id: i64,
        why: Revocation,
        matches: impl Fn(&Entry) -> bool,
    ) -> (usize, usize) {
        let Some(conns) = self.users.get(&user_id) else {
            return (0, 0);
        };
        let mut ended = 0;
        let mut left = 0;
        for e in conns.iter() {
            if matches(e) {
                e.revoked.fire(why);
                ended += 1;
            } else if !e.revoked.token.is_cancelled() {
                left += 1;
            }
        }
        (ended, left)
    }

    /// True while `user_id` has at least one live connection.
    pub fn is_connected(&self, user_id: i64) -> bool {
        self.users.get(&user_id).is_some_and(|c| !c.is_empty())
    }

    /// Number of live connections of `user_id`.
    pub fn connections_of(&self, user_id: i64) -> usize {
        self.users.get(&user_id).map_or(0, |c| c.len())
    }

    /// Number of live connections (all users).
    pub fn connection_count(&self) -> usize {
        self.users.iter().map(|e| e.value().len()).sum()
    }
}

impl Drop for HubGuard {
    fn drop(&mut self) {
        let mut empty = false;
        if let Some(mut conns) = self.hub.users.get_mut(&self.user_id) {
            conns.retain(|e| e.conn_id != self.conn_id);
            empty = conns.is_empty();
        }
        if empty {
            self.hub
                .users
                .remove_if(&self.user_id, |_, conns| conns.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revocation_ends_only_the_matching_connections() {
        let hub = Arc::new(Hub::default());
        let (tx, _rx) = mpsc::channel(1);
        let a = hub.register(1, "a", tx.clone(), "tok-1", 0);
        let b = hub.register(1, "b", tx.clone(), "tok-1", 0);
        let c = hub.register(1, "c", tx.clone(), "tok-2", 1);
        // A full queue does not delay a revocation.
        let _ = tx.try_send(Outbound::Close(1000, "filler"));
        assert_eq!(hub.revoke_token(1, "tok-1", (4013, "logged out")), 1);
        assert_eq!(a.revoked().await, (4013, "logged out"));
        assert_eq!(b.revoked().await, (4013, "logged out"));
        assert!(!c.revoked.token.is_cancelled());
        assert_eq!(hub.revoke_older(1, 1, (4013, "x")), 2, "a and b again");
        assert!(!c.revoked.token.is_cancelled(), "generation 1 is current");
        assert_eq!(hub.revoke_older(1, 2, (4013, "password")), 3);
        assert_eq!(c.revoked().await, (4013, "password"));
        assert_eq!(hub.revoke_user(2, (4013, "x")), 0, "nobody else touched");
    }
}
