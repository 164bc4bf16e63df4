//! Runner settings: limits, clocks, buffer sizes and admission. A plain
//! struct: `serve` and `run` build it from their command line in
//! [`crate::config`]; the defaults are the product's, written once
//! ([`crate::sandbox::SandboxLimits::default`], [`DEFAULT_SCRIPT_MAX_AGE_SECS`], …).

use std::path::PathBuf;
use std::time::Duration;

use crate::execution::DEFAULT_OUTPUT_MIB;
use crate::sandbox::SandboxLimits;

/// Default wall-clock limit of the script phase, seconds.
pub const DEFAULT_SCRIPT_MAX_AGE_SECS: u64 = 30 * 60;
/// Default wall-clock limit of the REPL phase, seconds.
pub const DEFAULT_REPL_MAX_AGE_SECS: u64 = 60 * 60;
/// Default runs a user may start per minute.
pub const DEFAULT_RUNS_PER_MIN: u32 = 10;
/// Memory set aside per warm sandbox when their number is derived, bytes.
pub const WARM_SANDBOX_BUDGET_BYTES: u64 = 8 << 20;
/// Default batch requests that may wait for a slot.
pub const DEFAULT_BATCH_QUEUE: usize = 1024;

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
    /// Concurrently running sandboxes on this host, all classes (never 0
    /// after [`RunnerConfig::effective_max_concurrent_runs`]).
    pub max_concurrent_runs: usize,
    /// Slots batch work leaves to interactive runs (0 = a quarter of the
    /// slots, at least 1; see [`RunnerConfig::effective_batch_reserve`]).
    pub batch_reserve_slots: usize,
    /// Batch requests that may wait for a slot (beyond: `busy`).
    pub batch_queue: usize,
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
    /// Warm sandboxes on this host, at most one per session with a
    /// connection attached (`None` = derived from the host, see
    /// [`RunnerConfig::effective_warm_sandboxes`]; `Some(0)` = off).
    pub warm_sandboxes: Option<usize>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            limits: SandboxLimits::default(),
            script_max_age: Duration::from_secs(DEFAULT_SCRIPT_MAX_AGE_SECS),
            repl_max_age: Duration::from_secs(DEFAULT_REPL_MAX_AGE_SECS),
            output_limit_bytes: DEFAULT_OUTPUT_MIB << 20,
            log_tail_bytes: 256 << 10,
            detached_grace: Duration::from_secs(300),
            reaper_interval: Duration::from_secs(300),
            max_concurrent_runs: 0,
            batch_reserve_slots: 0,
            batch_queue: DEFAULT_BATCH_QUEUE,
            runs_per_min: DEFAULT_RUNS_PER_MIN,
            python: PathBuf::from("/usr/bin/python3"),
            high_water_bytes: 100_000,
            low_water_bytes: 32_000,
            frame_interval: Duration::from_millis(16),
            max_frame_bytes: 32 << 10,
            connection_buffer: 256,
            shutdown_wait: Duration::from_secs(10),
            busy_retry_after: Duration::from_secs(5),
            warm_sandboxes: None,
        }
    }
}

impl RunnerConfig {
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

    /// The interactive reserve for `slots` slots: the configured value, or
    /// (when 0) a quarter of the slots, at least 1 (admission caps it at
    /// `slots − 1`).
    pub fn effective_batch_reserve(&self, slots: usize) -> usize {
        if self.batch_reserve_slots > 0 {
            return self.batch_reserve_slots;
        }
        (slots / 4).max(1)
    }

    /// How many warm sandboxes may wait at once: the configured value, or
    /// (when `None`) a tenth of RAM at [`WARM_SANDBOX_BUDGET_BYTES`] each
    /// (a parked interpreter takes ~7 MiB resident, mostly shared pages),
    /// at least 1 and at most 4,096.
    pub fn effective_warm_sandboxes(&self) -> usize {
        if let Some(n) = self.warm_sandboxes {
            return n;
        }
        total_memory_bytes()
            .map_or(64, |total| {
                (total / 10 / WARM_SANDBOX_BUDGET_BYTES) as usize
            })
            .clamp(1, 4096)
    }

    /// CPU-time limit in ms.
    pub fn cpu_limit_ms(&self) -> u64 {
        self.limits.cpu_secs.saturating_mul(1000)
    }
}

/// `MemTotal` from /proc/meminfo.
fn total_memory_bytes() -> Option<u64> {
    crate::execution::proc::kib_field("/proc/meminfo", "MemTotal:")
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
