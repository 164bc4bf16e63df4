//! The users aggregate: accounts, what a login checks, and what revokes a
//! token (each user's `token_generation`; the `revoked_tokens` of logouts).

use async_trait::async_trait;
use campus_protocol::Role;
use serde::{Deserialize, Serialize};

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

/// What changed in the database since a poll cursor (see [`Users::account_changes`]).
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
    /// Change a user's role; `NotFound` if no such user.
    ///
    /// This, [`Users::set_user_disabled`] and [`Users::set_password_hash`]
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
}
