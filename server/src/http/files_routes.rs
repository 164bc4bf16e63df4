//! `GET /api/files/{path}` and `PUT /api/files/{path}`: streamed downloads and
//! uploads for large and binary files, with conditional-request semantics
//! (`ETag` = version, `If-Match`, `If-None-Match: *`). Same authorization,
//! checks and per-user limits as the WebSocket file messages.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use campus_protocol::{ChangeKind, ErrorCode};
use futures_util::StreamExt;
use serde::Deserialize;
use workspace_fs::Precondition;

use super::AuthUser;
use crate::authz::Action;
use crate::error::AppError;
use crate::files::{self, blocking};
use crate::state::SharedState;

/// Chunks in flight between the socket and the blocking writer.
const UPLOAD_QUEUE: usize = 4;

/// Query parameters of `GET`.
#[derive(Debug, Deserialize)]
pub struct GetQuery {
    /// Read another user's workspace (admins only; refused and audited otherwise).
    owner: Option<i64>,
    /// Ask the browser to save the file instead of showing it.
    #[serde(default)]
    download: Option<String>,
}

fn quoted(version: &str) -> String {
    format!("\"{version}\"")
}

fn unquote(v: &str) -> String {
    v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// Stream a file out.
pub async fn get_file(
    State(state): State<SharedState>,
    AuthUser(user): AuthUser,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    Query(q): Query<GetQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let owner = q.owner.unwrap_or(user.id);
    files::admit(
        &state,
        &user,
        owner,
        Action::Read,
        &path,
        Some(peer.ip().to_string()),
    )
    .await?;
    let ws = state.files.workspace(owner)?;
    let p = path.clone();
    let (file, entry) = blocking(ws, move |w| w.open_read(&p)).await?;
    let version = entry.version.clone().unwrap_or_default();
    let etag = quoted(&version);
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if inm
            .split(',')
            .any(|v| unquote(v) == version || v.trim() == "*")
        {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
    }
    if let Some(im) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if !im
            .split(',')
            .any(|v| unquote(v) == version || v.trim() == "*")
        {
            return Err(precondition_failed(Some(version)));
        }
    }
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    let mime = entry
        .mime
        .unwrap_or_else(|| "application/octet-stream".into());
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Student files are untrusted: never let an uploaded HTML/SVG run as our origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox",
        ),
    );
    if q.download.is_some() {
        let name = path
            .rsplit('/')
            .next()
            .unwrap_or("download")
            .replace(['"', '\\'], "_");
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

/// Stream a file in: atomic, size-checked early, conditional on `If-Match` /
/// `If-None-Match: *`; an unconditional PUT overwrites and keeps the old content in history.
pub async fn put_file(
    State(state): State<SharedState>,
    AuthUser(user): AuthUser,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    files::admit(
        &state,
        &user,
        user.id,
        Action::Write,
        &path,
        Some(peer.ip().to_string()),
    )
    .await?;
    let conditional;
    let pre = if let Some(im) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        conditional = true;
        if im.trim() == "*" {
            // "*" matches any existing file: update only, never create.
            let p = path.clone();
            let ws = state.files.workspace(user.id)?;
            match blocking(ws, move |w| w.stat(&p)).await {
                Ok(e) => Precondition::Match(e.version.unwrap_or_default()),
                Err(e) if e.code == ErrorCode::NotFound => return Err(precondition_failed(None)),
                Err(e) => return Err(e),
            }
        } else {
            Precondition::Match(unquote(im))
        }
    } else if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*")
    {
        conditional = true;
        Precondition::CreateOnly
    } else {
        conditional = false;
        Precondition::Overwrite
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());

    let ws = state.files.workspace(user.id)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(UPLOAD_QUEUE);
    let p = path.clone();
    // One blocking task owns the temp file; the socket side feeds it chunks.
    let writer = tokio::task::spawn_blocking(move || {
        let mut pending = ws.begin_write(&p, pre, declared)?;
        while let Some(chunk) = rx.blocking_recv() {
            pending.write_chunk(&chunk)?;
        }
        pending.commit()
    });
    let mut stream = body.into_data_stream();
    let mut read_error = None;
    loop {
        let chunk = tokio::select! {
            // The writer refused (too large, conflict, ...): answer now, without
            // waiting for the rest of the body.
            _ = tx.closed() => break,
            chunk = stream.next() => chunk,
        };
        let Some(chunk) = chunk else { break };
        match chunk {
            Ok(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break; // the writer refused (too large, conflict, ...): its error is reported
                }
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    if let Some(e) = read_error {
        writer.abort();
        return Err(AppError::new(
            ErrorCode::BadRequest,
            format!("upload interrupted: {e}"),
        ));
    }
    let outcome = match writer.await.map_err(AppError::internal)? {
        Ok(o) => o,
        Err(e) => {
            let mapped = files::map_fs_error(e);
            if mapped.code == ErrorCode::Conflict && conditional {
                return Err(precondition_failed(mapped.current_version));
            }
            return Err(mapped);
        }
    };
    let version = outcome.entry.version.clone().unwrap_or_default();
    files::notify(
        &state,
        user.id,
        "http",
        &path,
        ChangeKind::Written,
        Some(version.clone()),
        None,
    );
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({
        "path": path,
        "version": version,
        "size": outcome.entry.size,
        "created": outcome.created,
    });
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&quoted(&version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// 412: the `If-Match` / `If-None-Match` condition does not hold; nothing was written.
fn precondition_failed(current: Option<String>) -> AppError {
    let mut e = AppError::new(
        ErrorCode::Conflict,
        "the file changed since you opened it (or already exists); nothing was overwritten",
    );
    e.current_version = current;
    e.http_status = Some(StatusCode::PRECONDITION_FAILED);
    e
}
