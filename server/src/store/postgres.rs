//! PostgreSQL implementation of the store (production; shared by replicas).
//!
//! Concurrent migrations (several replicas, or a server plus the CLI) are safe
//! here without extra work: sqlx's PostgreSQL migrator holds an advisory lock.

use std::str::FromStr;

use async_trait::async_trait;
use campus_protocol::{EndReason, Role};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::rows::{
    self, db_err, found, AuditRow, RevokedRow, RunRow, UserRow, AUDIT_COLUMNS, REVOKED_COLUMNS,
    RUN_COLUMNS, USER_COLUMNS,
};
use super::{
    now_ms, AccountChanges, AuditRecord, NewAudit, NewRun, NewUser, PoolSettings, Record,
    RevokedToken, RunFinish, RunRecord, Store, StoreError, StoreResult, User,
};

/// The embedded PostgreSQL migrations.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// The database's clock in ms since the epoch: `updated_at_ms` and
/// `recorded_at_ms` are stamped with it, so every process polling them shares
/// one clock whatever its own says.
/// What every change of an account's credentials or rights also sets.
const BUMP: &str =
    "token_generation = token_generation + 1, updated_at_ms = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
const SQL_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Oldest supported server, as `server_version_num` (13.0). The schema and the
/// test harness (`DROP DATABASE ... WITH (FORCE)`) rely on 13+.
const MIN_SERVER_VERSION_NUM: i32 = 130_000;

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect to `url` (`postgres://...`) with an explicit pool, check the
    /// server version, and apply the embedded migrations.
    pub async fn connect(url: &str, settings: &PoolSettings) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("campus");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Some(settings.idle_timeout))
            .max_lifetime(Some(settings.max_lifetime))
            .connect_with(options)
            .await?;
        let store = PgStore { pool };
        if let Err(e) = store.check_version_and_migrate().await {
            store.pool.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Refuse servers older than 13, then migrate.
    async fn check_version_and_migrate(&self) -> StoreResult<()> {
        let (num, shown): (String, String) = sqlx::query_as(
            "SELECT current_setting('server_version_num'), current_setting('server_version')",
        )
        .fetch_one(&self.pool)
        .await?;
        check_server_version(&num, &shown)?;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

/// `Ok` for PostgreSQL 13 or newer, given `server_version_num` and the
/// human-readable `server_version` (for the message).
fn check_server_version(num: &str, shown: &str) -> StoreResult<()> {
    let num: i32 = num.trim().parse().map_err(|_| {
        StoreError::UnsupportedServer(format!("unparseable server_version_num {num:?}"))
    })?;
    if num < MIN_SERVER_VERSION_NUM {
        return Err(StoreError::UnsupportedServer(format!(
            "PostgreSQL {shown} is too old; campus needs 13 or newer"
        )));
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn probe(&self) -> StoreResult<()> {
        let mut conn = self
            .pool
            .connect_options()
            .connect()
            .await
            .map_err(db_err)?;
        let answered = sqlx::query("SELECT 1").execute(&mut conn).await;
        // The round trip is what counts; a failed goodbye only loses the socket.
        let _ = conn.close().await;
        answered.map_err(db_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let sql = format!(
            "INSERT INTO users (username, password_hash, role, disabled, created_at_ms) \
             VALUES ($1, $2, $3, FALSE, $4) RETURNING {USER_COLUMNS}"
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
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(User::try_from).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
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
            "UPDATE users SET disabled = $1, {BUMP} WHERE username = $2"
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
            "UPDATE users SET password_hash = $1, {BUMP} WHERE username = $2"
        ))
        .bind(password_hash)
        .bind(username)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        found(done.rows_affected())
    }

    async fn set_user_role(&self, username: &str, role: Role) -> StoreResult<()> {
        let sql = format!("UPDATE users SET role = $1, {BUMP} WHERE username = $2");
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
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE updated_at_ms > $1");
        let users: Vec<UserRow> = sqlx::query_as(&sql)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let sql = format!("SELECT {REVOKED_COLUMNS} FROM revoked_tokens WHERE recorded_at_ms > $1");
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
        let sql = format!("SELECT {REVOKED_COLUMNS} FROM revoked_tokens WHERE expires_at_ms > $1");
        let rows: Vec<RevokedRow> = sqlx::query_as(&sql)
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(RevokedToken::from).collect())
    }

    async fn purge_revocations(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn count_users_with_role(&self, role: Role) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = $1")
            .bind(role.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn append_audit(&self, entry: NewAudit) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, actor_id, actor, action, target, detail, ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        // Two statements rather than `($1 IS NULL OR action = $1)` so each one
        // matches its index exactly (see migrations/README.md).
        let rows: Vec<AuditRow> = match action {
            Some(action) => {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE action = $1 \
                     ORDER BY at_ms DESC, id DESC LIMIT $2"
                );
                sqlx::query_as(&sql)
                    .bind(action)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY at_ms DESC, id DESC LIMIT $1"
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
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(run.id)
        .bind(run.user_id)
        .bind(run.path)
        .bind(run.mode.as_str())
        .bind(run.started_at_ms)
        .bind(run.instance)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE runs SET ended_at_ms = $1, reason = $2, exit_code = $3, cpu_ms = $4, \
             peak_memory_bytes = $5, output_bytes = $6, last_seen_ms = $1 WHERE id = $7",
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
            "SELECT {RUN_COLUMNS} FROM runs WHERE user_id = $1 \
             ORDER BY started_at_ms DESC, id DESC LIMIT $2"
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
             FROM runs WHERE started_at_ms >= $1 GROUP BY hour ORDER BY hour",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn close_dangling_runs(&self, instance: &str) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET ended_at_ms = COALESCE(last_seen_ms, started_at_ms), reason = $1 \
             WHERE ended_at_ms IS NULL AND (instance_id = $2 OR instance_id IS NULL)",
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
                         SELECT $1, $2, $3, $4, $5, $5, $6 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
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
                }
                Record::RunFinished { run_id, finish } => {
                    sqlx::query(
                        "UPDATE runs SET ended_at_ms = $1, reason = $2, exit_code = $3, cpu_ms = $4, \
                         peak_memory_bytes = $5, output_bytes = $6, last_seen_ms = $1 WHERE id = $7",
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
                }
                Record::RunsAlive { at_ms, run_ids } => {
                    sqlx::query(
                        "UPDATE runs SET last_seen_ms = $1 WHERE id = ANY($2) \
                         AND ended_at_ms IS NULL AND (last_seen_ms IS NULL OR last_seen_ms < $1)",
                    )
                    .bind(at_ms)
                    .bind(run_ids)
                    .execute(&mut *tx)
                    .await
                }
                Record::Audit { at_ms, entry } => {
                    sqlx::query(
                        "INSERT INTO audit_log (at_ms, actor_id, actor, action, target, detail, ip) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                }
                Record::TokenRevoked(t) => {
                    sqlx::query(&format!(
                        "INSERT INTO revoked_tokens (jti, user_id, expires_at_ms, recorded_at_ms) \
                         SELECT $1, $2, $3, {SQL_NOW_MS} WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
                         ON CONFLICT (jti) DO NOTHING"
                    ))
                    .bind(&t.jti)
                    .bind(t.user_id)
                    .bind(t.expires_at_ms)
                    .execute(&mut *tx)
                    .await
                }
            }
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An old server cannot be started here, so the decision is tested alone;
    // the query feeding it runs against a real server in store_conformance.
    #[test]
    fn server_version_gate() {
        assert!(check_server_version("130000", "13.0").is_ok());
        assert!(check_server_version("150004", "15.4 (Debian 15.4-1)").is_ok());
        for (num, shown) in [("120017", "12.17"), ("90624", "9.6.24")] {
            match check_server_version(num, shown) {
                Err(StoreError::UnsupportedServer(msg)) => {
                    assert!(msg.contains(shown) && msg.contains("13"), "{msg}")
                }
                other => panic!("{num}: {other:?}"),
            }
        }
        assert!(matches!(
            check_server_version("banana", "?"),
            Err(StoreError::UnsupportedServer(_))
        ));
    }
}
