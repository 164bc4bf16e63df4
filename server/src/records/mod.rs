//! Run history and audit records, written off the hot path.
//!
//! Sessions and request handlers never wait for the database to record
//! something: they hand a [`Record`] to [`Records::submit`] (a `try_send`
//! into a bounded channel) and go on. One writer task owns everything after
//! that and applies the records **in submission order**, in batches, each
//! batch in one transaction ([`crate::store::Store::apply_records`]).
//!
//! Bounded, and nothing lost during an outage:
//! - While the database answers, records wait in memory (at most
//!   [`MEMORY_MAX`]) for the batch in flight.
//! - Once the database is down (the store's breaker says so, or a batch
//!   failed because it could not be reached), or memory is full, every record
//!   goes to the append-only journal on disk ([`journal`], flushed to the
//!   device per batch) instead, together with what was still in memory. The
//!   journal is bounded by `journal_max_bytes` (256 MiB by default, about a
//!   million records); past that, the oldest are kept and new records dropped,
//!   counted (`dropped` in `/readyz`) and each logged in full as an error.
//! - When the database is back, the journal is applied from its start, in
//!   order, then emptied; new records queue behind it. A server that crashes
//!   meanwhile leaves the journal behind, and the next start-up replays it
//!   before anything else ([`replay_leftovers`]).
//!
//! Replays are harmless (see `apply_records`), so a crash between applying a
//! batch and noting it in the journal's offset file at worst writes that
//! batch's audit entries twice.
//!
//! The writer also marks the live runs alive every `liveness` period (one
//! [`Record::RunsAlive`]): after a crash, start-up closes a run at its last
//! mark, not at the restart time.

pub mod journal;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::store::{now_ms, DbHealth, DynStore, NewAudit, NewRun, Record, RunFinish, StoreError};
use journal::{JournalFile, Leftover, ReadBatch};

/// Records buffered between the submitters and the writer task.
pub const CHANNEL: usize = 4096;
/// Records the writer keeps in memory before it spills to the journal.
pub const MEMORY_MAX: usize = 4096;
/// Records per database transaction.
pub const BATCH: usize = 256;
/// Pause before retrying after the database could not be reached.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Dropped records written to the log in full, per drop.
const LOG_DROPPED_MAX: usize = 50;
/// At most one "records dropped" log line per this many ms.
const DROP_LOG_EVERY_MS: i64 = 5_000;
/// Default bound of the journal.
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = 256 << 20;

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    /// Where journals live (`<data dir>/journal`).
    pub dir: PathBuf,
    /// Prefix of this process's journal file (`server`, `cli`).
    pub name: String,
    /// How often live runs are marked alive.
    pub liveness: Duration,
    /// Largest journal; records beyond it are dropped and counted.
    pub journal_max_bytes: u64,
    /// The instance stamped on every run started through this writer
    /// (docs/security.md, "Instances").
    pub instance: Option<String>,
}

impl RecordsConfig {
    /// Defaults for `dir` and `name`.
    pub fn new(dir: PathBuf, name: &str, liveness: Duration) -> Self {
        RecordsConfig {
            dir,
            name: name.to_string(),
            liveness: liveness.max(Duration::from_millis(100)),
            journal_max_bytes: DEFAULT_JOURNAL_MAX_BYTES,
            instance: None,
        }
    }

    /// Stamp runs with `instance` (the server's id, or `cli`).
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.instance = Some(instance.to_string());
        self
    }
}

/// Counters of the writer, for `/readyz` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordStats {
    /// Records waiting in memory.
    pub queued: u64,
    /// Journal bytes not yet applied.
    pub journal_bytes: u64,
    /// Records written to the database since start.
    pub applied: u64,
    /// Records lost: the channel or the journal was full, or the database refused the record itself.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    journal_bytes: AtomicU64,
    applied: AtomicU64,
    dropped: AtomicU64,
    /// The last batch was refused because the database's disk is full.
    storage_full: AtomicBool,
}

enum Msg {
    Record(Record),
    /// Answer once every record accepted before this one is applied (or dropped).
    Flush(oneshot::Sender<()>),
    /// Apply what is left within the wait, journal the rest, and end.
    Close(Duration),
}

