//! sqlite implementation of the store (stub; filled in by the store work).

use super::{PoolSettings, StoreError, StoreResult};

/// The sqlite store.
#[derive(Debug)]
pub struct SqliteStore;

impl SqliteStore {
    /// Connect and migrate.
    pub async fn connect(_url: &str, _pool: &PoolSettings) -> StoreResult<Self> {
        Err(StoreError::UnknownScheme("sqlite (not built yet)".into()))
    }
}
