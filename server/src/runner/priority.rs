//! Interactive first: a run that keeps a CPU busy is moved to a low CPU
//! priority, so on a contended machine the programs that are starting, or
//! answering a keystroke, go first; an idle machine still gives it a whole CPU
//! (priorities only matter when runs compete). It gets the default priority
//! back as soon as it goes quiet (e.g. waits at `input()` or the REPL prompt).
//!
//! The decision uses the sampled CPU time of the run's cgroup: over a window
//! of at least [`WINDOW`], a run that has already used [`DEMOTE_AFTER_MS`] in
//! total and used at least [`BUSY_PER_WINDOW`] of the window is demoted; a
//! demoted run that used less than [`QUIET_PER_WINDOW`] is promoted again.
//! "At least 10 % of the window" rather than "most of a CPU" because on a
//! saturated machine a CPU-bound program gets only a small slice: its demand,
//! not its usage, is high.

use std::time::{Duration, Instant};

use crate::sandbox::CpuPriority;

/// Shortest span over which usage is judged.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);
/// CPU a run may use in total before it can be demoted: a Python start costs ~25 ms.
pub(crate) const DEMOTE_AFTER_MS: u64 = 1_000;
/// Share of the window (‰) a run must have used to count as busy.
pub(crate) const BUSY_PER_WINDOW: u64 = 100;
/// Share of the window (‰) below which a run counts as quiet again.
pub(crate) const QUIET_PER_WINDOW: u64 = 20;

/// One run's priority state, fed with its sampled CPU time.
#[derive(Debug, Clone)]
pub(crate) struct PriorityPolicy {
    window_start: Instant,
    cpu_at_start: u64,
    current: CpuPriority,
}

impl PriorityPolicy {
    /// A run that just started: interactive.
    pub(crate) fn new(now: Instant) -> Self {
        PriorityPolicy {
            window_start: now,
            cpu_at_start: 0,
            current: CpuPriority::Interactive,
        }
    }

    /// The current priority.
    pub(crate) fn current(&self) -> CpuPriority {
        self.current
    }

    /// Feed a sample (total CPU ms of the run); returns the new priority when it changes.
    pub(crate) fn observe(&mut self, now: Instant, cpu_ms: u64) -> Option<CpuPriority> {
        let span = now.saturating_duration_since(self.window_start);
        if span < WINDOW {
            return None;
        }
        let used = cpu_ms.saturating_sub(self.cpu_at_start);
        let per_mille = used * 1000 / (span.as_millis() as u64).max(1);
        self.window_start = now;
        self.cpu_at_start = cpu_ms;
        let next = match self.current {
            CpuPriority::Interactive
                if cpu_ms >= DEMOTE_AFTER_MS && per_mille >= BUSY_PER_WINDOW =>
            {
                CpuPriority::Background
            }
            CpuPriority::Background if per_mille < QUIET_PER_WINDOW => CpuPriority::Interactive,
            same => same,
        };
        (next != self.current).then(|| {
            self.current = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_spinning_run_is_demoted_then_promoted_when_it_waits() {
        let t0 = Instant::now();
        let mut p = PriorityPolicy::new(t0);
        // Busy but under the total: stays interactive.
        assert_eq!(p.observe(at(t0, 1000), 900), None);
        // Over the total and still busy (even a small slice counts on a busy machine).
        assert_eq!(p.observe(at(t0, 2000), 1050), Some(CpuPriority::Background));
        assert_eq!(p.observe(at(t0, 3000), 1500), None);
        // Quiet (waiting for input): back to interactive.
        assert_eq!(
            p.observe(at(t0, 4000), 1505),
            Some(CpuPriority::Interactive)
        );
        assert_eq!(p.current(), CpuPriority::Interactive);
    }

    #[test]
    fn short_spans_are_not_judged_and_typing_never_demotes() {
        let t0 = Instant::now();
        let mut p = PriorityPolicy::new(t0);
        // A script that computed for 1.2 s, now a REPL answering keystrokes.
        p.cpu_at_start = 1200;
        assert_eq!(p.observe(at(t0, 500), 5000), None, "under a window");
        let mut cpu = 1200;
        for s in 1..30 {
            cpu += 5;
            assert_eq!(p.observe(at(t0, s * 1000), cpu), None);
        }
    }
}
