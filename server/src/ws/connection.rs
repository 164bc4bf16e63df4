//! One actor task per WebSocket connection. It owns the socket and waits on:
//! shutdown, queued events for this connection (other tabs' file changes),
//! replies of its file task and of its session task, the session's output,
//! the heartbeat tick, and the next client message. Every exit path drops the
//! hub guard, so the connection is unregistered however it ends. A newer
//! WebSocket of the same user beyond the per-user cap closes this one
//! ([`WsSlot::replaced`], code 4012).
//!
//! The loop never waits on anything but the socket: file operations go to
//! the connection's file task ([`FileQueue`]) so a save never delays a
//! keystroke or its echo, and session commands to its session task
//! ([`super::session_worker`]) so a `run` replacing a slow-to-die run never
//! stops this connection from forwarding output or answering pings. Order is
//! kept where it matters: file operations run in arrival order, session
//! commands too, and a `run` (with every session message after it) waits
//! until the file operations sent before it are done, so a run always sees
//! the save the client sent first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use campus_protocol::{close_codes, ClientMsg, ErrorCode, ServerMsg, UserInfo, PROTOCOL_VERSION};
use campus_protocol::{AdminMsg, AdminRequest, ConnectionMsg, ConnectionRequest, SessionRequest};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::dispatch::{Conn, Forward};
use super::file_worker::FileQueue;
use super::session_worker::SessionQueue;
use super::socket::{close, send_json, send_with_timeout, Sink};
use crate::admin::{actions, feed, FeedFrame};
use crate::auth::Claims;
use crate::conn::WsSlot;
use crate::error::AppError;
use crate::hub::Outbound;
use crate::ratelimit::{RateLimit, MINUTE};
use crate::state::{AppState, SharedState};

/// Queue of events waiting for this connection's socket.
const OUTBOUND_QUEUE: usize = 256;
/// Refused messages in a row before a flooding client is disconnected.
const FLOOD_STRIKES: u32 = 30;
/// Session messages that may wait behind a `run` waiting for file operations.
const DEFERRED_MAX: usize = 32;
/// `ping`s a connection may send per minute, outside the message limit. The
/// browser pings every 5 s (12 a minute) to notice a dead network path; this
/// leaves it five times that, so an idle tab is never refused and a busy one
/// never pays for its liveness checks out of its message budget.
pub const PINGS_PER_MIN: u32 = 60;

