//! The session domain: running a program in the user's session (run, input,
//! resize, interrupt, stop, attach, flow-control acks), the session's events,
//! and the value types they carry. Terminal output itself travels as binary
//! frames ([`crate::frames`]).

use serde::{Deserialize, Serialize};

/// A message to the user's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionRequest {
    /// Start a run of `path` (ignored for `repl`). A live run is stopped first.
    Run {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Script path relative to the workspace (with `course`: to the course's material).
        #[serde(default)]
        path: String,
        /// Script, hybrid (script then REPL) or REPL.
        mode: RunMode,
        /// Initial terminal size.
        #[serde(default)]
        cols: Option<u16>,
        /// Initial terminal size.
        #[serde(default)]
        rows: Option<u16>,
        /// Run a file of this course's material (slug): it is at
        /// `/course/<slug>/<path>`, read-only; the working directory is still
        /// the user's workspace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        course: Option<String>,
    },
    /// Bytes typed into the terminal (UTF-8 text, as xterm.js produces it).
    Input {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
        /// The typed text.
        data: String,
    },
    /// The terminal was resized.
    Resize {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Ctrl-C: SIGINT to the program's foreground process group.
    Interrupt {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Stop the run: kill its whole process tree.
    Stop {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Attach to the user's session, replaying output from byte offset `since_seq`.
    Attach {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// The output offset the client already has (0 = everything kept).
        #[serde(default)]
        since_seq: u64,
    },
    /// Flow control: the client has consumed output up to byte offset `seq`.
    Ack {
        /// Output offset consumed.
        seq: u64,
    },
}

impl SessionRequest {
    /// The `type` of each session request message, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "run",
        "input",
        "resize",
        "interrupt",
        "stop",
        "attach",
        "ack",
    ];

    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            SessionRequest::Run { id, .. }
            | SessionRequest::Input { id, .. }
            | SessionRequest::Resize { id, .. }
            | SessionRequest::Interrupt { id, .. }
            | SessionRequest::Stop { id, .. }
            | SessionRequest::Attach { id, .. } => *id,
            SessionRequest::Ack { .. } => None,
        }
    }
}

/// An event of the user's session (some are replies to a session request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionMsg {
    /// A run started (reply to `run`, and broadcast to every attached connection).
    RunStarted {
        /// Echoed request id (only on the reply to the requesting connection).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Run id.
        run_id: String,
        /// Script path (empty for `repl`).
        path: String,
        /// Mode.
        mode: RunMode,
        /// Output offset at which this run's output starts.
        start_seq: u64,
        /// True when a live run was stopped to start this one.
        replaced_previous: bool,
    },
    /// A hybrid run moved from the script to the REPL.
    Phase {
        /// Run id.
        run_id: String,
        /// The new phase.
        phase: Phase,
        /// Set when the script ended by raising: the exception's class name
        /// (`ZeroDivisionError`, `KeyboardInterrupt`, `SystemExit`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script_error: Option<String>,
    },
    /// The run will be stopped soon unless something changes.
    Warning {
        /// Run id.
        run_id: String,
        /// Machine-readable reason (`max_age`, `abandoned`).
        reason: String,
        /// Human-readable explanation.
        message: String,
        /// The run will be stopped in this many ms.
        stop_in_ms: u64,
    },
    /// A run ended.
    RunEnded {
        /// Echoed request id (of `stop`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Why, and how close it came to each limit.
        #[serde(flatten)]
        ended: RunEnded,
    },
    /// Reply to `attach`: output from `replay_from` is replayed next (binary frames), then live.
    Attached {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The live or last run, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// True while a program is running.
        running: bool,
        /// Mode of the live run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<RunMode>,
        /// Script path of the live run (empty for `repl`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Current phase of the live run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
        /// The live hybrid run's script raised this exception (as in `phase`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script_error: Option<String>,
        /// First offset that will be replayed.
        replay_from: u64,
        /// Offset after the last byte produced so far (replay ends there).
        next_seq: u64,
        /// Bytes the client asked for that are no longer kept.
        dropped_bytes: u64,
        /// How the last run ended, when nothing is running (boxed: it is the
        /// largest field, and every `ServerMsg` is as large as its largest variant).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_ended: Option<Box<RunEnded>>,
    },
}

