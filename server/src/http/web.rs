//! Serves the built web client (web-client/dist): hashed assets cached for a
//! year, index.html never cached, everything compressed.

use std::path::PathBuf;

use axum::http::{header, HeaderValue};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::SharedState;

/// Where the client is looked for when `--web-dir` is not given.
const DEFAULT_DIRS: &[&str] = &["web-client/dist", "../web-client/dist"];

/// Mount the client at `/` (fallback), if a built client exists.
pub fn mount(app: Router<SharedState>, dir: Option<PathBuf>) -> Router<SharedState> {
    let dir = dir.or_else(|| {
        DEFAULT_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join("index.html").is_file())
    });
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
