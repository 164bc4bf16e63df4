//! `GET /ws`: authenticate and check the Origin *before* upgrading, then hand
//! the socket to a connection actor ([`connection`]).

mod connection;
mod dispatch;
mod file_worker;
mod session_worker;
mod socket;

pub use connection::PINGS_PER_MIN;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use campus_protocol::ErrorCode;

use crate::auth;
use crate::error::AppError;
use crate::state::SharedState;

/// Read and write buffer of each WebSocket (grows per message as needed).
const WS_BUFFER_BYTES: usize = 4096;

/// Upgrade to a WebSocket if the token (Bearer or cookie) is valid and the Origin allowed.
pub async fn upgrade(
    State(state): State<SharedState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if state.shutdown.is_cancelled() {
        return AppError::new(ErrorCode::Busy, "the server is shutting down").into_response();
    }
    let Some((token, _from_cookie)) = auth::extract_token(&headers) else {
        return AppError::new(ErrorCode::Unauthorized, "log in first").into_response();
    };
    if !origin_allowed(&headers, &state.settings.allowed_origins) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "refused WebSocket from a foreign origin");
        return AppError::new(
            ErrorCode::Forbidden,
            "this origin may not open a Campus connection",
        )
        .into_response();
    }
    // A new connection needs the database's word on the account: while it is
    // unreachable this is `unavailable` within a second (the breaker), never a
    // wait for the pool.
    let (user, claims) = match state.auth.authenticate_connection(&token).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let max = state.settings.ws_max_message_bytes;
    let tracker = state.tracker.clone();
    // Small socket buffers: most connections idle between keystrokes, and the
    // 128 KiB defaults made an idle connection cost ~130 KiB (4 KiB: ~17 KiB).
    ws.read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            tracker.track_future(connection::run(socket, state, user, claims))
        })
}

/// Cross-site WebSocket hijacking guard. Browsers always send `Origin`; it must
/// be one of the configured origins, or (by default) the server's own origin.
/// Non-browser clients send none and are allowed (they cannot ride a cookie).
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a.trim_end_matches('/') == origin);
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            m.insert(header::ORIGIN, o.parse().unwrap());
        }
        m
    }

    #[test]
    fn origin_rules() {
        assert!(origin_allowed(&h(None, "a:1"), &[]));
        assert!(origin_allowed(&h(Some("http://a:1"), "a:1"), &[]));
        assert!(!origin_allowed(&h(Some("http://evil.example"), "a:1"), &[]));
        assert!(!origin_allowed(&h(Some("http://a:2"), "a:1"), &[]));
        let allowed = vec!["https://ide.uni.edu".to_string()];
        assert!(origin_allowed(
            &h(Some("https://ide.uni.edu"), "x"),
            &allowed
        ));
        assert!(!origin_allowed(&h(Some("http://x"), "x"), &allowed));
    }
}
