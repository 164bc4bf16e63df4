//! The users aggregate: accounts and what a login checks (tokens are
//! stateless JWTs; nothing about them is stored).

use async_trait::async_trait;
use campus_protocol::Role;

use super::StoreResult;

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

/// Operations on users.
#[async_trait]
pub trait Users: Send + Sync {
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
    /// Number of users with this role (used for the first-start admin).
    async fn count_users_with_role(&self, role: Role) -> StoreResult<i64>;
}
