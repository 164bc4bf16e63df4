//! Runner settings: limits, clocks, buffer sizes and admission, built from
//! [`crate::config::RunLimitArgs`] (so `serve` and `run` read the same env vars).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::RunLimitArgs;
use crate::sandbox::SandboxLimits;

/// Everything the runner needs to know; tests build it with struct-update syntax.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Limits handed to the sandbox for every run.
    pub limits: SandboxLimits,
    /// Wall-clock limit of the script phase (script mode, hybrid before the REPL).
    pub script_max_age: Duration,
    /// Wall-clock limit of the REPL phase (clock starts when the REPL starts).
    pub repl_max_age: Duration,
    /// Total output of one run; beyond it the run ends with `output_limit`.
    pub output_limit_bytes: u64,
    /// Output kept per session for replay on attach.
    pub log_tail_bytes: usize,
    /// How long a session with nobody attached is kept (see the module docs for the rules).
    pub detached_grace: Duration,
    /// How often the reaper sweeps the registry.
    pub reaper_interval: Duration,
    /// Concurrently running sandboxes on this host (never 0 after [`RunnerConfig::effective_max_concurrent_runs`]).
    pub max_concurrent_runs: usize,
    /// Runs a user may start per minute.
    pub runs_per_min: u32,
    /// Python interpreter as seen inside the sandbox.
    pub python: PathBuf,
    /// Unacknowledged output (slowest attached connection) at which PTY reading pauses.
    pub high_water_bytes: u64,
    /// Unacknowledged output below which PTY reading resumes.
    pub low_water_bytes: u64,
    /// Coalescing window: at most one output frame per session per this period.
    pub frame_interval: Duration,
    /// A frame is sent early once this many bytes are pending.
    pub max_frame_bytes: usize,
    /// Events buffered per attached connection before it is dropped as too slow.
    pub connection_buffer: usize,
    /// How long `shutdown` waits for sessions to record their endings.
    pub shutdown_wait: Duration,
    /// Suggested wait returned with `busy`.
    pub busy_retry_after: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            limits: SandboxLimits {
                memory_bytes: 128 << 20,
                pids: 50,
                cpu_secs: 30,
                file_size_bytes: 10 << 20,
                open_files: 256,
                tmp_bytes: 16 << 20,
                cpu_quota: 1.0,
                disk_bytes: 150 << 20,
                disk_entries: 5000,
            },
            script_max_age: Duration::from_secs(30 * 60),
            repl_max_age: Duration::from_secs(60 * 60),
            output_limit_bytes: 50 << 20,
            log_tail_bytes: 256 << 10,
            detached_grace: Duration::from_secs(300),
            reaper_interval: Duration::from_secs(300),
            max_concurrent_runs: 0,
            runs_per_min: 10,
            python: PathBuf::from("/usr/bin/python3"),
            high_water_bytes: 100_000,
            low_water_bytes: 32_000,
            frame_interval: Duration::from_millis(16),
            max_frame_bytes: 32 << 10,
            connection_buffer: 256,
            shutdown_wait: Duration::from_secs(10),
            busy_retry_after: Duration::from_secs(5),
        }
    }
}

impl RunnerConfig {
    /// Build from the command-line/env limits shared by `serve` and `run`.
    pub fn from_args(args: &RunLimitArgs) -> Self {
        let d = RunnerConfig::default();
        RunnerConfig {
            limits: SandboxLimits {
                memory_bytes: args.memory_limit_mb.max(1) << 20,
                pids: args.pids_limit.max(1),
                cpu_secs: args.cpu_time_limit_secs.max(1),
                file_size_bytes: args.file_size_limit_mb.max(1) << 20,
                disk_bytes: args.workspace_quota_mb.saturating_mul(1 << 20),
                disk_entries: args.workspace_max_entries,
                ..d.limits.clone()
            },
            script_max_age: Duration::from_secs(args.script_max_age_secs.max(1)),
            repl_max_age: Duration::from_secs(args.repl_max_age_secs.max(1)),
            output_limit_bytes: args.output_limit_mb.max(1) << 20,
            detached_grace: Duration::from_secs(args.detached_grace_secs.max(1)),
            reaper_interval: Duration::from_secs(args.reaper_interval_secs.max(1)),
            max_concurrent_runs: args.max_concurrent_runs as usize,
            runs_per_min: args.runs_per_min.max(1),
            python: args.python.clone(),
            ..d
        }
    }

    /// The admission limit: the configured value, or (when 0) derived from the
    /// host: `min(70% of RAM / memory limit, 64 × CPUs)`, at least 1.
    pub fn effective_max_concurrent_runs(&self) -> usize {
        if self.max_concurrent_runs > 0 {
            return self.max_concurrent_runs;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let by_cpu = 64 * cpus;
        let by_mem = total_memory_bytes()
            .map(|total| (total as f64 * 0.7 / self.limits.memory_bytes.max(1) as f64) as usize)
            .unwrap_or(by_cpu);
        by_mem.min(by_cpu).max(1)
    }

    /// CPU-time limit in ms.
    pub fn cpu_limit_ms(&self) -> u64 {
        self.limits.cpu_secs.saturating_mul(1000)
    }
}

/// `MemTotal` from /proc/meminfo.
fn total_memory_bytes() -> Option<u64> {
    super::proc::kib_field("/proc/meminfo", "MemTotal:")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn derived_admission_is_positive_and_bounded_by_cpus() {
        let cfg = RunnerConfig::default();
        let n = cfg.effective_max_concurrent_runs();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(n >= 1 && n <= 64 * cpus);
        let fixed = RunnerConfig {
            max_concurrent_runs: 3,
            ..RunnerConfig::default()
        };
        assert_eq!(fixed.effective_max_concurrent_runs(), 3);
    }
}
