//! The store: one interface of domain operations over the database, with a
//! SQLite (embedded default) and a PostgreSQL implementation chosen once at
//! start from the URL scheme.

pub mod guard;
mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campus_protocol::{EndReason, Role, RunMode};
use serde::{Deserialize, Serialize};

pub use guard::{guard, DbHealth, GuardedStore};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Errors of the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint was violated (e.g. the username is taken).
    #[error("already exists")]
    Conflict,
    /// The URL names a database this build does not support.
    #[error("unsupported database URL scheme {0:?} (use sqlite://PATH or postgres://...)")]
    UnknownScheme(String),
    /// A stored value could not be decoded (e.g. an unknown role string).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database failure (connection, timeout, SQL error).
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The cross-process migration lock next to a SQLite file could not be taken.
    #[error("migration lock {path}: {reason}")]
    MigrationLock {
        /// The lock file.
        path: String,
        /// What went wrong (I/O error or timeout).
        reason: String,
    },
    /// The database server is too old or otherwise unsupported.
    #[error("unsupported database server: {0}")]
    UnsupportedServer(String),
    /// The database is unreachable (or did not answer within the caller's
    /// budget); refused at once while [`DbHealth`] says it is down.
    #[error("the database is unavailable")]
    Unavailable,
}

impl StoreError {
    /// True when the failure says nothing about the request, only that the
    /// database cannot be reached right now (connection refused or lost, the
    /// server shutting down or starting up, a pool timeout, SQLite locked or
    /// unreadable): worth retrying later, never worth dropping a record for.
    /// A full disk is not this ([`StoreError::is_storage_full`]): the database
    /// still answers.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable => true,
            StoreError::Db(e) => !self.is_storage_full() && sqlx_unavailable(e),
            _ => false,
        }
    }
}

/// The sqlx errors that mean "cannot reach the database" (see [`StoreError::is_unavailable`]).
fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: class 08 (connection exception), 57P01-57P03 (admin
            // shutdown, crash shutdown, cannot connect now), 53300 (too many
            // connections). SQLite (numeric, extended; the low byte is the primary
            // code): BUSY 5, LOCKED 6, IOERR 10, CANTOPEN 14.
            if code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300") {
                return true;
            }
            code.parse::<i32>()
                .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 14))
        }
        _ => false,
    }
}

impl StoreError {
    /// The write failed because the disk under the database is full: SQLite's
    /// SQLITE_FULL ("database or disk is full"), PostgreSQL's `disk_full`
    /// (SQLSTATE 53100), or ENOSPC/EDQUOT from the driver's own I/O.
    pub fn is_storage_full(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Database(d) => {
                let code = d.code();
                let code = code.as_deref().unwrap_or_default();
                // SQLite codes are numeric (extended: the low byte is the primary code).
                let sqlite_full = code.parse::<i32>().is_ok_and(|c| c & 0xff == SQLITE_FULL);
                sqlite_full || code == PG_DISK_FULL
            }
            sqlx::Error::Io(io) => crate::files::out_of_space(io),
            _ => false,
        }
    }
}

/// SQLite's primary result code for "database or disk is full".
const SQLITE_FULL: i32 = 13;
/// PostgreSQL's SQLSTATE `disk_full`.
const PG_DISK_FULL: &str = "53100";

/// Convenience alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Disabled users cannot log in and their tokens are refused.
    pub disabled: bool,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// Carried in every token (`gen`): a password change, disable, enable or
    /// role change adds one, and tokens of an older generation are refused.
    pub token_generation: i64,
}

/// Fields for a new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

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

/// A run being started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRun {
    /// Run id (uuid string).
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Script path ("" for repl).
    pub path: String,
    /// Mode.
    pub mode: RunMode,
    /// Start time, ms since the epoch.
    pub started_at_ms: i64,
    /// The server instance running it (`cli` for `campus run`); stamped by
    /// the record writer. Absent in journals written before instances existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// How a run finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFinish {
    /// End time, ms since the epoch.
    pub ended_at_ms: i64,
    /// Why.
    pub reason: EndReason,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// CPU time used.
    pub cpu_ms: i64,
    /// Peak memory.
    pub peak_memory_bytes: i64,
    /// Output produced.
    pub output_bytes: i64,
}

/// A stored run record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Run id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Script path.
    pub path: String,
    /// Mode name.
    pub mode: String,
    /// Start time.
    pub started_at_ms: i64,
    /// End time, when finished.
    pub ended_at_ms: Option<i64>,
    /// End reason name, when finished.
    pub reason: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// CPU ms.
    pub cpu_ms: Option<i64>,
    /// Peak memory bytes.
    pub peak_memory_bytes: Option<i64>,
    /// Output bytes.
    pub output_bytes: Option<i64>,
    /// Last time the run was seen alive (start, liveness marks, end).
    pub last_seen_ms: Option<i64>,
    /// The server instance that ran it (`None` before instances existed).
    pub instance_id: Option<String>,
}

/// A token ended before its expiry (logout).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RevokedToken {
    /// The token's id (`jti`).
    pub jti: String,
    /// Whose token it was.
    pub user_id: i64,
    /// When it would have expired anyway (ms since the epoch): the entry is
    /// kept until then.
    pub expires_at_ms: i64,
}

/// What changed in the database since a poll cursor (see [`Store::account_changes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChanges {
    /// The database's clock when asked (ms since the epoch): the next cursor,
    /// less an overlap for transactions that committed late.
    pub now_ms: i64,
    /// Users whose row changed (password, disabled, role, generation).
    pub users: Vec<User>,
    /// Tokens revoked (logout), by any process sharing the database.
    pub revoked: Vec<RevokedToken>,
}

