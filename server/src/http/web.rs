//! Serves the built web client (web-client/dist): hashed assets cached for a
//! year, index.html never cached, everything compressed.

use std::path::PathBuf;

use axum::http::{header, HeaderValue};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::SharedState;

/// Mount the client at `/` (fallback) from `dir`, the absolute folder chosen
/// by [`crate::config::ServeArgs::resolve_paths`] (None: no built client found).
pub fn mount(app: Router<SharedState>, dir: Option<PathBuf>) -> Router<SharedState> {
    let Some(dir) = dir else {
        tracing::info!("no built web client found (web-client/dist); serving the API only");
        return app;
    };
    tracing::info!(dir = %dir.display(), "serving the web client");
    let index = dir.join("index.html");
    let assets = Router::new()
        .nest_service("/assets", ServeDir::new(dir.join("assets")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ));
    let rest = Router::new()
        .fallback_service(ServeDir::new(&dir).fallback(ServeFile::new(index)))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    app.merge(assets.merge(rest).layer(CompressionLayer::new()))
}
