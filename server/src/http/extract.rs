//! What handlers take from a request: the one extractor, [`AuthUser`] (the
//! caller, authenticated by token), and [`client_ip`] (a plain function: the
//! peer address, read from the connection info).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use campus_protocol::{ErrorCode, UserInfo};

use crate::auth;
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
        let user = state.auth.authenticate_request(&token).await?;
        mark_authenticated(parts, user.id);
        Ok(AuthUser(user))
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