impl SessionMsg {
    /// The `type` of each session server message, in declaration order.
    pub const TYPES: &'static [&'static str] =
        &["run_started", "phase", "warning", "run_ended", "attached"];
}

/// How a run is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Run the script; the run ends when it ends.
    Script,
    /// Run the script, then an interactive REPL with the script's globals.
    Hybrid,
    /// A plain REPL with the workspace as the working directory.
    Repl,
}

impl RunMode {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Script => "script",
            RunMode::Hybrid => "hybrid",
            RunMode::Repl => "repl",
        }
    }
}

/// Which phase a hybrid run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The script is running.
    Script,
    /// The interactive REPL is running.
    Repl,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The program exited by itself with `exit_code`.
    Exited,
    /// The program was killed by a signal it did not expect (`signal`).
    Signaled,
    /// The user pressed Ctrl-C and the program ended of that SIGINT (`signal` 2).
    Interrupted,
    /// The user pressed Stop (or started another run).
    Stopped,
    /// The script or REPL phase passed its maximum age.
    Timeout,
    /// The CPU-time limit was reached.
    CpuLimit,
    /// The memory limit was reached (the cgroup's OOM counter rose).
    MemoryLimit,
    /// The program wrote more than the total output cap.
    OutputLimit,
    /// The workspace reached its quota (bytes or entries): either the kernel
    /// refused the program's writes (EDQUOT) and it failed, or the usage scan
    /// (where the filesystem enforces no quota) found it past the quota and
    /// stopped it.
    DiskQuota,
    /// An admin stopped the session.
    KilledByAdmin,
    /// The user's session was revoked while the program ran: logout (with no
    /// other device still connected), a password or role change, or the
    /// account was disabled.
    Revoked,
    /// A file was written to a hidden path of the course material this run
    /// mounted (so it would have appeared in the run): run it again.
    MaterialChanged,
    /// Nobody was attached for longer than the reattach window.
    Abandoned,
    /// The server shut down.
    ServerShutdown,
    /// The sandbox could not be set up (details in the server log).
    StartFailed,
}

impl EndReason {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exited => "exited",
            EndReason::Signaled => "signaled",
            EndReason::Interrupted => "interrupted",
            EndReason::Stopped => "stopped",
            EndReason::Timeout => "timeout",
            EndReason::CpuLimit => "cpu_limit",
            EndReason::MemoryLimit => "memory_limit",
            EndReason::OutputLimit => "output_limit",
            EndReason::DiskQuota => "disk_quota",
            EndReason::KilledByAdmin => "killed_by_admin",
            EndReason::Revoked => "revoked",
            EndReason::MaterialChanged => "material_changed",
            EndReason::Abandoned => "abandoned",
            EndReason::ServerShutdown => "server_shutdown",
            EndReason::StartFailed => "start_failed",
        }
    }
}

/// The full record of how a run ended (also what `campus run` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct RunEnded {
    /// Run id.
    pub run_id: String,
    /// Why it ended.
    pub reason: EndReason,
    /// Exit code, when the program exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal number, when the program died of a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// CPU time used, ms.
    pub cpu_ms: u64,
    /// CPU-time limit, ms.
    pub cpu_limit_ms: u64,
    /// Peak memory of the run's cgroup, bytes (0 when not measurable).
    pub peak_memory_bytes: u64,
    /// Memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// Wall-clock duration, ms.
    pub duration_ms: u64,
    /// Bytes of output produced.
    pub output_bytes: u64,
    /// A plain-words explanation for the student.
    pub message: String,
}
