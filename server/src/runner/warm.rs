//! Warm sandboxes: for a session whose IDE is open, one execution made
//! ready ahead of the next Run, so pressing Run costs one write on a socket
//! instead of a sandbox built from scratch and an interpreter start.
//!
//! A warm sandbox is a normal interactive execution (the same helper,
//! namespaces, mounts, cgroup, uid, rlimits and PTY as a cold run) whose
//! program is [`launcher::WARM_LAUNCHER`]: Python starts and then waits,
//! using no CPU, on its command channel (the result channel at fd 3, here a
//! socket pair whose other end only the server holds). It is prepared at
//! the low CPU priority, so it never competes with running programs.
//!
//! Handing it a run ([`WarmSandbox::dispatch`], on the blocking pool):
//! 1. give the workspace to the student's uid again (what was saved since
//!    the sandbox was prepared is visible through the bind mount, but may be
//!    owned by the server);
//! 2. the normal CPU priority, the terminal's current size;
//! 3. start the run's CPU clock: the cgroup's CPU time so far (the
//!    interpreter's start-up) becomes the baseline, so CPU time and the CPU
//!    limit count the student's program only;
//! 4. write `MODE<TAB>PATH` on the channel.
//!
//! From then on it is a live run like any other (same output pump, endings,
//! limits, wall clocks, which start at dispatch). A warm sandbox that died
//! or cannot take the command is killed and the run starts cold.
//!
//! At most `warm_sandboxes` exist on the host (a semaphore permit each);
//! the session drops its warm sandbox when its last connection leaves and
//! at shutdown.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use campus_protocol::RunMode;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::config::RunnerConfig;
use super::launcher;
use super::quota_watch::QuotaWatch;
use super::run::{self, LiveRun, RunIo};
use crate::execution::proc::{ExitInfo, PtyMaster, PtyRead};
use crate::execution::process::{self, Process, StartedIo};
use crate::execution::{Class, ExecutionSpec, Mounts, PtySpec, Stdio, TermSize};
use crate::sandbox::{CpuPriority, Sandbox};

/// `read(2)`'s number as `/proc/PID/syscall` prints it.
const READ_SYSCALL: &str = {
    #[cfg(target_arch = "x86_64")]
    {
        "0"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "63"
    }
};

/// A ready execution waiting for its run.
pub(crate) struct WarmSandbox {
    run_id: String,
    user_id: i64,
    workspace_dir: PathBuf,
    process: Process,
    master: Arc<PtyMaster>,
    reader: mpsc::Receiver<PtyRead>,
    writer: mpsc::Sender<Bytes>,
    exit: oneshot::Receiver<ExitInfo>,
    control: OwnedFd,
    /// Counts against the host's warm sandboxes while it exists.
    _permit: OwnedSemaphorePermit,
}

/// Prepare a warm sandbox for `user_id` (blocking: call from `spawn_blocking`).
pub(crate) fn prepare(
    sandbox: &Sandbox,
    cfg: &RunnerConfig,
    user_id: i64,
    workspace_dir: PathBuf,
    size: TermSize,
    permit: OwnedSemaphorePermit,
) -> Result<WarmSandbox, String> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let spec = ExecutionSpec {
        id: run_id.clone(),
        user_id,
        argv: launcher::warm_argv(&cfg.python),
        env: launcher::env(),
        cwd: None,
        mounts: Mounts::workspace(workspace_dir.clone()),
        limits: run::limits(cfg),
        stdio: Stdio::Pty(PtySpec {
            size,
            result_channel: true,
            control: true,
        }),
        class: Class::Interactive,
    };
    let started = process::start(sandbox, &spec)?;
    let StartedIo::Pty {
        master,
        reader,
        writer,
        control: Some(control),
    } = started.io
    else {
        started.process.kill_tree();
        started.process.reap();
        started.process.remove_cgroup();
        return Err("expected a terminal with a command channel".into());
    };
    let warm = WarmSandbox {
        run_id,
        user_id,
        workspace_dir,
        process: started.process,
        master,
        reader,
        writer,
        exit: started.exit,
        control,
        _permit: permit,
    };
    // Getting ready is background work: running programs go first.
    if let Err(e) = warm.process.set_priority(CpuPriority::Background) {
        tracing::debug!(error = %e, "warm sandbox keeps the default CPU priority");
    }
    // Ready means parked: until the interpreter blocks on its channel, its
    // start-up is still running and would be charged to the run.
    if !warm.wait_parked(PARK_WAIT) {
        tracing::debug!("warm sandbox not parked in time; handing it out anyway");
    }
    Ok(warm)
}

/// How long a preparation waits for the interpreter to park.
const PARK_WAIT: Duration = Duration::from_secs(5);

impl WarmSandbox {
    /// Wait (bounded, blocking) until the interpreter blocks in `read(3)`:
    /// the terminal's foreground process is the interpreter (the helpers
    /// are not in its process group), and `/proc/PID/syscall` names the
    /// syscall it sleeps in and its first argument.
    fn wait_parked(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let parked = self
                .master
                .process_group_leader()
                .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok())
                .is_some_and(|s| {
                    let mut f = s.split_whitespace();
                    f.next() == Some(READ_SYSCALL) && f.next() == Some("0x3")
                });
            if parked {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// Hand it its run (blocking). On failure it is gone (killed) and the
    /// caller starts the run cold.
    pub fn dispatch(
        mut self,
        sandbox: &Arc<Sandbox>,
        cfg: &RunnerConfig,
        mode: RunMode,
        path: String,
        size: TermSize,
    ) -> Result<(LiveRun, RunIo), String> {
        match self.exit.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {}
            _ => {
                self.discard();
                return Err("the warm sandbox had ended".into());
            }
        }
        let handed = (|| -> Result<(), String> {
            sandbox
                .own_workspace(self.user_id, &self.workspace_dir)
                .map_err(|e| e.to_string())?;
            self.process
                .set_priority(CpuPriority::Interactive)
                .map_err(|e| e.to_string())?;
            self.master.resize(size).map_err(|e| e.to_string())?;
            self.process.start_cpu_clock();
            let mut channel = std::fs::File::from(
                self.control
                    .try_clone()
                    .map_err(|e| format!("command channel: {e}"))?,
            );
            channel
                .write_all(&launcher::warm_command(mode, &path))
                .map_err(|e| format!("command channel: {e}"))
        })();
        if let Err(e) = handed {
            self.discard();
            return Err(e);
        }
        let quota = QuotaWatch::new(sandbox, self.user_id, &self.workspace_dir, &cfg.limits);
        let WarmSandbox {
            run_id,
            process,
            master,
            reader,
            writer,
            exit,
            ..
        } = self;
        let live = LiveRun::new(run_id, path, mode, process, master, writer, quota);
        let io = RunIo {
            reader: Some(reader),
            exit: Some(exit),
        };
        Ok((live, io))
    }

    /// Kill it and remove its cgroup (blocking). Parked, it cannot fork: no
    /// freezer (a class's worth of them go at shutdown, and a server killed
    /// halfway through must not leave frozen processes behind).
    pub fn discard(self) {
        self.process.kill_parked();
        self.process.reap();
        self.process.remove_cgroup();
    }
}
