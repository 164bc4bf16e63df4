//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::SharedState;

/// `GET /healthz`: the process is up. No I/O.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers (cached ~1 s) and the sandbox probe run
/// passed (see [`sandbox_status`]).
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    let db = state.db_ready().await;
    let (sandbox_ok, sandbox) = sandbox_status(&state);
    let ready = db && sandbox_ok && !state.shutdown.is_cancelled();
    let body = json!({
        "ready": ready,
        "database": { "backend": state.store.backend(), "ok": db },
        "shutting_down": state.shutdown.is_cancelled(),
        "sandbox": sandbox,
        "connections": state.hub.connection_count(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
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