/// Why the loop ended.
enum Exit {
    /// Client closed or the socket failed.
    Gone,
    /// We close with a code and reason.
    Close(u16, &'static str),
}

/// Serve one connection until it closes, the server shuts down, or it misbehaves.
pub async fn run(
    socket: WebSocket,
    state: SharedState,
    user: UserInfo,
    claims: Claims,
    slot: WsSlot,
) {
    let conn_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let span = tracing::info_span!("ws", conn = %conn_id, user = %user.username);
    async move {
        tracing::info!("connected");
        let exit = serve(socket, &state, user, claims, conn_id, slot).await;
        if let Exit::Close(code, reason) = exit {
            tracing::info!(code, reason, "closed by server");
        } else {
            tracing::info!("disconnected");
        }
    }
    .instrument(span)
    .await
}

async fn serve(
    socket: WebSocket,
    state: &SharedState,
    user: UserInfo,
    claims: Claims,
    conn_id: String,
    slot: WsSlot,
) -> Exit {
    let (sink, mut stream) = socket.split();
    let mut sink = Sink::new(sink, state.metrics.ws_sent_counter());
    let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE);
    // Replies of admin actions, which run in tasks of their own.
    let admin_tx = tx.clone();
    let guard = state
        .hub
        .register(user.id, &conn_id, tx, &claims.jti, claims.generation);
    // Revoked between the gate's check and this registration: the refresher
    // could not reach this connection yet, so look once more.
    if let Some((code, reason)) = state.auth.refusal(&claims) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        drop((slot, guard));
        close(&mut sink, &mut stream, frame).await;
        return Exit::Close(code, reason);
    }
    let mut conn = Conn::new(state.clone(), user.clone());
    let mut sessions = SessionQueue::new(state.clone(), user.clone(), conn_id.clone());
    let mut files = FileQueue::spawn(
        Arc::clone(&state.files),
        Arc::clone(&state.courses),
        Arc::clone(&state.grading),
        &state.tracker,
        user.clone(),
        conn_id.clone(),
    );
    // Session messages waiting for the file operations queued before them: (ticket, msg).
    let mut deferred: VecDeque<(u64, SessionRequest)> = VecDeque::new();

    let hello = ServerMsg::Connection(ConnectionMsg::Hello {
        protocol: PROTOCOL_VERSION,
        connection_id: conn_id,
        user: user.clone(),
        limits: state.settings.limits.clone(),
    });
    if send_json(&mut sink, &hello).await.is_err() {
        return Exit::Gone;
    }

    let limiter = RateLimit::direct(state.settings.ws_messages_per_min, MINUTE, "messages");
    let ping_limiter = RateLimit::direct(PINGS_PER_MIN, MINUTE, "pings");
    let mut strikes = 0u32;
    let heartbeat = state.settings.heartbeat;
    let dead_after = state.settings.heartbeat_timeout;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut last_seen = Instant::now();
    // The admin feed, while this connection watches it.
    let mut admin_feed: Option<watch::Receiver<FeedFrame>> = None;

    let exit = 'conn: loop {
        tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => {
                let msg = ServerMsg::Connection(ConnectionMsg::Shutdown {
                    message: "The server is restarting. Your files are saved; reconnecting shortly.".into(),
                    reconnect_after_ms: 2000,
                });
                let _ = send_json(&mut sink, &msg).await;
                break Exit::Close(close_codes::SHUTDOWN, "server shutting down");
            }
            // Logout, a password or role change, or the account disabled:
            // ends now, not at the next heartbeat.
            (code, reason) = guard.revoked() => break Exit::Close(code, reason),
            _ = slot.replaced() => {
                break Exit::Close(close_codes::TOO_MANY_CONNECTIONS, "too many connections of this account: this one, the oldest, was closed");
            }
            Some(out) = rx.recv() => match out {
                Outbound::Msg(msg) => {
                    if send_json(&mut sink, &msg).await.is_err() { break Exit::Gone; }
                }
                Outbound::Close(code, reason) => break Exit::Close(code, reason),
            },
            Some(done) = files.replies.recv() => {
                files.complete(done.ticket);
                count_refusal(state, &done.msg);
                if send_json(&mut sink, &done.msg).await.is_err() { break Exit::Gone; }
                while deferred.front().is_some_and(|(ticket, _)| files.done_up_to(*ticket)) {
                    let Some((_, msg)) = deferred.pop_front() else { break };
                    if let Some(reply) = conn.handle(msg, &mut sessions) {
                        if send_json(&mut sink, &reply).await.is_err() { break 'conn Exit::Gone; }
                    }
                }
            }
            Some(reply) = sessions.next_reply() => {
                if let Some(msg) = conn.on_reply(reply) {
                    count_refusal(state, &msg);
                    if send_json(&mut sink, &msg).await.is_err() { break Exit::Gone; }
                }
            }
            ev = conn.next_session_event() => {
                match conn.forward_session_event(ev, &mut sink).await {
                    Ok(()) => {}
                    Err(Forward::Gone) => break Exit::Gone,
                    Err(Forward::TooSlow) => break Exit::Close(close_codes::TOO_SLOW, "fell behind the program's output; reconnect"),
                }
            }
            _ = ticker.tick() => {
                if last_seen.elapsed() > dead_after {
                    break Exit::Close(close_codes::HEARTBEAT_TIMEOUT, "no heartbeat");
                }
                if let Some((code, reason)) = state.auth.still_authorized(&claims) {
                    break Exit::Close(code, reason);
                }
                if send_with_timeout(&mut sink, Message::Ping(Default::default())).await.is_err() {
                    break Exit::Gone;
                }
            }
            incoming = stream.next() => {
                let Some(Ok(msg)) = incoming else { break Exit::Gone };
                last_seen = Instant::now();
                if matches!(msg, Message::Text(_) | Message::Binary(_)) {
                    state.metrics.ws_received();
                }
                // Every message is checked against the in-memory account state
                // (two map lookups): a revoked token's message is never handled.
                if matches!(msg, Message::Text(_) | Message::Binary(_)) {
                    if let Some((code, reason)) = state.auth.refusal(&claims) {
                        break Exit::Close(code, reason);
                    }
                }
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Binary(_) => {
                        let e = ServerMsg::error(None, ErrorCode::BadRequest, "binary frames are not accepted from clients; send JSON text");
                        if send_json(&mut sink, &e).await.is_err() { break Exit::Gone; }
                        continue;
                    }
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Close(_) => break Exit::Gone,
                };
                let parsed = serde_json::from_str::<ClientMsg>(text.as_str());
                if let Ok(ClientMsg::Connection(ConnectionRequest::Ping { id })) = &parsed {
                    // Liveness: answered at once, never queued behind file
                    // operations or a waiting `run`, from a budget of its own.
                    let reply = match ping_limiter.check() {
                        Ok(()) => ServerMsg::Connection(ConnectionMsg::Pong { id: *id }),
                        Err(refused) => {
                            strikes += 1;
                            if strikes >= FLOOD_STRIKES {
                                break Exit::Close(close_codes::FLOODING, "too many messages");
                            }
                            AppError::from(refused).to_msg(*id)
                        }
                    };
                    if send_json(&mut sink, &reply).await.is_err() { break Exit::Gone; }
                    continue;
                }
                // Acks are flow-control bookkeeping the client sends on its own; they do
                // not count against the message limit.
                let counted = !matches!(parsed, Ok(ClientMsg::Session(SessionRequest::Ack { .. })));
                if counted {
                    if let Err(refused) = limiter.check() {
                        strikes += 1;
                        if strikes >= FLOOD_STRIKES {
                            break Exit::Close(close_codes::FLOODING, "too many messages");
                        }
                        let id = campus_protocol::client::salvage_id(text.as_str());
                        let refusal = AppError::from(refused).to_msg(id);
                        count_refusal(state, &refusal);
                        if send_json(&mut sink, &refusal).await.is_err() { break Exit::Gone; }
                        continue;
                    }
                    strikes = 0;
                }
                let reply = match parsed {
                    Ok(ClientMsg::Files(req)) => {
                        let id = req.id();
                        files.submit(req).err().map(|e| e.to_msg(id))
                    }
                    Ok(ClientMsg::Courses(req)) => {
                        let id = req.id();
                        files.submit_course(req).err().map(|e| e.to_msg(id))
                    }
                    Ok(ClientMsg::Grading(req)) => {
                        let id = req.id();
                        files.submit_grading(req).err().map(|e| e.to_msg(id))
                    }
                    Ok(ClientMsg::Admin(req)) => admin_request(state, &user, req, &mut admin_feed, &admin_tx),
                    Ok(ClientMsg::Session(msg)) => {
                        let waits = matches!(msg, SessionRequest::Run { .. })
                            && !files.done_up_to(files.dispatched());
                        if !waits && deferred.is_empty() {
                            conn.handle(msg, &mut sessions)
                        } else if deferred.len() < DEFERRED_MAX {
                            deferred.push_back((files.dispatched(), msg));
                            None
                        } else {
                            let mut e = AppError::new(
                                ErrorCode::Busy,
                                "too many messages are waiting for this connection's file operations; try again shortly",
                            );
                            e.retry_after = Some(Duration::from_millis(500));
                            Some(e.to_msg(msg.id()))
                        }
                    }
                    // Answered above, before the message limit.
                    Ok(ClientMsg::Connection(ConnectionRequest::Ping { .. })) => None,
                    Err(e) => {
                        let id = campus_protocol::client::salvage_id(text.as_str());
                        Some(ServerMsg::error(id, ErrorCode::BadRequest, format!("invalid message: {e}")))
                    }
                };
                if let Some(reply) = reply {
                    count_refusal(state, &reply);
                    if send_json(&mut sink, &reply).await.is_err() { break Exit::Gone; }
                }
            }
            // Last: a large frame on a slow link must not starve the client's
            // own messages, the heartbeat or the session's events.
            frame = feed::next_frame(&mut admin_feed) => {
                if send_with_timeout(&mut sink, Message::Text(frame)).await.is_err() { break Exit::Gone; }
            }
        }
    };
    conn.detach();
    // Counted as gone before the closing handshake: its slot is free for a
    // new connection of the user and the hub no longer lists it.
    drop(slot);
    drop(guard);
    if let Exit::Close(code, reason) = &exit {
        let frame = CloseFrame {
            code: *code,
            reason: Utf8Bytes::from_static(reason),
        };
        close(&mut sink, &mut stream, frame).await;
    }
    exit
}

