//! `GET /ws`: authenticate and check the Origin (against the configured
//! public origins, see [`crate::http::origin`]) *before* upgrading, then hand
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
use axum::Extension;
use campus_protocol::ErrorCode;

use crate::auth;
use crate::conn::{ConnHandle, WsSlot};
use crate::error::AppError;
use crate::state::SharedState;

/// Read and write buffer of each WebSocket (grows per message as needed).
const WS_BUFFER_BYTES: usize = 4096;

/// Upgrade to a WebSocket if the token (Bearer or cookie) is valid and the
/// Origin allowed; the connection then takes one of its user's WebSocket
/// places (the oldest is closed with 4012 when the user is at the cap).
pub async fn upgrade(
    State(state): State<SharedState>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if state.shutdown.is_cancelled() {
        return AppError::new(ErrorCode::Busy, "the server is shutting down").into_response();
    }
    let Some((token, _from_cookie)) = auth::extract_token(&headers) else {
        return AppError::new(ErrorCode::Unauthorized, "log in first").into_response();
    };
    let origin = headers.get(header::ORIGIN);
    if !state.settings.origins.allows(origin) {
        tracing::warn!(
            ?origin,
            allowed = ?state.settings.origins.origins().iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            "refused WebSocket from a foreign origin (set CAMPUS_PUBLIC_URL to the address students use)"
        );
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
    let slot = match &conn {
        Some(Extension(c)) => match c.websocket(user.id) {
            Ok(slot) => slot,
            Err(e) => return e.into_response(),
        },
        // Not served through the accept loop (in-process router tests).
        None => WsSlot::untracked(),
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
            tracker.track_future(connection::run(socket, state, user, claims, slot))
        })
}
