//! The runner: per-user interactive sessions, each owning at most one
//! sandboxed execution on a PTY (the interactive user of [`crate::execution`]).
//!
//! # Sessions
//! Each user has at most one session: an actor task ([`session`]) that owns
//! the live run (PTY master, process, cgroup), the output log and the set of
//! attached connections. Connections attach ([`Runner::attach`]) and detach
//! (drop the [`Attachment`]); the program does not die when a connection
//! drops, and several connections may watch one session. All commands go
//! through a cloneable [`SessionHandle`].
//!
//! # Output stream
//! Output is one byte stream per session; `seq` is a byte offset, cumulative
//! across runs. The session keeps the last `log_tail_bytes` (256 KiB). An
//! attach with `since_seq` first receives exactly the bytes from `since_seq`
//! on (or from the oldest kept byte, with `dropped_bytes` saying how many
//! were lost), then live output: no loss, no duplicates. A `since_seq` beyond
//! the session's end (e.g. after a server restart) replays nothing; the client
//! sees `next_seq` < its offset and should reset its terminal.
//!
//! PTY reads are coalesced with a token bucket of frames (burst 8, refilled
//! at one per `frame_interval` = 16 ms): while there is credit, output goes
//! out at once, and every `input` grants 4 more frames (the echo, the REPL
//! result, the next prompt), so interactive output is never held back; a
//! program printing continuously exhausts it and then gets one frame per
//! 16 ms (or one whenever `max_frame_bytes` = 32 KiB are pending) — about 60
//! frames/s plus size-triggered ones.
//!
//! # Flow control
//! Each connection must acknowledge (`ack {seq}`: the offset it has consumed
//! up to; a connection that never acks holds its own user's program at the
//! high-water mark, nobody else's). When the slowest attached connection has `high_water_bytes` (100 KB)
//! unacknowledged, the session stops reading the PTY (the program blocks on
//! write) until that drops to `low_water_bytes` (32 KB). A connection whose
//! event channel is full is dropped from the session (its channel closes; it
//! re-attaches with `since_seq`), so a slow client never blocks the session.
//! With nobody attached the session keeps reading into the bounded tail (the
//! front is dropped): a detached program is never blocked forever, and its
//! output is still bounded by the per-run output cap (50 MiB →
//! `output_limit`). Server memory per session is thus bounded by the tail +
//! the high-water mark + one frame + the reader channel (4 × 16 KiB).
//!
//! # Hybrid mode
//! `hybrid` runs [`launcher::HYBRID_LAUNCHER`] with `python3 -c`: the script
//! runs in the real `__main__` namespace, any exception prints its traceback,
//! then the launcher reports the start of the REPL (naming the exception's
//! class if the script raised) on the run's result channel (fd 3, a socket
//! pair whose other end only the server holds), which the PTY reader
//! delivers in order with the output; that becomes
//! `phase {repl, script_error}`, and the interpreter's own REPL starts with
//! the script's globals. The report never travels in the output stream, so
//! nothing that prints (the script, a child, a file it cats, the old private
//! OSC marker `ESC ]7771;campus;phase=repl BEL`) can switch the phase: such
//! bytes are ordinary output. Only the first line on the channel counts and
//! the launcher closes it; the descriptor is not inherited by the script's
//! children. The script itself runs in the launcher's interpreter, so code
//! that deliberately writes to fd 3 could still end its script phase early;
//! that buys nothing a student cannot get by typing at the REPL (the REPL
//! clock and the REPL's abandonment rules then apply).
//!
//! # Endings and culling rules
//! Every ending has one exact reason ([`campus_protocol::EndReason`]):
//! - **max age** — separate clocks: the script phase from the start of the run,
//!   the REPL phase from the moment the REPL starts. A `warning` (reason
//!   `max_age`) goes out `min(2 min, limit/4)` before the kill → `timeout`.
//! - **CPU** — RLIMIT_CPU (SIGXCPU) in the sandbox, or the sampled cgroup (or
//!   /proc) CPU time reaching the limit → `cpu_limit`.
//! - **memory** — only when the cgroup's OOM-kill counter rose → `memory_limit`.
//! - **output** — more than the output cap → `output_limit`.
//! - **disk** — the workspace at its quota ([`quota_watch`]): a program that
//!   failed while the kernel refused its writes (EDQUOT), or, without kernel
//!   quotas, a usage scan finding the tree over the quota → `disk_quota`.
//! - **abandoned** — nobody attached for `detached_grace` (5 min) *and* the
//!   program is idle: a REPL (waiting at its prompt or not), or a script that
//!   used no CPU and printed nothing during the whole window (e.g. blocked in
//!   `input()`). A script that is still computing or printing with nobody
//!   attached is not abandoned; it runs on until its max age, CPU or output
//!   limit. No live warning precedes it, since nobody is attached to receive
//!   one; the ending is shown on the next attach (`last_ended`).
//! - **idle sessions** — a session with no run and nobody attached for
//!   `detached_grace` is removed (its tail and last ending with it).
//! - `stopped` (user, or a new run replacing this one), `killed_by_admin`,
//!   `server_shutdown`, `start_failed`, and otherwise `exited` / `signaled`,
//!   or `interrupted` when it died of SIGINT after the user's own Ctrl-C
//!   (`interrupt`, or a 0x03 byte in `input`).
//!
//! Killing takes the whole tree: the cgroup when there is one, plus the
//! process group (the main process is not reaped until the kill is done, so
//! its group id cannot be reused meanwhile).
//!
//! # CPU priority
//! Interactive first ([`priority`]): a run that keeps a CPU busy (over 1 s of
//! CPU in total and still ≥ 10 % of each 1 s window) gets a low CPU priority
//! (v1 `cpu.shares` 64 instead of 1024, v2 `cpu.weight` 6 instead of 100), so
//! on a contended machine starting programs and keystroke echoes go first; it
//! gets the default back when it goes quiet. Limits are unchanged: it still
//! ends at its CPU limit, only later in wall-clock time when others are busy.
//!
//! # Admission
//! Runs are the interactive class of the host's shared admission
//! ([`crate::execution::admission`]): `max_concurrent_runs` slots for every
//! kind of execution, of which batch work never takes the last
//! `batch_reserve_slots`. A run takes a free slot at once (a run replacing
//! another takes over its slot) or is refused with `busy` +
//! `retry_after_ms`, never queued. Runs per user per minute are limited
//! (`rate_limited` + `retry_after_ms`).
//!
//! # Blocking work
//! The session actor never blocks a runtime worker: killing a tree (which
//! waits, bounded, for the cgroup to empty), sampling and writing the
//! cgroup's files, removing it, starting a run and checking the script path
//! all run on the blocking pool. The actor awaits them (its own session
//! waits; nobody else does: connections send commands and read replies
//! without waiting on the actor, see [`crate::ws`]).

