//! The admin feed: one task computes a snapshot of every session and the
//! server's totals once per tick, serializes it once, and publishes the text
//! on a watch channel; every admin's connection sends that same frame. The
//! cost of a tick does not grow with the number of admins watching (one
//! computation, one serialization, a reference-counted frame per socket), and
//! a slow admin only ever misses ticks (a watch keeps the latest). Nobody
//! watching: nothing is computed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use campus_protocol::{
    AdminMsg, AdminPoint, AdminSessionInfo, AdminSessionState, AdminTotals, Phase, ServerMsg,
    SessionCounts, MAX_FEED_SESSIONS,
};
use tokio::sync::{watch, Notify};

use crate::metrics::CounterTotals;
use crate::runner::SessionInfo;
use crate::state::SharedState;
use crate::store::now_ms;

/// Time between ticks.
pub const TICK: Duration = Duration::from_secs(1);

/// Rates are counted over this window.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The data dir's disk is measured at most this often (a statvfs on the
/// blocking pool; a hung filesystem must not pile up blocked threads).
const DISK_EVERY: Duration = Duration::from_secs(10);

/// A CPU rate needs samples at least this far apart (the session samples
/// every 500 ms; closer readings would magnify one sample's step).
const CPU_MIN_SPAN: Duration = Duration::from_millis(900);

/// The charts' history: a point a minute for an hour.
const HISTORY_POINTS: usize = 60;
const HISTORY_STEP: Duration = Duration::from_secs(60);

/// The latest serialized `admin_feed` (None until one is computed, and again
/// once nobody watches, so a new watcher never gets a stale one).
pub type FeedFrame = Option<Utf8Bytes>;

/// The feed's shared end: watchers subscribe here; the task publishes here.
#[derive(Debug)]
pub struct AdminFeed {
    tx: watch::Sender<FeedFrame>,
    wake: Notify,
    computed: AtomicU64,
    last_bytes: AtomicU64,
}

impl Default for AdminFeed {
    fn default() -> Self {
        AdminFeed::new()
    }
}

impl AdminFeed {
    /// A feed nobody watches yet.
    pub fn new() -> AdminFeed {
        AdminFeed {
            tx: watch::Sender::new(None),
            wake: Notify::new(),
            computed: AtomicU64::new(0),
            last_bytes: AtomicU64::new(0),
        }
    }

    /// Start watching: the receiver sees the current frame at once (when one
    /// is fresh) and every later one. The first watcher wakes the task.
    pub fn watch(&self) -> watch::Receiver<FeedFrame> {
        let mut rx = self.tx.subscribe();
        if rx.borrow().is_none() {
            self.wake.notify_one();
        }
        rx.mark_changed();
        rx
    }

    /// Ticks computed since start (one per tick while anyone watches, however many).
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Size of the last frame, bytes.
    pub fn last_frame_bytes(&self) -> u64 {
        self.last_bytes.load(Ordering::Relaxed)
    }

    /// Connections watching now.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// The next frame for a connection watching the feed (`None`: not watching;
/// never resolves then).
pub async fn next_frame(rx: &mut Option<watch::Receiver<FeedFrame>>) -> Utf8Bytes {
    let Some(rx) = rx.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Some(frame) = rx.borrow_and_update().clone() {
            return frame;
        }
    }
}

/// The feed's task: ticks while anyone watches, until the server shuts down.
pub async fn run(state: SharedState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticker = Ticker::default();
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = tick.tick() => {}
            _ = state.admin.feed.wake.notified() => {}
        }
        let feed = &state.admin.feed;
        if feed.tx.receiver_count() == 0 {
            // Nobody watching: forget the last frame, compute nothing.
            if feed.tx.borrow().is_some() {
                feed.tx.send_replace(None);
            }
            // The next watcher's first rates start afresh.
            ticker.cpu.clear();
            ticker.record_rates(&state);
            continue;
        }
        let began = Instant::now();
        let msg = ticker.compute(&state).await;
        match serde_json::to_string(&ServerMsg::Admin(msg)) {
            Ok(text) => {
                state.metrics.admin_feed_tick(began.elapsed());
                feed.last_bytes.store(text.len() as u64, Ordering::Relaxed);
                feed.computed.fetch_add(1, Ordering::Relaxed);
                feed.tx.send_replace(Some(Utf8Bytes::from(text)));
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize the admin feed"),
        }
    }
}

