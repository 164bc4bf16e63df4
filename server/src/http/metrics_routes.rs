//! `GET /metrics`: the Prometheus exposition (see [`crate::metrics`]). On the
//! main listener only for admins (a Bearer token or the session cookie); on
//! the metrics listener (`CAMPUS_METRICS_LISTEN`), meant for a private
//! network or loopback, without authentication.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use campus_protocol::{ErrorCode, Role};

use super::AuthUser;
use crate::error::AppError;
use crate::state::SharedState;

/// `GET /metrics` on the main listener: admins only.
pub async fn metrics(
    State(state): State<SharedState>,
    AuthUser(user): AuthUser,
) -> Result<Response, AppError> {
    if user.role != Role::Admin {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "the metrics are for administrators (or scrape the metrics listener, CAMPUS_METRICS_LISTEN)",
        ));
    }
    Ok(exposition(&state).await)
}

/// `GET /metrics` on the metrics listener.
pub async fn open_metrics(State(state): State<SharedState>) -> Response {
    exposition(&state).await
}

async fn exposition(state: &SharedState) -> Response {
    let body = state.metrics.render(state).await;
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// The metrics listener's router: `/metrics` and nothing else.
pub fn router(state: SharedState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(open_metrics))
        .with_state(state)
}
