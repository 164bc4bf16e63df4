//! The sandbox: how one run is isolated (cgroup, namespaces, rlimits, uid).
//!
//! INTERFACE CONTRACT (used by [`crate::execution`]): `Sandbox::new` probes
//! the host once, `Sandbox::prepare` creates the run's cgroup and returns the
//! command that starts `campus sandbox-exec …` (spawned with
//! [`spawn_on_terminal`] or [`spawn_with_pipes`]), which sets everything up
//! (mounts: the home tree read-write or read-only, read-only trees at
//! `/course/<name>`, a scratch tree; an optional result channel at fd 3) and
//! then execs the given argv. The caller owns the returned `RunCgroup` and
//! asks it for stats and to kill the tree.
//!
//! Modules: `cgroup` (v1/v2 run cgroups), `exec` (the re-exec helper),
//! `mounts` (the run's root filesystem), `probe` (startup probe), `fsown`
//! (workspace ownership), `seccomp` (the system-call filter and private
//! keyring), `watch` (no run outlives the server), `quota` (kernel disk
//! quotas of the per-student uids).

mod cgroup;
// clone3(CLONE_INTO_CGROUP): a raw system call; see the module's SAFETY comment.
#[allow(unsafe_code)]
mod clone3;
// fork, signal handlers, raw wait statuses, TIOCSCTTY: the helper is all OS calls.
#[allow(unsafe_code)]
pub mod exec;
// openat/fstatat/fchownat/readdir relative to directory fds (no nix "dir" feature).
#[allow(unsafe_code)]
mod fsown;
mod mounts;
// The landlock version query has no safe wrapper.
#[allow(unsafe_code)]
mod probe;
// keyctl(KEYCTL_JOIN_SESSION_KEYRING) has no safe wrapper.
#[allow(unsafe_code)]
mod seccomp;
// pidfd_open, ppoll and waitpid: the watch is raw OS calls.
#[allow(unsafe_code)]
mod watch;
// quotactl_fd has no safe wrapper.
#[allow(unsafe_code)]
mod quota;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub use cgroup::{CpuPriority, OrphanSweep, RunCgroup};
pub use quota::{storage_layout, DiskQuotaStatus, QuotaUsage, StorageLayout};
pub use watch::kill_descendants;

/// Default memory limit of a run, MiB (the one place the product default is written).
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// Default process/thread limit of a run.
pub const DEFAULT_PIDS: u64 = 50;
/// Default CPU-time limit of a run, seconds.
pub const DEFAULT_CPU_SECS: u64 = 30;
/// Default largest file a run may write, MiB.
pub const DEFAULT_FILE_SIZE_MIB: u64 = 10;
/// Default RLIMIT_NOFILE of a run.
pub const DEFAULT_OPEN_FILES: u64 = 256;
/// Default size of a run's /tmp (and /dev/shm), bytes.
pub const DEFAULT_TMP_BYTES: u64 = 16 << 20;
/// Where read-only trees are mounted inside the sandbox: `/course/<name>`.
pub const READ_ONLY_ROOT: &str = "/course";
/// Where the scratch tree is mounted inside the sandbox.
pub const SCRATCH_DIR: &str = "/scratch";
/// The descriptor number at which a program finds its result channel.
pub const RESULT_FD: i32 = 3;

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
    /// The workspace quota in bytes (the kernel's disk quota of the run's uid
    /// is derived from it, see [`Sandbox::disk_quota`]); 0: none.
    pub disk_bytes: u64,
    /// The workspace quota in files and directories; 0: none.
    pub disk_entries: u64,
}

impl Default for SandboxLimits {
    /// The product defaults: 128 MiB, 50 processes, 30 s CPU, 10 MiB files.
    fn default() -> Self {
        SandboxLimits {
            memory_bytes: DEFAULT_MEMORY_MIB << 20,
            pids: DEFAULT_PIDS,
            cpu_secs: DEFAULT_CPU_SECS,
            file_size_bytes: DEFAULT_FILE_SIZE_MIB << 20,
            open_files: DEFAULT_OPEN_FILES,
            tmp_bytes: DEFAULT_TMP_BYTES,
            cpu_quota: 1.0,
            disk_bytes: 150 << 20,
            disk_entries: 5000,
        }
    }
}