pub mod config;
mod context;
mod handle;
pub(crate) mod launcher;
mod output;
mod priority;
pub mod probe;
mod quota_watch;
mod registry;
mod run;
mod session;
mod terminal;
mod warm;

use bytes::Bytes;
use campus_protocol::ConnectionMsg;
use campus_protocol::{ErrorCode, Phase, RunEnded, RunMode, ServerMsg};

pub use crate::execution::self_rss_bytes;
pub use config::RunnerConfig;
pub use handle::{Attachment, SessionHandle};
pub use launcher::SANDBOX_HOME;
pub use registry::Runner;
pub use run::MountedScript;
pub use terminal::run_in_terminal;

/// What an attached connection receives, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Terminal output starting at byte offset `seq` (send as a binary frame).
    Output {
        /// Offset of the first byte.
        seq: u64,
        /// The bytes.
        bytes: Bytes,
    },
    /// A JSON message (`run_started`, `phase`, `warning`, `run_ended`).
    Msg(ServerMsg),
}

/// Sizes of a session's output buffers, now and at their peak.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BufferStats {
    /// Bytes kept in the replay tail.
    pub tail_bytes: usize,
    /// Bytes read but not yet sent as a frame.
    pub pending_bytes: usize,
    /// Unacknowledged bytes of the slowest attached connection.
    pub unacked_bytes: u64,
    /// True while PTY reading is paused by flow control.
    pub paused: bool,
    /// Peak of `tail_bytes`.
    pub max_tail_bytes: usize,
    /// Peak of `pending_bytes`.
    pub max_pending_bytes: usize,
    /// Peak of `unacked_bytes`.
    pub max_unacked_bytes: u64,
}

