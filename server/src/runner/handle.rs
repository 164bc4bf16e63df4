//! The cloneable command side of a session actor, and what an attached
//! connection holds.

use bytes::Bytes;
use campus_protocol::{EndReason, RunMode, ServerMsg};
use tokio::sync::{mpsc, oneshot};

use super::{MountedScript, RunnerError, SessionEvent, SessionInfo};

/// Commands a session actor accepts.
pub(crate) enum Command {
    Attach {
        conn_id: String,
        since_seq: u64,
        reply: oneshot::Sender<(ServerMsg, mpsc::Receiver<SessionEvent>, u64)>,
    },
    Detach {
        conn_id: String,
        /// Only detach this attachment (a newer one with the same id stays).
        serial: Option<u64>,
    },
    Ack {
        conn_id: String,
        seq: u64,
    },
    Run {
        conn_id: String,
        req_id: Option<u64>,
        path: String,
        mode: RunMode,
        cols: u16,
        rows: u16,
        mounted: Option<Box<MountedScript>>,
        reply: oneshot::Sender<Result<(), RunnerError>>,
    },
    Input(Bytes),
    Resize {
        cols: u16,
        rows: u16,
    },
    Interrupt,
    Stop {
        conn_id: Option<String>,
        req_id: Option<u64>,
        reason: EndReason,
        reply: Option<oneshot::Sender<bool>>,
    },
    Info(oneshot::Sender<SessionInfo>),
}

/// A handle on one user's session: every method sends a command to the
/// session's actor. Cheap to clone; the process does not depend on it.
#[derive(Clone)]
pub struct SessionHandle {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl SessionHandle {
    async fn send(&self, cmd: Command) -> Result<(), RunnerError> {
        self.tx
            .send(cmd)
            .await
            .map_err(|_| RunnerError::SessionGone)
    }

    /// Start a run of `path` (ignored for `repl`), stopping a live one first.
    /// `run_started` (with `req_id`, to `conn_id` only) and the output then
    /// arrive on the attached connections' event channels.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        conn_id: &str,
        req_id: Option<u64>,
        path: String,
        mode: RunMode,
        cols: u16,
        rows: u16,
    ) -> Result<(), RunnerError> {
        self.run_script(conn_id, req_id, path, mode, (cols, rows), None)
            .await
    }

    /// [`SessionHandle::run`], of a script in read-only trees when `mounted` is given.
    pub async fn run_script(
        &self,
        conn_id: &str,
        req_id: Option<u64>,
        path: String,
        mode: RunMode,
        (cols, rows): (u16, u16),
        mounted: Option<MountedScript>,
    ) -> Result<(), RunnerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Run {
            conn_id: conn_id.to_string(),
            req_id,
            path,
            mode,
            cols,
            rows,
            mounted: mounted.map(Box::new),
            reply,
        })
        .await?;
        rx.await.map_err(|_| RunnerError::SessionGone)?
    }

    /// Bytes typed into the terminal (dropped when nothing is running).
    pub async fn input(&self, bytes: Bytes) -> Result<(), RunnerError> {
        self.send(Command::Input(bytes)).await
    }

    /// Resize the terminal (also used for the next run).
    pub async fn resize(&self, cols: u16, rows: u16) -> Result<(), RunnerError> {
        self.send(Command::Resize { cols, rows }).await
    }

    /// Ctrl-C: SIGINT to the program's foreground process group.
    pub async fn interrupt(&self) -> Result<(), RunnerError> {
        self.send(Command::Interrupt).await
    }

    /// Stop the live run (kills the whole tree); its `run_ended` says `stopped`
    /// and carries `req_id` to `conn_id`. Returns false when nothing was running.
    pub async fn stop(&self, conn_id: &str, req_id: Option<u64>) -> Result<bool, RunnerError> {
        self.end_run(Some(conn_id.to_string()), req_id, EndReason::Stopped)
            .await
    }

    /// End the live run with a given reason (e.g. `killed_by_admin`).
    pub(crate) async fn end_run(
        &self,
        conn_id: Option<String>,
        req_id: Option<u64>,
        reason: EndReason,
    ) -> Result<bool, RunnerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stop {
            conn_id,
            req_id,
            reason,
            reply: Some(reply),
        })
        .await?;
        rx.await.map_err(|_| RunnerError::SessionGone)
    }

    /// Flow control: this connection has consumed output up to offset `seq`.
    pub async fn ack(&self, conn_id: &str, seq: u64) -> Result<(), RunnerError> {
        self.send(Command::Ack {
            conn_id: conn_id.to_string(),
            seq,
        })
        .await
    }

    /// Detach a connection (the program keeps running).
    pub async fn detach(&self, conn_id: &str) -> Result<(), RunnerError> {
        self.send(Command::Detach {
            conn_id: conn_id.to_string(),
            serial: None,
        })
        .await
    }

    /// A snapshot of the session (state, usage, buffer sizes).
    pub async fn info(&self) -> Result<SessionInfo, RunnerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Info(reply)).await?;
        rx.await.map_err(|_| RunnerError::SessionGone)
    }

    /// True once the session actor has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One connection attached to a session. Dropping it detaches (the program
/// keeps running); the events channel closing means the session dropped this
/// connection (too slow, or the session ended): attach again with `since_seq`.
#[derive(Debug)]
pub struct Attachment {
    /// The `attached` reply to send first.
    pub attached: ServerMsg,
    /// Replayed output first, then live output and messages, in order.
    pub events: mpsc::Receiver<SessionEvent>,
    /// Commands for the session.
    pub handle: SessionHandle,
    /// This connection's id within the session.
    pub conn_id: String,
    /// Which attachment of `conn_id` this is.
    pub(crate) serial: u64,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Best effort: the session also notices a closed channel on its next tick.
        let _ = self.handle.tx.try_send(Command::Detach {
            conn_id: std::mem::take(&mut self.conn_id),
            serial: Some(self.serial),
        });
    }
}
