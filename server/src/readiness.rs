//! Readiness: whether this server can serve a class right now, from its
//! inputs in one place: the database (the breaker's flag, and a ping), the
//! record writer's backlog, the sandbox probe run, the data dir's disk, the
//! live connections, the sockets held against the connection limits and the
//! shutdown token. `/readyz` reports it; a login
//! asks it whether saves may fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::conn::ConnLimits;
use crate::hub::Hub;
use crate::records::Records;
use crate::runner::probe::SandboxProbe;
use crate::sandbox::Sandbox;
use crate::store::{DbHealth, DynStore};

/// A statvfs that takes longer than this (a hung network filesystem) is `unknown`.
const STATVFS_WAIT: Duration = Duration::from_secs(1);
/// How long a database ping answers for.
const PING_CACHE: Duration = Duration::from_millis(1000);

/// Where the data dir's disk is measured and when it counts as low.
#[derive(Debug, Clone)]
pub struct DiskThresholds {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Fewer free bytes than this is `degraded`.
    pub min_free_bytes: u64,
    /// Fewer free inodes than this is `degraded`.
    pub min_free_inodes: u64,
}

/// What readiness is decided from (see the module docs).
#[derive(Debug)]
pub struct Readiness {
    store: DynStore,
    db: Arc<DbHealth>,
    /// The last ping and when it was made. A tokio mutex held across the
    /// ping on purpose: a single flight, so a probe storm costs one ping a
    /// second; the ping has its own sub-second budget (the breaker's).
    ping: tokio::sync::Mutex<Option<(Instant, bool)>>,
    records: Records,
    sandbox: Arc<Sandbox>,
    probe: Arc<SandboxProbe>,
    disk: DiskThresholds,
    hub: Arc<Hub>,
    conns: Arc<ConnLimits>,
    shutdown: CancellationToken,
}

/// What [`Readiness`] is built from.
#[derive(Debug)]
pub struct ReadinessInputs {
    /// The database, behind its breaker.
    pub store: DynStore,
    /// The breaker's flag.
    pub db: Arc<DbHealth>,
    /// The record writer (its backlog is reported).
    pub records: Records,
    /// The host sandbox (its feature report).
    pub sandbox: Arc<Sandbox>,
    /// The sandbox probe run.
    pub probe: Arc<SandboxProbe>,
    /// The data dir's disk.
    pub disk: DiskThresholds,
    /// Live connections (counted).
    pub hub: Arc<Hub>,
    /// The connection limits (their socket counts are reported).
    pub conns: Arc<ConnLimits>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
}

