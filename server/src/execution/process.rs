//! Starting one execution in the sandbox (PTY or pipes) and the handle on
//! its process tree: kill, usage, priority, cgroup removal.
//!
//! Everything here that touches the OS beyond a signal is blocking (sysfs
//! reads and writes, kill loops that wait for a cgroup to empty, rmdir
//! retries): callers on the async runtime run it with `spawn_blocking`.

use std::os::fd::OwnedFd;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::proc::{self, ExitInfo, PtyMaster};
use super::{ExecutionSpec, Stdio};
use crate::sandbox::{self, CpuPriority, RunCgroup, RunSpec, Sandbox, SandboxError};

/// Input chunks buffered for the PTY writer thread.
const WRITER_CHANNEL: usize = 64;
/// How long killing a dev-fallback run's process tree may take.
const FALLBACK_KILL_LIMIT: Duration = Duration::from_secs(2);

/// Usage of an execution so far (sampled; maxima over the samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time, ms.
    pub cpu_ms: u64,
    /// Peak memory, bytes.
    pub peak_memory_bytes: u64,
    /// Memory at the last sample, bytes.
    pub memory_bytes: u64,
    /// OOM kills in the execution's cgroup since it started.
    pub oom_kills: u64,
}

/// A started execution.
pub(crate) struct Started {
    /// The process tree.
    pub process: Process,
    /// The main process's exit (before it is reaped, see [`Process::reap`]).
    pub exit: oneshot::Receiver<ExitInfo>,
    /// Its stdio.
    pub io: StartedIo,
}

/// The server's ends of an execution's stdio.
pub(crate) enum StartedIo {
    /// A terminal: the master, its reader and writer threads.
    Pty {
        master: Arc<PtyMaster>,
        reader: mpsc::Receiver<proc::PtyRead>,
        writer: mpsc::Sender<Bytes>,
        /// The server's writable end of the result channel (`PtySpec::control`).
        control: Option<OwnedFd>,
    },
    /// Pipes (close-on-exec, blocking mode): write stdin, read the rest.
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
        result: Option<OwnedFd>,
    },
}

/// The handle on one execution's process tree (cheap to clone, so blocking
/// work can move to the blocking pool).
#[derive(Clone)]
pub(crate) struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    pid: u32,
    cgroup: Option<RunCgroup>,
    /// The terminal, for its foreground process group (PTY executions).
    tty: Option<Arc<PtyMaster>>,
    /// Dropping it lets the waiter thread reap the (zombie) main process.
    reap: Mutex<Option<std_mpsc::SyncSender<()>>>,
    oom_base: u64,
    /// CPU time spent before the program was handed its work (a warm
    /// sandbox's start-up), not counted as the execution's.
    cpu_base_ms: std::sync::atomic::AtomicU64,
    usage: Mutex<Usage>,
}

