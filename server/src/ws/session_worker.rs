//! Session commands of one connection, in their own task: the connection
//! loop never waits on a session. A `run` that replaces a live run can take
//! the kill wait (up to 5 s), the workspace chown and the sandbox set-up; an
//! `attach` waits for the session actor, which may be busy doing exactly
//! that. Meanwhile the connection keeps forwarding output, answering pings
//! and serving file operations.
//!
//! Commands run one at a time in arrival order (input typed after a `run`
//! reaches that run), and their answers (`attached`, errors) come back on
//! [`SessionQueue::replies`], which the connection's select loop polls. The
//! task is started on the first session command, so a connection that never
//! touches a session pays nothing for it.

use bytes::Bytes;
use campus_protocol::{ErrorCode, RunMode, ServerMsg, SessionMsg, UserInfo};
use tokio::sync::mpsc;

use crate::error::AppError;
use crate::runner::{Attachment, SessionHandle};
use crate::state::SharedState;

/// Session commands one connection may have queued (beyond that: `busy`).
pub const SESSION_QUEUE: usize = 64;

/// A command for the connection's session.
#[derive(Debug)]
pub enum Job {
    /// Attach (or re-attach); `announce`: send the `attached` reply (with this id).
    Attach {
        /// Request id, when the client asked.
        id: Option<u64>,
        /// Replay from this offset.
        since_seq: u64,
        /// The client asked for it (else: an implicit attach before a run).
        announce: bool,
    },
    /// Start a run.
    Run {
        id: Option<u64>,
        path: String,
        mode: RunMode,
        cols: u16,
        rows: u16,
        /// A file of this course's material (slug) instead of the workspace.
        course: Option<String>,
    },
    /// Typed bytes.
    Input(Bytes),
    /// Terminal size.
    Resize { cols: u16, rows: u16 },
    /// Ctrl-C.
    Interrupt,
    /// Stop the live run.
    Stop { id: Option<u64> },
    /// Flow control.
    Ack { seq: u64 },
}

/// What a command produced for the connection.
#[derive(Debug)]
pub enum SessionReply {
    /// A message for the client.
    Msg(Box<ServerMsg>),
    /// The connection is attached: take these events; send `attached` if `announce`.
    Attached {
        att: Box<Attachment>,
        announce: bool,
    },
}

/// The connection's side of its session task.
pub struct SessionQueue {
    state: SharedState,
    user: UserInfo,
    conn_id: String,
    tx: Option<mpsc::Sender<Job>>,
    replies: Option<mpsc::Receiver<SessionReply>>,
}

impl SessionQueue {
    /// A queue whose task starts with the first command.
    pub fn new(state: SharedState, user: UserInfo, conn_id: String) -> SessionQueue {
        SessionQueue {
            state,
            user,
            conn_id,
            tx: None,
            replies: None,
        }
    }

