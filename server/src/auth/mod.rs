//! Authentication: argon2id passwords (verified in bounded hash slots),
//! HS256 JWTs, the login guard (brute-force limits, device cookies), the last
//! known account states, and resolving a request's credentials (Bearer header
//! or cookie) to a user — all behind [`AuthService`].

pub mod account_status;
pub mod hash_slots;
pub mod login_guard;
pub mod password;
mod service;
pub mod token;

/// Is `name` acceptable as a username: 1-64 ASCII letters, digits, `.`, `_` or `-`.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

use axum::http::HeaderMap;

pub use service::{AuthDeps, AuthService, LoggedIn};
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
    /// The token was logged out, or the account's password or role changed since it was issued.
    #[error("this session was signed out (logout, or a password or role change); log in again")]
    Revoked,
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
