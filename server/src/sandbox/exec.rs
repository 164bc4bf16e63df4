//! `campus sandbox-exec`: the small re-exec helper between the PTY and the
//! student's program. It runs without a tokio runtime (it forks).
//!
//! Process tree of one isolated run:
//!
//! ```text
//! A  sandbox-exec (PTY child, in the run's cgroup    waits for B, forwards signals,
//! │  on v1; on v2 B is born in it, see clone3.rs)
//! │                                                  ends like the program did; kills B
//! │                                                  if the server dies (see `watch`)
//! └─ B  PID 1 of a new pid/mount/net/ipc/uts ns      builds the root, brings up lo, reaps zombies,
//!    │                                               forwards signals, reports C's status
//!    └─ C  the program (setsid, ctty, rlimits,       exec argv with exactly the given env
//!          no_new_privs, per-student uid,
//!          private keyring, syscall filter)
//! ```
//!
//! The dev fallback (`--no-isolation`) has A and C only: A stays the
//! program's parent and a subreaper, so it can kill what is left when the
//! program ends or the server dies.
//!
//! Exit status seen by the runner: A ends exactly like the program — the same
//! exit code, or killed by the same signal (A re-raises it on itself, with
//! RLIMIT_CORE 0). Set-up failures exit with [`EXIT_SETUP_FAILED`] (message on
//! stderr, i.e. in the terminal); an argv that cannot be executed exits with
//! [`EXIT_EXEC_FAILED`]. A signal that does not kill A is reported as
//! 128 + signal number.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::{unshare, CloneFlags};
use nix::sys::prctl;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, ForkResult, Gid, Uid};

use super::clone3;
use super::mounts::{self, RootPlan};
use super::seccomp;
use super::watch::{self, Waited};

/// Exit code: the sandbox could not be set up (the program never started).
pub const EXIT_SETUP_FAILED: i32 = 125;
/// Exit code: the program could not be executed (not found / not executable).
pub const EXIT_EXEC_FAILED: i32 = 127;
/// Hostname inside the sandbox.
pub const HOSTNAME: &str = "campus";

/// Arguments of `campus sandbox-exec` (built by [`super::Sandbox::prepare`], not by people).
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Host path of the workspace to mount at /home/student.
    #[arg(long)]
    pub workspace: PathBuf,
    /// cgroup.procs files to write our pid into before anything else (one per v1 hierarchy).
    #[arg(long = "cgroup-procs")]
    pub cgroup_procs: Vec<PathBuf>,
    /// The student's uid.
    #[arg(long, default_value_t = 65534)]
    pub uid: u32,
    /// The student's gid.
    #[arg(long, default_value_t = 65534)]
    pub gid: u32,
    /// Mount the workspace read-only at /home/student.
    #[arg(long)]
    pub home_ro: bool,
    /// Read-only material, HOST:NAME (mounted at /course/NAME).
    #[arg(long = "ro")]
    pub read_only: Vec<String>,
    /// A host directory to mount read-write at /scratch.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Working directory of the program inside the sandbox (default /home/student).
    #[arg(long)]
    pub cwd: Option<String>,
    /// An inherited descriptor (the result channel) to hand to the program as fd 3.
    #[arg(long)]
    pub result_fd: Option<i32>,
    /// RLIMIT_CPU soft limit, seconds (hard = soft + 1).
    #[arg(long, default_value_t = super::DEFAULT_CPU_SECS)]
    pub cpu_secs: u64,
    /// RLIMIT_FSIZE, bytes.
    #[arg(long, default_value_t = super::DEFAULT_FILE_SIZE_MIB << 20)]
    pub file_size: u64,
    /// RLIMIT_NOFILE.
    #[arg(long, default_value_t = super::DEFAULT_OPEN_FILES)]
    pub open_files: u64,
    /// Size of /tmp (and /dev/shm), bytes.
    #[arg(long, default_value_t = super::DEFAULT_TMP_BYTES)]
    pub tmp_bytes: u64,
    /// Dev fallback: rlimits, cleared env and cwd only; no namespaces.
    #[arg(long)]
    pub no_isolation: bool,
    /// The process whose death ends the run (the server passes its pid;
    /// default: our parent at start).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Probe which isolation features work, print `name<TAB>ok|missing<TAB>detail` lines.
    #[arg(long)]
    pub probe: bool,
    /// With `--probe`: a loopback address (a port the prober listens on) that
    /// must be unreachable from inside.
    #[arg(long, requires = "probe")]
    pub probe_connect: Option<std::net::SocketAddr>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required_unless_present = "probe")]
    pub argv: Vec<String>,
}

