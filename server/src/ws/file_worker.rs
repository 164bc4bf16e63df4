//! File and course operations of one connection, in their own task: a durable save
//! (two device flushes) must not hold up the connection's loop, which forwards
//! keystrokes and the program's echo. Operations run one at a time in arrival
//! order, so a client's `write` then `read` of a path behave as sent; the
//! connection makes a `run` wait until the file operations sent before it are
//! done (see [`super::connection`]).

use std::sync::Arc;

use campus_protocol::{ChangeKind, ErrorCode, ServerMsg, UserInfo};
use campus_protocol::{CourseRequest, FileMsg, FileRequest, GradingRequest};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use workspace_fs::Precondition;

use crate::authz::Action;
use crate::courses::CourseService;
use crate::error::AppError;
use crate::files::{self, blocking, FileService};
use crate::grading::GradingService;

/// File operations one connection may have queued (beyond that: `busy`).
pub const FILE_QUEUE: usize = 16;

/// A finished file operation: its reply and its place in the arrival order.
pub struct FileReply {
    /// 1 for the connection's first file operation, 2 for the next, …
    pub ticket: u64,
    /// What goes back to the client.
    pub msg: Box<ServerMsg>,
}

/// One queued operation. Messages are boxed, and so is the operation's
/// future: tokio allocates a channel's first block of 32 slots up front and a
/// task's future is as large as its largest state, and every idle connection
/// pays both (5,000 idle connections: 16.8 KiB each without a file task,
/// 27.4 KiB with it unboxed, 20.1 KiB boxed).
struct Job {
    ticket: u64,
    msg: Box<Request>,
}

/// What a job does: a workspace operation, or a course operation (which
/// may write into the workspace too: a copy, ordered with the saves).
enum Request {
    Files(FileRequest),
    Courses(CourseRequest),
    /// Ordered with the saves: a submit snapshots what was saved before it.
    Grading(GradingRequest),
}

/// The connection's side of its file task.
pub struct FileQueue {
    tx: mpsc::Sender<Job>,
    /// Replies, read by the connection loop.
    pub replies: mpsc::Receiver<FileReply>,
    dispatched: u64,
    completed: u64,
}

impl FileQueue {
    /// Start the task; it ends when this queue is dropped and its jobs are done.
    pub fn spawn(
        files: Arc<FileService>,
        courses: Arc<CourseService>,
        grading: Arc<GradingService>,
        tracker: &TaskTracker,
        user: UserInfo,
        conn_id: String,
    ) -> FileQueue {
        let (tx, rx) = mpsc::channel(FILE_QUEUE);
        let (reply_tx, replies) = mpsc::channel(FILE_QUEUE);
        let worker = FileWorker {
            files,
            courses,
            grading,
            user,
            conn_id,
        };
        // Tracked: a graceful shutdown waits for saves already accepted.
        tokio::spawn(tracker.track_future(worker.serve(rx, reply_tx)));
        FileQueue {
            tx,
            replies,
            dispatched: 0,
            completed: 0,
        }
    }

    /// Queue a file operation, or refuse it with `busy` when too many are waiting.
    pub fn submit(&mut self, msg: FileRequest) -> Result<(), AppError> {
        self.queue(Request::Files(msg))
    }

    /// Queue a grading operation, or refuse it with `busy` when too many are waiting.
    pub fn submit_grading(&mut self, msg: GradingRequest) -> Result<(), AppError> {
        self.queue(Request::Grading(msg))
    }

    /// Queue a course operation, or refuse it with `busy` when too many are waiting.
    pub fn submit_course(&mut self, msg: CourseRequest) -> Result<(), AppError> {
        self.queue(Request::Courses(msg))
    }

