//! Authentication: argon2id passwords, HS256 JWTs, the login guard (brute-force limits, device cookies),
//! and resolving a request's credentials (Bearer header or cookie) to a user.

pub mod account_status;
pub mod login_guard;
pub mod password;
pub mod token;

use axum::http::HeaderMap;
use campus_protocol::UserInfo;

use crate::store::DynStore;

pub use token::{Claims, TokenKeys};

/// Name of the cookie that carries the token for browser pages.
pub const COOKIE_NAME: &str = "campus_token";

/// Why a request is not authenticated (all map to `unauthorized`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No Bearer header and no cookie.
    #[error("missing credentials")]
    Missing,
    /// Forged, malformed, expired or `alg: none` token.
    #[error("invalid or expired token")]
    Invalid,
    /// The user no longer exists or is disabled.
    #[error("account disabled or removed")]
    Disabled,
    /// The database could not be asked.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Pull the raw token out of `Authorization: Bearer …` or the `campus_token` cookie.
/// Returns the token and whether it came from the cookie.
pub fn extract_token(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        if let Ok(s) = v.to_str() {
            if let Some(t) = s
                .strip_prefix("Bearer ")
                .or_else(|| s.strip_prefix("bearer "))
            {
                let t = t.trim();
                if !t.is_empty() {
                    return Some((t.to_string(), false));
                }
            }
        }
    }
    for v in headers.get_all(axum::http::header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == COOKIE_NAME && !val.is_empty() {
                    return Some((val.to_string(), true));
                }
            }
        }
    }
    None
}

/// Verify the token and that its user still exists and is enabled.
pub async fn authenticate(
    keys: &TokenKeys,
    store: &DynStore,
    token: &str,
) -> Result<(UserInfo, Claims), AuthError> {
    let claims = keys.verify(token).map_err(|_| AuthError::Invalid)?;
    let id = claims.user_id().ok_or(AuthError::Invalid)?;
    let user = store.user_by_id(id).await?.ok_or(AuthError::Disabled)?;
    if user.disabled || user.username != claims.username {
        return Err(AuthError::Disabled);
    }
    Ok((
        UserInfo {
            id: user.id,
            username: user.username,
            role: user.role,
        },
        claims,
    ))
}