/// An admin request: `admin_watch` and `admin_unwatch` change what this
/// connection receives; the actions run in a task of their own (a stop waits
/// for the session, a disable for the database) and reply through the
/// connection's queue, so the loop never waits for them.
fn admin_request(
    state: &SharedState,
    user: &UserInfo,
    req: AdminRequest,
    admin_feed: &mut Option<watch::Receiver<FeedFrame>>,
    replies: &mpsc::Sender<Outbound>,
) -> Option<ServerMsg> {
    let id = req.id();
    if let Err(e) = actions::admit(state, user, &req) {
        return Some(e.to_msg(id));
    }
    let done = |action: &str, message: &str| {
        Some(ServerMsg::Admin(AdminMsg::AdminDone {
            id,
            action: action.into(),
            user_id: None,
            changed: true,
            message: message.into(),
        }))
    };
    match req {
        AdminRequest::AdminWatch { .. } => {
            *admin_feed = Some(state.admin.feed.watch());
            done(
                "admin_watch",
                "Watching every session; the feed updates every second.",
            )
        }
        AdminRequest::AdminUnwatch { .. } => {
            *admin_feed = None;
            done("admin_unwatch", "Stopped watching.")
        }
        action => {
            let (state, user, replies) = (state.clone(), user.clone(), replies.clone());
            state.tracker.clone().spawn(async move {
                let msg = match actions::handle(&state, &user, action).await {
                    Ok(msg) => msg,
                    Err(e) => {
                        let msg = e.to_msg(id);
                        count_refusal(&state, &msg);
                        msg
                    }
                };
                let _ = replies.send(Outbound::Msg(msg)).await;
            });
            None
        }
    }
}

/// Count a refusal (an `error` reply) by its code, for `/metrics` and the admin view.
fn count_refusal(state: &AppState, msg: &ServerMsg) {
    if let ServerMsg::Connection(ConnectionMsg::Error { code, .. }) = msg {
        state.metrics.refused(*code);
    }
}