/// The uid (= gid) a user's programs run as and their workspace is owned by:
/// `base + user_id`. The one mapping, used by the sandbox and the file service
/// alike. `None` when there is none: a negative id, one past `u32`, a sum that
/// overflows, and the two uids that must never be handed out, 0 (root) and
/// `u32::MAX` (`(uid_t)-1`, which `chown` reads as "leave unchanged").
pub fn student_uid(base: u32, user_id: i64) -> Option<u32> {
    u32::try_from(user_id)
        .ok()
        .and_then(|id| base.checked_add(id))
        .filter(|uid| *uid != 0 && *uid != u32::MAX)
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
    /// Name of the cgroup under the server's own cgroup that holds `run-*` (default "campus").
    pub cgroup_group: String,
    /// Use the dev fallback (rlimits only) even if isolation works; refused in production.
    pub force_fallback: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            helper_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("campus")),
            production: false,
            uid_base: 200_000,
            cgroup_group: "campus".into(),
            force_fallback: false,
        }
    }
}

/// What one run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Run id (used for the cgroup name).
    pub run_id: String,
    /// Owner's user id (for the per-student uid).
    pub user_id: i64,
    /// Host path of the tree mounted at /home/student (the owner's workspace,
    /// or e.g. an immutable snapshot).
    pub workspace_dir: PathBuf,
    /// Mount /home/student read-only (the tree is then not chowned either).
    pub workspace_read_only: bool,
    /// Read-only trees: (host path, name), mounted at `/course/<name>`; the
    /// name is a slug (`[A-Za-z0-9._-]`, not starting with a dot).
    pub read_only_mounts: Vec<(PathBuf, String)>,
    /// A host directory mounted read-write at `/scratch` (chowned to the
    /// student's uid at its top only).
    pub scratch_dir: Option<PathBuf>,
    /// Working directory inside the sandbox (default /home/student).
    pub cwd: Option<String>,
    /// Give the program a result channel at fd [`RESULT_FD`] (see [`ResultPipe`]).
    pub result_channel: bool,
    /// Make the result channel a socket pair the server may also write to
    /// (a warm sandbox's command channel, see `runner::warm`).
    pub result_duplex: bool,
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
    /// Memory now, bytes.
    pub memory_bytes: u64,
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
    /// Whether the kernel limits the runs' workspace writes (None until
    /// [`Sandbox::probe_disk_quota`] ran).
    pub disk_quota: Option<DiskQuotaStatus>,
}

/// A prepared run: the helper command for the PTY and its cgroup.
#[derive(Debug)]
pub struct PreparedRun {
    /// `campus sandbox-exec …` with an absolute program path, a cleared
    /// environment (exactly the run's env) and cwd `/`; spawn it with
    /// [`spawn_on_terminal`] or [`spawn_with_pipes`].
    pub command: Command,
    /// The run's cgroup, if cgroups are in use.
    pub cgroup: Option<RunCgroup>,
    /// The result channel, when the spec asked for one.
    pub result: Option<ResultPipe>,
}

/// A pipe only the server reads and only the program can write: its write
/// end reaches the helper (and nothing else the server spawns, see
/// [`spawn_with_pipes`]), which moves it to fd [`RESULT_FD`] of the program
/// and closes its own copies. The program's children inherit it only if the
/// program lets them (e.g. Python's `subprocess` closes it by default); what
/// merely prints to stdout or stderr can never write here.
#[derive(Debug)]
pub struct ResultPipe {
    /// The server's end (close-on-exec).
    pub read: OwnedFd,
    /// The helper's end, handed over at spawn.
    write: OwnedFd,
}

