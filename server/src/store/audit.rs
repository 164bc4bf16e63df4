//! The audit aggregate: an append-only log of who did what (logins, refused
//! file access, account changes). Server code appends through the record
//! writer ([`crate::records`]); the CLI appends directly.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// One audit-log record to append.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAudit {
    /// Acting user, if known.
    pub actor_id: Option<i64>,
    /// Acting username (kept even if the user row goes away), if known.
    pub actor: Option<String>,
    /// What happened, e.g. `login.failed`, `files.forbidden`, `user.disabled`.
    pub action: String,
    /// What it was done to, e.g. a username or a path.
    pub target: Option<String>,
    /// Extra detail (never secrets).
    pub detail: Option<String>,
    /// Client address ("cli" for the command line).
    pub ip: Option<String>,
}

/// A stored audit-log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Primary key (monotonic).
    pub id: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Acting user id.
    pub actor_id: Option<i64>,
    /// Acting username.
    pub actor: Option<String>,
    /// Action name.
    pub action: String,
    /// Target.
    pub target: Option<String>,
    /// Detail.
    pub detail: Option<String>,
    /// Client address.
    pub ip: Option<String>,
}

/// Operations on the audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Append to the audit log, dated now.
    async fn append_audit(&self, entry: NewAudit) -> StoreResult<()>;
    /// Newest audit records first, at most `limit`, optionally only for one action.
    async fn recent_audit(&self, action: Option<&str>, limit: i64)
        -> StoreResult<Vec<AuditRecord>>;
}
