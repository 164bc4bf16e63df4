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
/// [`crate::readiness`]).
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    let (ready, body) = state.readiness.report().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
