//! The connection domain: what keeps a WebSocket connection itself going —
//! `hello`, liveness (`ping`/`pong`), refusals (`error`) and `shutdown` — and
//! the limits announced in `hello`.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::types::UserInfo;

/// A message about the connection itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectionRequest {
    /// Application-level ping; answered with `pong`.
    Ping {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
    },
}

impl ConnectionRequest {
    /// The `type` of each connection request message, in declaration order.
    pub const TYPES: &'static [&'static str] = &["ping"];

    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            ConnectionRequest::Ping { id } => *id,
        }
    }
}

/// A message from the server about the connection itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectionMsg {
    /// First message on every connection.
    Hello {
        /// Protocol version ([`crate::PROTOCOL_VERSION`]).
        protocol: u32,
        /// This connection's id (appears in `file_changed.by_connection`).
        connection_id: String,
        /// Who is connected.
        user: UserInfo,
        /// Limits in force.
        limits: Limits,
    },
    /// Reply to `ping`.
    Pong {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// A refusal or failure of the request `id` (or of the connection if absent).
    Error {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// For `rate_limited` and `busy`: wait this long before retrying.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// For `conflict`: the version the target has now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current_version: Option<String>,
        /// For `internal`: an id to quote to the operator (matches the server log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// The server is shutting down; reconnect after `reconnect_after_ms`.
    Shutdown {
        /// Human-readable explanation.
        message: String,
        /// Suggested reconnect delay.
        reconnect_after_ms: u64,
    },
}

impl ConnectionMsg {
    /// The `type` of each connection server message, in declaration order.
    pub const TYPES: &'static [&'static str] = &["hello", "pong", "error", "shutdown"];
}

/// Limits in force for this connection, announced in `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Limits {
    /// WebSocket messages a connection may send per minute.
    pub ws_messages_per_min: u32,
    /// File operations (WebSocket and HTTP together) per user per minute.
    pub file_ops_per_min: u32,
    /// Runs a user may start per minute.
    pub runs_per_min: u32,
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Workspace byte quota.
    pub workspace_quota_bytes: u64,
    /// Workspace entry quota (files and directories).
    pub workspace_max_entries: u64,
    /// Largest WebSocket message the server accepts, in bytes.
    pub max_ws_message_bytes: u64,
    /// Memory limit of one run, in bytes.
    pub run_memory_bytes: u64,
    /// CPU-time limit of one run, in seconds.
    pub run_cpu_secs: u64,
    /// Wall-clock limit of the script phase, in seconds.
    pub script_max_age_secs: u64,
    /// Wall-clock limit of the REPL phase, in seconds.
    pub repl_max_age_secs: u64,
}