    fn queue(&mut self, msg: Request) -> Result<(), AppError> {
        let job = Job {
            ticket: self.dispatched + 1,
            msg: Box::new(msg),
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                self.dispatched += 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(AppError::internal("the connection's file task has ended"))
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let mut e = AppError::new(
                    ErrorCode::Busy,
                    format!("{FILE_QUEUE} file operations of this connection are still waiting; try again shortly"),
                );
                e.retry_after = Some(std::time::Duration::from_millis(500));
                Err(e)
            }
        }
    }

    /// Record a finished operation.
    pub fn complete(&mut self, ticket: u64) {
        self.completed = self.completed.max(ticket);
    }

    /// The ticket of the last operation queued (0 = none yet).
    pub fn dispatched(&self) -> u64 {
        self.dispatched
    }

    /// True once every operation up to `ticket` has finished.
    pub fn done_up_to(&self, ticket: u64) -> bool {
        self.completed >= ticket
    }
}

/// The task that owns the file operations of one connection.
struct FileWorker {
    files: Arc<FileService>,
    courses: Arc<CourseService>,
    grading: Arc<GradingService>,
    user: UserInfo,
    conn_id: String,
}

impl FileWorker {
    async fn serve(self, mut rx: mpsc::Receiver<Job>, replies: mpsc::Sender<FileReply>) {
        while let Some(Job { ticket, msg }) = rx.recv().await {
            let (id, done) = match *msg {
                Request::Files(m) => (m.id(), Box::pin(self.op(m)).await),
                Request::Courses(m) => (
                    m.id(),
                    Box::pin(self.courses.handle(&self.user, &self.conn_id, m)).await,
                ),
                Request::Grading(m) => (m.id(), Box::pin(self.grading.handle(&self.user, m)).await),
            };
            let msg = match done {
                Ok(reply) => reply,
                Err(e) => e.to_msg(id),
            };
            let msg = Box::new(msg);
            // A closed connection still gets its accepted operations done.
            let _ = replies.send(FileReply { ticket, msg }).await;
        }
    }

