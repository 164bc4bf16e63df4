//! Users on SQLite.

use async_trait::async_trait;
use campus_protocol::Role;

use super::SqliteStore;
use crate::store::rows::{self, db_err, found, UserRow, USER_COLUMNS};
use crate::store::{now_ms, NewUser, StoreResult, User, Users};

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
        let done = sqlx::query("UPDATE users SET disabled = ? WHERE username = ?")
            .bind(disabled)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        found(done.rows_affected())
    }

    async fn set_password_hash(&self, username: &str, password_hash: &str) -> StoreResult<()> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE username = ?")
            .bind(password_hash)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        found(done.rows_affected())
    }

    async fn count_users_with_role(&self, role: Role) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = ?")
            .bind(role.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}