/// Held around every helper spawn: while the result channel's write end is
/// inheritable (cleared close-on-exec for one spawn), no other helper may be
/// spawned, so no other run's helper can receive it.
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// Spawn a prepared helper command with the terminal `tty` (a PTY slave) as
/// its stdin, stdout and stderr, and the result channel as in
/// [`spawn_with_pipes`] (its read end is returned).
///
/// The command has no `pre_exec`, uid, gid, groups or process group and an
/// absolute program path, so std spawns it with `posix_spawn` (glibc:
/// `clone(CLONE_VM|CLONE_VFORK)`) instead of `fork()`ing the whole server;
/// the helper makes itself a session leader with `tty` as its controlling
/// terminal and closes every inherited descriptor above 2 before anything else.
/// The command is consumed: it holds copies of `tty` that must not outlive
/// the spawn (the reader would never see EOF).
pub fn spawn_on_terminal(
    command: Command,
    tty: OwnedFd,
    result: Option<ResultPipe>,
) -> std::io::Result<(Child, Option<OwnedFd>)> {
    let (stdin, stdout) = (tty.try_clone()?, tty.try_clone()?);
    spawn_with_pipes(command, stdin, stdout, tty, result)
}

/// Spawn a prepared helper command on pipes (batch work; or three handles of
/// one terminal, see [`spawn_on_terminal`]): `stdin`, `stdout` and `stderr` become the helper's (and so the program's) fds 0–2, and the
/// result channel's write end, if any, is inherited by this one spawn only
/// (it is close-on-exec everywhere else) and closed here afterwards; the
/// channel's read end is returned. posix_spawn as in [`spawn_on_terminal`].
pub fn spawn_with_pipes(
    mut command: Command,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    result: Option<ResultPipe>,
) -> std::io::Result<(Child, Option<OwnedFd>)> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    command
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    let _guard = SPAWN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(ResultPipe { read, write }) = result else {
        return Ok((command.spawn()?, None));
    };
    fcntl(write.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))?;
    let child = command.spawn();
    // The child has its copy (or the spawn failed); ours closes here, or the
    // server would never see the channel's end.
    drop(write);
    Ok((child?, Some(read)))
}

impl ResultPipe {
    fn new() -> std::io::Result<ResultPipe> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(ResultPipe { read, write })
    }

    /// A stream socket pair: the program reads what the server writes on
    /// its end, and the server reads the program's report as from a pipe.
    fn duplex() -> std::io::Result<ResultPipe> {
        // std creates both ends close-on-exec.
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        Ok(ResultPipe {
            read: read.into(),
            write: write.into(),
        })
    }
}

/// Is `name` acceptable as a read-only tree's name (`/course/<name>`): one
/// or two components (`cs101`, or `cs101/week1` for one section of a
/// course), each 1-64 of `[A-Za-z0-9._-]`, not starting with a dot — then,
/// for one file or folder inside a section, a path the workspace rules
/// accept (`cs101/week1/data/grades.csv`)?
pub fn valid_mount_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let mut parts = name.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, _) => part(a),
        (Some(a), Some(b), None) => part(a) && part(b),
        (Some(a), Some(b), Some(rest)) => {
            part(a) && part(b) && workspace_fs::validate_path(rest).is_ok_and(|c| !c.is_empty())
        }
        _ => false,
    }
}

/// The helper as a path std does not look up in PATH (a PATH lookup would make
/// std fall back from posix_spawn to fork): a bare name is resolved in the
/// server's PATH, a relative path against the current directory.
fn helper_program(exe: &Path) -> PathBuf {
    if exe.is_absolute() {
        return exe.to_path_buf();
    }
    if exe.components().count() == 1 {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(exe))
                .find(|p| p.is_absolute() && p.is_file())
        });
        if let Some(p) = found {
            return p;
        }
    }
    std::path::absolute(exe).unwrap_or_else(|_| exe.to_path_buf())
}

/// How runs are isolated on this host.
#[derive(Debug)]
enum Mode {
    /// Full isolation: cgroups + namespaces + uid.
    Isolated(cgroup::Layout),
    /// Dev fallback: rlimits, cleared env and cwd only.
    Fallback,
}

