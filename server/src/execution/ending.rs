//! How a run ended: the exact reason from what the runner did and what the
//! kernel reported, and the plain-words message the student sees.

use std::time::Duration;

use campus_protocol::{EndReason, Phase, RunEnded};

/// SIGXCPU: what RLIMIT_CPU sends when the soft CPU limit is reached.
const SIGXCPU: i32 = 24;
/// SIGINT: what Ctrl-C sends (Python re-raises it on itself after an
/// unhandled KeyboardInterrupt, so the exit status names it).
const SIGINT: i32 = 2;

/// Everything known when a run is over.
#[derive(Debug, Clone, Default)]
pub(crate) struct EndFacts {
    /// Set when the runner itself ended the run, and why.
    pub kill_reason: Option<EndReason>,
    /// The program's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// The user sent Ctrl-C during the run.
    pub interrupted: bool,
    /// CPU used, ms.
    pub cpu_ms: u64,
    /// CPU limit, ms.
    pub cpu_limit_ms: u64,
    /// Peak memory, bytes.
    pub peak_memory_bytes: u64,
    /// Memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// OOM kills in the run's cgroup during the run.
    pub oom_kills: u64,
    /// Phase at the end (decides which max age a timeout refers to).
    pub phase: Option<Phase>,
    /// Wall-clock duration.
    pub duration: Duration,
    /// Output bytes produced.
    pub output_bytes: u64,
    /// Output cap, bytes.
    pub output_limit_bytes: u64,
    /// The max age that applied to the final phase.
    pub max_age: Duration,
    /// The detached grace (for `abandoned`).
    pub detached_grace: Duration,
    /// The workspace was at its kernel disk quota when the run ended (its
    /// writes were failing with EDQUOT).
    pub disk_full: bool,
    /// Workspace quota, bytes.
    pub disk_quota_bytes: u64,
    /// Workspace quota, files and directories.
    pub disk_quota_entries: u64,
}

/// The reason, from the facts. Runner-initiated endings win (they say what
/// the runner did); otherwise the kernel's evidence decides: an OOM kill in the
/// cgroup means `memory_limit`, SIGXCPU or CPU at the limit means `cpu_limit`,
/// a workspace at its disk quota means `disk_quota` (the program failed
/// because its writes were refused; a clean exit stays `exited`).
pub(crate) fn classify(f: &EndFacts) -> EndReason {
    if let Some(r) = f.kill_reason {
        return r;
    }
    let clean_exit = f.exit_code == Some(0) && f.signal.is_none();
    if f.oom_kills > 0 && !clean_exit {
        return EndReason::MemoryLimit;
    }
    if f.signal == Some(SIGXCPU)
        || (!clean_exit && f.cpu_limit_ms > 0 && f.cpu_ms >= f.cpu_limit_ms)
    {
        return EndReason::CpuLimit;
    }
    if f.disk_full && !clean_exit {
        return EndReason::DiskQuota;
    }
    match (f.signal, f.exit_code) {
        (Some(SIGINT), _) if f.interrupted => EndReason::Interrupted,
        (Some(_), _) => EndReason::Signaled,
        (None, Some(_)) => EndReason::Exited,
        // No status at all (the wait failed): report what we know.
        (None, None) => EndReason::Signaled,
    }
}

/// The `run_ended` record of an execution, from its facts.
pub(crate) fn ended(run_id: String, f: &EndFacts) -> RunEnded {
    let reason = classify(f);
    RunEnded {
        run_id,
        reason,
        exit_code: if reason == EndReason::Exited {
            f.exit_code
        } else {
            None
        },
        signal: f.signal,
        cpu_ms: f.cpu_ms,
        cpu_limit_ms: f.cpu_limit_ms,
        peak_memory_bytes: f.peak_memory_bytes,
        memory_limit_bytes: f.memory_limit_bytes,
        duration_ms: f.duration.as_millis() as u64,
        output_bytes: f.output_bytes,
        message: message(reason, f),
    }
}

