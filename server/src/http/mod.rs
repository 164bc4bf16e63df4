//! The HTTP surface: the router, its middleware (request ids, tracing, CORS,
//! compression, timeouts, body limits) and the routes.

mod auth_routes;
mod course_routes;
mod extract;
mod files_routes;
mod grading_routes;
mod health;
pub mod metrics_routes;
pub mod origin;
mod web;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use extract::{client_ip, AuthUser};

use crate::state::SharedState;

const REQUEST_ID: &str = "x-request-id";

/// Build the application router.
pub fn router(state: SharedState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let api = Router::new()
        .route("/api/auth/login", post(auth_routes::login))
        .route("/api/auth/logout", post(auth_routes::logout))
        .route("/api/auth/me", get(auth_routes::me))
        .route("/metrics", get(metrics_routes::metrics))
        .route(
            "/api/courses/{slug}/assignments/{folder}/grades.csv",
            get(grading_routes::grades_csv),
        )
        .route(
            "/api/submissions/{id}/results.json",
            get(grading_routes::results_json),
        )
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));

    // File bodies are streamed and size-checked by the file service, not buffered.
    let files = Router::new()
        .route(
            "/api/files/{*path}",
            get(files_routes::get_file).put(files_routes::put_file),
        )
        .route(
            "/api/courses/{slug}/files/{*path}",
            get(course_routes::get_material).put(course_routes::put_material),
        );

    let mut app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/ws", get(crate::ws::upgrade))
        .merge(api)
        .merge(files)
        // Unknown API paths are JSON 404s, never the web client's index.html.
        .route("/api", axum::routing::any(api_not_found))
        .route("/api/{*rest}", axum::routing::any(api_not_found));
    app = web::mount(app, state.settings.web_dir.clone());

    app.layer(cors(&state.settings.allowed_origins))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// 404 for an unknown API route.
async fn api_not_found() -> crate::error::AppError {
    crate::error::AppError::new(campus_protocol::ErrorCode::NotFound, "no such API endpoint")
}

/// CORS: nothing cross-origin unless origins are configured.
fn cors(origins: &[String]) -> CorsLayer {
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(list))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::PUT, Method::POST, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::IF_MATCH,
            axum::http::header::IF_NONE_MATCH,
        ])
        .expose_headers([axum::http::header::ETAG, axum::http::header::RETRY_AFTER])
}
