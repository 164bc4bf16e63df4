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
use crate::auth::login_guard::{self, Refusal};
use crate::auth::{password, COOKIE_NAME};
use crate::conn::ConnHandle;
use crate::error::AppError;
use crate::state::SharedState;
use crate::store::NewAudit;

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

const BAD_CREDENTIALS: &str = "wrong username or password";

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
    // While the database is known to be down, say so at once (and write no
    // audit entries that could not be stored anyway).
    if !state.db.is_up() {
        return Err(AppError::unavailable());
    }
    let ip = peer.ip();
    let audit = |action: &str, actor_id: Option<i64>| NewAudit {
        actor_id,
        actor: Some(req.username.clone()),
        action: action.to_string(),
        target: None,
        detail: None,
        ip: Some(ip.to_string()),
    };
    let refused = |r: Refusal| {
        // Once per backoff step: hammering during a wait writes nothing.
        if r.first {
            state.records.audit(audit("login.rate_limited", None));
        }
        AppError::rate_limited("failed login attempts", r.wait)
    };
    // Audit entries go to the background writer: the only database call a
    // login waits for is the account lookup.
    let device = login_guard::device_cookie(&headers);
    let attempt = state
        .login_guard
        .begin(&req.username, ip, device.as_deref())
        .map_err(refused)?;
    let user = match state.store.user_by_username(&req.username).await {
        Ok(u) => u,
        Err(e) => {
            state.login_guard.abandoned(&attempt);
            return Err(e.into());
        }
    };
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_string());
    let pw = req.password.clone();
    let _slot = state
        .hash_slots
        .acquire()
        .await
        .map_err(AppError::internal)?;
    state.login_guard.recheck(&attempt).map_err(refused)?;
    let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
        .await
        .map_err(AppError::internal)?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        Some(u) if ok => {
            // Counted like a wrong password: the answer must not tell them apart.
            state.login_guard.failed(&attempt);
            state.records.audit(audit("login.disabled", Some(u.id)));
            return Err(AppError::new(ErrorCode::Unauthorized, BAD_CREDENTIALS));
        }
        other => {
            state.login_guard.failed(&attempt);
            state
                .records
                .audit(audit("login.failed", other.map(|u| u.id)));
            return Err(AppError::new(ErrorCode::Unauthorized, BAD_CREDENTIALS));
        }
    };
    let device_cookie = state.login_guard.succeeded(&attempt);
    if let Some(Extension(conn)) = &conn {
        conn.authenticated(user.id);
    }
    let (token, exp) = state
        .keys
        .issue(user.id, &user.username, user.role)
        .map_err(AppError::internal)?;
    state.records.audit(audit("login.ok", Some(user.id)));
    // The data dir running out (SQLite lives there: that is its disk), or a
    // PostgreSQL server on its own disk refusing the writer's last records for
    // lack of space (the only way the server learns of that): say so.
    let pg_full = state.store.backend() == "postgres" && state.records.storage_full();
    let disk_full = pg_full || super::health::disk_status(&state).await.degraded();
    let warning = disk_full.then(|| LoginWarning {
        code: ErrorCode::InsufficientStorage,
        message: DISK_FULL_WARNING.to_string(),
    });
    let expires_at = chrono::DateTime::from_timestamp(exp as i64, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    let cookie = session_cookie(
        &token,
        state.keys.ttl().as_secs(),
        state.origins.secure_cookies(),
    );
    let body = LoginResponse {
        token,
        expires_at,
        user: UserInfo {
            id: user.id,
            username: user.username,
            role: user.role,
        },
        warning,
    };
    let mut resp = Json(body).into_response();
    for c in std::iter::once(cookie).chain(device_cookie) {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Clear the session cookie. JSON only, like login: a cross-site form must
/// not be able to log a student out.
pub async fn logout(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    require_json(&headers)?;
    let mut out = HeaderMap::new();
    let cookie = session_cookie("", 0, state.origins.secure_cookies());
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