/// A run's CPU reading a rate is taken from.
#[derive(Clone)]
struct CpuReading {
    run_id: String,
    /// When the session sampled it.
    at: Instant,
    cpu_ms: u64,
    /// The rate shown, kept while readings are too close for a new one.
    percent: f64,
}

/// What one tick needs of the ones before: each run's CPU reading (for a
/// rate), counters over the last minute, the hour's chart points, the
/// last disk figures.
#[derive(Default)]
struct Ticker {
    cpu: HashMap<i64, CpuReading>,
    window: VecDeque<(Instant, CounterTotals, u64)>,
    history: VecDeque<AdminPoint>,
    last_point: Option<Instant>,
    disk: Option<(Instant, u64, u64)>,
}

impl Ticker {
    /// Keep the counters' window moving (also while nobody watches, so the
    /// first frame's rates are right).
    fn record_rates(&mut self, state: &SharedState) {
        let now = Instant::now();
        let refused = state.conns.stats().refused;
        self.window
            .push_back((now, state.metrics.totals(), refused));
        while self
            .window
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > RATE_WINDOW)
            && self.window.len() > 1
        {
            self.window.pop_front();
        }
    }

    async fn compute(&mut self, state: &SharedState) -> AdminMsg {
        self.record_rates(state);
        let infos = state.runner.sessions().await;
        let now = Instant::now();
        let memory_limit = state.runner.config().limits.memory_bytes;
        let mut by_state = SessionCounts::default();
        let mut seen = HashMap::with_capacity(infos.len());
        let mut sessions: Vec<AdminSessionInfo> = infos
            .into_iter()
            .map(|i| {
                let s = self.session(&i, now, &mut seen, state);
                match s.state {
                    AdminSessionState::Idle => by_state.idle += 1,
                    AdminSessionState::Script => by_state.script += 1,
                    AdminSessionState::Repl => by_state.repl += 1,
                    AdminSessionState::Detached => by_state.detached += 1,
                }
                s
            })
            .collect();
        self.cpu = seen;
        let total = sessions.len();
        // Running ones first, the busiest on top; the bound keeps a tick's
        // size fixed whatever the class.
        sessions.sort_by(|a, b| {
            b.running
                .cmp(&a.running)
                .then(b.cpu_percent.total_cmp(&a.cpu_percent))
                .then(b.memory_bytes.cmp(&a.memory_bytes))
                .then(a.username.cmp(&b.username))
        });
        sessions.truncate(MAX_FEED_SESSIONS);

        // Counts now and at the start of the window (a minute ago, or since start).
        let (rates_now, rates_then): ((CounterTotals, u64), (CounterTotals, u64)) =
            match (self.window.back(), self.window.front()) {
                (Some(b), Some(f)) => ((b.1.clone(), b.2), (f.1.clone(), f.2)),
                _ => Default::default(),
            };
        let mut refusals = diff(&rates_now.0.refusals, &rates_then.0.refusals);
        let refused_conns = rates_now.1.saturating_sub(rates_then.1);
        if refused_conns > 0 {
            refusals.insert("connection_refused".into(), refused_conns);
        }
        let admission = state.runner.executor().admission();
        let grading = state.grading.queue_depth().await;
        let (disk_free, disk_total) = match self.disk {
            Some((at, free, total)) if now.duration_since(at) < DISK_EVERY => (free, total),
            _ => {
                let d = state.readiness.disk_status().await;
                self.disk = Some((now, d.free_bytes, d.total_bytes));
                (d.free_bytes, d.total_bytes)
            }
        };
        let totals = AdminTotals {
            connections: count(state.conns.stats().websockets),
            sessions: count(total),
            by_state,
            sandboxes_running: count(state.runner.active_runs()),
            sandbox_slots: count(admission.capacity()),
            sandbox_waiting: count(admission.queued()),
            memory_limit_bytes: memory_limit,
            runs_per_min: rates_now
                .0
                .runs_started
                .saturating_sub(rates_then.0.runs_started),
            ended_per_min: diff(&rates_now.0.ended, &rates_then.0.ended),
            refusals_per_min: refusals,
            grading_queue: grading.map(|(n, _)| n as u64),
            grading_oldest_ms: grading.map(|(_, w)| w.as_millis() as u64),
            disk_free_bytes: disk_free,
            disk_total_bytes: disk_total,
            database_up: state.readiness.db_ready().await,
        };
        let point = AdminPoint {
            at_ms: now_ms(),
            sessions: totals.sessions,
            sandboxes_running: totals.sandboxes_running,
            runs_per_min: totals.runs_per_min,
        };
        if self
            .last_point
            .is_none_or(|at| now.duration_since(at) >= HISTORY_STEP)
        {
            self.last_point = Some(now);
            self.history.push_back(point.clone());
            while self.history.len() >= HISTORY_POINTS {
                self.history.pop_front();
            }
        }
        let mut history: Vec<AdminPoint> = self.history.iter().cloned().collect();
        history.push(point);
        AdminMsg::AdminFeed {
            at_ms: now_ms(),
            sessions,
            truncated: total > MAX_FEED_SESSIONS,
            totals,
            history,
        }
    }

    /// One session's line; its CPU rate from the previous tick's reading of the same run.
    fn session(
        &self,
        i: &SessionInfo,
        now: Instant,
        seen: &mut HashMap<i64, CpuReading>,
        state: &SharedState,
    ) -> AdminSessionInfo {
        let state_now = if i.attached == 0 {
            AdminSessionState::Detached
        } else {
            match i.phase {
                Some(Phase::Script) => AdminSessionState::Script,
                Some(Phase::Repl) => AdminSessionState::Repl,
                None => AdminSessionState::Idle,
            }
        };
        let mut cpu_percent = 0.0;
        if let (true, Some(run_id), Some(ago)) = (i.running, &i.run_id, i.sampled_ms_ago) {
            // The rate between two of the session's own samples, by the
            // times it took them (not by when this tick asked).
            let at = now.checked_sub(Duration::from_millis(ago)).unwrap_or(now);
            let mut reading = CpuReading {
                run_id: run_id.clone(),
                at,
                cpu_ms: i.cpu_ms,
                percent: 0.0,
            };
            if let Some(prev) = self.cpu.get(&i.user_id).filter(|p| &p.run_id == run_id) {
                let span = at.saturating_duration_since(prev.at);
                if span >= CPU_MIN_SPAN {
                    let used = i.cpu_ms.saturating_sub(prev.cpu_ms) as f64;
                    reading.percent = (used / 10.0 / span.as_secs_f64()).round();
                } else {
                    // Too close for a rate: keep the earlier reading and rate.
                    reading = prev.clone();
                }
            }
            cpu_percent = reading.percent;
            seen.insert(i.user_id, reading);
        }
        AdminSessionInfo {
            user_id: i.user_id,
            username: i.username.clone(),
            state: state_now,
            running: i.running,
            run_id: i.running.then(|| i.run_id.clone()).flatten(),
            path: i.path.clone(),
            mode: i.mode,
            run_age_ms: i.run_age_ms,
            cpu_percent,
            cpu_ms: i.cpu_ms,
            memory_bytes: i.memory_bytes,
            peak_memory_bytes: i.peak_memory_bytes,
            idle_ms: i.idle_ms,
            detached_ms: i.detached_ms,
            output_bytes: i.output_bytes,
            attached: count(i.attached),
            clients: count(state.hub.connections_of(i.user_id)),
        }
    }
}

fn diff(
    now: &BTreeMap<&'static str, u64>,
    then: &BTreeMap<&'static str, u64>,
) -> BTreeMap<String, u64> {
    now.iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(then.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.to_string(), d))
        })
        .collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
