//! The blocking edges of an execution: the PTY pair, the PTY reader and writer
//! threads, the waiter thread, signals, and /proc-based usage when there is
//! no cgroup.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc as std_mpsc;

use bytes::Bytes;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::sync::{mpsc, oneshot};

/// Bytes per PTY read (also the largest chunk the reader hands over).
pub(crate) const READ_BUF: usize = 16 << 10;
/// Chunks buffered between the reader thread and the session; when full the
/// reader stops reading and the program blocks on write (flow control).
const READER_CHANNEL: usize = 4;
/// Small stacks: these threads only shovel bytes.
const THREAD_STACK: usize = 128 << 10;

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    /// Columns (at least 1).
    pub cols: u16,
    /// Rows (at least 1).
    pub rows: u16,
}

/// How the run's main process ended, read before it is reaped.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if it was killed by one.
    pub signal: Option<i32>,
    /// CPU time of the process and its reaped children (from the zombie's /proc entry).
    pub cpu_ms: u64,
}

/// The server's side of a run's terminal.
#[derive(Debug)]
pub(crate) struct PtyMaster {
    fd: File,
}

/// Open a PTY pair of the given size. Both ends are opened close-on-exec
/// atomically (no window in which a concurrent spawn of another run could
/// inherit them); the slave becomes the helper's stdio through dup2, which
/// clears the flag on the copies only.
pub(crate) fn open_pty(size: TermSize) -> std::io::Result<(PtyMaster, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let name = std::path::Path::new(std::ffi::OsStr::from_bytes(name.as_bytes()));
    // std opens with O_CLOEXEC; O_NOCTTY keeps the server from acquiring it.
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(name)?;
    let master = PtyMaster {
        fd: File::from(master),
    };
    master.resize(size)?;
    Ok((master, OwnedFd::from(slave)))
}

impl PtyMaster {
    /// Set the terminal size (the foreground process group gets SIGWINCH).
    pub fn resize(&self, size: TermSize) -> std::io::Result<()> {
        rustix::termios::tcsetwinsize(
            &self.fd,
            Winsize {
                ws_row: size.rows.max(1),
                ws_col: size.cols.max(1),
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )?;
        Ok(())
    }

    /// The terminal's foreground process group, if it has one.
    pub fn process_group_leader(&self) -> Option<i32> {
        rustix::termios::tcgetpgrp(&self.fd)
            .ok()
            .map(|p| p.as_raw_pid())
    }

    /// A second handle for the reader thread (close-on-exec, like the first).
    pub fn try_clone_reader(&self) -> std::io::Result<File> {
        self.fd.try_clone()
    }

    /// A second handle for the writer thread (dropping it types nothing into the terminal).
    pub fn take_writer(&self) -> std::io::Result<File> {
        self.fd.try_clone()
    }
}

/// What the PTY reader thread hands over, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PtyRead {
    /// Bytes the program wrote to its terminal.
    Output(Bytes),
    /// The first line (at most [`MAX_RESULT_LINE`] bytes) the program wrote
    /// on its result channel; nothing on the terminal can produce this.
    Result(Bytes),
}

/// Longest line read from an interactive execution's result channel; the
/// channel is closed after its first line (or this many bytes).
pub(crate) const MAX_RESULT_LINE: usize = 256;

/// Start the reader thread: PTY master → bounded channel, and with a result
/// channel its first line, in order: when the channel becomes readable, all
/// the terminal output already written is read first, so output the program
/// wrote before its report is never delivered after it. Ends at EOF/EIO
/// (every slave fd closed) or when the session drops the receiver.
pub(crate) fn spawn_reader(
    reader: File,
    result: Option<OwnedFd>,
) -> std::io::Result<mpsc::Receiver<PtyRead>> {
    let (tx, rx) = mpsc::channel(READER_CHANNEL);
    std::thread::Builder::new()
        .name("campus-pty-read".into())
        .stack_size(THREAD_STACK)
        .spawn(move || read_loop(reader, result, &tx))?;
    Ok(rx)
}

