//! One live run: its PTY, process, cgroup, clocks and counters, how it is
//! started inside the sandbox, signalled, measured and killed.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use bytes::Bytes;
use campus_protocol::{EndReason, Phase, RunMode};
use portable_pty::PtySize;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::config::RunnerConfig;
use super::launcher;
use super::output::MarkerStripper;
use super::proc::{self, ExitInfo, PtyMaster};
use super::quota_watch::QuotaWatch;
use crate::sandbox::{self, RunCgroup, RunSpec, Sandbox};

/// Input chunks buffered for the PTY writer thread.
const WRITER_CHANNEL: usize = 64;
/// How long killing a dev-fallback run's process tree may take.
const FALLBACK_KILL_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything a started run owns. Dropping it releases its admission slot.
pub(crate) struct LiveRun {
    pub run_id: String,
    pub path: String,
    pub mode: RunMode,
    pub phase: Phase,
    pub started: Instant,
    /// When the current phase began (the max-age clock of that phase).
    pub phase_started: Instant,
    pub pid: Option<u32>,
    pub master: PtyMaster,
    pub writer: Option<mpsc::Sender<Bytes>>,
    pub cgroup: Option<RunCgroup>,
    /// Strips the hybrid launcher's marker (hybrid only, until found).
    pub stripper: Option<MarkerStripper>,
    /// Exit status, once the waiter reported it.
    pub exit: Option<ExitInfo>,
    /// Dropping it lets the waiter thread reap the (zombie) main process.
    pub reap: Option<std_mpsc::SyncSender<()>>,
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
    pub oom_base: u64,
    pub oom_kills: u64,
    /// A max-age warning was sent for the current phase.
    pub warned_max_age: bool,
    /// Abandonment bookkeeping: (since, cpu_ms, output_bytes) at the last check.
    pub detached_snapshot: Option<(Instant, u64, u64)>,
    /// When the reader last delivered bytes after the process exited.
    pub last_data: Instant,
    /// The admission slot (taken over by a run that replaces this one).
    pub permit: Option<OwnedSemaphorePermit>,
    /// The workspace quota: what tells a full workspace (see [`QuotaWatch`]).
    pub quota: QuotaWatch,
}

/// The receivers of a run, kept outside [`LiveRun`] so the session's select
/// loop can borrow them next to the rest of the state.
pub(crate) struct RunIo {
    pub reader: Option<mpsc::Receiver<Bytes>>,
    pub exit: Option<oneshot::Receiver<ExitInfo>>,
}

/// What starting a run needs.
pub(crate) struct StartRequest {
    pub run_id: String,
    pub user_id: i64,
    pub workspace_dir: PathBuf,
    pub path: String,
    pub mode: RunMode,
    pub cols: u16,
    pub rows: u16,
    pub permit: OwnedSemaphorePermit,
}

