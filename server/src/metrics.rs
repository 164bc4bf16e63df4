//! Prometheus metrics, `GET /metrics` in the Prometheus text format (0.0.4).
//!
//! Counters and histograms are recorded where things happen (a run started
//! or ended); gauges are read from the services when Prometheus scrapes
//! (connections, sessions, sandbox slots, the grading queue, the data dir's
//! disk, the record writer, this process), so an idle server does no work
//! for them. Names follow Prometheus conventions: base units, `_total`
//! counters, histograms with chosen buckets, no per-student labels. The
//! registry belongs to one server (no global), so tests can run several.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use campus_protocol::{EndReason, ErrorCode};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Run durations, seconds: a typo'd script (0.05 s) to the 30-minute REPL.
const RUN_SECONDS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// Run start → first output, seconds: a warm start's tens of ms to a slow import.
const FIRST_OUTPUT_SECONDS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The admin feed's work per tick, seconds: a few sessions to thousands.
const FEED_SECONDS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
];

/// Grading durations, seconds: ten quick tests to a submission's whole limit.
const GRADING_SECONDS: [f64; 10] = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 300.0];

type Labels = Vec<(&'static str, &'static str)>;
type FCounter = Counter<f64, AtomicU64>;
type FGauge = Gauge<f64, AtomicU64>;

