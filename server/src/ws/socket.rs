//! Sending on the socket: the one place frames are written, with a timeout
//! for clients that stopped reading. A leaf: the connection loop and the
//! dispatcher both use it.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use campus_protocol::ServerMsg;
use futures_util::SinkExt;

/// A send that takes longer than this means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending half of the socket.
pub type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Serialize and send a JSON message.
pub async fn send_json(sink: &mut Sink, msg: &ServerMsg) -> Result<(), ()> {
    let text = serde_json::to_string(msg).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a server message");
    })?;
    send_with_timeout(sink, Message::Text(text.into())).await
}

/// Send one frame, giving up on a client that stopped reading.
pub async fn send_with_timeout(sink: &mut Sink, msg: Message) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
