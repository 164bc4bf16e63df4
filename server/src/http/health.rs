//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use crate::state::SharedState;

/// `GET /healthz`: the process is up. No I/O.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers (cached ~1 s, at once while the breaker
/// says it is down) and the sandbox probe run passed; also reports the record
/// writer's backlog, the data dir's disk and the live connections (see
/// [`crate::readiness`]), and the course catalog's loads.
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    let (ready, mut body) = state.readiness.report().await;
    // The background loops: the runner's reaper (a pass every interval) and
    // the grading workers (each a task; one that ended or panicked is gone).
    let (ago, every) = state.runner.reaper_liveness();
    let reaper_ok = ago <= every * 3 + std::time::Duration::from_secs(5);
    body["reaper"] = serde_json::json!({
        "ok": reaper_ok,
        "last_pass_ms_ago": ago.as_millis() as u64,
        "interval_ms": every.as_millis() as u64,
    });
    let (alive, started) = state.grading.workers();
    let grading_ok = alive == started || state.shutdown.is_cancelled();
    body["grading"] = serde_json::json!({
        "ok": grading_ok,
        "workers_alive": alive,
        "workers": started,
    });
    let ready = ready && reaper_ok && grading_ok;
    body["ready"] = serde_json::json!(ready);
    // How often the course catalog was read from the database (it is served
    // from memory otherwise): what the courses benchmark counts.
    let catalog = state.courses.catalog();
    body["courses"] = serde_json::json!({
        "catalog_loads": catalog.loads(),
        "catalog_generation": catalog.snapshot().generation,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
