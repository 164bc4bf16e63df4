//! The class load generator (`loadgen`): simulated students against a real
//! `campus serve`, with a shared [`Recorder`] of latencies and error codes.
//!
//! - [`setup`]: start our own server or target an existing one; create and log in users.
//! - [`student`]: one task per student driving a realistic class.
//! - [`sampler`]: the server's RSS, CPU and fds every second.
//! - [`report`]: the JSON report and the final table.
//! - [`idle`]: K idle, heartbeating connections and memory per connection.

pub mod idle;
pub mod report;
pub mod sampler;
pub mod setup;
pub mod student;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

/// The measured operation kinds, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// WebSocket connect (TCP + upgrade) until `hello` arrived.
    Connect,
    /// `write` → `written`.
    Save,
    /// `run` → first output byte of the run (admitted runs).
    RunFirstOutput,
    /// `input {data:"x"}` → the output frame carrying the echo.
    Echo,
    /// `attach {since_seq}` → output up to `attached.next_seq` arrived.
    Reattach,
}

impl Op {
    /// Every kind, in report order.
    pub const ALL: [Op; 5] = [
        Op::Connect,
        Op::Save,
        Op::RunFirstOutput,
        Op::Echo,
        Op::Reattach,
    ];

    /// Key in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Op::Connect => "connect",
            Op::Save => "save",
            Op::RunFirstOutput => "run_first_output",
            Op::Echo => "echo",
            Op::Reattach => "reattach",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Suffix of error keys that are intended outcomes (a limit the student meant to hit).
pub const INTENDED_SUFFIX: &str = " (intended)";

#[derive(Default)]
struct Inner {
    samples: [Vec<Duration>; 5],
    errors: [BTreeMap<String, u64>; 5],
    extra: BTreeMap<&'static str, Vec<Duration>>,
}

/// Thread-safe collector of latency samples and error counts, shared by all students.
#[derive(Default)]
pub struct Recorder {
    inner: Mutex<Inner>,
    /// Successful operations so far (for the progress line).
    pub ops_done: AtomicU64,
    /// Errors that are not intended refusals.
    pub unexpected: AtomicU64,
    /// Intended refusals and endings (limits the student meant to hit).
    pub intended: AtomicU64,
    /// Students whose program is running right now.
    pub runs_live: AtomicI64,
}

/// What the recorder collected, per kind.
pub struct Collected {
    /// Samples per [`Op`] (indexed like [`Op::ALL`]).
    pub samples: Vec<Vec<Duration>>,
    /// Error code → count per [`Op`].
    pub errors: Vec<BTreeMap<String, u64>>,
    /// Diagnostic samples by name.
    pub extra: BTreeMap<&'static str, Vec<Duration>>,
}

impl Recorder {
    /// Record one successful operation and its latency.
    pub fn ok(&self, op: Op, latency: Duration) {
        if let Ok(mut g) = self.inner.lock() {
            g.samples[op.index()].push(latency);
        }
        self.ops_done.fetch_add(1, Ordering::Relaxed);
    }

    /// Record a diagnostic sample (reported under `diagnostics`, not `ops`).
    pub fn extra(&self, name: &'static str, latency: Duration) {
        if let Ok(mut g) = self.inner.lock() {
            g.extra.entry(name).or_default().push(latency);
        }
    }

    /// Record an unexpected error `code` for `op` (a load-generator or server problem).
    pub fn error(&self, op: Op, code: &str) {
        self.count(op, code.to_string());
        self.unexpected.fetch_add(1, Ordering::Relaxed);
    }

    /// Record an intended outcome (e.g. `memory_limit` of a memory hog); stored as `"code (intended)"`.
    pub fn intended(&self, op: Op, code: &str) {
        self.count(op, format!("{code}{INTENDED_SUFFIX}"));
        self.intended.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, op: Op, key: String) {
        if let Ok(mut g) = self.inner.lock() {
            *g.errors[op.index()].entry(key).or_default() += 1;
        }
    }

    /// A copy of everything collected so far.
    pub fn snapshot(&self) -> Collected {
        match self.inner.lock() {
            Ok(g) => Collected {
                samples: g.samples.to_vec(),
                errors: g.errors.to_vec(),
                extra: g.extra.clone(),
            },
            Err(_) => Collected {
                samples: vec![Vec::new(); 5],
                errors: vec![BTreeMap::new(); 5],
                extra: BTreeMap::new(),
            },
        }
    }
}

/// Parse a duration like `120s`, `10m`, `500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("bad duration unit in {s:?} (use ms, s, m or h)"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A short error code for a failed connect (HTTP status of a refused upgrade, or the I/O kind).
pub fn connect_error_code(e: &anyhow::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as WsError;
    for cause in e.chain() {
        if let Some(ws) = cause.downcast_ref::<WsError>() {
            return match ws {
                WsError::Http(r) => format!("http_{}", r.status().as_u16()),
                WsError::Io(io) => format!("io_{:?}", io.kind()).to_lowercase(),
                WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".into(),
                other => format!("ws_{}", short(&other.to_string())),
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return format!("io_{:?}", io.kind()).to_lowercase();
        }
    }
    let text = e.to_string();
    if text.contains("timed out") {
        "timeout".into()
    } else if text.contains("closed") {
        "closed".into()
    } else {
        "connect_failed".into()
    }
}

/// First word of a message, as a key.
fn short(s: &str) -> String {
    s.split_whitespace()
        .next()
        .unwrap_or("error")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn recorder_separates_intended() {
        let r = Recorder::default();
        r.ok(Op::Echo, Duration::from_millis(3));
        r.error(Op::Save, "internal");
        r.intended(Op::RunFirstOutput, "memory_limit");
        let c = r.snapshot();
        assert_eq!(c.samples[Op::Echo.index()].len(), 1);
        assert_eq!(c.errors[Op::Save.index()]["internal"], 1);
        assert_eq!(
            c.errors[Op::RunFirstOutput.index()]["memory_limit (intended)"],
            1
        );
        assert_eq!(r.unexpected.load(Ordering::Relaxed), 1);
        assert_eq!(r.intended.load(Ordering::Relaxed), 1);
    }
}