/// Set up the sandbox and exec the program; returns only on failure (the exit code).
pub fn main(args: ExecArgs) -> i32 {
    // The server spawns us with posix_spawn (no pre_exec, no fork of the
    // server), so what used to run between its fork and exec happens here.
    if let Err(e) = start_session(args.result_fd) {
        eprintln!("campus sandbox-exec: {e}");
        return EXIT_SETUP_FAILED;
    }
    if args.cwd.as_deref().is_some_and(|c| !c.starts_with('/')) {
        eprintln!("campus sandbox-exec: the working directory must be an absolute path");
        return EXIT_SETUP_FAILED;
    }
    // We run with `/` as the working directory: a relative path would name another place.
    if !args.workspace.is_absolute() {
        eprintln!(
            "campus sandbox-exec: the workspace {} is not an absolute path",
            args.workspace.display()
        );
        return EXIT_SETUP_FAILED;
    }
    let mut parent = match watch::Parent::open(args.server_pid) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("campus sandbox-exec: {e}");
            return EXIT_SETUP_FAILED;
        }
    };
    let result = if args.probe {
        probe(&args, &mut parent)
    } else if args.no_isolation {
        fallback(&args, &mut parent)
    } else {
        isolated(&args, true, &mut parent)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("campus sandbox-exec: {e}");
            EXIT_SETUP_FAILED
        }
    }
}

