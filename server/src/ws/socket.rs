//! Sending on the socket: the one place frames are written, with a timeout
//! for clients that stopped reading. A leaf: the connection loop and the
//! dispatcher both use it.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use campus_protocol::{close_codes, ServerMsg};
use futures_util::{SinkExt, StreamExt};

/// A send that takes longer than this means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing connection waits for the client's own close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The sending half of the socket, counting what it sends (`/metrics`).
pub struct Sink {
    inner: futures_util::stream::SplitSink<WebSocket, Message>,
    sent: prometheus_client::metrics::counter::Counter,
}

impl Sink {
    /// Wrap a socket's sending half; every frame sent counts on `sent`.
    pub fn new(
        inner: futures_util::stream::SplitSink<WebSocket, Message>,
        sent: prometheus_client::metrics::counter::Counter,
    ) -> Sink {
        Sink { inner, sent }
    }
}

/// The receiving half of the socket.
pub type Stream = futures_util::stream::SplitStream<WebSocket>;

/// Serialize and send a JSON message.
pub async fn send_json(sink: &mut Sink, msg: &ServerMsg) -> Result<(), ()> {
    let text = serde_json::to_string(msg).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a server message");
    })?;
    send_with_timeout(sink, Message::Text(text.into())).await
}

/// Send one frame, giving up on a client that stopped reading.
pub async fn send_with_timeout(sink: &mut Sink, msg: Message) -> Result<(), ()> {
    if matches!(msg, Message::Text(_) | Message::Binary(_)) {
        sink.sent.inc();
    }
    match tokio::time::timeout(SEND_TIMEOUT, sink.inner.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Close with a code and reason. A flooding client's connection then reads
/// (and drops) what the client still sends until its close reply, for at
/// most `CLOSE_WAIT`: dropping a socket with unread bytes makes the kernel
/// send a reset, and a reset can destroy the close frame before the client
/// reads it, so it would see a broken connection instead of the reason (and
/// reconnect at once). Other closes find nothing unread (a quiet tab, a
/// client that stopped reading, shutdown) and do not wait: a replaced
/// connection's socket must go at once to make room for its successor.
pub async fn close(sink: &mut Sink, stream: &mut Stream, frame: CloseFrame) {
    let code = frame.code;
    if send_with_timeout(sink, Message::Close(Some(frame)))
        .await
        .is_err()
    {
        return;
    }
    if code != close_codes::FLOODING {
        return;
    }
    let drain = async { while let Some(Ok(_)) = stream.next().await {} };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}
