//! Extractors: the authenticated user, the client address, and JSON with our error shape.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use campus_protocol::{ErrorCode, UserInfo};

use crate::auth::{self, AuthError};
use crate::conn::ConnHandle;
use crate::error::AppError;
use crate::state::SharedState;

/// The caller, authenticated by Bearer token or cookie (401 otherwise).
#[derive(Debug, Clone)]
pub struct AuthUser(pub UserInfo);

impl FromRequestParts<SharedState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, AppError> {
        let (token, _) = auth::extract_token(&parts.headers)
            .ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "log in first"))?;
        match auth::authenticate(&state.keys, &state.store, &token).await {
            Ok((user, _)) => {
                state.accounts.remember(&user);
                mark_authenticated(parts, user.id);
                Ok(AuthUser(user))
            }
            // The database cannot be asked: a user with a live connection keeps
            // its last known account state (downloads and uploads go on);
            // anyone else is told to come back (`unavailable`).
            Err(AuthError::Store(e)) if e.is_unavailable() => state
                .keys
                .verify(&token)
                .ok()
                .and_then(|claims| state.accounts.last_known(&claims))
                .filter(|user| state.hub.is_connected(user.id))
                .map(|user| {
                    mark_authenticated(parts, user.id);
                    AuthUser(user)
                })
                .ok_or_else(|| e.into()),
            Err(AuthError::Store(e)) => Err(e.into()),
            Err(e) => Err(AppError::new(ErrorCode::Unauthorized, e.to_string())),
        }
    }
}

/// The request proved `user_id`: its connection leaves the unauthenticated
/// limits (see [`crate::conn`]).
fn mark_authenticated(parts: &Parts, user_id: i64) {
    if let Some(conn) = parts.extensions.get::<ConnHandle>() {
        conn.authenticated(user_id);
    }
}

/// The peer address of the request (loopback if unknown, e.g. in oneshot tests).
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}