/// First thing in the helper: drop inherited descriptors, reset signals, and
/// become a session leader whose controlling terminal is our stdin (the PTY).
///
/// * Every descriptor above 2 is closed: the server's are close-on-exec, but
///   this also covers anything a library opened without the flag, so no
///   socket, database file or other run's PTY can reach the student.
/// * SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGALRM back to default and an
///   empty signal mask (posix_spawn in std inherits the spawning thread's
///   mask; ignored dispositions survive exec).
/// * `setsid` + `TIOCSCTTY`, so the terminal's foreground group is ours and
///   Ctrl-C / SIGWINCH / hang-up reach the run (not the server).
fn start_session(result_fd: Option<i32>) -> Result<(), String> {
    close_inherited_fds(result_fd)?;
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGALRM,
    ] {
        // SAFETY: installing SIG_DFL is always sound.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // setsid fails only for a process-group leader, which the server's spawn
    // never makes; by hand (a shell job) we keep the shell's terminal and C
    // still takes it over, so that is not an error.
    if nix::unistd::setsid().is_ok() {
        // SAFETY: isatty/ioctl on fd 0 with an integer argument.
        let failed =
            unsafe { libc::isatty(0) == 1 && libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 };
        if failed {
            return Err(format!(
                "controlling terminal: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// close_range(first, ~0): one syscall; falls back to closing what
/// /proc/self/fd lists. With a result channel, it first moves to fd 3
/// ([`super::RESULT_FD`]) and survives (everything above 3 is closed).
fn close_inherited_fds(result_fd: Option<i32>) -> Result<(), String> {
    let first = match result_fd {
        Some(fd) if fd < 0 => return Err(format!("bad --result-fd {fd}")),
        Some(fd) => {
            if fd != super::RESULT_FD {
                // SAFETY: dup2/close on integers; no Rust object owns either descriptor.
                let moved = unsafe { libc::dup2(fd, super::RESULT_FD) };
                if moved < 0 {
                    return Err(format!(
                        "result channel: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
            super::RESULT_FD + 1
        }
        None => 3,
    };
    // SAFETY: plain syscall; no Rust object owns a descriptor above 2 yet.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
    if r == 0 {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd >= first)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        // SAFETY: as above; the directory handle itself is already closed (EBADF is harmless).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// A and B hand the result channel on to their child and close their own
/// copy, so the server sees its end when the program (and whatever it
/// passed the channel to) is done.
fn close_result_fd(args: &ExecArgs) {
    if args.result_fd.is_some() {
        // SAFETY: closing an integer descriptor we own (moved there at start).
        unsafe { libc::close(super::RESULT_FD) };
    }
}

/// The program to exec, prepared before forking.
struct Program {
    argv: Vec<CString>,
    env: Vec<CString>,
    path: Vec<u8>,
}

impl Program {
    fn new(args: &ExecArgs) -> Result<Program, String> {
        let cstr = |b: Vec<u8>| CString::new(b).map_err(|_| "NUL byte in argv/env".to_string());
        let argv = args
            .argv
            .iter()
            .map(|a| cstr(a.clone().into_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        if argv.is_empty() {
            return Err("empty argv".into());
        }
        let mut path = b"/usr/local/bin:/usr/bin:/bin".to_vec();
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os() {
            if k == "PATH" {
                path = v.as_bytes().to_vec();
            }
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            env.push(cstr(kv.into_vec())?);
        }
        Ok(Program { argv, env, path })
    }

    /// execve argv[0] (searched in the program's PATH when it has no '/').
    /// Returns only on failure.
    fn exec(&self) -> String {
        let name = self.argv[0].as_bytes();
        let candidates: Vec<Vec<u8>> = if name.contains(&b'/') {
            vec![name.to_vec()]
        } else {
            self.path
                .split(|&b| b == b':')
                .filter(|d| !d.is_empty())
                .map(|d| [d, b"/", name].concat())
                .collect()
        };
        let mut last = nix::errno::Errno::ENOENT;
        for c in candidates {
            let Ok(c) = CString::new(c) else { continue };
            let Err(e) = nix::unistd::execve(&c, &self.argv, &self.env);
            last = e;
        }
        format!("cannot execute {:?}: {last}", self.argv[0])
    }
}

fn rlimit(res: Resource, soft: u64, hard: u64) -> Result<(), String> {
    setrlimit(res, soft, hard).map_err(|e| format!("setrlimit {res:?}: {e}"))
}

/// RLIMIT_CPU/FSIZE/NOFILE/CORE for the program (inherited by its children).
fn apply_rlimits(args: &ExecArgs) -> Result<(), String> {
    rlimit(Resource::RLIMIT_CPU, args.cpu_secs, args.cpu_secs + 1)?;
    rlimit(Resource::RLIMIT_FSIZE, args.file_size, args.file_size)?;
    rlimit(Resource::RLIMIT_NOFILE, args.open_files, args.open_files)?;
    rlimit(Resource::RLIMIT_CORE, 0, 0)
}

/// Join the run's cgroup(s) *before* forking anything: every descendant is born inside.
fn join_cgroups(files: &[PathBuf]) -> Result<(), String> {
    let pid = std::process::id().to_string();
    for f in files {
        std::fs::write(f, &pid).map_err(|e| format!("join cgroup {}: {e}", f.display()))?;
    }
    Ok(())
}

/// Fork B into a new pid namespace: with `clone3(CLONE_INTO_CGROUP)` into the
/// run's v2 cgroup when `born_into` is that cgroup (and the kernel has it),
/// else join the cgroup(s), unshare and fork.
fn fork_pid_namespace(
    born_into: Option<std::os::fd::OwnedFd>,
    cgroup_procs: &[PathBuf],
) -> Result<ForkResult, String> {
    if let Some(cgroup) = born_into {
        match clone3::fork_into(&cgroup, libc::CLONE_NEWPID) {
            Ok(clone3::Forked::Parent(pid)) => {
                return Ok(ForkResult::Parent {
                    child: nix::unistd::Pid::from_raw(pid),
                })
            }
            Ok(clone3::Forked::Child) => return Ok(ForkResult::Child),
            // Kernel before 5.7 (or clone3 refused): the move, as on v1.
            Err(_) => join_cgroups(cgroup_procs)?,
        }
    }
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid namespace: {e}"))?;
    // SAFETY: sandbox-exec is single-threaded (no runtime), so fork is sound.
    unsafe { fork() }.map_err(|e| format!("fork: {e}"))
}

/// setgroups([]), gid, uid — in that order (uid last, or we lose the right to change gid).
fn drop_privileges(uid: u32, gid: u32) -> Result<(), String> {
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|e| format!("setgid {gid}: {e}"))?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| format!("setuid {uid}: {e}"))
}

/// How long the fallback helper keeps killing what the program left behind.
const FALLBACK_KILL_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Dev fallback: no namespaces, no cgroup — rlimits, no_new_privs, the
/// syscall filter, cwd = workspace, and (when we happen to be root) still the
/// student's uid. A stays the program's parent and becomes a subreaper, so
/// every process the program starts (even a setsid'd, double-forked one)
/// stays in A's tree; when the program ends or the server dies, A kills that
/// tree, since there is no pid namespace to take it down.
fn fallback(args: &ExecArgs, parent: &mut watch::Parent) -> Result<i32, String> {
    let prog = Program::new(args)?;
    join_cgroups(&args.cgroup_procs)?;
    rlimit(Resource::RLIMIT_CORE, 0, 0)?;
    prctl::set_child_subreaper(true).map_err(|e| format!("subreaper: {e}"))?;
    let helper = nix::unistd::getpid();
    // SAFETY: sandbox-exec is single-threaded (no runtime), so fork is sound.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { child } => {
            close_result_fd(args);
            install_forwarding(child.as_raw());
            let waited = watch::wait_child(child.as_raw(), parent);
            if waited == Waited::ParentGone {
                let _ = signal::kill(child, Signal::SIGKILL);
            }
            watch::kill_descendants(helper.as_raw(), FALLBACK_KILL_LIMIT, true);
            Ok(match waited {
                Waited::Exited(status) => end_like(status),
                Waited::ParentGone => 128 + libc::SIGKILL,
            })
        }
        ForkResult::Child => {
            parent.close_in_child();
            let code = match fallback_program(args, &prog, helper) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("campus sandbox-exec: {e}");
                    EXIT_SETUP_FAILED
                }
            };
            flush_and_exit(code)
        }
    }
}

/// C of the fallback. Returns only on failure.
fn fallback_program(
    args: &ExecArgs,
    prog: &Program,
    helper: nix::unistd::Pid,
) -> Result<i32, String> {
    // Our own process group in the terminal's foreground, so Ctrl-C and
    // SIGWINCH reach the program, not A (without privileges we cannot take
    // the terminal's session over as the isolated C does). SIGTTOU is
    // ignored for the tcsetpgrp from the background; reset_signals restores it.
    nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))
        .map_err(|e| format!("setpgid: {e}"))?;
    // SAFETY: SIG_IGN is always sound; isatty/tcsetpgrp on fd 0 take integers.
    unsafe {
        let _ = signal::signal(Signal::SIGTTOU, SigHandler::SigIgn);
        if libc::isatty(0) == 1 && libc::tcsetpgrp(0, libc::getpid()) == -1 {
            return Err(format!(
                "foreground process group: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    apply_rlimits(args)?;
    prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    if Uid::effective().is_root() {
        drop_privileges(args.uid, args.gid)?;
    }
    // After the uid change (which clears it): die with A, then check A is still there.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    if nix::unistd::getppid() != helper {
        return Ok(EXIT_SETUP_FAILED);
    }
    std::env::set_current_dir(&args.workspace)
        .map_err(|e| format!("chdir {}: {e}", args.workspace.display()))?;
    seccomp::join_private_keyring()?;
    // The Rust runtime ignores SIGPIPE in the helper: the program gets defaults.
    reset_signals();
    seccomp::install()?;
    eprintln!("campus sandbox-exec: {}", prog.exec());
    Ok(EXIT_EXEC_FAILED)
}

/// The pid signal handlers forward to (0 = none yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Signals A and B pass on to their child (Ctrl-C reaches C directly via the tty).
const FORWARDED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn install_forwarding(to: libc::pid_t) {
    FORWARD_TO.store(to, Ordering::Relaxed);
    let action = signal::SigAction::new(
        SigHandler::Handler(forward),
        signal::SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only calls kill(2) and reads an atomic.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

/// Back to default dispositions and an empty mask (ignored signals survive exec).
fn reset_signals() {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL is always sound.
            let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
        }
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// waitpid, retrying on EINTR; returns the raw wait status.
fn wait_raw(pid: libc::pid_t) -> Option<(libc::pid_t, libc::c_int)> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            return Some((r, status));
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return None;
        }
    }
}

fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// Full isolation. With `run_program == false` (probe) C reports instead of exec'ing.
fn isolated(args: &ExecArgs, run_program: bool, parent: &mut watch::Parent) -> Result<i32, String> {
    let prog = if run_program {
        Some(Program::new(args)?)
    } else {
        None
    };
    let read_only = parse_read_only(&args.read_only)?;
    // 1. cgroup first, so the namespaces' processes are all accounted and
    //    killable: on cgroup v2 B is born in it (A stays outside, in the
    //    server's cgroup), elsewhere A joins it and B inherits it.
    let born_into = clone3::v2_target(&args.cgroup_procs);
    if born_into.is_none() {
        join_cgroups(&args.cgroup_procs)?;
    }
    // A re-raises the program's fatal signal on itself: never dump core doing so.
    rlimit(Resource::RLIMIT_CORE, 0, 0)?;
    // B → A: C's raw wait status. A → B/C: "A is alive" (EOF = A died).
    let (status_r, status_w) = pipe()?;
    let (alive_r, alive_w) = pipe()?;
    // 2. A new pid namespace for our next child (B = its PID 1); A itself stays
    //    in the host's namespaces.
    match fork_pid_namespace(born_into, &args.cgroup_procs)? {
        ForkResult::Parent { child } => {
            close_result_fd(args);
            drop((status_w, alive_r));
            install_forwarding(child.as_raw());
            let b = match watch::wait_child(child.as_raw(), parent) {
                Waited::Exited(status) => status,
                Waited::ParentGone => {
                    // Nobody will read, limit or stop this run any more. B is
                    // PID 1 of the run's pid namespace: killing it kills every
                    // process of the run, and its reaping waits for them all.
                    let _ = signal::kill(child, Signal::SIGKILL);
                    let _ = wait_raw(child.as_raw());
                    return Ok(128 + libc::SIGKILL);
                }
            };
            let mut buf = [0u8; 4];
            let mut f = std::fs::File::from(status_r);
            let status = match std::io::Read::read_exact(&mut f, &mut buf) {
                Ok(()) => libc::c_int::from_ne_bytes(buf),
                // B died without reporting (killed): end like B did.
                Err(_) => b,
            };
            drop(alive_w);
            Ok(end_like(status))
        }
        ForkResult::Child => {
            parent.close_in_child();
            drop((status_r, alive_w));
            let code = match reaper(args, prog.as_ref(), &read_only, status_w, &alive_r) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("campus sandbox-exec: {e}");
                    EXIT_SETUP_FAILED
                }
            };
            flush_and_exit(code)
        }
    }
}

fn flush_and_exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit never returns; we skip atexit handlers inherited from the parent.
    unsafe { libc::_exit(code) }
}

/// A: turn C's wait status into our own ending.
fn end_like(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        return libc::WEXITSTATUS(status);
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        if let Ok(s) = Signal::try_from(sig) {
            // SAFETY: SIG_DFL is always sound; raise then kills us with the same signal.
            let _ = unsafe { signal::signal(s, SigHandler::SigDfl) };
            let mut set = SigSet::empty();
            set.add(s);
            let _ = signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
            let _ = signal::raise(s);
        }
        return 128 + sig;
    }
    EXIT_SETUP_FAILED
}

/// EOF on the alive pipe means A has died.
fn parent_gone(alive_r: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: alive_r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r != 0
}

/// B: PID 1 of the new pid namespace.
fn reaper(
    args: &ExecArgs,
    prog: Option<&Program>,
    read_only: &[(PathBuf, String)],
    status_w: std::os::fd::OwnedFd,
    alive_r: &std::os::fd::OwnedFd,
) -> Result<i32, String> {
    // If A dies, B dies, and with PID 1 the whole namespace dies.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    if parent_gone(alive_r) {
        return Ok(EXIT_SETUP_FAILED);
    }
    // 3. B's own mount, network, ipc, uts and cgroup namespaces (the program
    //    inherits them). A put us in the run's cgroup before forking, so that
    //    cgroup (in every v1 hierarchy: the ones not joined are the server's)
    //    becomes the namespace's root: /proc/self/cgroup shows `/` paths only.
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWCGROUP,
    )
    .map_err(|e| format!("unshare namespaces: {e}"))?;
    loopback_up()?;
    mounts::enter_new_root(&RootPlan {
        workspace: &args.workspace,
        workspace_read_only: args.home_ro,
        read_only,
        scratch: args.scratch.as_deref(),
        tmp_bytes: args.tmp_bytes,
        uid: args.uid,
        gid: args.gid,
        program: args.argv.first().map(Path::new),
    })?;
    nix::unistd::sethostname(HOSTNAME).map_err(|e| format!("sethostname: {e}"))?;
    // SAFETY: still single-threaded.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { child } => {
            close_result_fd(args);
            install_forwarding(child.as_raw());
            // Reap everything (orphans are re-parented to us) until the program ends;
            // when we exit, the kernel kills whatever is left in the namespace.
            loop {
                match wait_raw(-1) {
                    Some((pid, status)) if pid == child.as_raw() => {
                        let mut f = std::fs::File::from(status_w);
                        let _ = f.write_all(&status.to_ne_bytes());
                        return Ok(0);
                    }
                    Some(_) => continue,
                    None => return Ok(EXIT_SETUP_FAILED),
                }
            }
        }
        ForkResult::Child => {
            drop(status_w);
            let code = match program(args, prog) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("campus sandbox-exec: {e}");
                    EXIT_SETUP_FAILED
                }
            };
            flush_and_exit(code)
        }
    }
}

