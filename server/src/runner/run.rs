//! One live run of a session: the interactive (PTY) case of an
//! [`crate::execution`], plus the session's clocks and counters.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use campus_protocol::{EndReason, Phase, RunMode};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::RunnerConfig;
use super::launcher;
use super::quota_watch::QuotaWatch;
use crate::execution::proc::{ExitInfo, PtyMaster, PtyRead};
use crate::execution::process::{self, Process, StartedIo, Usage};
use crate::execution::{
    Class, ExecLimits, ExecutionSpec, Mounts, PtySpec, ReadOnlyTree, Slot, Stdio, TermSize,
};
use crate::sandbox::{CpuPriority, Sandbox};

/// Everything a started run owns. Dropping it releases its admission slot.
pub(crate) struct LiveRun {
    pub run_id: String,
    pub path: String,
    pub mode: RunMode,
    pub phase: Phase,
    pub started: Instant,
    /// When the current phase began (the max-age clock of that phase).
    pub phase_started: Instant,
    /// The execution's process tree.
    pub process: Process,
    pub master: Arc<PtyMaster>,
    pub writer: Option<mpsc::Sender<Bytes>>,
    /// Hybrid, until the launcher's phase report arrived on the result
    /// channel (only the first report counts).
    pub awaiting_repl: bool,
    /// Exit status, once the waiter reported it.
    pub exit: Option<ExitInfo>,
    /// Why the runner is ending it, if it is.
    pub kill_reason: Option<EndReason>,
    /// The user sent Ctrl-C during this run (an ending by SIGINT is theirs).
    pub interrupted: bool,
    /// Hybrid: the exception the script raised before the REPL opened.
    pub script_error: Option<String>,
    /// Connection and request id of the `stop` that ended it (echoed in `run_ended`).
    pub stop_request: Option<(String, Option<u64>)>,
    pub output_bytes: u64,
    pub cpu_ms: u64,
    pub peak_memory_bytes: u64,
    /// Memory at the last sample, bytes.
    pub memory_bytes: u64,
    /// When the usage was last sampled (CPU rates are taken between samples).
    pub sampled_at: Option<Instant>,
    pub oom_kills: u64,
    /// A max-age warning was sent for the current phase.
    pub warned_max_age: bool,
    /// Abandonment bookkeeping: (since, cpu_ms, output_bytes) at the last check.
    pub detached_snapshot: Option<(Instant, u64, u64)>,
    /// When the reader last delivered bytes after the process exited.
    pub last_data: Instant,
    /// The admission slot (taken over by a run that replaces this one).
    pub slot: Option<Slot>,
    /// The workspace quota: what tells a full workspace (see [`QuotaWatch`]).
    pub quota: QuotaWatch,
}

/// The receivers of a run, kept outside [`LiveRun`] so the session's select
/// loop can borrow them next to the rest of the state.
pub(crate) struct RunIo {
    pub reader: Option<mpsc::Receiver<PtyRead>>,
    pub exit: Option<oneshot::Receiver<ExitInfo>>,
}

/// What starting a run needs.
pub(crate) struct StartRequest {
    pub run_id: String,
    pub user_id: i64,
    pub workspace_dir: PathBuf,
    pub path: String,
    pub mode: RunMode,
    pub size: TermSize,
    pub read_only: Vec<ReadOnlyTree>,
}

/// A script that is not in the workspace: a file of read-only trees mounted
/// under `/course` (course material). The working directory stays the
/// workspace.
#[derive(Debug, Clone)]
pub struct MountedScript {
    /// The script as the program sees it (`/course/<slug>/<path>`).
    pub script: String,
    /// The tree on the host the script is in (checked: exists, a file, no links).
    pub host_root: PathBuf,
    /// The script's path in that tree.
    pub path: String,
    /// The read-only trees to mount.
    pub mounts: Vec<ReadOnlyTree>,
}

/// The limits of an interactive run.
pub(crate) fn limits(cfg: &RunnerConfig) -> ExecLimits {
    ExecLimits {
        sandbox: cfg.limits.clone(),
        // The session enforces its per-phase max ages itself.
        wall: cfg.script_max_age.max(cfg.repl_max_age),
        output_bytes: cfg.output_limit_bytes,
    }
}

/// The execution of an interactive run: the PTY case of [`ExecutionSpec`].
fn spec(cfg: &RunnerConfig, req: &StartRequest) -> ExecutionSpec {
    ExecutionSpec {
        id: req.run_id.clone(),
        user_id: req.user_id,
        argv: launcher::argv(&cfg.python, req.mode, &req.path),
        env: launcher::env(),
        cwd: None,
        mounts: Mounts {
            read_only: req.read_only.clone(),
            ..Mounts::workspace(req.workspace_dir.clone())
        },
        limits: limits(cfg),
        // Hybrid: the launcher reports the start of the REPL on fd 3, which
        // nothing that merely prints (the script, its children, a file it
        // cats) can write to.
        stdio: Stdio::Pty(PtySpec {
            size: req.size,
            result_channel: req.mode == RunMode::Hybrid,
            control: false,
        }),
        class: Class::Interactive,
    }
}