#[derive(Debug)]
struct Inner {
    counters: Counters,
    /// When a drop was last logged (ms since the epoch).
    drop_logged_ms: AtomicI64,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Handle to the record writer (cheap to clone).
#[derive(Debug, Clone)]
pub struct Records {
    tx: mpsc::Sender<Msg>,
    inner: Arc<Inner>,
    instance: Option<Arc<str>>,
    /// Counted as they are recorded (runs started and ended).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Records {
    /// Start the writer task (inside a tokio runtime).
    pub fn start(cfg: RecordsConfig, store: DynStore, health: Arc<DbHealth>) -> Records {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let instance = cfg.instance.as_deref().map(Arc::from);
        let inner = Arc::new(Inner {
            counters: Counters::default(),
            drop_logged_ms: AtomicI64::new(0),
            task: Mutex::new(None),
        });
        let writer = Writer {
            up: health.subscribe(),
            health,
            store,
            rx,
            inner: Arc::clone(&inner),
            mem: VecDeque::new(),
            journal: None,
            live: BTreeSet::new(),
            failing: false,
            spill_failing: false,
            journal_full: false,
            retry_at: None,
            inflight: None,
            accepted: 0,
            done: 0,
            flushes: Vec::new(),
            cfg,
        };
        let task = tokio::spawn(writer.run());
        if let Ok(mut slot) = inner.task.lock() {
            *slot = Some(task);
        }
        Records {
            tx,
            inner,
            instance,
            metrics: None,
        }
    }

    /// Count what is recorded in `metrics` too.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Records {
        self.metrics = Some(metrics);
        self
    }

