//! One sandboxed execution: "run this program in the sandbox", whoever asks.
//!
//! An [`ExecutionSpec`] says everything about one execution: the program
//! (argv, environment, working directory), what it sees (the tree at
//! `/home/student`, read-write or read-only; extra read-only trees at
//! `/course/<name>`; a scratch tree at `/scratch`), its limits (memory, pids,
//! CPU time, wall time, file size, output cap), its stdio (a PTY, or pipes
//! with capture caps and optionally a result channel the program cannot
//! forge) and its priority class. Its result is the exact ending with usage,
//! the [`campus_protocol::RunEnded`] record a `run_ended` message carries.
//!
//! Users, in dependency order above this module:
//! - the interactive session ([`crate::runner`]): the PTY case, one live
//!   execution per user, with the hybrid launcher (whose phase report comes
//!   on the result channel), flow control and its own per-phase wall clocks;
//! - the sandbox probe run ([`crate::runner::probe`]), through a session;
//! - batch work ([`Executor::execute_batch`]): pipes, queued admission;
//!   grading and course jobs will call it.
//!
//! # Admission
//! One [`Admission`] pool of sandbox slots per host for every kind of
//! execution: interactive first, batch queued behind it and never taking the
//! interactive reserve (the policy is in [`admission`]).
//!
//! # Where each limit is enforced
//! | limit | where |
//! |---|---|
//! | memory, pids, CPU bandwidth | the execution's cgroup (kernel) |
//! | CPU time | RLIMIT_CPU in the sandbox (SIGXCPU), and the sampled cgroup CPU time (session / batch loop) |
//! | file size, open files | RLIMIT_FSIZE / RLIMIT_NOFILE in the sandbox |
//! | /tmp size | the tmpfs size |
//! | read-only trees | MS_RDONLY bind mounts (EROFS) |
//! | wall time | the batch loop (`limits.wall`); a session's per-phase max ages |
//! | output cap | the batch loop (total of stdout + stderr), the session (PTY bytes) |
//! | capture caps | the batch loop (beyond: counted, dropped, `truncated`) |
//!
//! # Result channel
//! With `PtySpec::result_channel` the program finds a pipe at fd 3 whose first
//! line the PTY reader delivers in order with the output (the hybrid launcher
//! reports the start of the REPL there, so nothing printed can fake it).
//! With `PipeSpec::result_cap`, the program finds a pipe at fd 3
//! ([`crate::sandbox::RESULT_FD`], also in `CAMPUS_RESULT_FD`) and a fresh
//! nonce in `CAMPUS_RESULT_NONCE`. Only that pipe reaches the server's
//! report: stdout and stderr cannot, and no other process of the server gets
//! the descriptor. A report is accepted only if it starts with the nonce
//! line. A grading harness reads the nonce, removes it from its environment
//! and keeps fd 3 from the student code it starts (Python's `subprocess`
//! closes it by default; `os.set_inheritable(3, False)` before exec'ing).

pub mod admission;
mod batch;
pub(crate) mod ending;
pub(crate) mod proc;
pub(crate) mod process;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use admission::{Admission, AdmissionConfig, Class, Refused, Slot};
pub use batch::{BatchOutcome, Captured, RESULT_FD_ENV, RESULT_NONCE_ENV};
pub use proc::{self_rss_bytes, TermSize};

use crate::sandbox::{Sandbox, SandboxLimits};

/// Default total output of one execution, MiB.
pub const DEFAULT_OUTPUT_MIB: u64 = 50;

/// One execution: what to run, what it sees, what it may use, how it talks.
#[derive(Debug, Clone)]
pub struct ExecutionSpec {
    /// Unique id (the run id; names the cgroup).
    pub id: String,
    /// Whose execution it is (decides the per-student uid).
    pub user_id: i64,
    /// Program and arguments as seen inside the sandbox.
    pub argv: Vec<String>,
    /// The complete environment (nothing of the server's is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox (default `/home/student`).
    pub cwd: Option<String>,
    /// The trees it sees.
    pub mounts: Mounts,
    /// Its limits.
    pub limits: ExecLimits,
    /// Its stdio.
    pub stdio: Stdio,
    /// Its priority class (admission).
    pub class: Class,
}