/// One server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    process: Registry,
    runs_started: Counter,
    runs_ended: Family<Labels, Counter>,
    run_duration: Histogram,
    run_first_output: Histogram,
    ws_received: Counter,
    ws_sent: Counter,
    refusals: Family<Labels, Counter>,
    /// The same counts as `runs_ended` and `refusals`, readable (a `Family`
    /// cannot be listed): the admin view turns them into rates per minute.
    totals: Mutex<CounterTotals>,
    connections: Family<Labels, Gauge>,
    connections_refused: Counter,
    sessions: Gauge,
    sandboxes_running: Gauge,
    sandbox_slots: Gauge,
    sandbox_slots_batch_in_use: Gauge,
    sandbox_slots_waiting: Gauge,
    grading_queue_depth: Gauge,
    grading_queue_oldest: FGauge,
    gradings: Family<Labels, Counter>,
    grading_duration: Histogram,
    admin_feed_tick: Histogram,
    disk_free: Gauge,
    disk_size: Gauge,
    disk_free_inodes: Gauge,
    database_up: Gauge,
    records_pending: Gauge,
    records_dropped: Counter,
    process_cpu: FCounter,
    process_memory: Gauge,
    process_fds: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("campus");
        let m = Metrics {
            runs_started: Counter::default(),
            runs_ended: Family::default(),
            run_duration: Histogram::new(RUN_SECONDS),
            run_first_output: Histogram::new(FIRST_OUTPUT_SECONDS),
            ws_received: Counter::default(),
            ws_sent: Counter::default(),
            refusals: Family::default(),
            totals: Mutex::default(),
            connections: Family::default(),
            connections_refused: Counter::default(),
            sessions: Gauge::default(),
            sandboxes_running: Gauge::default(),
            sandbox_slots: Gauge::default(),
            sandbox_slots_batch_in_use: Gauge::default(),
            sandbox_slots_waiting: Gauge::default(),
            grading_queue_depth: Gauge::default(),
            grading_queue_oldest: FGauge::default(),
            gradings: Family::default(),
            grading_duration: Histogram::new(GRADING_SECONDS),
            admin_feed_tick: Histogram::new(FEED_SECONDS),
            disk_free: Gauge::default(),
            disk_size: Gauge::default(),
            disk_free_inodes: Gauge::default(),
            database_up: Gauge::default(),
            records_pending: Gauge::default(),
            records_dropped: Counter::default(),
            process_cpu: FCounter::default(),
            process_memory: Gauge::default(),
            process_fds: Gauge::default(),
            registry: Registry::default(),
            process: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "runs_started",
            "Runs started (scripts, hybrid runs, REPLs)",
            m.runs_started.clone(),
        );
        r.register(
            "runs_ended",
            "Runs ended, by reason (exited, stopped, timeout, memory_limit, killed_by_admin, ...)",
            m.runs_ended.clone(),
        );
        r.register(
            "run_duration_seconds",
            "Wall time of ended runs",
            m.run_duration.clone(),
        );
        r.register(
            "run_first_output_seconds",
            "Run start to the first byte of its output (for a REPL, its greeting)",
            m.run_first_output.clone(),
        );
        r.register(
            "ws_messages_received",
            "WebSocket messages received from clients (text and binary frames)",
            m.ws_received.clone(),
        );
        r.register(
            "ws_messages_sent",
            "WebSocket messages sent to clients (JSON messages and output frames)",
            m.ws_sent.clone(),
        );
        r.register(
            "refusals",
            "WebSocket requests refused, by error code (rate_limited, forbidden, quota_exceeded, ...)",
            m.refusals.clone(),
        );
        r.register(
            "connections",
            "Open connections by kind (websocket, http, unauthenticated)",
            m.connections.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused since start (at capacity)",
            m.connections_refused.clone(),
        );
        r.register(
            "sessions",
            "Sessions (one per student with a session actor)",
            m.sessions.clone(),
        );
        r.register(
            "sandboxes_running",
            "Sandboxed runs executing now",
            m.sandboxes_running.clone(),
        );
        r.register(
            "sandbox_slots",
            "Sandbox slots of the host (interactive and batch)",
            m.sandbox_slots.clone(),
        );
        r.register(
            "sandbox_slots_batch_in_use",
            "Sandbox slots held by batch work (grading)",
            m.sandbox_slots_batch_in_use.clone(),
        );
        r.register(
            "sandbox_slots_waiting",
            "Batch work waiting for a sandbox slot",
            m.sandbox_slots_waiting.clone(),
        );
        r.register(
            "grading_queue_depth",
            "Submissions queued for grading",
            m.grading_queue_depth.clone(),
        );
        r.register(
            "grading_queue_oldest_seconds",
            "How long the oldest queued submission has waited",
            m.grading_queue_oldest.clone(),
        );
        r.register(
            "gradings",
            "Gradings finished, by result (graded, or platform_failure: given back to the queue)",
            m.gradings.clone(),
        );
        r.register(
            "grading_duration_seconds",
            "Wall time of a grading, claim to result",
            m.grading_duration.clone(),
        );
        r.register(
            "admin_feed_tick_seconds",
            "Time the admin feed took to gather and serialize one tick (once, whatever the number of admins watching)",
            m.admin_feed_tick.clone(),
        );
        r.register(
            "data_dir_free_bytes",
            "Bytes an unprivileged writer may still use on the data dir's filesystem",
            m.disk_free.clone(),
        );
        r.register(
            "data_dir_size_bytes",
            "Size of the data dir's filesystem",
            m.disk_size.clone(),
        );
        r.register(
            "data_dir_free_inodes",
            "Files and folders that may still be created on the data dir's filesystem",
            m.disk_free_inodes.clone(),
        );
        r.register(
            "database_up",
            "1 when the database answers (cached about 1 s), else 0",
            m.database_up.clone(),
        );
        r.register(
            "records_pending",
            "Run and audit records not yet in the database",
            m.records_pending.clone(),
        );
        r.register(
            "records_dropped",
            "Records dropped since start (the writer fell behind)",
            m.records_dropped.clone(),
        );
        // Process metrics carry the conventional unprefixed names.
        let mut process = Registry::default();
        process.register(
            "process_cpu_seconds",
            "User and system CPU time of the server process",
            m.process_cpu.clone(),
        );
        process.register(
            "process_resident_memory_bytes",
            "Resident memory of the server process",
            m.process_memory.clone(),
        );
        process.register(
            "process_open_fds",
            "Open file descriptors of the server process",
            m.process_fds.clone(),
        );
        Metrics {
            registry,
            process,
            ..m
        }
    }

    /// A run started.
    pub fn run_started(&self) {
        self.runs_started.inc();
    }

    /// A run ended after `duration_ms`.
    pub fn run_ended(&self, reason: EndReason, duration_ms: u64) {
        self.runs_ended
            .get_or_create(&vec![("reason", reason.as_str())])
            .inc();
        self.run_duration.observe(duration_ms as f64 / 1000.0);
        *self.lock_totals().ended.entry(reason.as_str()).or_default() += 1;
    }

    /// A run's first output came `after` its start.
    pub fn run_first_output(&self, after: std::time::Duration) {
        self.run_first_output.observe(after.as_secs_f64());
    }

    /// A WebSocket message arrived from a client.
    pub fn ws_received(&self) {
        self.ws_received.inc();
    }

    /// The counter of messages sent, for a connection's socket to count on.
    pub fn ws_sent_counter(&self) -> Counter {
        self.ws_sent.clone()
    }

    /// The admin feed computed a tick in `took`.
    pub fn admin_feed_tick(&self, took: std::time::Duration) {
        self.admin_feed_tick.observe(took.as_secs_f64());
    }

    /// A request was refused with `code`.
    pub fn refused(&self, code: ErrorCode) {
        self.refusals
            .get_or_create(&vec![("code", code.as_str())])
            .inc();
        *self
            .lock_totals()
            .refusals
            .entry(code.as_str())
            .or_default() += 1;
    }

    /// Counts since start, for rates: runs started, ended by reason, refusals by code.
    pub fn totals(&self) -> CounterTotals {
        let mut t = self.lock_totals().clone();
        t.runs_started = self.runs_started.get();
        t
    }

    fn lock_totals(&self) -> std::sync::MutexGuard<'_, CounterTotals> {
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A grading finished (`graded`: a result was stored; else the platform
    /// failed and the job went back to the queue).
    pub fn grading_done(&self, graded: bool, took: std::time::Duration) {
        let result = if graded { "graded" } else { "platform_failure" };
        self.gradings.get_or_create(&vec![("result", result)]).inc();
        if graded {
            self.grading_duration.observe(took.as_secs_f64());
        }
    }

    /// Read the gauges from the services and encode everything.
    pub async fn render(&self, state: &AppState) -> String {
        let conns = state.conns.stats();
        for (kind, n) in [
            ("websocket", conns.websockets),
            ("http", conns.http),
            ("unauthenticated", conns.unauthenticated),
        ] {
            self.connections
                .get_or_create(&vec![("kind", kind)])
                .set(n as i64);
        }
        self.connections_refused
            .inner()
            .store(conns.refused, Ordering::Relaxed);
        let runner = &state.runner;
        self.sessions.set(runner.session_count() as i64);
        self.sandboxes_running.set(runner.active_runs() as i64);
        let admission = runner.executor().admission();
        self.sandbox_slots.set(admission.capacity() as i64);
        self.sandbox_slots_batch_in_use
            .set(admission.batch_in_use() as i64);
        self.sandbox_slots_waiting.set(admission.queued() as i64);
        if let Some((n, waited)) = state.grading.queue_depth().await {
            self.grading_queue_depth.set(n as i64);
            self.grading_queue_oldest.set(waited.as_secs_f64());
        }
        let disk = state.readiness.disk_status().await;
        self.disk_free.set(clamp(disk.free_bytes));
        self.disk_size.set(clamp(disk.total_bytes));
        self.disk_free_inodes.set(clamp(disk.free_inodes));
        self.database_up
            .set(i64::from(state.readiness.db_ready().await));
        let records = state.readiness.records().stats();
        self.records_pending.set(clamp(records.queued));
        // Counters kept elsewhere, exposed as they stand.
        self.records_dropped
            .inner()
            .store(records.dropped, Ordering::Relaxed);
        let own = process_stats();
        self.process_cpu
            .inner()
            .store(own.cpu_seconds.to_bits(), Ordering::Relaxed);
        self.process_memory.set(clamp(own.resident_bytes));
        self.process_fds.set(clamp(own.open_fds));
        let mut out = String::new();
        if prometheus_text::encode(&mut out, &self.registry).is_err()
            || prometheus_text::encode(&mut out, &self.process).is_err()
        {
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }
}

/// Counts since the server started (see [`Metrics::totals`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CounterTotals {
    /// Runs started.
    pub runs_started: u64,
    /// Runs ended, by reason.
    pub ended: BTreeMap<&'static str, u64>,
    /// WebSocket requests refused, by error code.
    pub refusals: BTreeMap<&'static str, u64>,
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// This process's CPU time, resident memory and open descriptors (Linux /proc).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStats {
    /// User + system CPU, seconds.
    pub cpu_seconds: f64,
    /// Resident set, bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

/// Read [`ProcessStats`] of this process (zeros for what cannot be read).
pub fn process_stats() -> ProcessStats {
    let mut s = ProcessStats::default();
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let page = rustix::param::page_size() as u64;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may contain spaces) in parentheses.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 (1-based) of the whole line.
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.cpu_seconds = (num(11) + num(12)) as f64 / ticks;
            s.resident_bytes = num(21) * page;
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        s.open_fds = dir.count() as u64;
    }
    s
}
