//! Translates one session message (run, input, attach, …) into calls on the
//! runner, and the results into replies; file operations go to
//! [`super::file_worker`]. No socket I/O here except forwarding session events.

use campus_protocol::{ErrorCode, ServerMsg, SessionMsg, SessionRequest, UserInfo};

use axum::extract::ws::Message;
use bytes::Bytes;

use super::connection::{send_json, send_with_timeout, Sink};
use crate::authz::{self, Action, Resource};
use crate::error::AppError;
use crate::runner::{Attachment, SessionEvent, SessionHandle};
use crate::state::SharedState;

/// Per-connection state used by the handlers.
pub struct Conn {
    state: SharedState,
    user: UserInfo,
    conn_id: String,
    /// This connection's attachment to the user's session, if any.
    session: Option<Attachment>,
}

impl Conn {
    /// State for a new connection.
    pub fn new(state: SharedState, user: UserInfo, conn_id: String) -> Self {
        Conn {
            state,
            user,
            conn_id,
            session: None,
        }
    }

    /// Handle one session message; `Some(reply)` goes back to this connection.
    pub async fn handle(&mut self, msg: SessionRequest) -> Option<ServerMsg> {
        let id = msg.id();
        match self.session_op(msg).await {
            Ok(reply) => reply,
            Err(e) => Some(e.to_msg(id)),
        }
    }

    async fn session_op(&mut self, msg: SessionRequest) -> Result<Option<ServerMsg>, AppError> {
        let owner = self.user.id;
        authz::authorize(&self.user, Action::Run, Resource::Workspace { owner })?;
        match msg {
            SessionRequest::Attach { id, since_seq } => {
                let mut attached = self.attach(since_seq).await?;
                if let ServerMsg::Session(SessionMsg::Attached { id: reply_id, .. }) = &mut attached
                {
                    *reply_id = id;
                }
                Ok(Some(attached))
            }
            SessionRequest::Run {
                id,
                path,
                mode,
                cols,
                rows,
            } => {
                if self.session.is_none() {
                    // Only this run's output: the client asked to run, not to replay.
                    self.attach(u64::MAX).await?;
                }
                let handle = self.session_handle()?;
                handle
                    .run(
                        &self.conn_id,
                        id,
                        path,
                        mode,
                        cols.unwrap_or(0),
                        rows.unwrap_or(0),
                    )
                    .await?;
                // `run_started` (carrying `id`) arrives through the session events.
                Ok(None)
            }
            SessionRequest::Input { data, .. } => {
                self.session_handle()?
                    .input(Bytes::from(data.into_bytes()))
                    .await?;
                Ok(None)
            }
            SessionRequest::Resize { cols, rows, .. } => {
                self.session_handle()?
                    .resize(cols.max(1), rows.max(1))
                    .await?;
                Ok(None)
            }
            SessionRequest::Interrupt { .. } => {
                self.session_handle()?.interrupt().await?;
                Ok(None)
            }
            SessionRequest::Stop { id } => {
                let stopped = self.session_handle()?.stop(&self.conn_id, id).await?;
                if stopped {
                    Ok(None)
                } else {
                    Err(AppError::new(ErrorCode::NotFound, "nothing is running"))
                }
            }
            SessionRequest::Ack { seq } => {
                if let Some(a) = &self.session {
                    a.handle.ack(&self.conn_id, seq).await?;
                }
                Ok(None)
            }
        }
    }

    /// (Re)attach this connection to the user's session.
    async fn attach(&mut self, since_seq: u64) -> Result<ServerMsg, AppError> {
        // Drop the old attachment first so the session never holds two for us.
        self.session = None;
        let dir = self.state.files.tree_path(self.user.id)?;
        // Make sure the workspace exists (and is owned by the student's uid).
        self.state.files.workspace(self.user.id).await?;
        let att = self
            .state
            .runner
            .attach(&self.user, dir, &self.conn_id, since_seq)
            .await?;
        let msg = att.attached.clone();
        self.session = Some(att);
        Ok(msg)
    }

    /// The session to send commands to: ours, or the user's existing one.
    fn session_handle(&self) -> Result<SessionHandle, AppError> {
        if let Some(a) = &self.session {
            return Ok(a.handle.clone());
        }
        self.state.runner.handle(self.user.id).ok_or_else(|| {
            AppError::new(ErrorCode::NotFound, "nothing is running; start a run first")
        })
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
    /// usage, once per run however many tabs see it end.
    fn rescan_workspace(&self, run_id: &str) {
        let workspaces = std::sync::Arc::clone(self.state.files.workspaces());
        let (owner, run_id) = (self.user.id, run_id.to_string());
        // The open (cold after an eviction) and the rescan both block.
        tokio::task::spawn_blocking(move || {
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
    pub async fn detach(&mut self) {
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
