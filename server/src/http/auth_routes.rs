//! `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use campus_protocol::{ErrorCode, UserInfo};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

use super::AuthUser;
use crate::auth::{password, COOKIE_NAME};
use crate::error::AppError;
use crate::state::SharedState;
use crate::store::{NewAudit, RevokedToken};

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

/// Check credentials, issue a token and set the session cookie.
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, AppError> {
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
    // Audit entries go to the background writer: the only database call a
    // login waits for is the account lookup.
    if let Err(wait) = state.login_limiter.check(&req.username, ip) {
        state.records.audit(audit("login.rate_limited", None));
        return Err(AppError::rate_limited("login attempts", wait));
    }
    let user = state.store.user_by_username(&req.username).await?;
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
    let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
        .await
        .map_err(AppError::internal)?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        Some(u) if ok => {
            state.records.audit(audit("login.disabled", Some(u.id)));
            return Err(AppError::new(ErrorCode::Unauthorized, BAD_CREDENTIALS));
        }
        other => {
            state
                .records
                .audit(audit("login.failed", other.map(|u| u.id)));
            return Err(AppError::new(ErrorCode::Unauthorized, BAD_CREDENTIALS));
        }
    };
    let (token, exp) = state
        .keys
        .issue(user.id, &user.username, user.role, user.token_generation)
        .map_err(AppError::internal)?;
    state.records.audit(audit("login.ok", Some(user.id)));
    state.accounts.remember(
        &UserInfo {
            id: user.id,
            username: user.username.clone(),
            role: user.role,
        },
        user.token_generation,
    );
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
        state.cfg.is_production(),
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
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Revoke the token the request carries (Bearer or cookie) and clear the
/// session cookie. The token is refused from this moment (every tab and
/// device using it: their WebSockets close with 4013 at once); the
/// revocation is recorded through the record writer, so it survives a
/// database outage and reaches every instance sharing the database. The
/// user's run is stopped when no other of their connections is left. A
/// missing, invalid or expired token is simply logged out (200).
pub async fn logout(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request_headers: HeaderMap,
) -> Response {
    let claims = crate::auth::extract_token(&request_headers)
        .and_then(|(token, _)| state.keys.verify(&token).ok());
    if let Some((claims, user_id)) = claims.and_then(|c| c.user_id().map(|id| (c, id))) {
        let revoked = RevokedToken {
            jti: claims.jti.clone(),
            user_id,
            expires_at_ms: i64::try_from(claims.exp.saturating_mul(1000)).unwrap_or(i64::MAX),
        };
        // Memory first (refused from now on), then the durable record.
        let fresh = state.accounts.deny(&revoked);
        state.records.token_revoked(revoked.clone());
        if fresh {
            state.records.audit(NewAudit {
                actor_id: Some(user_id),
                actor: Some(claims.username.clone()),
                action: "logout".into(),
                target: None,
                detail: None,
                ip: Some(peer.ip().to_string()),
            });
        }
        state
            .accounts
            .token_revoked(&revoked, &state.hub, &state.runner)
            .await;
    }
    let mut headers = HeaderMap::new();
    let cookie = session_cookie("", 0, state.cfg.is_production());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    (headers, Json(serde_json::json!({"ok": true}))).into_response()
}

/// The logged-in user (lets a reloaded page know the cookie is still good).
pub async fn me(AuthUser(user): AuthUser) -> Json<UserInfo> {
    Json(user)
}

/// HttpOnly, SameSite=Strict cookie; `Secure` in production (served over TLS there).
fn session_cookie(token: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}
