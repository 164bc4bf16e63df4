//! SQLite implementation of the store (the embedded default).
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
use campus_protocol::{EndReason, Role};
use nix::fcntl::{Flock, FlockArg};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::rows::{
    self, db_err, found, AuditRow, RevokedRow, RunRow, UserRow, AUDIT_COLUMNS, REVOKED_COLUMNS,
    RUN_COLUMNS, USER_COLUMNS,
};
use super::{
    now_ms, AccountChanges, AuditRecord, NewAudit, NewRun, NewUser, PoolSettings, Record,
    RevokedToken, RunFinish, RunRecord, Store, StoreError, StoreResult, User,
};

/// The embedded SQLite migrations.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// The database's clock in ms since the epoch: `updated_at_ms` and
/// `recorded_at_ms` are stamped with it, so every process polling them shares
/// one clock whatever its own says.
/// What every change of an account's credentials or rights also sets.
const BUMP: &str =
    "token_generation = token_generation + 1, updated_at_ms = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
const SQL_NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// How long a writer waits for another connection's write lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect` waits for another process to finish migrating.
const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting for the migration lock.
const MIGRATION_LOCK_POLL: Duration = Duration::from_millis(20);
/// Run ids per liveness statement (well under SQLite's variable limit).
const ALIVE_CHUNK: usize = 500;

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

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let sql = format!(
            "INSERT INTO users (username, password_hash, role, disabled, created_at_ms) \
             VALUES (?, ?, ?, 0, ?) RETURNING {USER_COLUMNS}"
        );
        let row: UserRow = sqlx::query_as(&sql)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        row.try_into()
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(User::try_from).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(User::try_from).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        let rows: Vec<UserRow> = sqlx::query_as(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows::users(rows)
    }

    async fn set_user_disabled(&self, username: &str, disabled: bool) -> StoreResult<()> {
        let done = sqlx::query(&format!(
            "UPDATE users SET disabled = ?, {BUMP} WHERE username = ?"
        ))
        .bind(disabled)
        .bind(username)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected())
    }

    async fn set_password_hash(&self, username: &str, password_hash: &str) -> StoreResult<()> {
        let done = sqlx::query(&format!(
            "UPDATE users SET password_hash = ?, {BUMP} WHERE username = ?"
        ))
        .bind(password_hash)
        .bind(username)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected())
    }

    async fn set_user_role(&self, username: &str, role: Role) -> StoreResult<()> {
        let sql = format!("UPDATE users SET role = ?, {BUMP} WHERE username = ?");
        let done = sqlx::query(&sql)
            .bind(role.as_str())
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        found(done.rows_affected())
    }

    async fn account_changes(&self, since_ms: i64) -> StoreResult<AccountChanges> {
        // The clock first: a change stamped before it and committed after the
        // queries below is found by the next poll (its cursor overlaps).
        let now_ms: i64 = sqlx::query_scalar(&format!("SELECT {SQL_NOW_MS}"))
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE updated_at_ms > ?");
        let users: Vec<UserRow> = sqlx::query_as(&sql)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let sql = format!("SELECT {REVOKED_COLUMNS} FROM revoked_tokens WHERE recorded_at_ms > ?");
        let revoked: Vec<RevokedRow> = sqlx::query_as(&sql)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(AccountChanges {
            now_ms,
            users: rows::users(users)?,
            revoked: revoked.into_iter().map(RevokedToken::from).collect(),
        })
    }

    async fn live_revocations(&self, now_ms: i64) -> StoreResult<Vec<RevokedToken>> {
        let sql = format!("SELECT {REVOKED_COLUMNS} FROM revoked_tokens WHERE expires_at_ms > ?");
        let rows: Vec<RevokedRow> = sqlx::query_as(&sql)
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(RevokedToken::from).collect())
    }

    async fn purge_revocations(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at_ms <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn count_users_with_role(&self, role: Role) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = ?")
            .bind(role.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn append_audit(&self, entry: NewAudit) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, actor_id, actor, action, target, detail, ip) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now_ms())
        .bind(entry.actor_id)
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target)
        .bind(entry.detail)
        .bind(entry.ip)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn recent_audit(
        &self,
        action: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        // Two statements rather than `(? IS NULL OR action = ?)` so each one
        // matches its index exactly (see migrations/README.md).
        let rows: Vec<AuditRow> = match action {
            Some(action) => {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE action = ? \
                     ORDER BY at_ms DESC, id DESC LIMIT ?"
                );
                sqlx::query_as(&sql)
                    .bind(action)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY at_ms DESC, id DESC LIMIT ?"
                );
                sqlx::query_as(&sql).bind(limit).fetch_all(&self.pool).await
            }
        }
        .map_err(db_err)?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }

    async fn insert_run(&self, run: NewRun) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO runs (id, user_id, path, mode, started_at_ms, last_seen_ms, instance_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run.id)
        .bind(run.user_id)
        .bind(run.path)
        .bind(run.mode.as_str())
        .bind(run.started_at_ms)
        .bind(run.started_at_ms)
        .bind(run.instance)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE runs SET ended_at_ms = ?1, reason = ?2, exit_code = ?3, cpu_ms = ?4, \
             peak_memory_bytes = ?5, output_bytes = ?6, last_seen_ms = ?1 WHERE id = ?7",
        )
        .bind(finish.ended_at_ms)
        .bind(finish.reason.as_str())
        .bind(finish.exit_code)
        .bind(finish.cpu_ms)
        .bind(finish.peak_memory_bytes)
        .bind(finish.output_bytes)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected())
    }

    async fn recent_runs(&self, user_id: i64, limit: i64) -> StoreResult<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE user_id = ? \
             ORDER BY started_at_ms DESC, id DESC LIMIT ?"
        );
        let rows: Vec<RunRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(RunRecord::from).collect())
    }

    async fn runs_per_hour(&self, since_ms: i64) -> StoreResult<Vec<(i64, i64)>> {
        sqlx::query_as(
            "SELECT (started_at_ms / 3600000) * 3600000 AS hour, COUNT(*) AS runs \
             FROM runs WHERE started_at_ms >= ? GROUP BY hour ORDER BY hour",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn close_dangling_runs(&self, instance: &str) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET ended_at_ms = COALESCE(last_seen_ms, started_at_ms), reason = ? \
             WHERE ended_at_ms IS NULL AND (instance_id = ? OR instance_id IS NULL)",
        )
        .bind(EndReason::ServerShutdown.as_str())
        .bind(instance)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn apply_records(&self, records: &[Record]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for record in records {
            match record {
                Record::RunStarted(run) => {
                    // Skipped (not an error) when already recorded or the user is gone.
                    sqlx::query(
                        "INSERT INTO runs (id, user_id, path, mode, started_at_ms, last_seen_ms, instance_id) \
                         SELECT ?1, ?2, ?3, ?4, ?5, ?5, ?6 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2) \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&run.id)
                    .bind(run.user_id)
                    .bind(&run.path)
                    .bind(run.mode.as_str())
                    .bind(run.started_at_ms)
                    .bind(&run.instance)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                Record::RunFinished { run_id, finish } => {
                    sqlx::query(
                        "UPDATE runs SET ended_at_ms = ?1, reason = ?2, exit_code = ?3, cpu_ms = ?4, \
                         peak_memory_bytes = ?5, output_bytes = ?6, last_seen_ms = ?1 WHERE id = ?7",
                    )
                    .bind(finish.ended_at_ms)
                    .bind(finish.reason.as_str())
                    .bind(finish.exit_code)
                    .bind(finish.cpu_ms)
                    .bind(finish.peak_memory_bytes)
                    .bind(finish.output_bytes)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                Record::RunsAlive { at_ms, run_ids } => {
                    // SQLite has no arrays: one statement per chunk of ids.
                    for chunk in run_ids.chunks(ALIVE_CHUNK) {
                        // Numbered throughout: sqlx hands plain `?` the arguments
                        // from the first one on, whatever `?1` took.
                        let marks = (2..chunk.len() + 2)
                            .map(|i| format!("?{i}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let sql = format!(
                            "UPDATE runs SET last_seen_ms = ?1 WHERE id IN ({marks}) \
                             AND ended_at_ms IS NULL AND (last_seen_ms IS NULL OR last_seen_ms < ?1)"
                        );
                        let mut q = sqlx::query(&sql).bind(at_ms);
                        for id in chunk {
                            q = q.bind(id);
                        }
                        q.execute(&mut *tx).await.map_err(db_err)?;
                    }
                }
                Record::Audit { at_ms, entry } => {
                    sqlx::query(
                        "INSERT INTO audit_log (at_ms, actor_id, actor, action, target, detail, ip) \
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(at_ms)
                    .bind(entry.actor_id)
                    .bind(&entry.actor)
                    .bind(&entry.action)
                    .bind(&entry.target)
                    .bind(&entry.detail)
                    .bind(&entry.ip)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                Record::TokenRevoked(t) => {
                    sqlx::query(&format!(
                        "INSERT INTO revoked_tokens (jti, user_id, expires_at_ms, recorded_at_ms) \
                         SELECT ?1, ?2, ?3, {SQL_NOW_MS} WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2) \
                         ON CONFLICT (jti) DO NOTHING"
                    ))
                    .bind(&t.jti)
                    .bind(t.user_id)
                    .bind(t.expires_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
            }
        }
        tx.commit().await.map_err(db_err)
    }
}