/// Prepare the sandbox, open the PTY and spawn the program (blocking: call
/// from `spawn_blocking`). The caller keeps the admission slot.
pub(crate) fn start(
    sandbox: &Arc<Sandbox>,
    cfg: &RunnerConfig,
    req: StartRequest,
) -> Result<(LiveRun, RunIo), String> {
    let quota = QuotaWatch::new(sandbox, req.user_id, &req.workspace_dir, &cfg.limits);
    let started = process::start(sandbox, &spec(cfg, &req))?;
    let StartedIo::Pty {
        master,
        reader,
        writer,
        ..
    } = started.io
    else {
        return Err("expected a terminal".into());
    };
    let StartRequest {
        run_id, path, mode, ..
    } = req;
    let run = LiveRun::new(run_id, path, mode, started.process, master, writer, quota);
    let io = RunIo {
        reader: Some(reader),
        exit: Some(started.exit),
    };
    Ok((run, io))
}

impl LiveRun {
    /// A run that starts now on a spawned execution.
    pub fn new(
        run_id: String,
        path: String,
        mode: RunMode,
        process: Process,
        master: Arc<PtyMaster>,
        writer: mpsc::Sender<Bytes>,
        quota: QuotaWatch,
    ) -> LiveRun {
        let now = Instant::now();
        LiveRun {
            run_id,
            path,
            mode,
            phase: if mode == RunMode::Repl {
                Phase::Repl
            } else {
                Phase::Script
            },
            started: now,
            phase_started: now,
            process,
            master,
            writer: Some(writer),
            awaiting_repl: mode == RunMode::Hybrid,
            exit: None,
            kill_reason: None,
            interrupted: false,
            script_error: None,
            stop_request: None,
            output_bytes: 0,
            cpu_ms: 0,
            peak_memory_bytes: 0,
            memory_bytes: 0,
            sampled_at: None,
            oom_kills: 0,
            warned_max_age: false,
            detached_snapshot: None,
            last_data: now,
            slot: None,
            quota,
        }
    }

    /// Kill every process of the run, on the blocking pool (the cgroup kill
    /// waits, bounded, for the tree to be gone). Safe to repeat.
    pub async fn kill_tree(&self) {
        let p = self.process.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || p.kill_tree()).await {
            tracing::error!(error = %e, "kill task failed");
        }
    }

    /// Kill the tree, then let the waiter reap the main process.
    pub async fn kill_and_reap(&self) {
        let p = self.process.clone();
        let done = tokio::task::spawn_blocking(move || {
            p.kill_tree();
            p.reap();
        });
        if let Err(e) = done.await {
            tracing::error!(error = %e, "kill task failed");
        }
    }

    /// Ctrl-C: SIGINT to the terminal's foreground process group.
    pub fn interrupt(&self) -> bool {
        self.exit.is_none() && self.process.interrupt()
    }

    /// Refresh cpu / peak memory / OOM counters (cgroup or /proc, on the blocking pool).
    pub async fn sample(&mut self) {
        let p = self.process.clone();
        let exited = self.exit.is_some();
        if let Ok(u) = tokio::task::spawn_blocking(move || p.sample(exited)).await {
            self.apply(u);
        }
    }

    fn apply(&mut self, u: Usage) {
        self.cpu_ms = self.cpu_ms.max(u.cpu_ms);
        self.peak_memory_bytes = self.peak_memory_bytes.max(u.peak_memory_bytes);
        self.memory_bytes = u.memory_bytes;
        self.sampled_at = Some(Instant::now());
        self.oom_kills = u.oom_kills;
    }

    /// Change the CPU priority (a sysfs write, on the blocking pool).
    pub async fn set_priority(&self, priority: CpuPriority) {
        let p = self.process.clone();
        match tokio::task::spawn_blocking(move || p.set_priority(priority)).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot change a run's CPU priority"),
            Err(e) => tracing::error!(error = %e, "priority task failed"),
            Ok(Ok(())) => {}
        }
    }

    /// The max age of the current phase.
    pub fn max_age(&self, cfg: &RunnerConfig) -> std::time::Duration {
        match self.phase {
            Phase::Script => cfg.script_max_age,
            Phase::Repl => cfg.repl_max_age,
        }
    }
}

/// How long before a max-age or abandonment kill the warning goes out:
/// 2 minutes, or a quarter of the limit when the limit is short.
pub(crate) fn warn_lead(limit: std::time::Duration) -> std::time::Duration {
    (limit / 4).min(std::time::Duration::from_secs(120))
}
