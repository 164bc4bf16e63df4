//! The accept loop and the HTTP/1.1 connections, served with hyper directly
//! (not `axum::serve`, which offers no header timeout and no per-connection
//! hooks): every accepted socket is admitted by [`ConnLimits`] and carries its
//! [`ConnTicket`] inside its I/O object, so the slot is held exactly as long as
//! the descriptor, through a WebSocket upgrade too.
//!
//! Per connection: a header-read timeout (hyper's, which also ends idle
//! keep-alive connections), an idle limit that is shorter before
//! authentication, the limits' kill signal (evicted to make room, or replaced
//! by a newer WebSocket of its user), and graceful shutdown.
//!
//! The listener stays responsive at the cap: a connection that cannot be
//! admitted is answered `503 busy` at once and closed (never left waiting in
//! the kernel's backlog), and an accept error such as `EMFILE` is logged and
//! retried after a short backoff, never ending the loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ConnConfig, ConnLimits, ConnTicket};

/// Refusals (`503` at the cap) being written at once; beyond, a refused
/// connection is closed without an answer.
const REFUSALS_AT_ONCE: usize = 64;
/// How long a refusal may take to write and to see the client go.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// First and longest wait after an accept error (e.g. `EMFILE`).
const ACCEPT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_millis(500));
/// Accept errors are logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// A socket that holds its connection slot and notes when bytes move.
struct Counted {
    io: TcpStream,
    ticket: ConnTicket,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.ticket.shared().touch();
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.ticket.shared().touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.ticket.shared().touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Accept and serve connections on `listener` until `shutdown` is cancelled;
/// then stop accepting, let the connections finish for up to `grace`, and
/// close the rest. WebSockets live on in their own tasks (they see the same
/// shutdown token).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Arc<ConnLimits>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let mut backoff = ACCEPT_BACKOFF.0;
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(v) => {
                backoff = ACCEPT_BACKOFF.0;
                v
            }
            // The client gave up before we took it: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // EMFILE/ENFILE and the like: the backlog keeps the clients
                // while we wait a little for descriptors to come back.
                limits.note_accept_error();
                errors.note(&e);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        // Small replies must not wait for the peer's delayed ACK (Nagle: +40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        match limits.admit(peer) {
            Ok(ticket) => {
                let conn = serve_conn(
                    stream,
                    peer,
                    ticket,
                    app.clone(),
                    limits.config().clone(),
                    shutdown.clone(),
                    hard_stop.clone(),
                );
                tracker.spawn(conn);
            }
            Err(_) => match Arc::clone(&refusals).try_acquire_owned() {
                Ok(permit) => {
                    tracker.spawn(refuse(stream, permit));
                }
                // Refusing as fast as they come: just close.
                Err(_) => drop(stream),
            },
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            "HTTP connections still busy after the shutdown grace period: closing them"
        );
        hard_stop.cancel();
        tracker.wait().await;
    }
}

/// Errors of one connection in the accept queue (not of the listener).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Rate-limited logging of accept errors.
#[derive(Default)]
struct AcceptErrors {
    last_log: Option<Instant>,
    since_log: u64,
}

impl AcceptErrors {
    fn note(&mut self, e: &io::Error) {
        self.since_log += 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY)
        {
            tracing::error!(error = %e, count = self.since_log, "accept failed; retrying (is the descriptor limit too low for CAMPUS_MAX_CONNECTIONS + CAMPUS_FD_RESERVE?)");
            self.last_log = Some(Instant::now());
            self.since_log = 0;
        }
    }
}

/// Serve one admitted connection until it ends, idles out, is killed, or the
/// server stops.
async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: ConnTicket,
    app: Router,
    cfg: ConnConfig,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) {
    let shared = Arc::clone(ticket.shared());
    let handle = ticket.handle();
    let io = TokioIo::new(Counted { io: stream, ticket });
    let app = TowerToHyperService::new(app);
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let handle = handle.clone();
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = handle.busy();
        req.extensions_mut().insert(handle);
        let answer = app.call(req);
        async move {
            let _busy = busy;
            answer.await
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let limit = if shared.is_authenticated() {
            cfg.idle
        } else {
            cfg.unauth_idle
        };
        let idle = shared.idle_for();
        let busy = shared.is_busy();
        if !busy && idle >= limit {
            tracing::debug!(%peer, authenticated = shared.is_authenticated(), "closed an idle connection");
            break;
        }
        // A request being handled is looked at again after a whole limit
        // (its end counts as activity).
        let next = if busy {
            limit
        } else {
            limit.saturating_sub(idle)
        };
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shared.killed() => break,
            _ = hard_stop.cancelled() => break,
            _ = shutdown.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = tokio::time::sleep(next) => {}
        }
    }
}

/// Answer `503 busy` and close, without reading the request (but letting the
/// client read the answer before the socket goes).
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let body = serde_json::json!({
        "code": campus_protocol::ErrorCode::Busy,
        "message": "the server is at its connection limit; try again in a few seconds",
        "retry_after_ms": 5000,
    })
    .to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        // Closing with unread request bytes would reset the connection and
        // could destroy the answer before the client reads it.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}