/// A snapshot of one session (admin view, tests).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionInfo {
    /// Session id (unique per server process).
    pub session_id: u64,
    /// Owner.
    pub user_id: i64,
    /// Owner's login name.
    pub username: String,
    /// True while a program is running.
    pub running: bool,
    /// The live or last run.
    pub run_id: Option<String>,
    /// Mode of the live run.
    pub mode: Option<RunMode>,
    /// Path of the live run.
    pub path: Option<String>,
    /// Phase of the live run.
    pub phase: Option<Phase>,
    /// Attached connections.
    pub attached: usize,
    /// Offset after the last output byte.
    pub next_seq: u64,
    /// CPU used by the live run so far, ms (sampled).
    pub cpu_ms: u64,
    /// Peak memory of the live run so far, bytes (sampled).
    pub peak_memory_bytes: u64,
    /// Memory of the live run at the last sample, bytes.
    pub memory_bytes: u64,
    /// How long ago `cpu_ms` and `memory_bytes` were sampled, ms (None: not yet).
    pub sampled_ms_ago: Option<u64>,
    /// Output of the live run so far, bytes.
    pub output_bytes: u64,
    /// How long nothing has run, ms (0 while a run is live).
    pub idle_ms: u64,
    /// True while the live run has the low ("background") CPU priority.
    pub background: bool,
    /// A warm sandbox is ready for the next run (see the `warm` module).
    pub warm_ready: bool,
    /// The live or last run started on a warm sandbox (not cold).
    pub run_warm: bool,
    /// Age of the live run, ms.
    pub run_age_ms: u64,
    /// How long nobody has been attached, ms (0 when someone is).
    pub detached_ms: u64,
    /// How the last run ended.
    pub last_ended: Option<RunEnded>,
    /// Output buffer sizes.
    pub buffers: BufferStats,
}

/// Why a runner request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// Too many runs started recently by this user.
    #[error("you started too many runs in the last minute; try again in {} s", retry_after_ms.div_ceil(1000))]
    RateLimited {
        /// Wait this long.
        retry_after_ms: u64,
    },
    /// Every sandbox slot is in use (or the server is shutting down).
    #[error("the server is busy running other programs; try again in {} s", retry_after_ms.div_ceil(1000))]
    Busy {
        /// Wait this long.
        retry_after_ms: u64,
    },
    /// The script does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The script path is malformed or leaves the workspace.
    #[error("{0}")]
    InvalidPath(String),
    /// An unexpected fault (details in the server log).
    #[error("internal error: {0}")]
    Internal(String),
    /// The session ended while the request was in flight; attach again.
    #[error("the session has ended; reconnect")]
    SessionGone,
}

impl RunnerError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            RunnerError::RateLimited { .. } => ErrorCode::RateLimited,
            RunnerError::Busy { .. } => ErrorCode::Busy,
            RunnerError::NotFound(_) => ErrorCode::NotFound,
            RunnerError::InvalidPath(_) => ErrorCode::InvalidPath,
            RunnerError::Internal(_) | RunnerError::SessionGone => ErrorCode::Internal,
        }
    }

    /// The retry hint, for `rate_limited` and `busy`.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            RunnerError::RateLimited { retry_after_ms } | RunnerError::Busy { retry_after_ms } => {
                Some(*retry_after_ms)
            }
            _ => None,
        }
    }

    /// The `error` message for the client (internal details are not sent).
    pub fn to_msg(&self, id: Option<u64>) -> ServerMsg {
        let message = match self {
            RunnerError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        ServerMsg::Connection(ConnectionMsg::Error {
            id,
            code: self.code(),
            message,
            retry_after_ms: self.retry_after_ms(),
            current_version: None,
            request_id: None,
        })
    }
}