impl Readiness {
    /// Readiness from its inputs.
    /// The record writer whose backlog this readiness reports.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The host sandbox whose feature report this readiness includes.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    pub fn new(i: ReadinessInputs) -> Self {
        Readiness {
            store: i.store,
            db: i.db,
            ping: tokio::sync::Mutex::new(None),
            records: i.records,
            sandbox: i.sandbox,
            probe: i.probe,
            disk: i.disk,
            hub: i.hub,
            conns: i.conns,
            shutdown: i.shutdown,
        }
    }

    /// DB reachability, cached for a second so a probe storm cannot load the DB.
    /// Answers at once while the breaker says the database is down.
    pub async fn db_ready(&self) -> bool {
        if !self.db.is_up() {
            return false;
        }
        let mut last = self.ping.lock().await;
        if let Some((at, ok)) = *last {
            if at.elapsed() < PING_CACHE {
                return ok;
            }
        }
        let ok = self.store.ping().await.is_ok();
        *last = Some((Instant::now(), ok));
        ok
    }

    /// The `/readyz` answer: ready or not, and the report.
    pub async fn report(&self) -> (bool, serde_json::Value) {
        let db = self.db_ready().await;
        let (sandbox_ok, sandbox) = self.sandbox_status();
        let shutting_down = self.shutdown.is_cancelled();
        let ready = db && sandbox_ok && !shutting_down;
        let disk = self.disk_status().await;
        let body = json!({
            "ready": ready,
            "database": {
                "backend": self.store.backend(),
                "ok": db,
                "down_since_ms": self.db.down_since_ms(),
                "records": self.records.stats(),
            },
            "shutting_down": shutting_down,
            "sandbox": sandbox,
            "disk": disk,
            "connections": self.hub.connection_count(),
            "sockets": self.conns.stats(),
        });
        (ready, body)
    }

    /// True when saves may be refused for lack of space: the data dir is below
    /// its threshold (SQLite lives there: that is its disk too), or a PostgreSQL
    /// server on its own disk refused the writer's last records for lack of
    /// space (the only way the server learns of that).
    pub async fn storage_low(&self) -> bool {
        let pg_full = self.store.backend() == "postgres" && self.records.storage_full();
        pg_full || self.disk_status().await.degraded()
    }

    /// Free space and inodes of the data dir's filesystem against the configured
    /// thresholds (`CAMPUS_DISK_MIN_FREE_MB`, `CAMPUS_DISK_MIN_FREE_INODES`).
    pub async fn disk_status(&self) -> DiskStatus {
        let path = self.disk.data_dir.clone();
        let probe = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || measure(&path))
        };
        let measured = match tokio::time::timeout(STATVFS_WAIT, probe).await {
            Ok(Ok(r)) => r.map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(format!("statvfs task failed: {e}")),
            Err(_) => Err("statvfs did not answer within 1 s".to_string()),
        };
        let (min_free_bytes, min_free_inodes) =
            (self.disk.min_free_bytes, self.disk.min_free_inodes);
        let mut s = DiskStatus {
            status: "unknown",
            path,
            free_bytes: 0,
            total_bytes: 0,
            free_inodes: 0,
            total_inodes: 0,
            min_free_bytes,
            min_free_inodes,
            error: None,
        };
        match measured {
            Ok(m) => {
                s.free_bytes = m.free_bytes;
                s.total_bytes = m.total_bytes;
                s.free_inodes = m.free_inodes;
                s.total_inodes = m.total_inodes;
                // A filesystem that does not count inodes reports 0 of 0.
                let inodes_low = m.total_inodes > 0 && m.free_inodes < min_free_inodes;
                s.status = if m.free_bytes < min_free_bytes || inodes_low {
                    "degraded"
                } else {
                    "ok"
                };
            }
            Err(e) => s.error = Some(e),
        }
        s
    }

    /// The sandbox part of `/readyz`: ok when the last probe run (one real run
    /// through the student path) passed. The cached result is answered at once; when
    /// it is older than `CAMPUS_SANDBOX_PROBE_SECS` a new run starts in the
    /// background and a later request sees its result.
    pub fn sandbox_status(&self) -> (bool, serde_json::Value) {
        let probe = &self.probe;
        probe.refresh_if_stale();
        let last = probe.last();
        let report = self.sandbox.report();
        let checks: Vec<_> = last
            .checks
            .iter()
            .map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail}))
            .collect();
        let body = json!({
            "ok": last.ok,
            "complete": report.complete,
            "isolated": last.isolated,
            "probe": {
                "ok": last.ok,
                "summary": last.summary,
                "checked_at_ms": last.checked_at_ms,
                "age_ms": probe.age().as_millis() as u64,
                "duration_ms": last.duration_ms,
                "checks": checks,
            },
            "features": report.features.iter().map(|(name, ok, detail)| json!({"name": name, "ok": ok, "detail": detail})).collect::<Vec<_>>(),
        });
        (last.ok, body)
    }

    /// The sandbox probe run (stopped first when the server shuts down).
    pub fn probe(&self) -> &Arc<SandboxProbe> {
        &self.probe
    }
}

/// How much room the data dir's filesystem has left.
#[derive(Debug, Clone, Serialize)]
pub struct DiskStatus {
    /// `ok`, `degraded` (below a threshold: saves may be refused with
    /// `insufficient_storage`) or `unknown` (statvfs failed or hung).
    pub status: &'static str,
    /// The data directory that was measured.
    pub path: PathBuf,
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    /// Size of the filesystem, bytes.
    pub total_bytes: u64,
    /// Inodes (files, folders) an unprivileged writer may still create.
    pub free_inodes: u64,
    /// Inodes of the filesystem (0 when it does not count them, e.g. btrfs).
    pub total_inodes: u64,
    /// Threshold: fewer free bytes than this is `degraded`.
    pub min_free_bytes: u64,
    /// Threshold: fewer free inodes than this is `degraded`.
    pub min_free_inodes: u64,
    /// What went wrong, for `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DiskStatus {
    /// True when the disk is known to be below a threshold.
    pub fn degraded(&self) -> bool {
        self.status == "degraded"
    }
}

struct Measured {
    free_bytes: u64,
    total_bytes: u64,
    free_inodes: u64,
    total_inodes: u64,
}

fn measure(path: &Path) -> rustix::io::Result<Measured> {
    let st = rustix::fs::statvfs(path)?;
    let unit = st.f_frsize.max(1);
    Ok(Measured {
        free_bytes: st.f_bavail.saturating_mul(unit),
        total_bytes: st.f_blocks.saturating_mul(unit),
        free_inodes: st.f_favail,
        total_inodes: st.f_files,
    })
}