/// Prepare the sandbox (cgroup, chown, mounts) and spawn the program
/// (blocking: call from `spawn_blocking`). The caller holds the admission
/// slot; a failure leaves nothing behind.
pub(crate) fn start(sandbox: &Sandbox, spec: &ExecutionSpec) -> Result<Started, String> {
    let (result_channel, result_duplex) = match &spec.stdio {
        // A socket pair for every terminal execution, warm or cold, so a
        // program finds the same kind of descriptor at fd 3 either way.
        Stdio::Pty(p) => (p.result_channel || p.control, true),
        Stdio::Pipes(p) => (p.result_cap.is_some() || p.duplex, p.duplex),
    };
    let run_spec = RunSpec {
        run_id: spec.id.clone(),
        user_id: spec.user_id,
        workspace_dir: spec.mounts.home.clone(),
        workspace_read_only: !spec.mounts.home_writable,
        read_only_mounts: spec
            .mounts
            .read_only
            .iter()
            .map(|t| (t.host.clone(), t.name.clone()))
            .collect(),
        scratch_dir: spec.mounts.scratch.clone(),
        cwd: spec.cwd.clone(),
        result_channel,
        result_duplex,
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        limits: spec.limits.sandbox.clone(),
    };
    let prepared = sandbox
        .prepare(&run_spec)
        .map_err(|e| format!("sandbox prepare: {e}"))?;
    let sandbox::PreparedRun {
        command,
        cgroup,
        result,
    } = prepared;
    let fail = |msg: String, cgroup: Option<RunCgroup>| {
        if let Some(cg) = cgroup {
            cg.remove();
        }
        Err(msg)
    };
    match &spec.stdio {
        Stdio::Pty(pty) => {
            let (master, slave) = match proc::open_pty(pty.size) {
                Ok(p) => p,
                Err(e) => return fail(format!("openpty: {e}"), cgroup),
            };
            // posix_spawn, not fork (see `sandbox::spawn_on_terminal`); our
            // copies of the slave are closed on return, or EOF would never arrive.
            let (child, result) = match sandbox::spawn_on_terminal(command, slave, result) {
                Ok(c) => c,
                Err(e) => return fail(format!("spawn: {e}"), cgroup),
            };
            let master = Arc::new(master);
            let (process, exit) = Process::watch(child, cgroup, Some(Arc::clone(&master)))?;
            let control = match (&result, pty.control) {
                (Some(r), true) => match r.try_clone() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        process.kill_tree();
                        process.reap();
                        process.remove_cgroup();
                        return Err(format!("control channel: {e}"));
                    }
                },
                _ => None,
            };
            let io = master
                .try_clone_reader()
                .map_err(|e| e.to_string())
                .and_then(|r| proc::spawn_reader(r, result).map_err(|e| e.to_string()))
                .and_then(|rx| {
                    let w = master.take_writer().map_err(|e| e.to_string())?;
                    let tx = proc::spawn_writer(w, WRITER_CHANNEL).map_err(|e| e.to_string())?;
                    Ok((rx, tx))
                });
            match io {
                Ok((reader, writer)) => Ok(Started {
                    process,
                    exit,
                    io: StartedIo::Pty {
                        master,
                        reader,
                        writer,
                        control,
                    },
                }),
                Err(e) => {
                    process.kill_tree();
                    process.reap();
                    process.remove_cgroup();
                    Err(format!("pty threads: {e}"))
                }
            }
        }
        Stdio::Pipes(_) => {
            let pipes = (|| -> std::io::Result<_> {
                let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
                let (in_r, in_w) = nix::unistd::pipe2(cloexec)?;
                let (out_r, out_w) = nix::unistd::pipe2(cloexec)?;
                let (err_r, err_w) = nix::unistd::pipe2(cloexec)?;
                Ok(((in_r, in_w), (out_r, out_w), (err_r, err_w)))
            })();
            let ((in_r, in_w), (out_r, out_w), (err_r, err_w)) = match pipes {
                Ok(p) => p,
                Err(e) => return fail(format!("pipes: {e}"), cgroup),
            };
            let (child, result) =
                match sandbox::spawn_with_pipes(command, in_r, out_w, err_w, result) {
                    Ok(c) => c,
                    Err(e) => return fail(format!("spawn: {e}"), cgroup),
                };
            let (process, exit) = Process::watch(child, cgroup, None)?;
            Ok(Started {
                process,
                exit,
                io: StartedIo::Pipes {
                    stdin: in_w,
                    stdout: out_r,
                    stderr: err_r,
                    result,
                },
            })
        }
    }
}

impl Process {
    /// Start the waiter of a spawned helper (on failure the tree is killed
    /// and the cgroup removed).
    fn watch(
        child: std::process::Child,
        cgroup: Option<RunCgroup>,
        tty: Option<Arc<PtyMaster>>,
    ) -> Result<(Process, oneshot::Receiver<ExitInfo>), String> {
        let pid = child.id();
        let (exit, reap) = match proc::spawn_waiter(child) {
            Ok(w) => w,
            Err(e) => {
                if let Some(cg) = cgroup {
                    cg.remove();
                }
                proc::kill_group(pid as i32);
                return Err(format!("waiter thread: {e}"));
            }
        };
        let oom_base = cgroup.as_ref().map_or(0, |cg| cg.stats().oom_kills);
        let process = Process {
            inner: Arc::new(Inner {
                pid,
                cgroup,
                tty,
                reap: Mutex::new(Some(reap)),
                oom_base,
                cpu_base_ms: std::sync::atomic::AtomicU64::new(0),
                usage: Mutex::new(Usage::default()),
            }),
        };
        Ok((process, exit))
    }

    /// Kill every process of the execution (blocking: waits, bounded, for
    /// the cgroup to empty). Safe to repeat: the main process is not reaped
    /// before [`Process::reap`], so its process group id cannot have been reused.
    pub fn kill_tree(&self) {
        let inner = &self.inner;
        if let Some(cg) = &inner.cgroup {
            cg.kill_all();
        }
        let reap = inner.reap.lock().unwrap_or_else(|p| p.into_inner());
        if reap.is_none() {
            return;
        }
        if inner.cgroup.is_none() {
            // Dev fallback: no cgroup to kill. The helper is a subreaper, so
            // while it lives everything the program started is in its tree;
            // kill the tree before the helper (a /proc scan, bounded; dev mode only).
            sandbox::kill_descendants(inner.pid as i32, FALLBACK_KILL_LIMIT, false);
        }
        proc::kill_group(inner.pid as i32);
        if let Some(pg) = inner.tty.as_ref().and_then(|t| t.process_group_leader()) {
            proc::kill_group(pg);
        }
    }