/// Bring up `lo` in the run's new network namespace: programs may talk to
/// themselves over 127.0.0.1 / ::1 (a socket exercise's server and client),
/// while the namespace has no other interface, so nothing outside is reachable.
fn loopback_up() -> Result<(), String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let err = |what: &str| format!("loopback {what}: {}", std::io::Error::last_os_error());
    // SAFETY: socket(2) with integer arguments; the new descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("socket"));
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is a valid value (name and union are plain data).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOC[GS]IFFLAGS read/write the ifreq we pass, which outlives the calls.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(err("flags"));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(err("up"));
        }
    }
    Ok(())
}

/// C: the program's process. Returns only on failure (or after probing).
fn program(args: &ExecArgs, prog: Option<&Program>) -> Result<i32, String> {
    reset_signals();
    // Own session with the PTY as controlling terminal, so Ctrl-C (SIGINT to the
    // foreground process group) reaches the program. TIOCSCTTY with arg 1 takes
    // the terminal over from A's session (we still have CAP_SYS_ADMIN here).
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: isatty/ioctl on fd 0 with an integer argument.
    unsafe {
        if libc::isatty(0) == 1 {
            libc::ioctl(0, libc::TIOCSCTTY as _, 1);
        }
    }
    apply_rlimits(args)?;
    prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    drop_privileges(args.uid, args.gid)?;
    // setuid cleared the death signal: re-arm, then check B (PID 1) is still our parent.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    if nix::unistd::getppid().as_raw() != 1 {
        return Ok(EXIT_SETUP_FAILED);
    }
    let cwd = args.cwd.as_deref().unwrap_or("/home/student");
    std::env::set_current_dir(cwd).map_err(|e| format!("chdir {cwd}: {e}"))?;
    seccomp::join_private_keyring()?;
    seccomp::install()?;
    match prog {
        Some(p) => {
            let e = p.exec();
            eprintln!("campus sandbox-exec: {e}");
            Ok(EXIT_EXEC_FAILED)
        }
        None => Ok(probe_inside(args)),
    }
}

