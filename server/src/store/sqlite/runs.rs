//! Run history on SQLite.

use async_trait::async_trait;
use campus_protocol::EndReason;
use sqlx::{Executor, Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::store::rows::{db_err, found, RunRow, RUN_COLUMNS};
use crate::store::{NewRun, RunFinish, RunRecord, Runs, StoreResult};

/// Run ids per liveness statement (well under SQLite's variable limit).
const ALIVE_CHUNK: usize = 500;

/// Record `run`'s start unless it is recorded already or its user is gone (a replayed
/// journal), in the records transaction.
pub(super) async fn insert_if_new(conn: &mut SqliteConnection, run: &NewRun) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO runs (id, user_id, path, mode, started_at_ms, last_seen_ms) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?5 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&run.id)
    .bind(run.user_id)
    .bind(&run.path)
    .bind(run.mode.as_str())
    .bind(run.started_at_ms)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Record how `run_id` ended; returns the rows changed (0: no such run).
pub(super) async fn finish<'c>(
    ex: impl Executor<'c, Database = Sqlite>,
    run_id: &str,
    finish: &RunFinish,
) -> StoreResult<u64> {
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
    .execute(ex)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected())
}

/// Mark the open runs among `run_ids` alive at `at_ms` (never backwards).
pub(super) async fn mark_alive(
    conn: &mut SqliteConnection,
    at_ms: i64,
    run_ids: &[String],
) -> StoreResult<()> {
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
        q.execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl Runs for SqliteStore {
    async fn insert_run(&self, run: NewRun) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO runs (id, user_id, path, mode, started_at_ms, last_seen_ms) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(run.id)
        .bind(run.user_id)
        .bind(run.path)
        .bind(run.mode.as_str())
        .bind(run.started_at_ms)
        .bind(run.started_at_ms)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> StoreResult<()> {
        found(self::finish(&self.pool, run_id, &finish).await?)
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

    async fn close_dangling_runs(&self) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE runs SET ended_at_ms = COALESCE(last_seen_ms, started_at_ms), reason = ? \
             WHERE ended_at_ms IS NULL",
        )
        .bind(EndReason::ServerShutdown.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