    /// Kill a tree that is not forking (a parked warm sandbox), without the
    /// v1 freezer (blocking; see `RunCgroup::kill_parked`).
    pub fn kill_parked(&self) {
        let inner = &self.inner;
        match &inner.cgroup {
            Some(cg) => cg.kill_parked(),
            None => {
                sandbox::kill_descendants(inner.pid as i32, FALLBACK_KILL_LIMIT, false);
            }
        }
        proc::kill_group(inner.pid as i32);
    }

    /// Let the waiter reap the main process (after the tree is dead).
    pub fn reap(&self) {
        let mut reap = self.inner.reap.lock().unwrap_or_else(|p| p.into_inner());
        *reap = None;
    }

    /// Ctrl-C: SIGINT to the terminal's foreground process group (PTY), or
    /// to the helper's group.
    pub fn interrupt(&self) -> bool {
        match self
            .inner
            .tty
            .as_ref()
            .and_then(|t| t.process_group_leader())
        {
            Some(pg) => proc::interrupt_group(pg),
            None => proc::interrupt_group(self.inner.pid as i32),
        }
    }

    /// Refresh and return the usage (blocking: reads the cgroup or /proc).
    /// `exited`: the main process has exited (the /proc fallback then has
    /// nothing left to read).
    pub fn sample(&self, exited: bool) -> Usage {
        let inner = &self.inner;
        let mut usage = inner.usage.lock().unwrap_or_else(|p| p.into_inner());
        let base = inner.cpu_base_ms.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(cg) = &inner.cgroup {
            let s = cg.stats();
            usage.cpu_ms = usage.cpu_ms.max(s.cpu_ms.saturating_sub(base));
            usage.peak_memory_bytes = usage.peak_memory_bytes.max(s.peak_memory_bytes);
            usage.memory_bytes = s.memory_bytes;
            usage.oom_kills = s.oom_kills.saturating_sub(inner.oom_base);
        } else if !exited {
            // Dev fallback: the helper and the program (the foreground group's leader).
            usage.memory_bytes = 0;
            for p in std::iter::once(inner.pid).chain(self.program_pid()) {
                if let Some(cpu) = proc::proc_cpu_ms(p) {
                    usage.cpu_ms = usage.cpu_ms.max(cpu.saturating_sub(base));
                }
                if let Some(peak) = proc::proc_peak_memory(p) {
                    usage.peak_memory_bytes = usage.peak_memory_bytes.max(peak);
                }
                usage.memory_bytes += proc::proc_memory(p).unwrap_or(0);
            }
            // The peaks are per process, the memory now is their sum.
            usage.peak_memory_bytes = usage.peak_memory_bytes.max(usage.memory_bytes);
        }
        *usage
    }

    /// The program's pid: the terminal's foreground process group leader.
    fn program_pid(&self) -> Option<u32> {
        self.inner
            .tty
            .as_ref()
            .and_then(|t| t.process_group_leader())
            .and_then(|p| u32::try_from(p).ok())
    }

    /// Count CPU time from now on: what was spent so far (a warm sandbox's
    /// start-up) is not the execution's (blocking: reads the cgroup or
    /// /proc). Returns the baseline, ms.
    pub fn start_cpu_clock(&self) -> u64 {
        let inner = &self.inner;
        let spent = match &inner.cgroup {
            Some(cg) => cg.stats().cpu_ms,
            None => std::iter::once(inner.pid)
                .chain(self.program_pid())
                .filter_map(proc::proc_cpu_ms)
                .max()
                .unwrap_or(0),
        };
        inner
            .cpu_base_ms
            .store(spent, std::sync::atomic::Ordering::Relaxed);
        spent
    }

    /// The baseline set by [`Process::start_cpu_clock`], ms (0 for a cold start).
    pub fn cpu_base_ms(&self) -> u64 {
        self.inner
            .cpu_base_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Change the CPU priority (blocking: a sysfs write; no-op without a cgroup).
    pub fn set_priority(&self, priority: CpuPriority) -> Result<(), SandboxError> {
        match &self.inner.cgroup {
            Some(cg) => cg.set_priority(priority),
            None => Ok(()),
        }
    }

    /// Kill what is left and remove the cgroup (blocking: bounded retries;
    /// a cgroup that stays busy is handed to the orphan sweep).
    pub fn remove_cgroup(&self) {
        if let Some(cg) = &self.inner.cgroup {
            cg.remove_now();
        }
    }
}