/// Parse `--ro HOST:NAME` (NAME is the part after the last ':').
fn parse_read_only(items: &[String]) -> Result<Vec<(PathBuf, String)>, String> {
    items
        .iter()
        .map(|s| match s.rsplit_once(':') {
            Some((host, name)) if !host.is_empty() && !name.is_empty() => {
                Ok((PathBuf::from(host), name.to_string()))
            }
            _ => Err(format!("bad --ro {s:?} (want HOST:NAME)")),
        })
        .collect()
}

/// Print one probe line.
fn report(name: &str, ok: bool, detail: &str) {
    println!("{name}\t{}\t{detail}", if ok { "ok" } else { "missing" });
}

/// `--probe`: each namespace alone (in a throw-away child), then the whole chain.
fn probe(args: &ExecArgs, parent: &mut watch::Parent) -> Result<i32, String> {
    let kinds = [
        ("namespace: mount", CloneFlags::CLONE_NEWNS),
        ("namespace: pid", CloneFlags::CLONE_NEWPID),
        ("namespace: network", CloneFlags::CLONE_NEWNET),
        ("namespace: ipc", CloneFlags::CLONE_NEWIPC),
        ("namespace: uts", CloneFlags::CLONE_NEWUTS),
        ("namespace: cgroup", CloneFlags::CLONE_NEWCGROUP),
    ];
    for (name, flag) in kinds {
        // SAFETY: single-threaded; the child only calls unshare and _exit.
        let ok = match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let code = if unshare(flag).is_ok() { 0 } else { 1 };
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => {
                matches!(wait_raw(child.as_raw()), Some((_, s)) if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0)
            }
            Err(_) => false,
        };
        report(
            name,
            ok,
            if ok {
                "unshare works"
            } else {
                "unshare failed"
            },
        );
    }
    let _ = std::io::stdout().flush();
    let status = isolated(args, false, parent);
    let ok = matches!(status, Ok(0));
    report(
        "sandbox chain",
        ok,
        &match status {
            Ok(c) => format!("helper exit {c}"),
            Err(e) => e,
        },
    );
    Ok(0)
}

