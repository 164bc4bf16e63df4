//! Users on SQLite.

use async_trait::async_trait;
use campus_protocol::Role;
use sqlx::{Executor, Sqlite};

use super::SqliteStore;
use crate::store::rows::{self, db_err, found, RevokedRow, UserRow, REVOKED_COLUMNS, USER_COLUMNS};
use crate::store::{now_ms, AccountChanges, NewUser, RevokedToken, StoreResult, User, Users};

/// The database's clock in ms since the epoch: `updated_at_ms` and
/// `recorded_at_ms` are stamped with it, so every process polling them shares
/// one clock whatever its own says.
pub(super) const SQL_NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// What every change of an account's credentials or rights also sets.
const BUMP: &str = "token_generation = token_generation + 1, \
     updated_at_ms = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// Record a revoked token unless it is recorded already or its user is gone
/// (a replayed journal), in the records transaction.
pub(super) async fn insert_revocation<'c>(
    ex: impl Executor<'c, Database = Sqlite>,
    t: &RevokedToken,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at_ms, recorded_at_ms) \
         SELECT ?1, ?2, ?3, {SQL_NOW_MS} WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2) \
         ON CONFLICT (jti) DO NOTHING"
    ))
    .bind(&t.jti)
    .bind(t.user_id)
    .bind(t.expires_at_ms)
    .execute(ex)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl Users for SqliteStore {
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
}
