//! Liveness and readiness probes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::state::{AppState, SharedState};

/// `GET /healthz`: the process is up. No I/O.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers (cached ~1 s, at once while the breaker
/// says it is down) and the sandbox probe run passed (see [`sandbox_status`]);
/// also reports the data dir's disk.
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    let db = state.db_ready().await;
    let records = state.records.stats();
    let (sandbox_ok, sandbox) = sandbox_status(&state);
    let ready = db && sandbox_ok && !state.shutdown.is_cancelled();
    let disk = disk_status(&state).await;
    let body = json!({
        "ready": ready,
        "database": {
            "backend": state.store.backend(),
            "ok": db,
            "down_since_ms": state.db.down_since_ms(),
            "records": records,
        },
        "shutting_down": state.shutdown.is_cancelled(),
        "sandbox": sandbox,
        "disk": disk,
        "connections": state.hub.connection_count(),
        "sockets": state.conns.stats(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
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

/// A statvfs that takes longer than this (a hung network filesystem) is `unknown`.
const STATVFS_WAIT: Duration = Duration::from_secs(1);

/// Free space and inodes of the data dir's filesystem against the configured
/// thresholds (`CAMPUS_DISK_MIN_FREE_MB`, `CAMPUS_DISK_MIN_FREE_INODES`).
pub async fn disk_status(state: &AppState) -> DiskStatus {
    let path = state.cfg.storage.data_dir.clone();
    let min_free_bytes = state.cfg.disk_min_free_mb.saturating_mul(1 << 20);
    let min_free_inodes = state.cfg.disk_min_free_inodes;
    let probe = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || measure(&path))
    };
    let measured = match tokio::time::timeout(STATVFS_WAIT, probe).await {
        Ok(Ok(r)) => r.map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(format!("statvfs task failed: {e}")),
        Err(_) => Err("statvfs did not answer within 1 s".to_string()),
    };
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

/// The sandbox part of `/readyz`: ok when the last probe run (one real run
/// through the student path) passed. The cached result is answered at once; when
/// it is older than `CAMPUS_SANDBOX_PROBE_SECS` a new run starts in the
/// background and a later request sees its result.
pub fn sandbox_status(state: &SharedState) -> (bool, serde_json::Value) {
    let probe = &state.sandbox_probe;
    probe.refresh_if_stale();
    let last = probe.last();
    let report = state.sandbox.report();
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