/// Probe checks run as C, inside the finished sandbox, as the student.
fn probe_inside(args: &ExecArgs) -> i32 {
    let root_ok = Path::new("/home/student").is_dir() && !Path::new("/root").exists();
    report(
        "pivot_root",
        root_ok,
        "new root with /home/student and no host /root",
    );
    let uid_ok = Uid::current().as_raw() == args.uid && Uid::effective().as_raw() == args.uid;
    let regain = nix::unistd::setuid(Uid::from_raw(0)).is_ok();
    report(
        "per-student uid",
        uid_ok && !regain,
        &format!(
            "uid {} (setuid(0) {})",
            args.uid,
            if regain { "possible!" } else { "refused" }
        ),
    );
    let nnp = prctl::get_no_new_privs().unwrap_or(false);
    report("no_new_privs", nnp, "PR_SET_NO_NEW_PRIVS");
    let pid1 = std::fs::read_link("/proc/self")
        .map(|p| p != Path::new("1"))
        .unwrap_or(false);
    report("fresh /proc", pid1, "procfs of the new pid namespace");
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let cg_ok = !cgroup.is_empty() && cgroup.lines().all(|l| l.ends_with(":/"));
    report(
        "cgroup namespace",
        cg_ok,
        &format!("/proc/self/cgroup: {}", cgroup.trim().replace('\n', " ")),
    );
    let hidden: Vec<&str> = ["/usr/local", "/usr/sbin", "/usr/include", "/usr/libexec"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    let masked = ["/proc/kallsyms", "/proc/cmdline", "/proc/config.gz"]
        .into_iter()
        .all(reads_nothing);
    report(
        "host hidden",
        hidden.is_empty() && masked,
        &if hidden.is_empty() && masked {
            "no /usr/local, /usr/sbin; host /proc files masked".to_string()
        } else {
            format!("visible: {hidden:?}; /proc masked: {masked}")
        },
    );
    // Isolation is read from the namespace itself; nothing is sent anywhere but
    // to the prober's own loopback port.
    let (net_ok, net_detail) = network_view();
    report("no network", net_ok, &net_detail);
    if let Some(addr) = args.probe_connect {
        let reached =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2));
        report(
            "loopback unreachable",
            reached.is_err(),
            &match reached {
                Ok(_) => format!("connected to the prober's {addr}"),
                Err(e) => format!("the prober's {addr}: {e}"),
            },
        );
    }
    for (name, ok, detail) in seccomp::probe() {
        report(name, ok, &detail);
    }
    let _ = std::io::stdout().flush();
    0
}

