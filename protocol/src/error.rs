//! Error codes: one enum shared by every refusal on the WebSocket and over HTTP.

use serde::{Deserialize, Serialize};

/// Machine-readable reason for a refusal. Documented in `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message could not be parsed or has invalid fields.
    BadRequest,
    /// No valid credentials (missing, forged or expired token; disabled user).
    Unauthorized,
    /// Authenticated, but not allowed to do this to that resource.
    Forbidden,
    /// The target does not exist.
    NotFound,
    /// The target changed since the client's `base_version`, or already exists.
    Conflict,
    /// A file or message is over the size limit.
    TooLarge,
    /// The workspace is over its byte or entry quota.
    QuotaExceeded,
    /// Too many requests; wait `retry_after_ms`.
    RateLimited,
    /// The server is at capacity (for example every sandbox slot is in use); retry later.
    Busy,
    /// The target is read-only (course material).
    ReadOnly,
    /// The path is malformed or would leave the workspace.
    InvalidPath,
    /// The server's disk is full: nothing was written; reads still work.
    InsufficientStorage,
    /// A service the request needs (the database) is unreachable; retry after `retry_after_ms`.
    Unavailable,
    /// Every attempt of the assignment is used.
    NoAttemptsLeft,
    /// The assignment's due date has passed and it refuses late submissions.
    PastDue,
    /// An unexpected server fault; carries a `request_id`, never details.
    Internal,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::RateLimited,
        ErrorCode::Busy,
        ErrorCode::ReadOnly,
        ErrorCode::InvalidPath,
        ErrorCode::InsufficientStorage,
        ErrorCode::Unavailable,
        ErrorCode::NoAttemptsLeft,
        ErrorCode::PastDue,
        ErrorCode::Internal,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Busy => "busy",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::InsufficientStorage => "insufficient_storage",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NoAttemptsLeft => "no_attempts_left",
            ErrorCode::PastDue => "past_due",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the same refusal gets on the HTTP API.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidPath => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden
            | ErrorCode::ReadOnly
            | ErrorCode::NoAttemptsLeft
            | ErrorCode::PastDue => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::QuotaExceeded | ErrorCode::InsufficientStorage => 507,
            ErrorCode::RateLimited => 429,
            ErrorCode::Busy | ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes (4000-4999 is the application range).
pub mod close_codes {
    /// The server is shutting down; reconnect later.
    pub const SHUTDOWN: u16 = 1001;
    /// The client kept sending after being rate limited.
    pub const FLOODING: u16 = 4008;
    /// No pong within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4009;
    /// The account was disabled or the token expired while connected.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The client fell too far behind reading server messages.
    pub const TOO_SLOW: u16 = 4010;
    /// An admin ended the connection.
    pub const KICKED: u16 = 4011;
    /// The user opened more WebSockets than allowed (`CAMPUS_WS_PER_USER`):
    /// this one, the oldest, was closed. Not reconnected automatically.
    pub const TOO_MANY_CONNECTIONS: u16 = 4012;
    /// The connection's token was revoked (logout, in this or another tab),
    /// all the account's tokens were (password or role change), or the account
    /// was disabled. The close reason says which; the client shows it and
    /// returns to the login page (no automatic reconnect).
    pub const REVOKED: u16 = 4013;
}