/// The trees an execution sees besides the system's read-only ones.
#[derive(Debug, Clone)]
pub struct Mounts {
    /// Host tree mounted at `/home/student`.
    pub home: PathBuf,
    /// Read-write (a workspace) or read-only (e.g. an immutable snapshot).
    pub home_writable: bool,
    /// Extra read-only trees, each at `/course/<name>`.
    pub read_only: Vec<ReadOnlyTree>,
    /// A host directory mounted read-write at `/scratch` (the caller creates
    /// and removes it).
    pub scratch: Option<PathBuf>,
}

impl Mounts {
    /// Just a read-write workspace at `/home/student`.
    pub fn workspace(home: PathBuf) -> Mounts {
        Mounts {
            home,
            home_writable: true,
            read_only: Vec::new(),
            scratch: None,
        }
    }
}

/// A read-only tree at `/course/<name>`.
#[derive(Debug, Clone)]
pub struct ReadOnlyTree {
    /// Host path (a directory or a file).
    pub host: PathBuf,
    /// Name under `/course` (`[A-Za-z0-9._-]`, not starting with a dot).
    pub name: String,
}

/// The limits of one execution.
#[derive(Debug, Clone)]
pub struct ExecLimits {
    /// Enforced by the kernel: memory, pids, CPU time, file size, open files, /tmp.
    pub sandbox: SandboxLimits,
    /// Wall-clock limit (batch; a session applies its per-phase max ages instead).
    pub wall: Duration,
    /// Total output (stdout + stderr, or the PTY) before it is ended with `output_limit`.
    pub output_bytes: u64,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            sandbox: SandboxLimits::default(),
            wall: Duration::from_secs(60),
            output_bytes: DEFAULT_OUTPUT_MIB << 20,
        }
    }
}

/// How the program's stdio is connected.
#[derive(Debug, Clone)]
pub enum Stdio {
    /// A terminal (interactive).
    Pty(PtySpec),
    /// Pipes (batch).
    Pipes(PipeSpec),
}

/// A terminal for interactive work.
#[derive(Debug, Clone, Copy)]
pub struct PtySpec {
    /// Its size.
    pub size: TermSize,
    /// A result channel at fd 3 whose first line arrives in order with the
    /// output (see [`proc::PtyRead`]); the hybrid launcher's phase report.
    pub result_channel: bool,
    /// The result channel is a socket the server can also write to (a
    /// warm sandbox's command channel, [`crate::runner`]'s `warm` module);
    /// needs `result_channel`.
    pub control: bool,
}

/// Pipes for batch work.
#[derive(Debug, Clone, Default)]
pub struct PipeSpec {
    /// Written to the program's stdin, then closed.
    pub stdin: Bytes,
    /// stdout bytes kept (the rest is counted and dropped).
    pub stdout_cap: usize,
    /// stderr bytes kept.
    pub stderr_cap: usize,
    /// A result channel at fd 3 whose report (after the nonce line) is kept up to this size.
    pub result_cap: Option<usize>,
    /// The result channel at fd 3 is a socket pair whose server end the
    /// caller drives ([`Executor::execute_batch_with_channel`]).
    pub duplex: bool,
}

/// Why an execution could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// No slot, and no room in the batch queue.
    #[error("the server is busy running other programs; try again in {} s", retry_after_ms.div_ceil(1000))]
    Busy {
        /// Wait this long.
        retry_after_ms: u64,
    },
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The spec cannot be executed as asked.
    #[error("{0}")]
    Invalid(String),
    /// The sandbox could not be set up (details in the server log).
    #[error("the program could not be started: {0}")]
    Start(String),
}

/// The host's sandbox and its shared admission: every execution goes
/// through one executor.
#[derive(Debug)]
pub struct Executor {
    sandbox: Arc<Sandbox>,
    admission: Admission,
    token: CancellationToken,
    busy_retry_after: Duration,
}

impl Executor {
    /// An executor over `sandbox`; `token` ends everything it runs.
    pub fn new(
        sandbox: Arc<Sandbox>,
        admission: AdmissionConfig,
        busy_retry_after: Duration,
        token: CancellationToken,
    ) -> Arc<Executor> {
        Arc::new(Executor {
            sandbox,
            admission: Admission::new(admission),
            token,
            busy_retry_after,
        })
    }

    /// The host's sandbox.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The shared slots.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Stop: refuse new work, fail queued batch work, end running batch work
    /// (`server_shutdown`).
    pub fn shutdown(&self) {
        self.token.cancel();
        self.admission.close();
    }
}
