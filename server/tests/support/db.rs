//! Fresh, throwaway databases for tests: one SQLite file and (when reachable)
//! one PostgreSQL database per call, each dropped when its [`TestDb`] drops.
//!
//! Include from a test file with `#[path = "support/db.rs"] mod db;`.
//!
//! PostgreSQL comes from the admin URL in `CAMPUS_TEST_PG_URL` (default
//! [`DEFAULT_PG_ADMIN_URL`], which `.ci/postgres.sh` makes work). If it is
//! unreachable: with `CI=true` the call panics (tests must fail, not skip, in
//! CI); otherwise a loud SKIPPING notice goes to stderr and only SQLite is returned.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic there is a failed test (clippy.toml)

use std::io::Write;
use std::sync::Once;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// Admin URL used when `CAMPUS_TEST_PG_URL` is unset (password set by `.ci/postgres.sh`).
pub const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres:campus@127.0.0.1:5432/postgres";

/// How long to wait for the PostgreSQL admin connection before calling it unreachable.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One fresh database; dropped (file removed / `DROP DATABASE`) on Drop.
#[derive(Debug)]
pub struct TestDb {
    /// URL to pass to `campus_server::store::connect` (or `DATABASE_URL`).
    pub url: String,
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    /// The tempdir holding the SQLite file (and its -wal/-shm/lock files).
    Sqlite(tempfile::TempDir),
    /// The database to drop, and the admin URL to drop it through.
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            // Drop runs inside a tokio runtime in async tests, where blocking on
            // another future is not allowed; use a private runtime on its own thread.
            let (admin_url, name) = (admin_url.clone(), name.clone());
            let joined = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    let mut conn = PgConnection::connect(&admin_url)
                        .await
                        .map_err(|e| e.to_string())?;
                    // FORCE (PostgreSQL 13+) ends pools the test left open.
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    conn.close().await.map_err(|e| e.to_string())
                })
            })
            .join();
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.url),
                Err(_) => eprintln!("warning: dropping test database {} panicked", self.url),
            }
        }
    }
}

/// Whether we run in CI (`CI=true` or `CI=1`), where PostgreSQL is mandatory.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

/// The PostgreSQL admin URL (`CAMPUS_TEST_PG_URL` or the default).
pub fn pg_admin_url() -> String {
    std::env::var("CAMPUS_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_string())
}

/// A fresh SQLite database file in its own tempdir (the file itself is created on connect).
pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("campus.db").display());
    TestDb {
        url,
        backend: "sqlite",
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// A fresh PostgreSQL database, or `None` (after a SKIPPING notice) when the
/// server is unreachable outside CI. Panics when unreachable in CI.
pub async fn postgres() -> Option<TestDb> {
    let admin_url = pg_admin_url();
    let shown = redact(&admin_url);
    let mut admin = match connect_admin(&admin_url).await {
        Ok(conn) => conn,
        Err(e) if in_ci() => panic!(
            "PostgreSQL is required in CI (CI=true) but unreachable at {shown}: {e}\n\
             Run `eval \"$(.ci/postgres.sh)\"` first, or set CAMPUS_TEST_PG_URL."
        ),
        Err(e) => {
            // Once per test binary, straight to the process's stderr: libtest
            // captures `eprintln!` of passing tests, which would hide the notice.
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n==================================================================\n\
                     SKIPPING PostgreSQL: unreachable at {shown}: {e}\n\
                     Only SQLite is tested. Start one with `eval \"$(.ci/postgres.sh)\"`\n\
                     or set CAMPUS_TEST_PG_URL. (With CI=true this is a failure.)\n\
                     ==================================================================\n"
                );
            });
            return None;
        }
    };
    let name = format!("campus_test_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} via {shown}: {e}"));
    admin.close().await.unwrap();
    Some(TestDb {
        url: with_database(&admin_url, &name),
        backend: "postgres",
        cleanup: Cleanup::Postgres { admin_url, name },
    })
}

/// A fresh SQLite database, plus a fresh PostgreSQL database when reachable
/// (see the module docs for CI behaviour).
pub async fn test_databases() -> Vec<TestDb> {
    let mut dbs = vec![sqlite()];
    dbs.extend(postgres().await);
    dbs
}

/// Connect to the admin database with a bounded wait.
async fn connect_admin(url: &str) -> Result<PgConnection, String> {
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| e.to_string())?;
    match tokio::time::timeout(PG_CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {PG_CONNECT_TIMEOUT:?}")),
    }
}

/// `url` with its database (path) replaced by `name`, query string kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// `url` with any password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}