    /// The metrics runs are counted in, if any.
    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.metrics.as_deref()
    }

    /// Queue a record; never waits. Only if the writer is more than
    /// [`CHANNEL`] records behind (it only ever waits for the local disk) is
    /// the record dropped, counted and logged.
    pub fn submit(&self, record: Record) {
        if self.tx.try_send(Msg::Record(record)).is_err() {
            let dropped = self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // A flood must not become a log flood: at most one line per interval.
            let now = now_ms();
            let last = self.inner.drop_logged_ms.load(Ordering::Relaxed);
            if now - last >= DROP_LOG_EVERY_MS
                && self
                    .inner
                    .drop_logged_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::error!(
                    dropped_total = dropped,
                    "the record writer is not keeping up; records dropped"
                );
            }
        }
    }

    /// A run started now.
    pub fn run_started(&self, mut run: NewRun) {
        if run.instance.is_none() {
            run.instance = self.instance.as_deref().map(str::to_string);
        }
        self.submit(Record::RunStarted(run));
    }

    /// A run ended.
    pub fn run_finished(&self, run_id: &str, finish: RunFinish) {
        self.submit(Record::RunFinished {
            run_id: run_id.to_string(),
            finish,
        });
    }

    /// A token was revoked (logout): written like every record, so the
    /// revocation survives an outage (journal) and reaches other instances.
    pub fn token_revoked(&self, token: crate::store::RevokedToken) {
        self.submit(Record::TokenRevoked(token));
    }

    /// An audit entry, dated now.
    pub fn audit(&self, entry: NewAudit) {
        self.submit(Record::Audit {
            at_ms: now_ms(),
            entry,
        });
    }

    /// Wait (at most `wait`) until every record submitted before this call is
    /// in the database; false if that did not happen in time.
    pub async fn flush(&self, wait: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let asked = tokio::time::timeout(wait, self.tx.send(Msg::Flush(tx))).await;
        if !matches!(asked, Ok(Ok(()))) {
            return false;
        }
        matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(())))
    }

    /// End the writer: records still pending get `wait` to reach the database;
    /// whatever is left then is kept in the journal for the next start-up.
    pub async fn close(&self, wait: Duration) {
        if self.tx.send(Msg::Close(wait)).await.is_err() {
            return;
        }
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "record writer task failed");
            }
        }
    }

    /// True while the database refuses the writer's records for lack of
    /// space (they wait, like during an outage); logins warn then.
    pub fn storage_full(&self) -> bool {
        self.inner.counters.storage_full.load(Ordering::Relaxed)
    }

    /// Current counters.
    pub fn stats(&self) -> RecordStats {
        let c = &self.inner.counters;
        RecordStats {
            queued: c.queued.load(Ordering::Relaxed),
            journal_bytes: c.journal_bytes.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Where the batch in flight came from.
enum Source {
    /// The first `records.len()` records of `mem`.
    Memory,
    /// The journal, from its applied offset: where each record's line ends, and
    /// where the batch ends (unreadable lines included).
    Journal { ends: Vec<u64>, end: u64 },
}

/// How applying a batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every record is in the database, except `refused` that the database refused for themselves.
    Applied { refused: u64 },
    /// The database could not take more after the first `done` records: it is
    /// unreachable, or (`full`) out of space.
    Retry { done: usize, full: bool },
}

/// Worth keeping the records and trying again later: the database cannot be
/// reached, or cannot take writes for lack of space.
fn retry_later(e: &StoreError) -> bool {
    e.is_unavailable() || e.is_storage_full()
}

/// Apply `records` in one transaction. If the database refuses the batch for
/// something in it (not for being unreachable), apply them one by one so one
/// bad record cannot hold back the rest: a refused record is logged and dropped.
async fn apply_batch(store: &DynStore, records: &[Record]) -> Outcome {
    match store.apply_records(records).await {
        Ok(()) => return Outcome::Applied { refused: 0 },
        Err(e) if retry_later(&e) => {
            return Outcome::Retry {
                done: 0,
                full: e.is_storage_full(),
            }
        }
        Err(e) if records.len() == 1 => {
            tracing::error!(error = %e, record = ?records[0], "the database refused a record; dropped");
            return Outcome::Applied { refused: 1 };
        }
        Err(e) => {
            tracing::warn!(error = %e, records = records.len(), "the database refused a batch of records; applying them one by one");
        }
    }
    let mut refused = 0;
    for (i, r) in records.iter().enumerate() {
        match store.apply_records(std::slice::from_ref(r)).await {
            Ok(()) => {}
            Err(e) if retry_later(&e) => {
                return Outcome::Retry {
                    done: i,
                    full: e.is_storage_full(),
                }
            }
            Err(e) => {
                refused += 1;
                tracing::error!(error = %e, record = ?r, "the database refused a record; dropped");
            }
        }
    }
    Outcome::Applied { refused }
}

/// Run a blocking journal operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

struct Writer {
    cfg: RecordsConfig,
    store: DynStore,
    health: Arc<DbHealth>,
    up: watch::Receiver<bool>,
    rx: mpsc::Receiver<Msg>,
    inner: Arc<Inner>,
    /// Accepted records not yet applied, oldest first; all newer than the journal's.
    mem: VecDeque<Record>,
    /// This process's journal, once anything was spilled.
    journal: Option<JournalFile>,
    /// Runs started and not finished (for the liveness marks).
    live: BTreeSet<String>,
    /// The last batch failed because the database was unreachable: journal
    /// everything until a batch succeeds.
    failing: bool,
    /// The journal could not be written at the last attempt.
    spill_failing: bool,
    /// The journal reached its bound (logged once until it drains).
    journal_full: bool,
    retry_at: Option<Instant>,
    inflight: Option<JoinHandle<(Source, Vec<Record>, Outcome)>>,
    /// Records accepted, and applied or dropped, since start (for flushes).
    accepted: u64,
    done: u64,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
}

/// The batch in flight, if any (pending forever otherwise, for `select!`).
async fn join(
    h: &mut Option<JoinHandle<(Source, Vec<Record>, Outcome)>>,
) -> Option<(Source, Vec<Record>, Outcome)> {
    match h.as_mut() {
        Some(h) => h.await.ok(),
        None => std::future::pending().await,
    }
}

impl Writer {
    async fn run(mut self) {
        let mut tick =
            tokio::time::interval_at(Instant::now() + self.cfg.liveness, self.cfg.liveness);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing: Option<Instant> = None;
        loop {
            self.settle().await;
            self.answer_flushes();
            // Closing with the database down: what is left is in the journal now.
            if closing.is_some() && (self.idle() || !self.health.is_up()) {
                break;
            }
            let can_recv =
                closing.is_none() && (self.inflight.is_none() || self.mem.len() < MEMORY_MAX);
            let retry_at = self.retry_at.filter(|_| self.inflight.is_none());
            tokio::select! {
                msg = self.rx.recv(), if can_recv => match msg {
                    Some(Msg::Record(r)) => self.accept(r),
                    Some(Msg::Flush(tx)) => self.flushes.push((self.accepted, tx)),
                    Some(Msg::Close(wait)) => closing = Some(Instant::now() + wait),
                    None => closing = Some(Instant::now()),
                },
                done = join(&mut self.inflight), if self.inflight.is_some() => {
                    self.inflight = None;
                    match done {
                        Some((source, batch, outcome)) => self.on_applied(source, batch, outcome).await,
                        None => {
                            tracing::error!("record batch task failed; retrying the batch");
                            self.retry_at = Some(Instant::now() + RETRY_EVERY);
                        }
                    }
                }
                _ = tick.tick(), if closing.is_none() => self.mark_alive(),
                changed = self.up.changed() => {
                    if changed.is_err() {
                        // The health flag is gone with the store: nothing more can be applied.
                        closing.get_or_insert_with(Instant::now);
                    }
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                }
                _ = tokio::time::sleep_until(closing.unwrap_or_else(Instant::now)), if closing.is_some() && self.inflight.is_none() => break,
            }
        }
        self.finish().await;
    }

    /// Nothing waiting: no batch in flight, nothing in memory or in the journal.
    fn idle(&self) -> bool {
        self.inflight.is_none()
            && self.mem.is_empty()
            && self.journal.as_ref().is_none_or(|j| j.pending_bytes() == 0)
    }

    fn journal_pending(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.pending_bytes() > 0)
    }

    fn accept(&mut self, r: Record) {
        match &r {
            Record::RunStarted(run) => {
                self.live.insert(run.id.clone());
            }
            Record::RunFinished { run_id, .. } => {
                self.live.remove(run_id);
            }
            _ => {}
        }
        self.accepted += 1;
        self.mem.push_back(r);
        self.publish();
    }

    fn mark_alive(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let r = Record::RunsAlive {
            at_ms: now_ms(),
            run_ids: self.live.iter().cloned().collect(),
        };
        self.accepted += 1;
        self.mem.push_back(r);
        self.publish();
    }

    /// Between events: spill memory to the journal when it must go there, and
    /// start the next batch when the database may take it.
    async fn settle(&mut self) {
        if self.inflight.is_some() {
            return;
        }
        let spill = self.journal_pending()
            || self.failing
            || !self.health.is_up()
            || self.mem.len() >= MEMORY_MAX;
        if spill && !self.mem.is_empty() {
            self.spill().await;
        }
        if !self.health.is_up() || self.retry_at.is_some() {
            return;
        }
        if self.journal_pending() {
            self.start_journal_batch().await;
        } else if !self.mem.is_empty() {
            let batch: Vec<Record> = self.mem.iter().take(BATCH).cloned().collect();
            self.start(Source::Memory, batch);
        }
    }

    fn start(&mut self, source: Source, batch: Vec<Record>) {
        let store = Arc::clone(&self.store);
        self.inflight = Some(tokio::spawn(async move {
            let outcome = apply_batch(&store, &batch).await;
            (source, batch, outcome)
        }));
    }

    /// Move everything in memory to the end of the journal; what does not fit
    /// under its bound (the newest) is dropped.
    async fn spill(&mut self) {
        let room = self
            .cfg
            .journal_max_bytes
            .saturating_sub(self.journal.as_ref().map_or(0, |j| j.len()));
        let mut bytes = Vec::new();
        let mut fits = 0;
        for r in &self.mem {
            let line = journal::encode(std::slice::from_ref(r));
            if (bytes.len() + line.len()) as u64 > room {
                break;
            }
            bytes.extend_from_slice(&line);
            fits += 1;
        }
        if fits < self.mem.len() {
            if !self.journal_full {
                self.journal_full = true;
                tracing::error!(
                    journal_max_bytes = self.cfg.journal_max_bytes,
                    "record journal full while the database cannot take records; dropping new records"
                );
            }
            let newest: Vec<Record> = self.mem.drain(fits..).collect();
            self.drop_records(newest, "the record journal is full");
            self.publish();
            if fits == 0 {
                return;
            }
        }
        let journal = match self.journal.take() {
            Some(j) => Ok(j),
            None => {
                let (dir, name) = (self.cfg.dir.clone(), self.cfg.name.clone());
                blocking(move || JournalFile::create(&dir, &name)).await
            }
        };
        let journal = match journal {
            Ok(j) => j,
            Err(e) => {
                self.spill_failed(&e);
                return;
            }
        };
        let was_pending = journal.pending_bytes() > 0;
        let appended = blocking(move || {
            let mut journal = journal;
            let r = journal.append(&bytes);
            Ok((journal, r))
        })
        .await;
        match appended {
            Ok((j, Ok(()))) => {
                self.spill_failing = false;
                if !was_pending {
                    tracing::warn!(journal = %j.path().display(),
                        "spilling run records to the journal until the database takes them");
                }
                self.journal = Some(j);
                self.mem.clear();
            }
            Ok((j, Err(e))) => {
                self.journal = Some(j);
                self.spill_failed(&e);
            }
            Err(e) => self.spill_failed(&e),
        }
        self.publish();
    }

    /// The journal cannot be written: keep the records in memory (bounded),
    /// newest dropped beyond it. Logged once per episode (a full disk retries
    /// every second).
    fn spill_failed(&mut self, e: &std::io::Error) {
        if !self.spill_failing {
            self.spill_failing = true;
            tracing::error!(error = %e, dir = %self.cfg.dir.display(), "cannot write the record journal; keeping records in memory");
        }
        if self.mem.len() > MEMORY_MAX {
            let newest: Vec<Record> = self.mem.drain(MEMORY_MAX..).collect();
            self.drop_records(newest, "neither the database nor the journal can take it");
        }
        self.retry_at
            .get_or_insert_with(|| Instant::now() + RETRY_EVERY);
    }

    /// Give up on `records`: counted (`dropped`), and each written to the
    /// server log with all its fields (the first [`LOG_DROPPED_MAX`] per call),
    /// so an audit entry at least survives there.
    fn drop_records(&mut self, records: Vec<Record>, why: &'static str) {
        let n = records.len() as u64;
        self.done += n;
        self.inner.counters.dropped.fetch_add(n, Ordering::Relaxed);
        if n > 1 {
            tracing::error!(dropped = n, why, "records dropped");
        }
        for record in records.iter().take(LOG_DROPPED_MAX) {
            tracing::error!(?record, why, "record dropped");
        }
    }

    async fn start_journal_batch(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        let read = blocking(move || {
            let r = journal.read_batch(BATCH);
            Ok((journal, r))
        })
        .await;
        let batch: ReadBatch = match read {
            Ok((j, Ok(batch))) => {
                self.journal = Some(j);
                batch
            }
            Ok((j, Err(e))) => {
                self.journal = Some(j);
                tracing::error!(error = %e, "cannot read the record journal");
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the record journal");
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
                return;
            }
        };
        self.done += batch.skipped;
        if batch.records.is_empty() {
            // Only unreadable lines, or bytes without a final newline (cannot
            // happen with our own appends, which are cut back on failure): give
            // them up rather than spin on them.
            let end = match &self.journal {
                Some(_) if batch.skipped > 0 => batch.end,
                Some(j) => j.len(),
                None => return,
            };
            self.journal_applied_to(end).await;
            return;
        }
        let source = Source::Journal {
            ends: batch.ends,
            end: batch.end,
        };
        self.start(source, batch.records);
    }

    async fn journal_applied_to(&mut self, offset: u64) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        let done = blocking(move || {
            let mut journal = journal;
            let r = journal.applied_to(offset);
            Ok((journal, r))
        })
        .await;
        match done {
            Ok((j, r)) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, journal = %j.path().display(), "cannot note progress in the record journal");
                }
                if j.is_empty() {
                    self.journal_full = false;
                    tracing::info!("record journal drained: run records are written straight to the database again");
                }
                self.journal = Some(j);
            }
            Err(e) => tracing::error!(error = %e, "record journal task failed"),
        }
        self.publish();
    }

    async fn on_applied(&mut self, source: Source, batch: Vec<Record>, outcome: Outcome) {
        let (done, refused) = match outcome {
            Outcome::Applied { refused } => (batch.len(), refused),
            Outcome::Retry { done, .. } => (done, 0),
        };
        self.inner.counters.storage_full.store(
            matches!(outcome, Outcome::Retry { full: true, .. }),
            Ordering::Relaxed,
        );
        if done > 0 {
            let applied = done as u64 - refused;
            self.done += done as u64;
            self.inner
                .counters
                .applied
                .fetch_add(applied, Ordering::Relaxed);
            self.inner
                .counters
                .dropped
                .fetch_add(refused, Ordering::Relaxed);
        }
        match source {
            Source::Memory => {
                self.mem.drain(..done.min(self.mem.len()));
            }
            Source::Journal { ends, end } => {
                let offset = if done == batch.len() {
                    Some(end)
                } else {
                    done.checked_sub(1).and_then(|i| ends.get(i).copied())
                };
                if let Some(offset) = offset {
                    self.journal_applied_to(offset).await;
                }
            }
        }
        if let Outcome::Retry { full, .. } = outcome {
            if !self.failing {
                if full {
                    tracing::warn!("cannot write run records: the database's disk is full; keeping them until it has room");
                } else {
                    tracing::warn!("cannot write run records: the database is unreachable; journaling them until it is back");
                }
            }
            self.failing = true;
            self.retry_at = Some(Instant::now() + RETRY_EVERY);
        } else {
            self.failing = false;
        }
        self.publish();
    }

    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let idle = self.idle();
        let done = self.done;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(target, _)| idle || done >= *target);
        self.flushes = waiting;
        for (_, tx) in ready {
            let _ = tx.send(());
        }
    }

    fn publish(&self) {
        let c = &self.inner.counters;
        c.queued.store(self.mem.len() as u64, Ordering::Relaxed);
        c.journal_bytes.store(
            self.journal.as_ref().map_or(0, |j| j.pending_bytes()),
            Ordering::Relaxed,
        );
    }

    /// Shutting down: what is still in memory goes to the journal, so the next start-up writes it.
    async fn finish(mut self) {
        if let Some(h) = self.inflight.take() {
            if let Ok((source, batch, outcome)) = h.await {
                self.on_applied(source, batch, outcome).await;
            }
        }
        if !self.mem.is_empty() {
            self.spill().await;
        }
        if !self.mem.is_empty() {
            let left: Vec<Record> = self.mem.drain(..).collect();
            self.drop_records(left, "could neither be written nor journaled at shutdown");
        }
        if let Some(j) = self.journal.take() {
            let _ = blocking(move || {
                j.close();
                Ok(())
            })
            .await;
        }
        for (_, tx) in self.flushes.drain(..) {
            drop(tx);
        }
        self.publish();
    }
}

