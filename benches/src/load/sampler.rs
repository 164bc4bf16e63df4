//! Once a second: the server's RSS, open fds and CPU (from /proc), and the
//! whole machine's CPU use (the machine is shared, so this tells how much of
//! it the test got).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::server::proc_sample;

/// /proc reports CPU times in USER_HZ, which is 100 on Linux regardless of the kernel's HZ.
const USER_HZ: f64 = 100.0;

/// One sample of the server process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since sampling began.
    pub t_s: f64,
    /// Resident set size, MiB.
    pub rss_mb: f64,
    /// Open file descriptors.
    pub fds: usize,
    /// CPU use since the previous sample, percent of one core.
    pub cpu_pct: f64,
    /// Whole-machine CPU busy since the previous sample, percent of all cores.
    pub machine_busy_pct: f64,
}

/// Shared, growing list of samples.
pub type Samples = Arc<Mutex<Vec<Sample>>>;

/// Sample `pid` every second until `stop` is cancelled; samples go into the returned list.
pub fn spawn(pid: Option<u32>, stop: CancellationToken) -> Samples {
    let out: Samples = Arc::default();
    let list = out.clone();
    tokio::spawn(async move {
        let t0 = Instant::now();
        let mut prev = (Instant::now(), pid.and_then(ticks), machine_ticks());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let machine = machine_ticks();
            let machine_busy_pct = match (prev.2, machine) {
                (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                    100.0 * (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64
                }
                _ => 0.0,
            };
            let Some((rss, fds, cpu)) = pid.and_then(proc_sample) else {
                prev = (now, None, machine);
                continue;
            };
            let dt = now.duration_since(prev.0).as_secs_f64();
            let cpu_pct = match prev.1 {
                Some(p) if dt > 0.0 => 100.0 * (cpu.saturating_sub(p)) as f64 / USER_HZ / dt,
                _ => 0.0,
            };
            prev = (now, Some(cpu), machine);
            if let Ok(mut l) = list.lock() {
                l.push(Sample {
                    t_s: now.duration_since(t0).as_secs_f64(),
                    rss_mb: rss as f64 / (1024.0 * 1024.0),
                    fds,
                    cpu_pct,
                    machine_busy_pct,
                });
            }
        }
    });
    out
}

fn ticks(pid: u32) -> Option<u64> {
    proc_sample(pid).map(|s| s.2)
}

/// (busy, total) jiffies of the whole machine from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The 1/5/15-minute load averages.
pub fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().filter_map(|x| x.parse::<f64>().ok());
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Least-squares slope of RSS over time, MiB per minute (0 with fewer than 2 samples).
pub fn rss_slope_mb_per_min(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mt = samples.iter().map(|s| s.t_s).sum::<f64>() / n;
    let mr = samples.iter().map(|s| s.rss_mb).sum::<f64>() / n;
    let cov: f64 = samples.iter().map(|s| (s.t_s - mt) * (s.rss_mb - mr)).sum();
    let var: f64 = samples.iter().map(|s| (s.t_s - mt).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var * 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, rss: f64) -> Sample {
        Sample {
            t_s: t,
            rss_mb: rss,
            fds: 0,
            cpu_pct: 0.0,
            machine_busy_pct: 0.0,
        }
    }

    #[test]
    fn slope() {
        let flat: Vec<Sample> = (0..10).map(|i| s(i as f64, 50.0)).collect();
        assert_eq!(rss_slope_mb_per_min(&flat), 0.0);
        let growing: Vec<Sample> = (0..10).map(|i| s(i as f64, 50.0 + i as f64)).collect();
        assert!((rss_slope_mb_per_min(&growing) - 60.0).abs() < 1e-9);
    }

    #[test]
    fn samples_own_process() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let stop = CancellationToken::new();
            let list = spawn(Some(std::process::id()), stop.clone());
            let deadline = Instant::now() + Duration::from_secs(10);
            while list.lock().unwrap().len() < 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop.cancel();
            let l = list.lock().unwrap();
            assert!(l.len() >= 2);
            assert!(l[0].rss_mb > 0.0 && l[0].fds > 0);
        });
    }
}