/// One write of the ordered record stream (run history and audit log) that
/// the server hands to its background writer ([`crate::records`]) and that
/// [`Store::apply_records`] applies. Times are taken when the event happened,
/// not when it reaches the database. Serialized as one JSON line of the
/// writer's journal, so the shape is part of the on-disk format: add
/// variants, never change existing ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A run started.
    RunStarted(NewRun),
    /// A run ended.
    RunFinished {
        /// Run id.
        run_id: String,
        /// How.
        finish: RunFinish,
    },
    /// These runs were still running at `at_ms` (the crash repair closes a
    /// run at its last mark).
    RunsAlive {
        /// When, ms since the epoch.
        at_ms: i64,
        /// Runs still live.
        run_ids: Vec<String>,
    },
    /// An audit-log entry written at `at_ms`.
    Audit {
        /// When, ms since the epoch.
        at_ms: i64,
        /// What.
        entry: NewAudit,
    },
    /// A token was revoked (logout): refused until its expiry by every
    /// process sharing the database. Skipped if already recorded or the user is gone.
    TokenRevoked(RevokedToken),
}

/// Explicit pool settings (never left to sqlx defaults).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Maximum open connections.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// Connections are recycled after this.
    pub max_lifetime: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(1800),
        }
    }
}

/// Domain operations on the database. Implemented by [`SqliteStore`] and [`PgStore`].
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Backend name (`sqlite` or `postgres`), for logs and /readyz.
    fn backend(&self) -> &'static str;
    /// Cheap round trip to check the database is reachable.
    async fn ping(&self) -> StoreResult<()>;
    /// Whether the database can be reached right now, answered without the
    /// pool (which retries a refused connection until its acquire timeout):
    /// PostgreSQL opens one fresh connection, so a stopped server is seen at
    /// once; SQLite (a local file) pings.
    async fn probe(&self) -> StoreResult<()>;
    /// Close the pool (waits for checked-out connections).
    async fn close(&self);

    /// Insert a user; `Conflict` if the username exists.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    /// Look a user up by id.
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    /// Look a user up by username.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// All users, ordered by username.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Set or clear the disabled flag; `NotFound` if no such user.
    async fn set_user_disabled(&self, username: &str, disabled: bool) -> StoreResult<()>;
    /// Replace a user's password hash; `NotFound` if no such user.
    async fn set_password_hash(&self, username: &str, password_hash: &str) -> StoreResult<()>;
    /// Change a user's role; `NotFound` if no such user.
    ///
    /// This, [`Store::set_user_disabled`] and [`Store::set_password_hash`]
    /// each add one to the user's `token_generation` (revoking every token
    /// issued before) and stamp `updated_at_ms` with the database's clock.
    async fn set_user_role(&self, username: &str, role: Role) -> StoreResult<()>;
    /// Users changed and tokens revoked since `since_ms` (a previous
    /// [`AccountChanges::now_ms`] less an overlap), by the database's clock:
    /// two index range scans, empty while nothing changes.
    async fn account_changes(&self, since_ms: i64) -> StoreResult<AccountChanges>;
    /// Revoked tokens not yet expired at `now_ms` (loaded at start).
    async fn live_revocations(&self, now_ms: i64) -> StoreResult<Vec<RevokedToken>>;
    /// Forget revocations of tokens expired before `now_ms`; returns how many.
    async fn purge_revocations(&self, now_ms: i64) -> StoreResult<u64>;
    /// Number of users with this role (used for the first-start admin).
    async fn count_users_with_role(&self, role: Role) -> StoreResult<i64>;

    /// Append to the audit log.
    async fn append_audit(&self, entry: NewAudit) -> StoreResult<()>;
    /// Newest audit records first, at most `limit`, optionally only for one action.
    async fn recent_audit(&self, action: Option<&str>, limit: i64)
        -> StoreResult<Vec<AuditRecord>>;

    /// Record that a run started.
    async fn insert_run(&self, run: NewRun) -> StoreResult<()>;
    /// Record how a run finished; `NotFound` if no such run.
    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> StoreResult<()>;
    /// A user's most recent runs, newest first.
    async fn recent_runs(&self, user_id: i64, limit: i64) -> StoreResult<Vec<RunRecord>>;
    /// Runs started per hour since `since_ms`: `(hour_start_ms, count)`, oldest first.
    async fn runs_per_hour(&self, since_ms: i64) -> StoreResult<Vec<(i64, i64)>>;
    /// Close the runs of server instance `instance` still open after a crash
    /// (and those recorded before instances existed, `instance_id` NULL): each
    /// ends with `server_shutdown` at the last time it was seen alive
    /// (`last_seen_ms`; its start if never marked), not at the time of the
    /// repair. Runs of other instances are never touched. Returns how many.
    async fn close_dangling_runs(&self, instance: &str) -> StoreResult<u64>;

    /// Apply `records` in order, in one transaction. Replaying records is
    /// harmless for the run history (a start already recorded is skipped, an
    /// end or liveness mark writes the same values, a mark never moves
    /// `last_seen_ms` back or touches an ended run), so a journal can be
    /// replayed after a crash. A start for an unknown user and an end or mark
    /// for an unknown run are skipped, not errors. Audit entries are appended.
    async fn apply_records(&self, records: &[Record]) -> StoreResult<()>;
}

/// Shared handle to the chosen store.
pub type DynStore = Arc<dyn Store>;

/// Open the store named by `url` (`sqlite://...` or `postgres://...`), apply the
/// embedded migrations, and return it. Any other scheme is [`StoreError::UnknownScheme`].
pub async fn connect(url: &str, pool: &PoolSettings) -> StoreResult<DynStore> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url, pool).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PgStore::connect(url, pool).await?)),
        other => Err(StoreError::UnknownScheme(other.to_string())),
    }
}

/// Current time in ms since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
