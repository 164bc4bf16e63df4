//! Translates one session message (run, input, attach, …) into a command
//! for the connection's session task ([`super::session_worker`]), and holds
//! the connection's attachment (the session's events). Never awaits a
//! session: commands are queued, answers come back as replies. File
//! operations go to [`super::file_worker`].

use campus_protocol::{ConnectionMsg, ServerMsg, SessionMsg, SessionRequest, UserInfo};

use axum::extract::ws::Message;
use bytes::Bytes;

use super::session_worker::{Job, SessionQueue, SessionReply};
use super::socket::{send_json, send_with_timeout, Sink};
use crate::authz::{self, Action, Resource};
use crate::error::AppError;
use crate::runner::{Attachment, SessionEvent};
use crate::state::SharedState;

/// Per-connection state used by the handlers.
pub struct Conn {
    state: SharedState,
    user: UserInfo,
    /// This connection's attachment to the user's session, if any.
    session: Option<Box<Attachment>>,
    /// An attach is queued and its reply has not arrived yet.
    attach_pending: bool,
}

impl Conn {
    /// State for a new connection.
    pub fn new(state: SharedState, user: UserInfo) -> Self {
        Conn {
            state,
            user,
            session: None,
            attach_pending: false,
        }
    }

    /// Handle one message without waiting; `Some(reply)` goes back at once
    /// (refusals), everything else arrives later as a [`SessionReply`].
    pub fn handle(&mut self, msg: SessionRequest, queue: &mut SessionQueue) -> Option<ServerMsg> {
        let id = msg.id();
        match self.session_op(msg, queue) {
            Ok(reply) => reply,
            Err(e) => Some(e.to_msg(id)),
        }
    }

    fn session_op(
        &mut self,
        msg: SessionRequest,
        queue: &mut SessionQueue,
    ) -> Result<Option<ServerMsg>, AppError> {
        let owner = self.user.id;
        authz::authorize(&self.user, Action::Run, Resource::Workspace { owner })?;
        let job = match msg {
            SessionRequest::Attach { id, since_seq } => {
                // Drop the old attachment first so the session never holds two for us.
                self.session = None;
                self.attach_pending = true;
                Job::Attach {
                    id,
                    since_seq,
                    announce: true,
                }
            }
            SessionRequest::Run {
                id,
                path,
                mode,
                cols,
                rows,
                course,
            } => {
                if self.session.is_none() && !self.attach_pending {
                    // Only this run's output: the client asked to run, not to replay.
                    queue.submit(Job::Attach {
                        id: None,
                        since_seq: u64::MAX,
                        announce: false,
                    })?;
                    self.attach_pending = true;
                }
                Job::Run {
                    id,
                    path,
                    mode,
                    cols: cols.unwrap_or(0),
                    rows: rows.unwrap_or(0),
                    course,
                }
            }
            SessionRequest::Input { data, .. } => Job::Input(Bytes::from(data.into_bytes())),
            SessionRequest::Resize { cols, rows, .. } => Job::Resize {
                cols: cols.max(1),
                rows: rows.max(1),
            },
            SessionRequest::Interrupt { .. } => Job::Interrupt,
            SessionRequest::Stop { id } => Job::Stop { id },
            SessionRequest::Ack { seq } => {
                if self.session.is_none() {
                    return Ok(None);
                }
                Job::Ack { seq }
            }
        };
        queue.submit(job)?;
        Ok(None)
    }

    /// Take a reply of the session task; `Some(msg)` goes to the client.
    pub fn on_reply(&mut self, reply: SessionReply) -> Option<ServerMsg> {
        match reply {
            SessionReply::Msg(msg) => {
                if matches!(*msg, ServerMsg::Connection(ConnectionMsg::Error { .. }))
                    && self.session.is_none()
                {
                    // A failed attach: the next run tries again.
                    self.attach_pending = false;
                }
                Some(*msg)
            }
            SessionReply::Attached { att, announce } => {
                self.attach_pending = false;
                let msg = announce.then(|| att.attached.clone());
                self.session = Some(att);
                msg
            }
        }
    }

    /// Wait for the next event of the attached session (never resolves when detached).
    /// `None` means the session dropped this connection (too slow, or it ended).
    pub async fn next_session_event(&mut self) -> Option<SessionEvent> {
        match &mut self.session {
            Some(a) => a.events.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Forward a session event to the socket. `Err` ends the connection.
    pub async fn forward_session_event(
        &mut self,
        ev: Option<SessionEvent>,
        sink: &mut Sink,
    ) -> Result<(), Forward> {
        match ev {
            Some(SessionEvent::Output { seq, bytes }) => {
                let frame = campus_protocol::frames::encode_output(seq, &bytes);
                send_with_timeout(sink, Message::Binary(frame.into()))
                    .await
                    .map_err(|_| Forward::Gone)
            }
            Some(SessionEvent::Msg(msg)) => {
                if let ServerMsg::Session(SessionMsg::RunEnded { ended, .. }) = &msg {
                    self.rescan_workspace(&ended.run_id);
                }
                send_json(sink, &msg).await.map_err(|_| Forward::Gone)
            }
            None => {
                // The session dropped us because our queue was full: the client
                // reconnects and re-attaches with `since_seq`, losing nothing.
                self.session = None;
                Err(Forward::TooSlow)
            }
        }
    }

    /// A run may have changed files behind the file service's back: recount
    /// usage, once per run however many tabs see it end (on the blocking
    /// pool, tracked, so shutdown waits for it).
    fn rescan_workspace(&self, run_id: &str) {
        let workspaces = std::sync::Arc::clone(self.state.files.workspaces());
        let (owner, run_id) = (self.user.id, run_id.to_string());
        // The open (cold after an eviction) and the rescan both block.
        self.state.tracker.spawn_blocking(move || {
            let rescanned = workspaces
                .open(owner)
                .map_err(|e| e.to_string())
                .and_then(|ws| ws.rescan_once(&run_id).map_err(|e| e.to_string()));
            if let Err(e) = rescanned {
                tracing::warn!(error = %e, "workspace rescan failed");
            }
        });
    }

    /// Detach from the session when the connection ends (the program keeps running).
    pub fn detach(&mut self) {
        self.session = None;
    }
}

/// Why forwarding a session event ended the connection.
pub enum Forward {
    /// The socket is gone.
    Gone,
    /// The client could not keep up; it should reconnect and re-attach.
    TooSlow,
}
