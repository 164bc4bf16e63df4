//! Row shapes and error mapping shared by both backends.
//!
//! The SQL differs per backend (placeholders, types), but the columns each
//! query selects are the same, so decoding and error classification live here once.

use campus_protocol::Role;

use super::{AuditRecord, RunRecord, StoreError, User};

/// Columns of `users`, in the order every user query selects them.
pub(crate) const USER_COLUMNS: &str =
    "id, username, password_hash, role, disabled, created_at_ms, token_generation";

/// Columns of `audit_log`, in the order every audit query selects them.
pub(crate) const AUDIT_COLUMNS: &str = "id, at_ms, actor_id, actor, action, target, detail, ip";

/// Columns of `runs`, in the order every run query selects them.
pub(crate) const RUN_COLUMNS: &str = "id, user_id, path, mode, started_at_ms, ended_at_ms, \
     reason, exit_code, cpu_ms, peak_memory_bytes, output_bytes, last_seen_ms, instance_id";

/// A `users` row as stored (role still text).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    disabled: bool,
    created_at_ms: i64,
    token_generation: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        let role: Role = row
            .role
            .parse()
            .map_err(|e: String| StoreError::Corrupt(format!("user {}: {e}", row.id)))?;
        Ok(User {
            id: row.id,
            username: row.username,
            password_hash: row.password_hash,
            role,
            disabled: row.disabled,
            created_at_ms: row.created_at_ms,
            token_generation: row.token_generation,
        })
    }
}

/// An `audit_log` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at_ms: i64,
    actor_id: Option<i64>,
    actor: Option<String>,
    action: String,
    target: Option<String>,
    detail: Option<String>,
    ip: Option<String>,
}

impl From<AuditRow> for AuditRecord {
    fn from(row: AuditRow) -> Self {
        AuditRecord {
            id: row.id,
            at_ms: row.at_ms,
            actor_id: row.actor_id,
            actor: row.actor,
            action: row.action,
            target: row.target,
            detail: row.detail,
            ip: row.ip,
        }
    }
}

/// A `runs` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunRow {
    id: String,
    user_id: i64,
    path: String,
    mode: String,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    reason: Option<String>,
    exit_code: Option<i32>,
    cpu_ms: Option<i64>,
    peak_memory_bytes: Option<i64>,
    output_bytes: Option<i64>,
    last_seen_ms: Option<i64>,
    instance_id: Option<String>,
}

impl From<RunRow> for RunRecord {
    fn from(row: RunRow) -> Self {
        RunRecord {
            id: row.id,
            user_id: row.user_id,
            path: row.path,
            mode: row.mode,
            started_at_ms: row.started_at_ms,
            ended_at_ms: row.ended_at_ms,
            reason: row.reason,
            exit_code: row.exit_code,
            cpu_ms: row.cpu_ms,
            peak_memory_bytes: row.peak_memory_bytes,
            output_bytes: row.output_bytes,
            last_seen_ms: row.last_seen_ms,
            instance_id: row.instance_id,
        }
    }
}

/// A `revoked_tokens` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RevokedRow {
    jti: String,
    user_id: i64,
    expires_at_ms: i64,
}

impl From<RevokedRow> for super::RevokedToken {
    fn from(row: RevokedRow) -> Self {
        super::RevokedToken {
            jti: row.jti,
            user_id: row.user_id,
            expires_at_ms: row.expires_at_ms,
        }
    }
}

/// Columns of `revoked_tokens` every revocation query selects.
pub(crate) const REVOKED_COLUMNS: &str = "jti, user_id, expires_at_ms";

/// Decode a list of user rows, failing on the first corrupt one.
pub(crate) fn users(rows: Vec<UserRow>) -> Result<Vec<User>, StoreError> {
    rows.into_iter().map(User::try_from).collect()
}

/// Classify a sqlx error into the store's named errors.
///
/// Unique violations become `Conflict`; foreign-key violations become
/// `NotFound` (the referenced row, e.g. the run's user, does not exist);
/// `RowNotFound` becomes `NotFound`; everything else stays `Db`.
pub(crate) fn db_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Db(err),
    }
}

/// `Ok` if an UPDATE touched a row, `NotFound` otherwise.
pub(crate) fn found(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