/// True when `path` is missing, unreadable or empty (proc files report size 0:
/// read one byte).
fn reads_nothing(path: &str) -> bool {
    let mut byte = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut byte))
        .map_or(true, |n| n == 0)
}

/// This network namespace as seen from /proc/net: every interface but `lo`
/// must be down and no usable route may exist. Returns (ok, detail).
fn network_view() -> (bool, String) {
    let dev = match std::fs::read_to_string("/proc/net/dev") {
        Ok(d) => d,
        Err(e) => return (false, format!("/proc/net/dev: {e}")),
    };
    let names: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect();
    let up: Vec<&str> = names
        .iter()
        .filter(|n| n.as_str() != "lo" && interface_up(n))
        .map(String::as_str)
        .collect();
    let routes = usable_routes(
        &std::fs::read_to_string("/proc/net/route").unwrap_or_default(),
        &std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default(),
    );
    let ok = up.is_empty() && routes == 0;
    (
        ok,
        format!(
            "interfaces {}; up besides lo: {}; usable routes: {routes}",
            names.join(","),
            if up.is_empty() {
                "none".to_string()
            } else {
                up.join(",")
            }
        ),
    )
}

/// Routes with RTF_UP and without RTF_REJECT in /proc/net/route (header line,
/// device in column 1, flags in column 4) and /proc/net/ipv6_route (flags in
/// column 9, device last). A fresh namespace has only IPv6 "unreachable"
/// entries, which do not count; nor do routes via `lo` (the run's loopback is
/// up, and what it reaches is this namespace only).
fn usable_routes(v4: &str, v6: &str) -> usize {
    const RTF_UP: u32 = 0x1;
    const RTF_REJECT: u32 = 0x200;
    let count = |text: &str, skip: usize, flags: usize, dev_last: bool| {
        text.lines()
            .skip(skip)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| (if dev_last { f.last() } else { f.first() }) != Some(&"lo"))
            .filter_map(|f| u32::from_str_radix(f.get(flags)?, 16).ok())
            .filter(|f| f & RTF_UP != 0 && f & RTF_REJECT == 0)
            .count()
    };
    count(v4, 1, 3, false) + count(v6, 0, 8, true)
}