/// Prepare the sandbox, open the PTY and spawn the program (blocking: call
/// from `spawn_blocking`). On failure the permit is returned with the error.
pub(crate) fn start(
    sandbox: Arc<Sandbox>,
    cfg: &RunnerConfig,
    req: StartRequest,
) -> Result<(LiveRun, RunIo), (String, OwnedSemaphorePermit)> {
    let StartRequest {
        run_id,
        user_id,
        workspace_dir,
        path,
        mode,
        cols,
        rows,
        permit,
    } = req;
    let quota = QuotaWatch::new(&sandbox, user_id, &workspace_dir, &cfg.limits);
    let spec = RunSpec {
        run_id: run_id.clone(),
        user_id,
        workspace_dir,
        read_only_mounts: Vec::new(),
        argv: launcher::argv(&cfg.python, mode, &path),
        env: launcher::env(),
        limits: cfg.limits.clone(),
    };
    let prepared = match sandbox.prepare(&spec) {
        Ok(p) => p,
        Err(e) => return Err((format!("sandbox prepare: {e}"), permit)),
    };
    let crate::sandbox::PreparedRun { command, cgroup } = prepared;
    let fail = |msg: String, cgroup: Option<RunCgroup>, permit| {
        if let Some(cg) = cgroup {
            cg.kill_all();
            cg.remove();
        }
        Err((msg, permit))
    };
    let size = PtySize {
        rows: rows.max(1),
        cols: cols.max(1),
        pixel_width: 0,
        pixel_height: 0,
    };
    let (master, slave) = match proc::open_pty(size) {
        Ok(p) => p,
        Err(e) => return fail(format!("openpty: {e}"), cgroup, permit),
    };
    // posix_spawn, not fork (see `sandbox::spawn_on_terminal`); our copies of
    // the slave are closed on return, or EOF would never arrive.
    let child = match sandbox::spawn_on_terminal(command, slave) {
        Ok(c) => c,
        Err(e) => return fail(format!("spawn: {e}"), cgroup, permit),
    };
    let pid = Some(child.id());
    let kill_now = |cgroup: &Option<RunCgroup>| {
        if let Some(cg) = cgroup {
            cg.kill_all();
        }
        if let Some(pid) = pid {
            proc::kill_group(pid as i32);
        }
    };
    let (exit_rx, reap) = match proc::spawn_waiter(child) {
        Ok(w) => w,
        Err(e) => {
            kill_now(&cgroup);
            return fail(format!("waiter thread: {e}"), cgroup, permit);
        }
    };
    let io = master
        .try_clone_reader()
        .map_err(|e| e.to_string())
        .and_then(|r| proc::spawn_reader(r).map_err(|e| e.to_string()))
        .and_then(|rx| {
            let w = master.take_writer().map_err(|e| e.to_string())?;
            let tx = proc::spawn_writer(w, WRITER_CHANNEL).map_err(|e| e.to_string())?;
            Ok((rx, tx))
        });
    let (reader, writer) = match io {
        Ok(io) => io,
        Err(e) => {
            kill_now(&cgroup);
            drop(reap);
            return fail(format!("pty threads: {e}"), cgroup, permit);
        }
    };
    let oom_base = cgroup.as_ref().map_or(0, |cg| cg.stats().oom_kills);
    let now = Instant::now();
    let run = LiveRun {
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
        pid,
        master,
        writer: Some(writer),
        cgroup,
        stripper: (mode == RunMode::Hybrid).then(MarkerStripper::default),
        exit: None,
        reap: Some(reap),
        kill_reason: None,
        interrupted: false,
        script_error: None,
        stop_request: None,
        output_bytes: 0,
        cpu_ms: 0,
        peak_memory_bytes: 0,
        oom_base,
        oom_kills: 0,
        warned_max_age: false,
        detached_snapshot: None,
        last_data: now,
        permit: Some(permit),
        quota,
    };
    let io = RunIo {
        reader: Some(reader),
        exit: Some(exit_rx),
    };
    Ok((run, io))
}

impl LiveRun {
    /// Kill every process of the run. Safe to repeat: the main process is not
    /// reaped before the session drops `reap`, so its process group id cannot
    /// have been reused.
    pub fn kill_tree(&self) {
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
        if self.reap.is_some() {
            if let Some(pid) = self.pid {
                if self.cgroup.is_none() {
                    // Dev fallback: no cgroup to kill. The helper is a
                    // subreaper, so while it lives everything the program
                    // started is in its tree; kill the tree before the helper
                    // (a /proc scan, bounded; dev mode only).
                    sandbox::kill_descendants(pid as i32, FALLBACK_KILL_LIMIT, false);
                }
                proc::kill_group(pid as i32);
            }
            if let Some(pg) = self.master.process_group_leader() {
                proc::kill_group(pg);
            }
        }
    }

    /// Ctrl-C: SIGINT to the terminal's foreground process group.
    pub fn interrupt(&self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.master.process_group_leader() {
            Some(pg) => proc::interrupt_group(pg),
            None => self.pid.is_some_and(|p| proc::interrupt_group(p as i32)),
        }
    }

    /// Refresh cpu / peak memory / OOM counters from the cgroup (or /proc).
    pub fn sample(&mut self) {
        if let Some(cg) = &self.cgroup {
            let s = cg.stats();
            self.cpu_ms = self.cpu_ms.max(s.cpu_ms);
            self.peak_memory_bytes = self.peak_memory_bytes.max(s.peak_memory_bytes);
            self.oom_kills = s.oom_kills.saturating_sub(self.oom_base);
        } else if let (Some(pid), None) = (self.pid, &self.exit) {
            // Dev fallback: the helper and the program (the foreground group's leader).
            let program = self
                .master
                .process_group_leader()
                .and_then(|p| u32::try_from(p).ok());
            for p in std::iter::once(pid).chain(program) {
                if let Some(cpu) = proc::proc_cpu_ms(p) {
                    self.cpu_ms = self.cpu_ms.max(cpu);
                }
                if let Some(peak) = proc::proc_peak_memory(p) {
                    self.peak_memory_bytes = self.peak_memory_bytes.max(peak);
                }
            }
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
