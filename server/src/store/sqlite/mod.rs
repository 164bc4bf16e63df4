//! SQLite implementation of the store (the embedded default): the connection
//! and the cross-aggregate transaction here, each aggregate in its own file.
//!
//! One file in the data directory, opened in WAL mode with a busy timeout so
//! the CLI (`campus user add`, `campus migrate`) can write while a server holds
//! the same file open. Migrations are serialized across processes with an
//! advisory `flock` on a sidecar file, because sqlx's SQLite migrator has no
//! lock of its own and two processes migrating a fresh file at once would
//! otherwise race on `CREATE TABLE`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use nix::fcntl::{Flock, FlockArg};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::rows::db_err;
use super::{PoolSettings, Record, Store, StoreError, StoreResult};

mod audit;
mod runs;
mod users;

/// The embedded SQLite migrations.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a writer waits for another connection's write lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect` waits for another process to finish migrating.
const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting for the migration lock.
const MIGRATION_LOCK_POLL: Duration = Duration::from_millis(20);

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url` (`sqlite://PATH`) with an
    /// explicit pool, and apply the embedded migrations.
    pub async fn connect(url: &str, settings: &PoolSettings) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // NORMAL is durable across application crashes in WAL mode; only a
            // power loss can drop the last transactions. Good trade for speed.
            .synchronous(SqliteSynchronous::Normal);
        let lock_path = migration_lock_path(options.get_filename());
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Some(settings.idle_timeout))
            .max_lifetime(Some(settings.max_lifetime))
            .connect_with(options)
            .await?;
        let store = SqliteStore { pool };
        if let Err(e) = store.migrate(lock_path).await {
            store.pool.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Apply pending migrations while holding the cross-process migration lock.
    async fn migrate(&self, lock_path: Option<PathBuf>) -> StoreResult<()> {
        // Held until the end of this function; dropping it releases the flock.
        let _guard = match lock_path {
            Some(path) => Some(lock_exclusive(&path).await?),
            None => None,
        };
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

/// The sidecar lock file for a database file, or `None` for in-memory databases
/// (which no other process can see).
fn migration_lock_path(db_file: &Path) -> Option<PathBuf> {
    let name = db_file.to_str().unwrap_or_default();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return None;
    }
    let mut lock = db_file.as_os_str().to_owned();
    lock.push(".migrate-lock");
    Some(PathBuf::from(lock))
}

/// Take an exclusive `flock` on `path`, polling until [`MIGRATION_LOCK_TIMEOUT`].
async fn lock_exclusive(path: &Path) -> StoreResult<Flock<File>> {
    let lock_err = |reason: String| StoreError::MigrationLock {
        path: path.display().to_string(),
        reason,
    };
    let deadline = tokio::time::Instant::now() + MIGRATION_LOCK_TIMEOUT;
    loop {
        // A fresh open file description per attempt: flock conflicts between
        // descriptions, so this also serializes two connects in one process.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| lock_err(e.to_string()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(guard) => return Ok(guard),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
            Err((_, errno)) => return Err(lock_err(errno.desc().to_string())),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(lock_err(format!(
                "another process kept migrating for more than {}s",
                MIGRATION_LOCK_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(MIGRATION_LOCK_POLL).await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn probe(&self) -> StoreResult<()> {
        self.ping().await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn apply_records(&self, records: &[Record]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for record in records {
            match record {
                Record::RunStarted(run) => runs::insert_if_new(&mut tx, run).await?,
                Record::RunFinished { run_id, finish } => {
                    runs::finish(&mut *tx, run_id, finish).await?;
                }
                Record::RunsAlive { at_ms, run_ids } => {
                    runs::mark_alive(&mut tx, *at_ms, run_ids).await?;
                }
                Record::Audit { at_ms, entry } => audit::insert(&mut *tx, *at_ms, entry).await?,
                Record::TokenRevoked(t) => users::insert_revocation(&mut *tx, t).await?,
            }
        }
        tx.commit().await.map_err(db_err)
    }
}

super::courses_sql::impl_courses!(SqliteStore, sqlx::Sqlite);
super::grading_sql::impl_grading!(SqliteStore, "", "SELECT $1");