fn read_loop(mut reader: File, mut result: Option<OwnedFd>, tx: &mpsc::Sender<PtyRead>) {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut buf = vec![0u8; READ_BUF];
    let mut line = Vec::new();
    loop {
        if let Some(channel) = result.as_ref() {
            let mut fds = [
                PollFd::new(&reader, PollFlags::IN),
                PollFd::new(channel, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            // The terminal first: a ready terminal is read before the channel.
            let terminal_ready = !fds[0].revents().is_empty();
            if !terminal_ready && !fds[1].revents().is_empty() {
                match read_result(channel, &mut line) {
                    Some(done) => {
                        if done {
                            result = None;
                            if !line.is_empty()
                                && tx
                                    .blocking_send(PtyRead::Result(Bytes::from(std::mem::take(
                                        &mut line,
                                    ))))
                                    .is_err()
                            {
                                return;
                            }
                        }
                        continue;
                    }
                    None => {
                        // A broken channel is no reason to stop the terminal.
                        result = None;
                        continue;
                    }
                }
            }
        }
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tx
                    .blocking_send(PtyRead::Output(Bytes::copy_from_slice(&buf[..n])))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO once the slave side is closed: that is EOF for a PTY.
            Err(_) => return,
        }
    }
}

/// Read what the result channel has into `line`; `Some(true)` once its first
/// line is complete (or the channel ended or overflowed), `None` on a read error.
fn read_result(channel: &OwnedFd, line: &mut Vec<u8>) -> Option<bool> {
    let mut chunk = [0u8; MAX_RESULT_LINE];
    match rustix::io::read(channel, &mut chunk) {
        Ok(0) => Some(true),
        Ok(n) => {
            line.extend_from_slice(&chunk[..n]);
            match line.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    line.truncate(end + 1);
                    Some(true)
                }
                None if line.len() >= MAX_RESULT_LINE => {
                    line.truncate(MAX_RESULT_LINE);
                    Some(true)
                }
                None => Some(false),
            }
        }
        Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => Some(false),
        Err(_) => None,
    }
}

/// Start the writer thread: the single owner of the PTY writer, fed through a
/// bounded channel so a program that does not read its input never blocks the session.
pub(crate) fn spawn_writer(
    mut writer: impl Write + Send + 'static,
    capacity: usize,
) -> std::io::Result<mpsc::Sender<Bytes>> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(capacity);
    std::thread::Builder::new()
        .name("campus-pty-write".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            while let Some(bytes) = rx.blocking_recv() {
                if writer
                    .write_all(&bytes)
                    .and_then(|_| writer.flush())
                    .is_err()
                {
                    break;
                }
            }
        })?;
    Ok(tx)
}

/// Start the waiter thread. It waits for the main process to exit *without
/// reaping it* (so its pid and process group stay reserved and can be signalled
/// safely), reports the status and CPU time, and reaps only when `reap` is
/// dropped by the session.
pub(crate) fn spawn_waiter(
    mut child: std::process::Child,
) -> std::io::Result<(oneshot::Receiver<ExitInfo>, std_mpsc::SyncSender<()>)> {
    let pid = child.id();
    let (tx, rx) = oneshot::channel();
    let (reap_tx, reap_rx) = std_mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("campus-pty-wait".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let mut info = ExitInfo::default();
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            loop {
                match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {
                    Ok(WaitStatus::Exited(_, code)) => info.code = Some(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => info.signal = Some(sig as i32),
                    Err(nix::errno::Errno::EINTR) => continue,
                    _ => {}
                }
                break;
            }
            info.cpu_ms = proc_cpu_ms(pid).unwrap_or(0);
            let _ = tx.send(info);
            // Wait until the session has killed leftovers of the process group.
            let _ = reap_rx.recv();
            let _ = child.wait();
        })?;
    Ok((rx, reap_tx))
}

/// SIGKILL the process group `pgid` (best effort; it may already be gone).
pub(crate) fn kill_group(pgid: i32) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// SIGINT the process group `pgid`.
pub(crate) fn interrupt_group(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), Signal::SIGINT).is_ok()
}

/// Clock ticks per second for /proc times.
fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100, |t| t as u64)
}

/// CPU time of a process including its reaped children, ms (`utime+stime+cutime+cstime`).
pub(crate) fn proc_cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14.
    let sum: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Some(sum * 1000 / clock_ticks())
}

/// Peak resident memory of a process (`VmHWM`), bytes.
pub(crate) fn proc_peak_memory(pid: u32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// A process's resident memory (`VmRSS`), bytes.
pub(crate) fn proc_memory(pid: u32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// This process's resident memory (`VmRSS`), bytes; for tests and metrics.
pub fn self_rss_bytes() -> Option<u64> {
    kib_field("/proc/self/status", "VmRSS:")
}

/// A `Key:   123 kB` field of a /proc file (status, meminfo), in bytes.
pub(crate) fn kib_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_is_readable() {
        assert!(proc_cpu_ms(std::process::id()).is_some());
        assert!(proc_peak_memory(std::process::id()).unwrap_or(0) > 0);
    }
}
