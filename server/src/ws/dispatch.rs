//! Translates one client message into calls on the file service and the
//! runner, and the results into replies. No socket I/O here.

use base64::Engine;
use campus_protocol::{ChangeKind, ClientMsg, Encoding, ErrorCode, ServerMsg, UserInfo};
use workspace_fs::Precondition;

use axum::extract::ws::Message;
use bytes::Bytes;

use super::connection::{send_json, send_with_timeout, Sink};
use crate::authz::{self, Action, Resource};
use crate::error::AppError;
use crate::files::{self, blocking};
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

    /// Handle one message; `Some(reply)` goes back to this connection.
    pub async fn handle(&mut self, msg: ClientMsg) -> Option<ServerMsg> {
        let id = msg.id();
        let result = if msg.is_file_op() {
            self.file_op(msg).await
        } else {
            match msg {
                ClientMsg::Ping { id } => Ok(Some(ServerMsg::Pong { id })),
                other => self.session_op(other).await,
            }
        };
        match result {
            Ok(reply) => reply,
            Err(e) => Some(e.to_msg(id)),
        }
    }

    async fn file_op(&mut self, msg: ClientMsg) -> Result<Option<ServerMsg>, AppError> {
        let state = &self.state;
        let owner = self.user.id;
        let action = match msg {
            ClientMsg::List { .. }
            | ClientMsg::Stat { .. }
            | ClientMsg::Read { .. }
            | ClientMsg::ListVersions { .. }
            | ClientMsg::ReadVersion { .. }
            | ClientMsg::TrashList { .. } => Action::Read,
            _ => Action::Write,
        };
        files::admit(state, &self.user, owner, action, "websocket", None).await?;
        let files = state.files.as_ref();
        let ws = files.workspace(owner)?;
        let conn = self.conn_id.as_str();
        let reply = match msg {
            ClientMsg::List {
                id,
                path,
                recursive,
            } => {
                let p = path.clone();
                let entries = blocking(ws, move |w| w.list(&p, recursive)).await?;
                ServerMsg::Listing {
                    id,
                    path,
                    entries: entries.into_iter().map(files::entry).collect(),
                }
            }
            ClientMsg::Stat { id, path } => {
                let e = blocking(ws, move |w| w.stat(&path)).await?;
                ServerMsg::Entry {
                    id,
                    entry: files::entry(e),
                }
            }
            ClientMsg::Read { id, path } => {
                let p = path.clone();
                let (bytes, e) = blocking(ws, move |w| w.read(&p)).await?;
                file_reply(id, path, e.version.unwrap_or_default(), e.mime, bytes)
            }
            ClientMsg::Write {
                id,
                path,
                content,
                encoding,
                base_version,
            } => {
                let bytes = decode_content(content, encoding)?;
                let pre = match base_version {
                    Some(v) => Precondition::Match(v),
                    None => Precondition::CreateOnly,
                };
                let p = path.clone();
                let out = blocking(ws, move |w| w.write(&p, &bytes, pre)).await?;
                let version = out.entry.version.clone().unwrap_or_default();
                files::notify(
                    state,
                    owner,
                    conn,
                    &path,
                    ChangeKind::Written,
                    Some(version.clone()),
                    None,
                );
                ServerMsg::Written {
                    id,
                    path,
                    version,
                    size: out.entry.size,
                    created: out.created,
                }
            }
            ClientMsg::Mkdir { id, path } => {
                let p = path.clone();
                let e = blocking(ws, move |w| w.mkdir(&p)).await?;
                files::notify(state, owner, conn, &path, ChangeKind::Created, None, None);
                ServerMsg::Entry {
                    id,
                    entry: files::entry(e),
                }
            }
            ClientMsg::Rename {
                id,
                from,
                to,
                overwrite,
            } => {
                let (f, t) = (from.clone(), to.clone());
                let e = blocking(ws, move |w| w.rename(&f, &t, overwrite)).await?;
                files::notify(
                    state,
                    owner,
                    conn,
                    &to,
                    ChangeKind::Renamed,
                    e.version.clone(),
                    Some(from),
                );
                ServerMsg::Entry {
                    id,
                    entry: files::entry(e),
                }
            }
            ClientMsg::Copy { id, from, to } => {
                let (f, t) = (from.clone(), to.clone());
                let e = blocking(ws, move |w| w.copy(&f, &t)).await?;
                files::notify(
                    state,
                    owner,
                    conn,
                    &to,
                    ChangeKind::Copied,
                    e.version.clone(),
                    Some(from),
                );
                ServerMsg::Entry {
                    id,
                    entry: files::entry(e),
                }
            }
            ClientMsg::Delete { id, path } => {
                let p = path.clone();
                let item = blocking(ws, move |w| w.delete(&p)).await?;
                files::notify(state, owner, conn, &path, ChangeKind::Deleted, None, None);
                ServerMsg::Deleted {
                    id,
                    path,
                    trash_id: item.trash_id,
                }
            }
            ClientMsg::ListVersions { id, path } => {
                let p = path.clone();
                let versions = blocking(ws, move |w| w.list_versions(&p)).await?;
                ServerMsg::Versions {
                    id,
                    path,
                    versions: versions.into_iter().map(files::version).collect(),
                }
            }
            ClientMsg::ReadVersion { id, path, version } => {
                let (p, v) = (path.clone(), version.clone());
                let bytes = blocking(ws, move |w| w.read_version(&p, &v)).await?;
                let mime = mime_guess::from_path(&path).first().map(|m| m.to_string());
                file_reply(id, path, version, mime, bytes)
            }
            ClientMsg::RestoreVersion { id, path, version } => {
                let p = path.clone();
                let out = blocking(ws, move |w| w.restore_version(&p, &version)).await?;
                let v = out.entry.version.clone().unwrap_or_default();
                files::notify(
                    state,
                    owner,
                    conn,
                    &path,
                    ChangeKind::Restored,
                    Some(v.clone()),
                    None,
                );
                ServerMsg::Written {
                    id,
                    path,
                    version: v,
                    size: out.entry.size,
                    created: out.created,
                }
            }
            ClientMsg::TrashList { id } => {
                let items = blocking(ws, |w| w.trash_list()).await?;
                ServerMsg::Trash {
                    id,
                    items: items.into_iter().map(files::trash_item).collect(),
                }
            }
            ClientMsg::TrashRestore { id, trash_id, to } => {
                let e = blocking(ws, move |w| w.trash_restore(&trash_id, to.as_deref())).await?;
                files::notify(
                    state,
                    owner,
                    conn,
                    &e.path,
                    ChangeKind::Restored,
                    e.version.clone(),
                    None,
                );
                ServerMsg::Entry {
                    id,
                    entry: files::entry(e),
                }
            }
            other => {
                return Err(AppError::internal(format!(
                    "not a file operation: {other:?}"
                )));
            }
        };
        Ok(Some(reply))
    }

    async fn session_op(&mut self, msg: ClientMsg) -> Result<Option<ServerMsg>, AppError> {
        let owner = self.user.id;
        authz::authorize(&self.user, Action::Run, Resource::Workspace { owner })?;
        match msg {
            ClientMsg::Attach { id, since_seq } => {
                let mut attached = self.attach(since_seq).await?;
                if let ServerMsg::Attached { id: reply_id, .. } = &mut attached {
                    *reply_id = id;
                }
                Ok(Some(attached))
            }
            ClientMsg::Run {
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
            ClientMsg::Input { data, .. } => {
                self.session_handle()?
                    .input(Bytes::from(data.into_bytes()))
                    .await?;
                Ok(None)
            }
            ClientMsg::Resize { cols, rows, .. } => {
                self.session_handle()?
                    .resize(cols.max(1), rows.max(1))
                    .await?;
                Ok(None)
            }
            ClientMsg::Interrupt { .. } => {
                self.session_handle()?.interrupt().await?;
                Ok(None)
            }
            ClientMsg::Stop { id } => {
                let stopped = self.session_handle()?.stop(&self.conn_id, id).await?;
                if stopped {
                    Ok(None)
                } else {
                    Err(AppError::new(ErrorCode::NotFound, "nothing is running"))
                }
            }
            ClientMsg::Ack { seq } => {
                if let Some(a) = &self.session {
                    a.handle.ack(&self.conn_id, seq).await?;
                }
                Ok(None)
            }
            other => Err(AppError::new(
                ErrorCode::BadRequest,
                format!("{} is not handled here", msg_type(&other)),
            )),
        }
    }

    /// (Re)attach this connection to the user's session.
    async fn attach(&mut self, since_seq: u64) -> Result<ServerMsg, AppError> {
        // Drop the old attachment first so the session never holds two for us.
        self.session = None;
        let dir = self.state.files.tree_path(self.user.id)?;
        // Make sure the workspace exists (and is owned by the student's uid).
        self.state.files.workspace(self.user.id)?;
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
                if matches!(msg, ServerMsg::RunEnded { .. }) {
                    self.rescan_workspace();
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

    /// A run may have changed files behind the file service's back: recount usage.
    fn rescan_workspace(&self) {
        if let Ok(ws) = self.state.files.workspace(self.user.id) {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = ws.rescan() {
                    tracing::warn!(error = %e, "workspace rescan failed");
                }
            });
        }
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

fn msg_type(msg: &ClientMsg) -> String {
    serde_json::to_value(msg)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_default()
}

/// Decode `content` per its declared encoding.
fn decode_content(content: String, encoding: Encoding) -> Result<Vec<u8>, AppError> {
    match encoding {
        Encoding::Utf8 => Ok(content.into_bytes()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(content.as_bytes())
            .map_err(|e| {
                AppError::new(
                    ErrorCode::BadRequest,
                    format!("content is not valid base64: {e}"),
                )
            }),
    }
}

/// A `file` reply: UTF-8 text as is, anything else as base64.
fn file_reply(
    id: Option<u64>,
    path: String,
    version: String,
    mime: Option<String>,
    bytes: Vec<u8>,
) -> ServerMsg {
    let size = bytes.len() as u64;
    let mime = mime.unwrap_or_else(|| "application/octet-stream".into());
    let (encoding, content) = match String::from_utf8(bytes) {
        Ok(s) => (Encoding::Utf8, s),
        Err(e) => (
            Encoding::Base64,
            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
        ),
    };
    ServerMsg::File {
        id,
        path,
        version,
        size,
        mime,
        encoding,
        content,
    }
}
