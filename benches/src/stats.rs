//! Latency summaries (exact percentiles over all samples).

use serde::Serialize;
use std::time::Duration;

/// Percentiles of one operation kind, in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// Summarise samples (nearest-rank percentiles).
pub fn summarize(samples: &[Duration]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        let rank = ((p / 100.0) * ms.len() as f64).ceil() as usize;
        ms[rank.clamp(1, ms.len()) - 1]
    };
    Summary {
        count: ms.len(),
        p50_ms: pct(50.0),
        p95_ms: pct(95.0),
        p99_ms: pct(99.0),
        max_ms: ms[ms.len() - 1],
    }
}

/// One table row.
pub fn row(name: &str, s: &Summary) -> String {
    format!(
        "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
        s.count, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms
    )
}

/// Table header matching [`row`].
pub const HEADER: &str =
    "| operation | n | p50 ms | p95 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let r = summarize(&s);
        assert_eq!(r.count, 100);
        assert!((r.p50_ms - 50.0).abs() < 1e-9);
        assert!((r.p99_ms - 99.0).abs() < 1e-9);
        assert!((r.max_ms - 100.0).abs() < 1e-9);
    }
}