/// The host's sandbox.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    report: SandboxReport,
    mode: Mode,
    /// Run cgroups whose removal failed, retried by [`Sandbox::sweep_orphans`].
    orphans: Arc<cgroup::Orphans>,
    /// The workspaces' filesystem's user quotas, when enforced.
    disk_quota: Option<quota::DiskQuota>,
}

impl Sandbox {
    /// Probe the host; in production, fail unless isolation is complete.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        if config.force_fallback {
            if config.production {
                return Err(SandboxError::Incomplete(
                    "the rlimits-only fallback is not allowed in production".into(),
                ));
            }
            let report = SandboxReport {
                complete: false,
                features: vec![(
                    "isolation".into(),
                    false,
                    "dev fallback forced: rlimits only".into(),
                )],
                disk_quota: None,
            };
            warn_fallback(&report);
            return Ok(Sandbox {
                config,
                report,
                mode: Mode::Fallback,
                orphans: Arc::default(),
                disk_quota: None,
            });
        }
        let probe::Probe { report, layout } = probe::probe(&config);
        let mode = match layout {
            Some(layout) if report.complete => Mode::Isolated(layout),
            _ if config.production => {
                return Err(SandboxError::Incomplete(format!(
                    "production mode needs the full sandbox; missing: {} (run `campus sandbox check`)",
                    missing(&report)
                )));
            }
            _ => {
                warn_fallback(&report);
                Mode::Fallback
            }
        };
        if matches!(mode, Mode::Isolated(_)) {
            tracing::info!("sandbox: full isolation (cgroups, namespaces, per-student uids)");
        }
        Ok(Sandbox {
            config,
            report,
            mode,
            orphans: Arc::default(),
            disk_quota: None,
        })
    }

    /// Find out whether the filesystem holding `workspaces_root` enforces user
    /// quotas (call once, before sharing the sandbox); the result is in
    /// [`SandboxReport::disk_quota`] and a feature line. Without isolation runs
    /// keep the server's uid, so no quota can tell them apart: not enforced.
    pub fn probe_disk_quota(&mut self, workspaces_root: &Path) -> &DiskQuotaStatus {
        let (status, quota) = if self.isolated() {
            quota::probe(workspaces_root)
        } else {
            let status = DiskQuotaStatus {
                enforced: false,
                filesystem: String::new(),
                detail: "not enforced: runs are not isolated (no per-student uid)".into(),
            };
            (status, None)
        };
        self.disk_quota = quota;
        // Not part of `complete`: the server decides (production refuses
        // unless waived; see `server::check_storage`).
        self.report.features.push((
            "disk quota (workspaces)".into(),
            status.enforced,
            status.detail.clone(),
        ));
        self.report.disk_quota.insert(status)
    }

    /// True when the kernel limits every run's workspace writes.
    pub fn disk_quota_enforced(&self) -> bool {
        self.disk_quota.is_some()
    }

    /// The kernel quota usage of `user_id`'s runs, when quotas are enforced
    /// (one system call; call it off the async workers).
    pub fn disk_usage(&self, user_id: i64) -> Option<std::io::Result<QuotaUsage>> {
        let q = self.disk_quota.as_ref()?;
        Some(
            self.student_uid(user_id)
                .map_err(|e| match e {
                    SandboxError::Io(e) => e,
                    other => std::io::Error::other(other.to_string()),
                })
                .and_then(|uid| q.usage(uid)),
        )
    }

    /// True when `user_id`'s workspace is at its kernel quota: the next write
    /// or file creation of a run fails with EDQUOT.
    pub fn disk_full(&self, user_id: i64) -> bool {
        let margin = self.disk_quota.as_ref().map_or(0, |q| q.full_margin());
        matches!(self.disk_usage(user_id), Some(Ok(u)) if u.at_limit(margin))
    }

    /// What the probe found.
    pub fn report(&self) -> &SandboxReport {
        &self.report
    }

    /// Settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// True when runs get full isolation (false = dev fallback).
    pub fn isolated(&self) -> bool {
        matches!(self.mode, Mode::Isolated(_))
    }

    /// The per-student uid (= gid) of a user (see [`student_uid`]).
    pub fn student_uid(&self, user_id: i64) -> Result<u32, SandboxError> {
        student_uid(self.config.uid_base, user_id)
            .ok_or_else(|| invalid(format!("no sandbox uid for user id {user_id}")))
    }

    /// Give the student's uid its workspace (blocking: walks the tree): the
    /// program runs as that uid and must be able to write what the server
    /// saved. `prepare` does it; a warm sandbox does it again when handed
    /// its run. A no-op unless the server runs as root.
    pub fn own_workspace(&self, user_id: i64, dir: &Path) -> Result<(), SandboxError> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(());
        }
        let uid = self.student_uid(user_id)?;
        fsown::chown_tree(dir, uid, uid)?;
        Ok(())
    }

    /// Create the run's cgroup and build its command.
    pub fn prepare(&self, spec: &RunSpec) -> Result<PreparedRun, SandboxError> {
        if spec.argv.is_empty() {
            return Err(invalid("empty argv".into()));
        }
        let uid = self.student_uid(spec.user_id)?;
        for (_, name) in &spec.read_only_mounts {
            if !valid_mount_name(name) {
                return Err(invalid(format!("invalid read-only mount name {name:?}")));
            }
        }
        let isolated = matches!(self.mode, Mode::Isolated(_));
        if !isolated
            && (spec.workspace_read_only
                || !spec.read_only_mounts.is_empty()
                || spec.scratch_dir.is_some())
        {
            // Without a mount namespace nothing could be mounted read-only.
            return Err(SandboxError::Incomplete(
                "read-only and scratch mounts need the full sandbox".into(),
            ));
        }
        let root = nix::unistd::Uid::effective().is_root();
        if !spec.workspace_read_only {
            self.own_workspace(spec.user_id, &spec.workspace_dir)?;
        }
        if let (Some(q), true) = (&self.disk_quota, spec.limits.disk_bytes > 0) {
            // Every run sets them: a changed quota applies from the next run on.
            // No run starts without its limits.
            q.set_limits(uid, spec.limits.disk_bytes, spec.limits.disk_entries)
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("setting the disk quota of uid {uid}: {e}"),
                    )
                })?;
        }
        if let (true, Some(scratch)) = (root, &spec.scratch_dir) {
            std::os::unix::fs::chown(scratch, Some(uid), Some(uid))?;
        }
        let mut cmd = Command::new(helper_program(&self.config.helper_exe));
        cmd.arg("sandbox-exec");
        // The helper kills the run if this process dies (even by kill -9).
        cmd.arg("--server-pid");
        cmd.arg(std::process::id().to_string());
        let cgroup = match &self.mode {
            Mode::Isolated(layout) => {
                let cg = layout
                    .create_run(&spec.run_id, &spec.limits)?
                    .with_orphans(self.orphans.clone());
                for f in cg.procs_files() {
                    cmd.arg("--cgroup-procs");
                    cmd.arg(f);
                }
                Some(cg)
            }
            Mode::Fallback => {
                cmd.arg("--no-isolation");
                None
            }
        };
        let l = &spec.limits;
        for (flag, value) in [
            ("--uid", uid.to_string()),
            ("--gid", uid.to_string()),
            ("--cpu-secs", l.cpu_secs.to_string()),
            ("--file-size", l.file_size_bytes.to_string()),
            ("--open-files", l.open_files.to_string()),
            ("--tmp-bytes", l.tmp_bytes.to_string()),
        ] {
            cmd.arg(flag);
            cmd.arg(value);
        }
        cmd.arg("--workspace");
        cmd.arg(&spec.workspace_dir);
        if spec.workspace_read_only {
            cmd.arg("--home-ro");
        }
        for (host, name) in &spec.read_only_mounts {
            cmd.arg("--ro");
            cmd.arg(format!("{}:{name}", host.display()));
        }
        if let Some(scratch) = &spec.scratch_dir {
            cmd.arg("--scratch");
            cmd.arg(scratch);
        }
        if let Some(cwd) = &spec.cwd {
            cmd.arg("--cwd");
            cmd.arg(cwd);
        }
        let result = if spec.result_channel {
            let pipe = if spec.result_duplex {
                ResultPipe::duplex()?
            } else {
                ResultPipe::new()?
            };
            cmd.arg("--result-fd");
            cmd.arg(pipe.write.as_raw_fd().to_string());
            Some(pipe)
        } else {
            None
        };
        cmd.arg("--");
        cmd.args(&spec.argv);
        // Nothing of the server's environment (secrets!) may reach the program.
        cmd.env_clear();
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        cmd.current_dir("/");
        Ok(PreparedRun {
            command: cmd,
            cgroup,
            result,
        })
    }

    /// Kill and remove run cgroups left by a previous server (crash); returns how many.
    pub fn cleanup_stale(&self) -> usize {
        match &self.mode {
            Mode::Isolated(layout) => layout.cleanup_stale(),
            Mode::Fallback => 0,
        }
    }

    /// How many run cgroups could not be removed when their run ended and wait for a retry.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// Retry removing orphaned run cgroups (blocking: call it off the async workers).
    pub fn sweep_orphans(&self) -> OrphanSweep {
        self.orphans.sweep()
    }
}

