//! `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use campus_protocol::{ErrorCode, UserInfo};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

use super::AuthUser;
use crate::auth::login_guard;
use crate::auth::COOKIE_NAME;
use crate::conn::ConnHandle;
use crate::error::AppError;
use crate::state::SharedState;

/// Login request body.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// Login response body.
#[derive(Debug, Serialize)]
pub struct LoginResponse {
    token: String,
    /// RFC 3339 expiry time.
    expires_at: String,
    user: UserInfo,
    /// Set when the login worked but the server cannot accept changes right
    /// now (its disk is full): the client shows it until the user dismisses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<LoginWarning>,
}

/// A condition the user should know about right after logging in.
#[derive(Debug, Serialize)]
pub struct LoginWarning {
    /// The refusal code saves will get (`insufficient_storage`).
    code: ErrorCode,
    /// What it means for the user.
    message: String,
}

/// What a login on a full disk tells the user.
const DISK_FULL_WARNING: &str = "The server's disk is full, so it cannot accept changes right \
     now: saving files may fail until an administrator frees space. You can still open and \
     read your files, and your edits are kept in this browser meanwhile.";

/// Check credentials, issue a token and set the session cookie (and a fresh
/// device cookie, see [`crate::auth::login_guard`]).
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    require_json(&headers)?;
    let req: LoginRequest = serde_json::from_slice(&body).map_err(|e| {
        AppError::new(
            ErrorCode::BadRequest,
            format!("expected {{\"username\", \"password\"}}: {e}"),
        )
    })?;
    let device = login_guard::device_cookie(&headers);
    let logged_in = state
        .auth
        .login(&req.username, req.password, peer.ip(), device.as_deref())
        .await?;
    if let Some(Extension(conn)) = &conn {
        conn.authenticated(logged_in.user.id);
    }
    let warning = state.readiness.storage_low().await.then(|| LoginWarning {
        code: ErrorCode::InsufficientStorage,
        message: DISK_FULL_WARNING.to_string(),
    });
    let (token, exp) = (logged_in.token, logged_in.expires_at);
    let expires_at = chrono::DateTime::from_timestamp(exp as i64, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    let cookie = session_cookie(
        &token,
        state.auth.token_ttl().as_secs(),
        state.settings.origins.secure_cookies(),
    );
    let body = LoginResponse {
        token,
        expires_at,
        user: logged_in.user,
        warning,
    };
    let mut resp = Json(body).into_response();
    for c in std::iter::once(cookie).chain(logged_in.device_cookie) {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Revoke the token the request carries (Bearer or cookie) and clear the
/// session cookie. JSON only, like login: a cross-site form must not be
/// able to log a student out. The token is refused from this moment (every
/// tab and device using it: their WebSockets close with 4013 at once); the
/// revocation is recorded through the record writer, so it survives a
/// database outage and reaches every instance sharing the database. The
/// user's run is stopped when no other of their connections is left. A
/// missing, invalid or expired token is simply logged out (200).
pub async fn logout(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    require_json(&headers)?;
    if let Some((token, _)) = crate::auth::extract_token(&headers) {
        state.auth.logout(&token, peer.ip()).await;
    }
    let mut out = HeaderMap::new();
    let cookie = session_cookie("", 0, state.settings.origins.secure_cookies());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        out.insert(header::SET_COOKIE, v);
    }
    Ok((out, Json(serde_json::json!({"ok": true}))).into_response())
}

/// State-changing JSON endpoints take only `Content-Type: application/json`:
/// an HTML form on another site can send only form encodings and
/// `text/plain` (login CSRF), and a script there cannot send JSON without a
/// CORS preflight, which fails. Anything else is `415` with `bad_request`.
fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if json {
        return Ok(());
    }
    let mut e = AppError::new(
        ErrorCode::BadRequest,
        "send this request as JSON (Content-Type: application/json)",
    );
    e.http_status = Some(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    Err(e)
}

/// The logged-in user (lets a reloaded page know the cookie is still good).
pub async fn me(AuthUser(user): AuthUser) -> Json<UserInfo> {
    Json(user)
}

/// HttpOnly, SameSite=Strict cookie; `Secure` when the public URL is `https://`.
fn session_cookie(token: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}