    async fn op(&self, msg: FileRequest) -> Result<ServerMsg, AppError> {
        let owner = self.user.id;
        let action = if msg.is_read() {
            Action::Read
        } else {
            Action::Write
        };
        let files = self.files.as_ref();
        files
            .admit(&self.user, owner, action, "websocket", None)
            .await?;
        let ws = files.workspace(owner).await?;
        let conn = self.conn_id.as_str();
        let reply = match msg {
            FileRequest::List {
                id,
                path,
                recursive,
                cursor,
                limit,
            } => {
                let p = path.clone();
                let max = limit.map_or(workspace_fs::MAX_PAGE_ENTRIES, |n| n as usize);
                let page = blocking(ws, move |w| {
                    w.list_page(&p, recursive, cursor.as_deref(), max)
                })
                .await?;
                // `admit` counted one operation; a big page counts as more.
                files.charge(owner, files::listing_cost(page.entries.len()))?;
                ServerMsg::Files(FileMsg::Listing {
                    id,
                    path,
                    entries: page.entries.into_iter().map(files::entry).collect(),
                    next_cursor: page.next_cursor,
                })
            }
            FileRequest::Stat { id, path } => {
                let e = blocking(ws, move |w| w.stat(&path)).await?;
                ServerMsg::Files(FileMsg::Entry {
                    id,
                    entry: files::entry(e),
                })
            }
            FileRequest::Read { id, path } => {
                let p = path.clone();
                let (bytes, e) = blocking(ws, move |w| w.read(&p)).await?;
                file_reply(id, path, e.version.unwrap_or_default(), e.mime, bytes)
            }
            FileRequest::Write {
                id,
                path,
                content,
                encoding,
                base_version,
            } => {
                let bytes = files::decode_content(content, encoding)?;
                let pre = match base_version {
                    Some(v) => Precondition::Match(v),
                    None => Precondition::CreateOnly,
                };
                let p = path.clone();
                let out = blocking(ws, move |w| w.write(&p, &bytes, pre)).await?;
                let version = out.entry.version.clone().unwrap_or_default();
                files.notify(
                    owner,
                    conn,
                    &path,
                    ChangeKind::Written,
                    Some(version.clone()),
                    None,
                );
                ServerMsg::Files(FileMsg::Written {
                    id,
                    path,
                    version,
                    size: out.entry.size,
                    created: out.created,
                })
            }
            FileRequest::Mkdir { id, path } => {
                let p = path.clone();
                let e = blocking(ws, move |w| w.mkdir(&p)).await?;
                files.notify(owner, conn, &path, ChangeKind::Created, None, None);
                ServerMsg::Files(FileMsg::Entry {
                    id,
                    entry: files::entry(e),
                })
            }
            FileRequest::Rename {
                id,
                from,
                to,
                overwrite,
            } => {
                let (f, t) = (from.clone(), to.clone());
                let e = blocking(ws, move |w| w.rename(&f, &t, overwrite)).await?;
                files.notify(
                    owner,
                    conn,
                    &to,
                    ChangeKind::Renamed,
                    e.version.clone(),
                    Some(from),
                );
                ServerMsg::Files(FileMsg::Entry {
                    id,
                    entry: files::entry(e),
                })
            }
            FileRequest::Copy { id, from, to } => {
                let (f, t) = (from.clone(), to.clone());
                let e = blocking(ws, move |w| w.copy(&f, &t)).await?;
                files.notify(
                    owner,
                    conn,
                    &to,
                    ChangeKind::Copied,
                    e.version.clone(),
                    Some(from),
                );
                ServerMsg::Files(FileMsg::Entry {
                    id,
                    entry: files::entry(e),
                })
            }
            FileRequest::Delete { id, path } => {
                let p = path.clone();
                let item = blocking(ws, move |w| w.delete(&p)).await?;
                files.notify(owner, conn, &path, ChangeKind::Deleted, None, None);
                ServerMsg::Files(FileMsg::Deleted {
                    id,
                    path,
                    trash_id: item.trash_id,
                })
            }
            FileRequest::ListVersions { id, path } => {
                let p = path.clone();
                let versions = blocking(ws, move |w| w.list_versions(&p)).await?;
                ServerMsg::Files(FileMsg::Versions {
                    id,
                    path,
                    versions: versions.into_iter().map(files::version).collect(),
                })
            }
            FileRequest::ReadVersion { id, path, version } => {
                let (p, v) = (path.clone(), version.clone());
                let bytes = blocking(ws, move |w| w.read_version(&p, &v)).await?;
                // The same type a normal read of this path reports.
                let mime = Some(workspace_fs::mime_type(&path));
                file_reply(id, path, version, mime, bytes)
            }
            FileRequest::RestoreVersion { id, path, version } => {
                let p = path.clone();
                let out = blocking(ws, move |w| w.restore_version(&p, &version)).await?;
                let v = out.entry.version.clone().unwrap_or_default();
                files.notify(
                    owner,
                    conn,
                    &path,
                    ChangeKind::Restored,
                    Some(v.clone()),
                    None,
                );
                ServerMsg::Files(FileMsg::Written {
                    id,
                    path,
                    version: v,
                    size: out.entry.size,
                    created: out.created,
                })
            }
            FileRequest::TrashList { id } => {
                let items = blocking(ws, |w| w.trash_list()).await?;
                ServerMsg::Files(FileMsg::Trash {
                    id,
                    items: items.into_iter().map(files::trash_item).collect(),
                })
            }
            FileRequest::TrashRestore { id, trash_id, to } => {
                let e = blocking(ws, move |w| w.trash_restore(&trash_id, to.as_deref())).await?;
                files.notify(
                    owner,
                    conn,
                    &e.path,
                    ChangeKind::Restored,
                    e.version.clone(),
                    None,
                );
                ServerMsg::Files(FileMsg::Entry {
                    id,
                    entry: files::entry(e),
                })
            }
        };
        Ok(reply)
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
    let (encoding, content) = files::encode_content(bytes);
    ServerMsg::Files(FileMsg::File {
        id,
        path,
        version,
        size,
        mime,
        encoding,
        content,
    })
}
