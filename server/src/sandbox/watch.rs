//! A run never outlives the process that started it (the server, or
//! `campus run`): the helper's top process (A) watches that parent while it
//! waits for the run, and when the parent dies — even by `kill -9`, with no
//! chance to clean up — A kills the whole run at once.
//!
//! The watch is a pidfd of the parent *process*, not PR_SET_PDEATHSIG:
//! the death signal fires when the parent *thread* that spawned A exits, and
//! the server spawns A from a tokio blocking-pool thread that may exit while
//! the server lives on. A pidfd becomes readable only when the whole thread
//! group has exited. Whether the parent is gone is decided by `getppid()`
//! (we are re-parented the moment it exits), so a kernel without pidfds
//! (before 5.3) still works, by checking once a second.
//!
//! Also here: killing a process tree by its parent links in /proc, for the
//! dev fallback, which has no pid namespace or cgroup to kill instead.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{getppid, Pid};

/// How often the parent is checked when the kernel has no pidfds.
const POLL_WITHOUT_PIDFD: Duration = Duration::from_secs(1);
/// Pause between rounds of [`kill_descendants`] (killed processes take a
/// moment to exit and hand their children to the subreaper).
const KILL_ROUND_PAUSE: Duration = Duration::from_millis(2);

/// The process that started the helper.
#[derive(Debug)]
pub(crate) struct Parent {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
}

impl Parent {
    /// Watch `expected` (the server passes its pid; by hand it defaults to
    /// our parent now). Fails if that is not, or no longer, our parent: if it
    /// died before the pidfd was opened we have already been re-parented and
    /// `getppid()` tells, so no death can slip through unnoticed.
    pub(crate) fn open(expected: Option<u32>) -> Result<Parent, String> {
        let pid = match expected {
            Some(p) => libc::pid_t::try_from(p).map_err(|_| format!("bad --server-pid {p}"))?,
            None => getppid().as_raw(),
        };
        let pidfd = pidfd_open(pid);
        if getppid().as_raw() != pid {
            return Err(format!(
                "the process that started this run ({pid}) is gone, or is not our parent"
            ));
        }
        Ok(Parent { pid, pidfd })
    }

    /// Close the pidfd in a forked child that does not watch (B): the
    /// parent's handle stays the top helper's alone.
    pub(crate) fn close_in_child(&mut self) {
        self.pidfd = None;
    }

    /// True once the parent has exited (we have been re-parented).
    pub(crate) fn gone(&self) -> bool {
        getppid().as_raw() != self.pid
    }
}

/// pidfd_open(2); None when the kernel has no pidfds (or the pid is gone).
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is
    // a new descriptor that nothing else owns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: see above.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How [`wait_child`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The child ended; its raw wait status.
    Exited(libc::c_int),
    /// The parent died first; the child is still running.
    ParentGone,
}

extern "C" fn on_sigchld(_: libc::c_int) {}

/// Wait for `child` while watching `parent`, reaping every other child that
/// ends meanwhile (orphans handed to us as a subreaper).
///
/// SIGCHLD is blocked except inside ppoll, which unblocks it atomically: an
/// exit between the reaping pass and the ppoll is delivered inside it, so
/// neither a child's end nor the parent's death can be missed.
pub(crate) fn wait_child(child: libc::pid_t, parent: &Parent) -> Waited {
    let wake = SigAction::new(
        SigHandler::Handler(on_sigchld),
        SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing (its only job is to interrupt ppoll).
    let _ = unsafe { signal::sigaction(Signal::SIGCHLD, &wake) };
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    let _ = signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), Some(&mut old));
    let mut inside = old;
    inside.remove(Signal::SIGCHLD);
    let result = loop {
        if let Some(status) = reap_ready(child) {
            break Waited::Exited(status);
        }
        if parent.gone() {
            break Waited::ParentGone;
        }
        let mut pfd = libc::pollfd {
            fd: parent.pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = libc::timespec {
            tv_sec: POLL_WITHOUT_PIDFD.as_secs() as libc::time_t,
            tv_nsec: 0,
        };
        let timeout_ptr = if parent.pidfd.is_some() {
            std::ptr::null()
        } else {
            &timeout as *const libc::timespec
        };
        // SAFETY: one valid pollfd (fd -1 is ignored by the kernel), a valid
        // or NULL timeout and a valid signal set, all outliving the call.
        // EINTR (SIGCHLD, a forwarded signal) just means "look again".
        unsafe { libc::ppoll(&mut pfd, 1, timeout_ptr, inside.as_ref()) };
    };
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

/// Reap every child that has ended; Some(status) if `child` was among them.
fn reap_ready(child: libc::pid_t) -> Option<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r == child {
            return Some(status);
        }
        if r > 0 {
            continue;
        }
        if r < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        if r < 0 {
            // ECHILD: the child is gone and its status with it (cannot happen
            // while we are its only reaper); report a set-up failure.
            return Some(super::exec::EXIT_SETUP_FAILED << 8);
        }
        return None;
    }
}

/// SIGKILL every descendant of `root` (not `root` itself), found by the
/// parent links in /proc, round after round until none is alive or `limit`
/// has passed; returns true when none is left. A process forked during a
/// round is found in the next one: its parent is killed, and it is handed to
/// the nearest subreaper — `root` itself when `root` is the fallback helper.
/// With `reap`, zombies among our own children are reaped between rounds
/// (only the helper may do that: in the server it would steal other runs'
/// exit statuses).
pub fn kill_descendants(root: i32, limit: Duration, reap: bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let alive = descendants(root);
        if alive.is_empty() {
            return true;
        }
        for pid in &alive {
            let _ = signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        if reap {
            // SAFETY: NULL status is allowed.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        }
        if Instant::now() >= deadline {
            return descendants(root).is_empty();
        }
        std::thread::sleep(KILL_ROUND_PAUSE);
    }
}

/// Live (non-zombie) descendants of `root`, from /proc/*/stat.
fn descendants(root: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (pid, ppid, zombie)
    let procs: Vec<(i32, i32, bool)> = dir
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (ppid, state) = parse_stat(&stat)?;
            Some((pid, ppid, state == 'Z'))
        })
        .collect();
    let mut children: HashMap<i32, Vec<(i32, bool)>> = HashMap::new();
    for (pid, ppid, zombie) in procs {
        children.entry(ppid).or_default().push((pid, zombie));
    }
    // A visited set: pids read at slightly different moments could, with
    // reuse, form a loop.
    let mut seen = HashSet::from([root]);
    let mut stack = vec![root];
    let mut alive = Vec::new();
    while let Some(parent) = stack.pop() {
        for &(pid, zombie) in children.get(&parent).map_or(&[][..], Vec::as_slice) {
            if seen.insert(pid) {
                stack.push(pid);
                if !zombie {
                    alive.push(pid);
                }
            }
        }
    }
    alive
}

/// (ppid, state) of a /proc/PID/stat line; the command name may contain
/// spaces and parentheses, so fields are counted after the last ')'.
fn parse_stat(stat: &str) -> Option<(i32, char)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_command_names() {
        let line = "4242 (a b) c)) S 17 4242 4242 0 -1 4194560 0 0";
        assert_eq!(parse_stat(line), Some((17, 'S')));
        assert_eq!(parse_stat("1 (init) Z 0 1"), Some((0, 'Z')));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_parent_is_watched_and_a_wrong_pid_is_refused() {
        let p = Parent::open(None).unwrap();
        assert!(!p.gone());
        assert!(Parent::open(Some(std::process::id())).is_err());
    }
}