/// SIOCGIFFLAGS: is the interface up? (Unknown counts as up: fail closed.)
fn interface_up(name: &str) -> bool {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain syscall; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return true;
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return true;
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and fills the flags of a valid ifreq.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if r != 0 {
        return true;
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    flags & libc::IFF_UP as libc::c_short != 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn read_only_mounts_parse() {
        let v = parse_read_only(&["/a:b/c:name".to_string()]).unwrap();
        assert_eq!(v, vec![(PathBuf::from("/a:b/c"), "name".to_string())]);
        assert!(parse_read_only(&["nocolon".to_string()]).is_err());
        assert!(parse_read_only(&[":x".to_string()]).is_err());
    }

    #[test]
    fn only_usable_routes_count() {
        // A fresh network namespace (read here with `unshare -n`): no IPv4
        // routes, two IPv6 reject entries on lo.
        let reject = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                      00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        assert_eq!(usable_routes("", &reject.repeat(2)), 0);
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                  eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\n";
        assert_eq!(usable_routes(v4, ""), 1);
        let v6 = "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n";
        assert_eq!(usable_routes("", v6), 1);
        // The run's loopback, up: ::1 and 127.0.0.0/8 via lo stay inside.
        let lo6 = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
                   00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";
        let lo4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                   lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\n";
        assert_eq!(usable_routes(lo4, lo6), 0);
    }

    #[test]
    fn exit_status_decodes_codes() {
        // 3 << 8 is "exited with 3".
        assert_eq!(end_like(3 << 8), 3);
    }
}