/// What [`replay_leftovers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Journal files replayed (and removed).
    pub files: usize,
    /// Records written.
    pub records: u64,
    /// Records the database refused (logged, dropped).
    pub refused: u64,
}

/// Errors of [`replay_leftovers`].
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A journal could not be read or updated.
    #[error("record journal {path}: {source}")]
    Io {
        /// The file (or directory).
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The database went away during the replay.
    #[error("the database became unreachable while replaying {path}: {source}")]
    Store {
        /// The journal.
        path: String,
        /// The error.
        source: StoreError,
    },
}

/// Apply every journal in `dir` that no live process holds (left by a crash,
/// or by a process that ended while the database was down), in order, then
/// remove it. Run at start-up before the dangling-run repair, so runs that
/// ended (or were marked alive) during an outage end at their real time.
pub async fn replay_leftovers(dir: &Path, store: &DynStore) -> Result<Replayed, ReplayError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReplayError::Io { path, source }
    };
    let d = dir.to_path_buf();
    let leftovers = blocking(move || Leftover::find(&d))
        .await
        .map_err(io(dir))?;
    let mut out = Replayed::default();
    for mut leftover in leftovers {
        let path = leftover.path().to_path_buf();
        tracing::warn!(journal = %path.display(), "replaying run records left by an earlier process");
        loop {
            let (l, batch) = blocking(move || {
                let b = leftover.read_batch(BATCH);
                b.map(|b| (leftover, b))
            })
            .await
            .map_err(io(&path))?;
            leftover = l;
            if batch.records.is_empty() && batch.skipped == 0 {
                break;
            }
            if !batch.records.is_empty() {
                match apply_batch(store, &batch.records).await {
                    Outcome::Applied { refused } => {
                        out.records += batch.records.len() as u64 - refused;
                        out.refused += refused;
                    }
                    Outcome::Retry { .. } => {
                        return Err(ReplayError::Store {
                            path: path.display().to_string(),
                            source: StoreError::Unavailable,
                        })
                    }
                }
            }
            let end = batch.end;
            leftover = blocking(move || leftover.applied_to(end).map(|()| leftover))
                .await
                .map_err(io(&path))?;
        }
        blocking(move || leftover.finish())
            .await
            .map_err(io(&path))?;
        out.files += 1;
    }
    Ok(out)
}
