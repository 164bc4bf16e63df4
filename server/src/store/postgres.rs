//! postgres implementation of the store (stub; filled in by the store work).

use super::{PoolSettings, StoreError, StoreResult};

/// The postgres store.
#[derive(Debug)]
pub struct PgStore;

impl PgStore {
    /// Connect and migrate.
    pub async fn connect(_url: &str, _pool: &PoolSettings) -> StoreResult<Self> {
        Err(StoreError::UnknownScheme("postgres (not built yet)".into()))
    }
}
