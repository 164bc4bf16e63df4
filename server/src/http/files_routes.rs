//! `GET /api/files/{path}` and `PUT /api/files/{path}`: streamed downloads and
//! uploads for large and binary files, with conditional-request semantics
//! (`ETag` = version, `If-Match`, `If-None-Match: *`). Same authorization,
//! checks and per-user limits as the WebSocket file messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use campus_protocol::{ChangeKind, ErrorCode};
use futures_util::StreamExt;
use serde::Deserialize;
use workspace_fs::{FsError, Precondition, Workspace, WriteOutcome};

use super::AuthUser;
use crate::authz::Action;
use crate::error::AppError;
use crate::files::{self, blocking};
use crate::state::{AppState, SharedState};

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
    state
        .files
        .admit(
            &user,
            owner,
            Action::Read,
            &path,
            Some(peer.ip().to_string()),
        )
        .await?;
    let ws = state.files.workspace(owner).await?;
    stream_out(ws, path, &headers, q.download.is_some()).await
}

/// Stream `path` of `ws` out, with `ETag` and conditional requests; the
/// caller has authorized the read. Shared with course material.
pub async fn stream_out(
    ws: Arc<Workspace>,
    path: String,
    headers: &HeaderMap,
    download: bool,
) -> Result<Response, AppError> {
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
    if download {
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
    state
        .files
        .admit(
            &user,
            user.id,
            Action::Write,
            &path,
            Some(peer.ip().to_string()),
        )
        .await?;
    let ws = state.files.workspace(user.id).await?;
    let outcome = stream_in(&state, ws, &path, &headers, body).await?;
    let version = outcome.entry.version.clone().unwrap_or_default();
    state.files.notify(
        user.id,
        "http",
        &path,
        ChangeKind::Written,
        Some(version.clone()),
        None,
    );
    Ok(written_response(&path, &outcome))
}

/// The reply to a successful upload: `201` or `200`, the entry, its `ETag`.
pub fn written_response(path: &str, outcome: &WriteOutcome) -> Response {
    let version = outcome.entry.version.clone().unwrap_or_default();
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
    resp
}

/// Stream a request body into `path` of `ws`: atomic, committed only when
/// the whole body arrived, conditional on `If-Match` / `If-None-Match: *`;
/// the caller has authorized the write. Shared with course material.
pub async fn stream_in(
    state: &AppState,
    ws: Arc<Workspace>,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<WriteOutcome, AppError> {
    let conditional;
    let pre = if let Some(im) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        conditional = true;
        if im.trim() == "*" {
            // "*" matches any existing file: update only, never create.
            let p = path.to_string();
            match blocking(Arc::clone(&ws), move |w| w.stat(&p)).await {
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

    let (tx, rx) = tokio::sync::mpsc::channel::<Upload>(UPLOAD_QUEUE);
    let p = path.to_string();
    // One blocking task owns the temporary file; the socket side feeds it. It commits only
    // on `Upload::Complete`: when the socket side stops for any other reason (an error, a
    // timeout, shutdown, or this handler being dropped with its connection) the channel
    // closes without it and the pending write is dropped, which removes the temporary file.
    let writer = tokio::task::spawn_blocking(move || write_upload(&ws, &p, pre, declared, rx));
    let ended = receive_body(state, body, declared, &tx).await;
    let result = match ended {
        BodyEnd::Complete(total) => {
            // A closed channel here means the writer already refused; its error follows.
            let _ = tx.send(Upload::Complete(total)).await;
            drop(tx);
            writer.await.map_err(AppError::internal)?
        }
        BodyEnd::WriterStopped => {
            drop(tx);
            writer.await.map_err(AppError::internal)?
        }
        BodyEnd::Failed(refusal) => {
            drop(tx);
            // Wait for the writer to drop its temporary file, so that "nothing was written"
            // is already true when the client reads the answer.
            let _ = writer.await;
            return Err(refusal);
        }
    };
    match result {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(AppError::new(
            ErrorCode::BadRequest,
            "the upload ended early; nothing was written",
        )),
        Err(e) => {
            let mapped = files::map_fs_error(e);
            if mapped.code == ErrorCode::Conflict && conditional {
                return Err(precondition_failed(mapped.current_version));
            }
            Err(mapped)
        }
    }
}

/// What the socket side of an upload tells its blocking writer.
#[derive(Debug)]
enum Upload {
    /// The next bytes of the body.
    Chunk(Bytes),
    /// The whole body arrived, this many bytes: commit.
    Complete(u64),
}

/// How reading an upload's body ended.
#[derive(Debug)]
enum BodyEnd {
    /// The declared length was reached exactly, or the chunked terminator was read.
    Complete(u64),
    /// The writer stopped taking chunks (it refused: too large, quota, conflict, ...).
    WriterStopped,
    /// The body did not arrive whole (the client went away, stalled, took too long) or the
    /// server is shutting down: the refusal to answer with; nothing may be written.
    Failed(AppError),
}

/// The blocking writer of an upload: stages `path`, appends chunks, and commits only on
/// `Complete`. `Ok(None)` when the channel closed without it (the pending write, dropped,
/// removes its temporary file).
fn write_upload(
    ws: &Arc<Workspace>,
    path: &str,
    pre: Precondition,
    declared: Option<u64>,
    mut rx: tokio::sync::mpsc::Receiver<Upload>,
) -> Result<Option<WriteOutcome>, FsError> {
    let mut pending = ws.begin_write(path, pre, declared)?;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Upload::Chunk(bytes) => pending.write_chunk(&bytes)?,
            Upload::Complete(total) => return pending.commit(total).map(Some),
        }
    }
    Ok(None)
}

/// Reads the body into `tx` until it is complete or must be given up. Whether it is complete
/// is decided here, not taken from the end of the stream: hyper reports a body cut short as
/// an error (`IncompleteBody` for a declared length, an unexpected EOF inside chunked
/// framing), and in addition a declared length must be matched exactly.
async fn receive_body(
    state: &AppState,
    body: Body,
    declared: Option<u64>,
    tx: &tokio::sync::mpsc::Sender<Upload>,
) -> BodyEnd {
    let idle = state.settings.upload_idle_timeout;
    let total = state.settings.upload_timeout;
    let deadline = tokio::time::Instant::now() + total;
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    let interrupted = |received: u64, why: String| {
        let of = declared.map(|d| format!(" of {d}")).unwrap_or_default();
        AppError::new(
            ErrorCode::BadRequest,
            format!("the upload was interrupted after {received}{of} bytes ({why}); nothing was written"),
        )
    };
    loop {
        let wait = idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let next = tokio::select! {
            // Shutdown first: an upload in flight is given up, never committed half-way.
            biased;
            _ = state.shutdown.cancelled() => return BodyEnd::Failed(shutting_down()),
            // The writer refused: answer now, without waiting for the rest of the body.
            _ = tx.closed() => return BodyEnd::WriterStopped,
            next = tokio::time::timeout(wait, stream.next()) => next,
        };
        let chunk = match next {
            Err(_) => return BodyEnd::Failed(timed_out(received, idle, total, deadline)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return BodyEnd::Failed(interrupted(received, e.to_string())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        received += chunk.len() as u64;
        let sent = tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => return BodyEnd::Failed(shutting_down()),
            sent = tx.send(Upload::Chunk(chunk)) => sent,
        };
        if sent.is_err() {
            return BodyEnd::WriterStopped;
        }
    }
    match declared {
        Some(d) if d != received => BodyEnd::Failed(interrupted(
            received,
            "the body ended before its Content-Length".into(),
        )),
        _ => BodyEnd::Complete(received),
    }
}

/// 408: the body stalled or took too long; nothing was written.
fn timed_out(
    received: u64,
    idle: Duration,
    total: Duration,
    deadline: tokio::time::Instant,
) -> AppError {
    let why = if tokio::time::Instant::now() >= deadline {
        format!("the upload took longer than {} s", total.as_secs())
    } else {
        format!("no data arrived for {} s", idle.as_secs())
    };
    let mut e = AppError::new(
        ErrorCode::BadRequest,
        format!("{why} (after {received} bytes); the upload was cancelled and nothing was written"),
    );
    e.http_status = Some(StatusCode::REQUEST_TIMEOUT);
    e
}

/// 503: the server stopped while the body was arriving; nothing was written.
fn shutting_down() -> AppError {
    let mut e = AppError::new(
        ErrorCode::Unavailable,
        "the server is restarting; the upload was cancelled and nothing was written, send it again",
    );
    e.retry_after = Some(Duration::from_secs(5));
    e
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
