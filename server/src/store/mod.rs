//! The store: the database's domain operations, split by aggregate — users
//! ([`Users`]), the audit log ([`AuditLog`]), run history ([`Runs`]), courses
//! ([`Courses`]) — and
//! composed in [`Store`], with a SQLite (embedded default) and a PostgreSQL
//! implementation chosen once at start from the URL scheme.

mod audit;
mod courses;
pub(crate) mod courses_sql;
mod grading;
pub(crate) mod grading_sql;
pub mod guard;
mod postgres;
mod rows;
mod runs;
mod sqlite;
mod users;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use audit::{AuditLog, AuditRecord, NewAudit};
pub use courses::{
    Catalog, Course, CourseRole, Courses, MaterialRelease, Member, NewCourse, RosterChange,
    Section, SectionException, SectionFields,
};
pub use grading::{
    Assignment, GradeResult, GradebookRow, Grading, NewSubmission, ProgressRow, ResultRow,
    Submission, SubmissionStatus, SubmitRefused, SubmitRules, TestStat,
};
pub use guard::{guard, DbHealth, GuardedStore};
pub use postgres::PgStore;
pub use runs::{NewRun, RunFinish, RunRecord, Runs};
pub use sqlite::SqliteStore;
pub use users::{AccountChanges, NewUser, RevokedToken, User, Users};

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
            sqlx::Error::Io(io) => crate::disk::out_of_space(io),
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

/// The database: every aggregate, plus what is not one aggregate's: the
/// connection itself and [`Store::apply_records`], which writes runs, audit
/// entries and token revocations in one transaction. Implemented by [`SqliteStore`] and [`PgStore`]
/// (each aggregate in its own file of the backend's module) and by the
/// breaker, [`GuardedStore`]; all three pass one conformance suite
/// (`server/tests/store_conformance.rs`).
///
/// A new aggregate (courses, submissions, jobs) is a module here with its
/// types and a trait of its operations, one file per backend implementing it,
/// its delegation in `guard.rs`, a part of the conformance suite, and one more
/// supertrait below. Callers import the trait of the aggregate they use.
#[async_trait]
pub trait Store:
    Users + AuditLog + Runs + Courses + Grading + Send + Sync + std::fmt::Debug
{
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
