//! The sandbox: how one run is isolated (cgroup, namespaces, rlimits, uid).
//!
//! INTERFACE CONTRACT (used by `runner`): `Sandbox::new` probes the host once,
//! `Sandbox::prepare` creates the run's cgroup and returns the PTY command that
//! starts `campus sandbox-exec …`, which sets everything up and then execs the
//! given argv. The runner owns the returned `RunCgroup` and asks it for stats
//! and to kill the tree.
//!
//! (Initial stub: no isolation at all. Replaced by the Sandbox work.)

use std::path::PathBuf;

use portable_pty::CommandBuilder;

/// Resource limits of one run.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// cgroup memory limit (no swap), bytes.
    pub memory_bytes: u64,
    /// cgroup pids.max.
    pub pids: u64,
    /// RLIMIT_CPU, seconds.
    pub cpu_secs: u64,
    /// RLIMIT_FSIZE, bytes.
    pub file_size_bytes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// Size of the private /tmp tmpfs, bytes.
    pub tmp_bytes: u64,
    /// CPU bandwidth, in CPUs (e.g. 1.0 = one full core).
    pub cpu_quota: f64,
}

/// Host-wide sandbox settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Path of the `campus` binary to re-exec as `campus sandbox-exec` (usually current_exe).
    pub helper_exe: PathBuf,
    /// Production mode: refuse to work without full isolation.
    pub production: bool,
    /// Per-student uid = base + user id.
    pub uid_base: u32,
}

/// What one run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Run id (used for the cgroup name).
    pub run_id: String,
    /// Owner's user id (for the per-student uid).
    pub user_id: i64,
    /// Host path of the owner's workspace (mounted read-write at /home/student).
    pub workspace_dir: PathBuf,
    /// Read-only material: (host path, name under /courses).
    pub read_only_mounts: Vec<(PathBuf, String)>,
    /// Program and arguments as seen inside the sandbox (e.g. `/usr/bin/python3 -i …`).
    pub argv: Vec<String>,
    /// The complete environment of the program (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Limits.
    pub limits: SandboxLimits,
}

/// Resource usage read from a run's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// CPU time, ms.
    pub cpu_ms: u64,
    /// Peak memory, bytes.
    pub peak_memory_bytes: u64,
    /// OOM kills so far.
    pub oom_kills: u64,
    /// Processes currently in the cgroup.
    pub pids: u64,
}

/// Errors of the sandbox boundary.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Production mode needs a feature the host does not have.
    #[error("sandbox incomplete: {0}")]
    Incomplete(String),
    /// An OS call failed.
    #[error("sandbox setup failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the startup probe found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SandboxReport {
    /// True when every production isolation feature works.
    pub complete: bool,
    /// One line per feature: (name, working, detail).
    pub features: Vec<(String, bool, String)>,
}

/// One run's cgroup (None when running without cgroups).
#[derive(Debug)]
pub struct RunCgroup {
    _private: (),
}

impl RunCgroup {
    /// Kill every process of the run (cgroup-wide).
    pub fn kill_all(&self) {}
    /// Current usage.
    pub fn stats(&self) -> CgroupStats {
        CgroupStats::default()
    }
    /// Remove the (empty) cgroup.
    pub fn remove(self) {}
}

/// A prepared run: the command for the PTY and its cgroup.
#[derive(Debug)]
pub struct PreparedRun {
    /// Command to spawn in the PTY.
    pub command: CommandBuilder,
    /// The run's cgroup, if cgroups are in use.
    pub cgroup: Option<RunCgroup>,
}

/// The host's sandbox.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    report: SandboxReport,
}

impl Sandbox {
    /// Probe the host; in production, fail unless isolation is complete.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let report = SandboxReport::default();
        if config.production && !report.complete {
            return Err(SandboxError::Incomplete("no isolation implemented".into()));
        }
        Ok(Sandbox { config, report })
    }

    /// What the probe found.
    pub fn report(&self) -> &SandboxReport {
        &self.report
    }

    /// Settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Create the run's cgroup and build its command.
    pub fn prepare(&self, spec: &RunSpec) -> Result<PreparedRun, SandboxError> {
        let mut cmd = CommandBuilder::new(&spec.argv[0]);
        cmd.args(&spec.argv[1..]);
        cmd.env_clear();
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        cmd.cwd(&spec.workspace_dir);
        Ok(PreparedRun {
            command: cmd,
            cgroup: None,
        })
    }
}

/// `campus sandbox-exec …`: the re-exec helper that runs between the PTY and Python.
pub mod exec {
    use std::path::PathBuf;

    /// Arguments of `campus sandbox-exec` (built by [`super::Sandbox::prepare`], not by people).
    #[derive(Debug, Clone, clap::Args)]
    pub struct ExecArgs {
        /// Host path of the workspace to mount at /home/student.
        #[arg(long)]
        pub workspace: PathBuf,
        /// The program and its arguments, after `--`.
        #[arg(last = true, required = true)]
        pub argv: Vec<String>,
    }

    /// Set up the sandbox and exec the program; returns only on failure (the exit code).
    pub fn main(args: ExecArgs) -> i32 {
        eprintln!("sandbox-exec is not implemented yet ({:?})", args.argv);
        127
    }
}

/// `campus sandbox check`: probe the host and print which isolation features work.
/// Exit code 0 only if the production sandbox is complete.
pub fn check_main() -> i32 {
    println!("sandbox check: not implemented yet");
    1
}