/// A human duration: "0.4 s", "12 s", "3 min 5 s", "1 h 2 min".
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{} s", ms / 1000)
    } else if ms < 3_600_000 {
        let (m, s) = (ms / 60_000, (ms / 1000) % 60);
        if s == 0 {
            format!("{m} min")
        } else {
            format!("{m} min {s} s")
        }
    } else {
        let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
        if m == 0 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        }
    }
}

/// A human size: "512 bytes", "100 KiB", "128 MiB".
pub(crate) fn fmt_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        let mib = b as f64 / (1u64 << 20) as f64;
        if mib.fract() == 0.0 {
            format!("{mib:.0} MiB")
        } else {
            format!("{mib:.1} MiB")
        }
    } else if b >= 1 << 10 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} bytes")
    }
}

/// The workspace quota in words: "150 MiB and 5000 files and folders".
fn fmt_quota(bytes: u64, entries: u64) -> String {
    match (bytes, entries) {
        (0, 0) => "its disk quota".to_string(),
        (b, 0) => fmt_bytes(b),
        (0, n) => format!("{n} files and folders"),
        (b, n) => format!("{} and {n} files and folders", fmt_bytes(b)),
    }
}

/// Common signal names, for messages.
fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// The plain-words explanation for the student.
pub(crate) fn message(reason: EndReason, f: &EndFacts) -> String {
    let took = fmt_duration(f.duration);
    match reason {
        EndReason::Exited => match f.exit_code.unwrap_or_default() {
            0 => format!("Finished with exit code 0 in {took}"),
            // By convention non-zero is a failure (Python: an uncaught exception is 1).
            code => format!("Ended with an error (exit code {code}) after {took}"),
        },
        EndReason::Interrupted => format!("Interrupted (Ctrl-C) after {took}"),
        EndReason::Signaled => match f.signal {
            Some(sig) => format!("Ended by signal {sig} ({}) after {took}", signal_name(sig)),
            None => format!("Ended after {took} (the exit status could not be read)"),
        },
        EndReason::Stopped => format!("Stopped by you after {took}"),
        EndReason::Timeout => {
            let what = match f.phase {
                Some(Phase::Repl) => "the Python prompt was open",
                _ => "your program ran",
            };
            format!(
                "Stopped: {what} longer than the time limit ({})",
                fmt_duration(f.max_age)
            )
        }
        EndReason::CpuLimit => format!(
            "Stopped: your program used more than {} of CPU time (limit {})",
            fmt_duration(Duration::from_millis(f.cpu_limit_ms)),
            fmt_duration(Duration::from_millis(f.cpu_limit_ms))
        ),
        EndReason::MemoryLimit => format!(
            "Stopped: your program used more than {} of memory (limit {})",
            fmt_bytes(f.memory_limit_bytes),
            fmt_bytes(f.memory_limit_bytes)
        ),
        EndReason::OutputLimit => format!(
            "Stopped: your program wrote more than {} of output (limit {})",
            fmt_bytes(f.output_limit_bytes),
            fmt_bytes(f.output_limit_bytes)
        ),
        // The usage scan stopped it, or the kernel refused its writes and it failed.
        EndReason::DiskQuota if f.kill_reason == Some(EndReason::DiskQuota) => format!(
            "Stopped: your workspace is over its quota (limit {}). \
             Delete files you no longer need, then run your program again.",
            fmt_quota(f.disk_quota_bytes, f.disk_quota_entries)
        ),
        EndReason::DiskQuota => format!(
            "Ended: your workspace is full (limit {}), so your program could not write to it. \
             Delete files you no longer need, then run it again.",
            fmt_quota(f.disk_quota_bytes, f.disk_quota_entries)
        ),
        EndReason::KilledByAdmin => format!("Stopped by an administrator after {took}"),
        EndReason::Revoked => format!(
            "Stopped after {took}: you were signed out (logged out, your password or role \
             changed, or your account was disabled)"
        ),
        EndReason::MaterialChanged => format!(
            "Stopped after {took}: your teacher changed hidden material of this course. \
             Run it again to see the course as it is now."
        ),
        EndReason::Abandoned => format!(
            "Stopped: nobody was connected to it for {}",
            fmt_duration(f.detached_grace)
        ),
        EndReason::ServerShutdown => {
            "Stopped: the server was restarted. Please run your program again.".to_string()
        }
        EndReason::StartFailed => "Your program could not be started (the server could not \
             set up its sandbox). Please try again; if it keeps failing, tell your teacher."
            .to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn facts() -> EndFacts {
        EndFacts {
            cpu_limit_ms: 30_000,
            memory_limit_bytes: 128 << 20,
            output_limit_bytes: 50 << 20,
            duration: Duration::from_millis(400),
            max_age: Duration::from_secs(1800),
            detached_grace: Duration::from_secs(300),
            ..EndFacts::default()
        }
    }

    #[test]
    fn reasons() {
        let mut f = facts();
        f.exit_code = Some(0);
        assert_eq!(classify(&f), EndReason::Exited);
        assert_eq!(
            message(EndReason::Exited, &f),
            "Finished with exit code 0 in 0.4 s"
        );
        f.exit_code = Some(1);
        assert_eq!(
            message(EndReason::Exited, &f),
            "Ended with an error (exit code 1) after 0.4 s"
        );
        f.exit_code = Some(0);
        f.oom_kills = 1;
        assert_eq!(
            classify(&f),
            EndReason::Exited,
            "a clean exit is not an OOM"
        );
        f.exit_code = None;
        f.signal = Some(9);
        assert_eq!(classify(&f), EndReason::MemoryLimit);
        assert_eq!(
            message(EndReason::MemoryLimit, &f),
            "Stopped: your program used more than 128 MiB of memory (limit 128 MiB)"
        );
        f.oom_kills = 0;
        assert_eq!(classify(&f), EndReason::Signaled);
        assert!(message(EndReason::Signaled, &f).contains("SIGKILL"));
        f.signal = Some(SIGINT);
        assert_eq!(classify(&f), EndReason::Signaled, "nobody pressed Ctrl-C");
        assert!(message(EndReason::Signaled, &f).contains("SIGINT"));
        f.interrupted = true;
        assert_eq!(classify(&f), EndReason::Interrupted);
        assert_eq!(
            message(EndReason::Interrupted, &f),
            "Interrupted (Ctrl-C) after 0.4 s"
        );
        f.signal = Some(SIGXCPU);
        assert_eq!(classify(&f), EndReason::CpuLimit);
        f.signal = None;
        f.exit_code = Some(1);
        f.disk_full = true;
        assert_eq!(classify(&f), EndReason::DiskQuota, "a traceback of EDQUOT");
        f.disk_quota_bytes = 150 << 20;
        f.disk_quota_entries = 5000;
        assert_eq!(
            message(EndReason::DiskQuota, &f),
            "Ended: your workspace is full (limit 150 MiB and 5000 files and folders), so your \
             program could not write to it. Delete files you no longer need, then run it again."
        );
        let mut k = f.clone();
        k.kill_reason = Some(EndReason::DiskQuota);
        assert_eq!(classify(&k), EndReason::DiskQuota);
        assert!(message(EndReason::DiskQuota, &k)
            .starts_with("Stopped: your workspace is over its quota (limit 150 MiB"));
        f.exit_code = Some(0);
        assert_eq!(
            classify(&f),
            EndReason::Exited,
            "it coped with the full disk"
        );
        f.exit_code = Some(1);
        f.disk_full = false;
        assert_eq!(classify(&f), EndReason::Exited);
        f.kill_reason = Some(EndReason::Stopped);
        assert_eq!(classify(&f), EndReason::Stopped);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_duration(Duration::from_secs(150)), "2 min 30 s");
        assert_eq!(fmt_duration(Duration::from_secs(1800)), "30 min");
        assert_eq!(fmt_duration(Duration::from_secs(3600)), "1 h");
        assert_eq!(fmt_bytes(100 << 10), "100 KiB");
        assert_eq!(fmt_bytes(50 << 20), "50 MiB");
    }
}
