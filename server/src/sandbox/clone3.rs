//! `clone3(CLONE_INTO_CGROUP)`: on cgroup v2 the helper's first child (B,
//! PID 1 of the run's pid namespace) is born inside the run's cgroup, so
//! nothing is ever *moved* into it. A move (a write to `cgroup.procs`) takes
//! the cgroup threadgroup rwsem for writing, which waits for an RCU grace
//! period unless the hierarchy is mounted `favordynmods` (milliseconds per run
//! start; docs/performance.md, "The cgroup move"); a fork into a cgroup only
//! takes it for reading.
//!
//! Used when the run has exactly one cgroup and it is on cgroup2 (kernel
//! 5.7+); everywhere else (cgroup v1, older kernels) the helper joins the
//! cgroup(s) by writing its pid, then unshares the pid namespace and forks,
//! as before.
//!
//! SAFETY (module-wide): the raw clone3 system call is issued by the
//! single-threaded helper (no runtime, no other threads), exactly where it
//! would otherwise call fork(); the child gets a copy of the address space
//! and continues on its own stack (stack 0 = share the parent's stack
//! pointer, like fork). glibc's fork handlers do not run, which only matters
//! for state the helper does not use (atfork handlers, other threads' locks).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// `CLONE_INTO_CGROUP` (linux/sched.h, since 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// cgroup2's `f_type` (linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The outcome of [`fork_into`] on the calling side.
pub(crate) enum Forked {
    /// We are the parent; the child's pid.
    Parent(libc::pid_t),
    /// We are the child, already in the cgroup (and the new namespaces).
    Child,
}

/// The run's cgroup directory, if the helper can be born into it: exactly
/// one `cgroup.procs` file, on a cgroup2 filesystem.
pub(crate) fn v2_target(procs_files: &[impl AsRef<Path>]) -> Option<OwnedFd> {
    let [procs] = procs_files else {
        return None;
    };
    let dir = procs.as_ref().parent()?;
    let fd: OwnedFd = std::fs::File::open(dir).ok()?.into();
    // SAFETY: fstatfs on a descriptor we own, into a zeroed struct it fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) };
    (r == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC).then_some(fd)
}

/// clone3 with `flags` (CLONE_NEW* namespaces) into the cgroup `cgroup`;
/// the child gets SIGCHLD as its exit signal, like fork. An error (ENOSYS
/// before 5.3, E2BIG/EINVAL before 5.7, or any refusal) leaves nothing
/// behind: the caller falls back to join-then-fork.
pub(crate) fn fork_into(cgroup: &OwnedFd, flags: libc::c_int) -> std::io::Result<Forked> {
    let args = CloneArgs {
        flags: flags as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: see the module comment; `args` outlives the call and its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// The startup probe's test: clone a child into the (empty, throw-away) v2
/// cgroup `dir`, check the kernel lists it there, then kill it. Safe to call
/// from a multi-threaded process: the child only makes raw system calls
/// (prctl, pause, _exit) and waits for nothing but its SIGKILL, so no
/// descriptor another thread's clone inherits can keep it alive.
pub(crate) fn probe(dir: &Path) -> Result<(), String> {
    let cgroup = v2_target(&[dir.join("cgroup.procs")])
        .ok_or_else(|| format!("{} is not a cgroup2 directory", dir.display()))?;
    match fork_into(&cgroup, 0).map_err(|e| format!("clone3(CLONE_INTO_CGROUP): {e}"))? {
        Forked::Child => {
            // SAFETY: async-signal-safe calls only; the parent kills us (and
            // if its thread dies first, so do we); never returns or unwinds.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                loop {
                    libc::pause();
                }
            }
        }
        Forked::Parent(pid) => {
            let listed = std::fs::read_to_string(dir.join("cgroup.procs"))
                .map(|s| s.lines().any(|l| l.trim() == pid.to_string()))
                .unwrap_or(false);
            let child = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            if listed {
                Ok(())
            } else {
                Err(format!("the child {pid} was not in {}", dir.display()))
            }
        }
    }
}
