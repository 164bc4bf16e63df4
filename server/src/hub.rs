//! Who is connected: every live WebSocket connection of every user, so an event
//! (a file change) can reach a user's other tabs and devices. Entries are
//! removed by a guard's `Drop`, so every exit path cleans up.

use std::sync::Arc;

use campus_protocol::ServerMsg;
use dashmap::DashMap;
use tokio::sync::mpsc;

/// Something queued for a connection's socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A JSON message.
    Msg(ServerMsg),
    /// Close the connection with this code and reason (e.g. its account was disabled).
    Close(u16, &'static str),
}

/// Registry of live connections per user.
#[derive(Debug, Default)]
pub struct Hub {
    users: DashMap<i64, Vec<(String, mpsc::Sender<Outbound>)>>,
}

/// Removes its connection from the hub when dropped.
#[derive(Debug)]
pub struct HubGuard {
    hub: Arc<Hub>,
    user_id: i64,
    conn_id: String,
}

impl Hub {
    /// Register a connection; keep the guard for the connection's lifetime.
    pub fn register(
        self: &Arc<Self>,
        user_id: i64,
        conn_id: &str,
        tx: mpsc::Sender<Outbound>,
    ) -> HubGuard {
        self.users
            .entry(user_id)
            .or_default()
            .push((conn_id.to_string(), tx));
        HubGuard {
            hub: Arc::clone(self),
            user_id,
            conn_id: conn_id.to_string(),
        }
    }

    /// Send to every connection of `user_id` except `except`. A connection whose
    /// queue is full misses the event (it is advisory; a reconnect relists).
    pub fn send_to_user(&self, user_id: i64, except: Option<&str>, msg: &ServerMsg) {
        if let Some(conns) = self.users.get(&user_id) {
            for (id, tx) in conns.iter() {
                if Some(id.as_str()) != except {
                    let _ = tx.try_send(Outbound::Msg(msg.clone()));
                }
            }
        }
    }

    /// Close every connection of `user_id`. A connection whose queue is full is
    /// closed at its next heartbeat re-check instead.
    pub fn close_user(&self, user_id: i64, code: u16, reason: &'static str) {
        if let Some(conns) = self.users.get(&user_id) {
            for (_, tx) in conns.iter() {
                let _ = tx.try_send(Outbound::Close(code, reason));
            }
        }
    }

    /// True while `user_id` has at least one live connection.
    pub fn is_connected(&self, user_id: i64) -> bool {
        self.users.get(&user_id).is_some_and(|c| !c.is_empty())
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
            conns.retain(|(id, _)| id != &self.conn_id);
            empty = conns.is_empty();
        }
        if empty {
            self.hub
                .users
                .remove_if(&self.user_id, |_, conns| conns.is_empty());
        }
    }
}
