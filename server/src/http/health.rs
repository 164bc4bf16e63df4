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

/// `GET /readyz`: the database answers (cached ~1 s); also reports the sandbox.
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    let db = state.db_ready().await;
    let ready = db && !state.shutdown.is_cancelled();
    let report = state.sandbox.report();
    let body = json!({
        "ready": ready,
        "database": { "backend": state.store.backend(), "ok": db },
        "shutting_down": state.shutdown.is_cancelled(),
        "sandbox": {
            "complete": report.complete,
            "features": report.features.iter().map(|(name, ok, detail)| json!({"name": name, "ok": ok, "detail": detail})).collect::<Vec<_>>(),
        },
        "connections": state.hub.connection_count(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
