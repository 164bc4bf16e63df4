//! `GET /api/courses/{slug}/files/{path}` and `PUT …`: streamed download and
//! upload of course material (PDF slides, CSV data, images), with the same
//! authorization and visibility as the WebSocket course messages and the
//! same streaming, limits and conditional requests as workspace files.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::files_routes::{stream_in, stream_out, written_response};
use super::AuthUser;
use crate::error::AppError;
use crate::state::SharedState;

/// Query parameters of `GET`.
#[derive(Debug, Deserialize)]
pub struct GetQuery {
    /// Ask the browser to save the file instead of showing it.
    #[serde(default)]
    download: Option<String>,
}

/// Stream a material file out (students: only what is released to them).
pub async fn get_material(
    State(state): State<SharedState>,
    AuthUser(user): AuthUser,
    Path((slug, path)): Path<(String, String)>,
    Query(q): Query<GetQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let ws = state.courses.material_for_read(&user, &slug, &path).await?;
    stream_out(ws, path, &headers, q.download.is_some()).await
}

/// Stream a material file in (professors), atomically.
pub async fn put_material(
    State(state): State<SharedState>,
    AuthUser(user): AuthUser,
    Path((slug, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let ws = state.courses.material_for_write(&user, &slug).await?;
    let outcome = stream_in(&state, ws, &path, &headers, body).await?;
    state.courses.material_written(&user, &slug, &path);
    Ok(written_response(&path, &outcome))
}
