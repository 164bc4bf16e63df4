//! The audit log on SQLite.

use async_trait::async_trait;
use sqlx::{Executor, Sqlite};

use super::SqliteStore;
use crate::store::rows::{db_err, AuditRow, AUDIT_COLUMNS};
use crate::store::{now_ms, AuditLog, AuditRecord, NewAudit, StoreResult};

/// Append `entry` dated `at_ms` (also inside the records transaction).
pub(super) async fn insert<'c>(
    ex: impl Executor<'c, Database = Sqlite>,
    at_ms: i64,
    entry: &NewAudit,
) -> StoreResult<()> {
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
    .execute(ex)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(&self, entry: NewAudit) -> StoreResult<()> {
        insert(&self.pool, now_ms(), &entry).await
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
}
