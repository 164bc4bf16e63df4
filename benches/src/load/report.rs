//! The class report: per-operation percentiles and error codes, server
//! resources, as JSON and as a Markdown table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sampler::{rss_slope_mb_per_min, Sample};
use super::{Collected, Op, INTENDED_SUFFIX};
use crate::stats::{summarize, Summary};

/// One operation kind in the report.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Successful operations (latency samples).
    pub count: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Error code → count; intended outcomes carry the suffix ` (intended)`.
    pub errors: BTreeMap<String, u64>,
}

/// Server resources over the test.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerReport {
    /// Highest RSS, MiB.
    pub rss_mb_max: f64,
    /// RSS at the first sample, MiB.
    pub rss_mb_start: f64,
    /// RSS at the last sample, MiB.
    pub rss_mb_end: f64,
    /// Least-squares RSS trend over the second half of the test, MiB per minute.
    pub rss_mb_slope_per_min: f64,
    /// Most open fds.
    pub fds_max: usize,
    /// Open fds at the first sample.
    pub fds_start: usize,
    /// Open fds at the last sample.
    pub fds_end: usize,
    /// Mean CPU use, percent of one core (2 cores = 200).
    pub cpu_pct_mean: f64,
    /// Mean whole-machine CPU busy, percent of all cores (includes the load generator and sandboxes).
    pub machine_busy_pct_mean: f64,
    /// Number of samples (one per second).
    pub samples: usize,
    /// Open fds `--close-wait` (3 s) after every student disconnected
    /// (connections gone; idle sessions are kept for the reconnect grace).
    pub fds_after_close: usize,
    /// RSS `--close-wait` after every student disconnected, MiB.
    pub rss_mb_after_close: f64,
}

/// The whole report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Students simulated.
    pub students: usize,
    /// Measured duration, seconds.
    pub duration_s: f64,
    /// One entry per operation kind.
    pub ops: BTreeMap<String, OpReport>,
    /// Server resources (absent figures are 0 when the pid is unknown).
    pub server: ServerReport,
    /// Errors that are not intended refusals (CI fails when > 0).
    pub unexpected_errors: u64,
    /// Intended outcomes (limits hit on purpose), also listed in `errors` with ` (intended)`.
    pub intended: u64,
    /// CPU used by the load generator itself, percent of one core (it shares the machine).
    pub loadgen_cpu_pct: f64,
    /// Load averages (1, 5, 15 min) before and after.
    pub loadavg_start: [f64; 3],
    /// Load averages after.
    pub loadavg_end: [f64; 3],
    /// Diagnostic latency summaries (e.g. echo with / without a save in flight on the same connection).
    pub diagnostics: BTreeMap<String, Summary>,
    /// The per-second server samples `[t_s, rss_mb, fds, cpu_pct, machine_busy_pct]`.
    pub timeline: Vec<[f64; 5]>,
}

/// Summaries and error maps per kind.
pub fn ops(c: &Collected) -> BTreeMap<String, OpReport> {
    Op::ALL
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let Summary {
                count,
                p50_ms,
                p95_ms,
                p99_ms,
                max_ms,
            } = summarize(&c.samples[i]);
            let r = OpReport {
                count,
                p50_ms,
                p95_ms,
                p99_ms,
                max_ms,
                errors: c.errors[i].clone(),
            };
            (op.name().to_string(), r)
        })
        .collect()
}

/// Summaries of the diagnostic samples.
pub fn diagnostics(c: &Collected) -> BTreeMap<String, Summary> {
    c.extra
        .iter()
        .map(|(k, v)| (k.to_string(), summarize(v)))
        .collect()
}

/// Resource figures from the per-second samples.
pub fn server(samples: &[Sample]) -> ServerReport {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return ServerReport::default();
    };
    let n = samples.len() as f64;
    // The first half includes the ramp (connections, first runs); the trend that
    // matters is the steady state.
    let half = &samples[samples.len() / 2..];
    ServerReport {
        rss_mb_max: samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
        rss_mb_start: first.rss_mb,
        rss_mb_end: last.rss_mb,
        rss_mb_slope_per_min: rss_slope_mb_per_min(half),
        fds_max: samples.iter().map(|s| s.fds).max().unwrap_or(0),
        fds_start: first.fds,
        fds_end: last.fds,
        cpu_pct_mean: samples.iter().map(|s| s.cpu_pct).sum::<f64>() / n,
        machine_busy_pct_mean: samples.iter().map(|s| s.machine_busy_pct).sum::<f64>() / n,
        samples: samples.len(),
        fds_after_close: 0,
        rss_mb_after_close: 0.0,
    }
}

/// The per-second samples as compact rows.
pub fn timeline(samples: &[Sample]) -> Vec<[f64; 5]> {
    samples
        .iter()
        .map(|s| [s.t_s, s.rss_mb, s.fds as f64, s.cpu_pct, s.machine_busy_pct])
        .collect()
}

/// Errors in a map that are not intended.
pub fn unexpected_in(errors: &BTreeMap<String, u64>) -> u64 {
    errors
        .iter()
        .filter(|(k, _)| !k.ends_with(INTENDED_SUFFIX))
        .map(|(_, v)| v)
        .sum()
}

/// The final Markdown table.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} students, {:.0} s\n\n| operation | ok | p50 ms | p95 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|---:|---|\n",
        r.students, r.duration_s
    ));
    for op in Op::ALL {
        let Some(o) = r.ops.get(op.name()) else {
            continue;
        };
        let errs = if o.errors.is_empty() {
            "—".to_string()
        } else {
            o.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |\n",
            op.name(),
            o.count,
            o.p50_ms,
            o.p95_ms,
            o.p99_ms,
            o.max_ms,
            errs
        ));
    }
    for (name, d) in &r.diagnostics {
        out.push_str(&format!(
            "| ({name}) | {} | {:.2} | {:.2} | {:.2} | {:.2} | |\n",
            d.count, d.p50_ms, d.p95_ms, d.p99_ms, d.max_ms
        ));
    }
    let s = &r.server;
    out.push_str(&format!(
        "\nserver: RSS start {:.1} MiB, end {:.1} MiB, max {:.1} MiB, trend {:+.2} MiB/min (2nd half); fds start {}, end {}, max {}, after close {}; CPU mean {:.0}% of a core; machine busy {:.0}%\n",
        s.rss_mb_start, s.rss_mb_end, s.rss_mb_max, s.rss_mb_slope_per_min, s.fds_start, s.fds_end, s.fds_max, s.fds_after_close, s.cpu_pct_mean, s.machine_busy_pct_mean
    ));
    out.push_str(&format!(
        "load generator CPU {:.0}% of a core; load average start {:?}, end {:?}\nunexpected errors: {}, intended: {}\n",
        r.loadgen_cpu_pct, r.loadavg_start, r.loadavg_end, r.unexpected_errors, r.intended
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_excludes_intended() {
        let mut m = BTreeMap::new();
        m.insert("memory_limit (intended)".to_string(), 3);
        m.insert("busy".to_string(), 2);
        m.insert("timeout".to_string(), 1);
        assert_eq!(unexpected_in(&m), 3);
    }
}
