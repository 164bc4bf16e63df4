//! PostgreSQL implementation of the store (production; shared by replicas):
//! the connection and the cross-aggregate transaction here, each aggregate in
//! its own file.
//!
//! Concurrent migrations (several replicas, or a server plus the CLI) are safe
//! here without extra work: sqlx's PostgreSQL migrator holds an advisory lock.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::rows::db_err;
use super::{PoolSettings, Record, Store, StoreError, StoreResult};

mod audit;
mod runs;
mod users;

/// The embedded PostgreSQL migrations.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

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

    async fn apply_records(&self, records: &[Record]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for record in records {
            match record {
                Record::RunStarted(run) => runs::insert_if_new(&mut *tx, run).await?,
                Record::RunFinished { run_id, finish } => {
                    runs::finish(&mut *tx, run_id, finish).await?;
                }
                Record::RunsAlive { at_ms, run_ids } => {
                    runs::mark_alive(&mut *tx, *at_ms, run_ids).await?;
                }
                Record::Audit { at_ms, entry } => audit::insert(&mut *tx, *at_ms, entry).await?,
                Record::TokenRevoked(t) => users::insert_revocation(&mut *tx, t).await?,
            }
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

super::courses_sql::impl_courses!(PgStore, sqlx::Postgres);
super::grading_sql::impl_grading!(
    PgStore,
    "FOR UPDATE SKIP LOCKED",
    "SELECT pg_advisory_xact_lock(8213, CAST($1 % 2147483647 AS INTEGER))"
);