    /// Queue a command, or refuse it with `busy` when too many are waiting.
    pub fn submit(&mut self, job: Job) -> Result<(), AppError> {
        let tx = match &self.tx {
            Some(tx) => tx,
            None => {
                let (tx, rx) = mpsc::channel(SESSION_QUEUE);
                let (reply_tx, replies) = mpsc::channel(16);
                let worker = SessionWorker {
                    state: self.state.clone(),
                    user: self.user.clone(),
                    conn_id: self.conn_id.clone(),
                    handle: None,
                };
                // Tracked: shutdown waits for it; it ends with the connection.
                self.state
                    .tracker
                    .spawn(Box::pin(worker.serve(rx, reply_tx)));
                self.replies = Some(replies);
                self.tx.insert(tx)
            }
        };
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(AppError::internal(
                "the connection's session task has ended",
            )),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let mut e = AppError::new(
                    ErrorCode::Busy,
                    format!("{SESSION_QUEUE} session messages of this connection are still waiting; try again shortly"),
                );
                e.retry_after = Some(std::time::Duration::from_millis(500));
                Err(e)
            }
        }
    }

    /// The next reply (never resolves before the task exists).
    pub async fn next_reply(&mut self) -> Option<SessionReply> {
        match &mut self.replies {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// The task that talks to the session for one connection.
struct SessionWorker {
    state: SharedState,
    user: UserInfo,
    conn_id: String,
    /// The session this connection attached to.
    handle: Option<SessionHandle>,
}

impl SessionWorker {
    async fn serve(mut self, mut rx: mpsc::Receiver<Job>, replies: mpsc::Sender<SessionReply>) {
        while let Some(job) = rx.recv().await {
            for reply in self.job(job).await {
                if replies.send(reply).await.is_err() {
                    // The connection is gone; its remaining commands are moot.
                    return;
                }
            }
        }
    }

    async fn job(&mut self, job: Job) -> Vec<SessionReply> {
        let id = match &job {
            Job::Attach { id, .. } | Job::Run { id, .. } | Job::Stop { id } => *id,
            _ => None,
        };
        match self.op(job).await {
            Ok(replies) => replies,
            Err(e) => vec![SessionReply::Msg(Box::new(e.to_msg(id)))],
        }
    }

    async fn op(&mut self, job: Job) -> Result<Vec<SessionReply>, AppError> {
        match job {
            Job::Attach {
                id,
                since_seq,
                announce,
            } => {
                let mut att = self.attach(since_seq).await?;
                if let ServerMsg::Session(SessionMsg::Attached { id: reply_id, .. }) =
                    &mut att.attached
                {
                    *reply_id = id;
                }
                Ok(vec![SessionReply::Attached {
                    att: Box::new(att),
                    announce,
                }])
            }
            Job::Run {
                id,
                path,
                mode,
                cols,
                rows,
                course,
            } => {
                let handle = self.session_handle()?;
                // Authorized and resolved here: which trees, which file.
                let mounted = match course {
                    Some(slug) if mode != RunMode::Repl => Some(
                        self.state
                            .courses
                            .run_plan(&self.user, &slug, &path)
                            .await?,
                    ),
                    _ => None,
                };
                // `run_started` (carrying `id`) arrives through the session events.
                handle
                    .run_script(&self.conn_id, id, path, mode, (cols, rows), mounted)
                    .await?;
                Ok(Vec::new())
            }
            Job::Input(bytes) => {
                self.session_handle()?.input(bytes).await?;
                Ok(Vec::new())
            }
            Job::Resize { cols, rows } => {
                self.session_handle()?.resize(cols, rows).await?;
                Ok(Vec::new())
            }
            Job::Interrupt => {
                self.session_handle()?.interrupt().await?;
                Ok(Vec::new())
            }
            Job::Stop { id } => {
                if self.session_handle()?.stop(&self.conn_id, id).await? {
                    Ok(Vec::new())
                } else {
                    Err(AppError::new(ErrorCode::NotFound, "nothing is running"))
                }
            }
            Job::Ack { seq } => {
                if let Some(h) = &self.handle {
                    h.ack(&self.conn_id, seq).await?;
                }
                Ok(Vec::new())
            }
        }
    }

    /// Attach this connection to the user's session.
    async fn attach(&mut self, since_seq: u64) -> Result<Attachment, AppError> {
        let owner = self.user.id;
        let dir = self.state.files.tree_path(owner)?;
        // The workspace must exist (and belong to the student's uid); a cold
        // open scans it, on the blocking pool.
        self.state.files.workspace(owner).await?;
        let att = self
            .state
            .runner
            .attach(&self.user, dir, &self.conn_id, since_seq)
            .await?;
        self.handle = Some(att.handle.clone());
        Ok(att)
    }

    /// The session to send commands to: ours, or the user's existing one.
    fn session_handle(&self) -> Result<SessionHandle, AppError> {
        if let Some(h) = self.handle.as_ref().filter(|h| !h.is_closed()) {
            return Ok(h.clone());
        }
        self.state.runner.handle(self.user.id).ok_or_else(|| {
            AppError::new(ErrorCode::NotFound, "nothing is running; start a run first")
        })
    }
}