fn invalid(msg: String) -> SandboxError {
    SandboxError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg))
}

/// Names of the required features that do not work.
fn missing(report: &SandboxReport) -> String {
    let names: Vec<&str> = report
        .features
        .iter()
        .filter(|(n, ok, _)| !ok && !n.contains("optional"))
        .map(|(n, _, _)| n.as_str())
        .collect();
    names.join(", ")
}

fn warn_fallback(report: &SandboxReport) {
    tracing::warn!(
        missing = %missing(report),
        "!!! SANDBOX DISABLED: student programs run with rlimits only — NO namespaces, NO cgroups. \
         Development only; never expose this server to students. !!!"
    );
}

/// The report as a table: feature, ok/missing, detail.
pub fn format_report(report: &SandboxReport) -> String {
    let width = report
        .features
        .iter()
        .map(|(n, _, _)| n.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, ok, detail) in &report.features {
        let state = if *ok { "ok" } else { "MISSING" };
        out.push_str(&format!("{name:<width$}  {state:<7}  {detail}\n"));
    }
    out.push_str(if report.complete {
        "isolation: complete\n"
    } else {
        "isolation: INCOMPLETE (production mode will refuse to start)\n"
    });
    match &report.disk_quota {
        Some(q) if q.enforced => out.push_str("disk quota: enforced by the kernel\n"),
        Some(_) => out.push_str(
            "disk quota: NOT ENFORCED (runs are stopped by a usage scan instead; production \
             mode refuses to start unless CAMPUS_ALLOW_NO_DISK_QUOTA=true)\n",
        ),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::student_uid;

    #[test]
    fn student_uid_edge_cases() {
        assert_eq!(student_uid(200_000, 7), Some(200_007));
        // Id 0 (the sandbox probe's) gets the base itself, unless that is root.
        assert_eq!(student_uid(200_000, 0), Some(200_000));
        assert_eq!(student_uid(0, 0), None, "root");
        assert_eq!(student_uid(0, 1), Some(1));
        // Negative ids never wrap around to a uid.
        assert_eq!(student_uid(200_000, -1), None);
        assert_eq!(student_uid(200_000, i64::MIN), None);
        // Beyond u32, and sums that overflow, are refused rather than saturated.
        assert_eq!(student_uid(0, i64::from(u32::MAX) + 1), None);
        assert_eq!(student_uid(200_000, i64::from(u32::MAX - 100)), None);
        assert_eq!(student_uid(u32::MAX, 1), None);
        // (uid_t)-1 means "unchanged" to chown: never a student's uid.
        assert_eq!(student_uid(u32::MAX, 0), None);
        assert_eq!(student_uid(0, i64::from(u32::MAX)), None);
        assert_eq!(student_uid(1, i64::from(u32::MAX - 1)), None);
        assert_eq!(student_uid(1, i64::from(u32::MAX - 2)), Some(u32::MAX - 1));
    }
}
