//! The runner: the registry of per-user sessions, admission control, the
//! per-user run rate limit, the reaper and graceful shutdown.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use campus_protocol::{EndReason, UserInfo};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::RunnerConfig;
use super::context::Context;
use super::handle::{Attachment, Command, SessionHandle};
use super::session::Session;
use super::{RunnerError, SessionInfo};
use crate::execution::{AdmissionConfig, Executor};
use crate::ratelimit::{KeyedRateLimit, MINUTE};
use crate::records::Records;
use crate::sandbox::Sandbox;

/// Commands buffered per session actor.
const COMMAND_CHANNEL: usize = 64;
/// Bound on asking a session for its state.
const INFO_WAIT: Duration = Duration::from_secs(2);

/// The registry and what the reaper needs; sessions only see the [`Context`].
struct Shared {
    ctx: Arc<Context>,
    /// One handle per user; an ended session's entry is removed by the task
    /// that ran it (see [`Runner::session_for`]).
    sessions: Arc<DashMap<i64, SessionHandle>>,
    tracker: TaskTracker,
    next_session_id: AtomicU64,
    /// When the reaper last finished a pass, ms since the epoch (0: not yet).
    reaper_beat: AtomicI64,
    /// The reaper's period.
    reaper_every: Duration,
}

/// Runs students' programs: one session per user, admission-controlled.
pub struct Runner {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("sessions", &self.shared.sessions.len())
            .field("active_runs", &self.active_runs())
            .field("max_concurrent_runs", &self.max_concurrent_runs())
            .finish()
    }
}

impl Runner {
    /// Create the runner, its executor (the host's sandbox slots, shared by
    /// every kind of execution) and its reaper (inside a tokio runtime).
    /// `shutdown` is the server's token: the runner's is its child.
    pub fn new(
        cfg: RunnerConfig,
        sandbox: Arc<Sandbox>,
        records: Option<Records>,
        shutdown: CancellationToken,
    ) -> Arc<Runner> {
        let max_slots = cfg.effective_max_concurrent_runs();
        let rate = KeyedRateLimit::keyed(cfg.runs_per_min.max(1), MINUTE, "runs");
        let token = shutdown.child_token();
        let interval = cfg.reaper_interval;
        let executor = Executor::new(
            sandbox,
            AdmissionConfig {
                slots: max_slots,
                interactive_reserve: cfg.effective_batch_reserve(max_slots),
                batch_queue: cfg.batch_queue,
            },
            cfg.busy_retry_after,
            token.child_token(),
        );
        let shared = Arc::new(Shared {
            ctx: Arc::new(Context {
                warm: Arc::new(tokio::sync::Semaphore::new(cfg.effective_warm_sandboxes())),
                warm_preparing: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                )),
                cfg,
                executor,
                records,
                rate,
                token: token.clone(),
            }),
            sessions: Arc::new(DashMap::new()),
            tracker: TaskTracker::new(),
            next_session_id: AtomicU64::new(1),
            reaper_beat: AtomicI64::new(crate::store::now_ms()),
            reaper_every: interval,
        });
        let admission = shared.ctx.executor.admission();
        tracing::info!(
            max_concurrent_runs = admission.capacity(),
            interactive_reserve = admission.interactive_reserve(),
            "runner started"
        );
        shared
            .tracker
            .spawn(reaper(Arc::downgrade(&shared), token, interval));
        Arc::new(Runner { shared })
    }

    /// The settings in force.
    pub fn config(&self) -> &RunnerConfig {
        &self.shared.ctx.cfg
    }

    /// The executor every execution goes through (batch work calls
    /// [`Executor::execute_batch`] on it and shares the sessions' slots).
    pub fn executor(&self) -> &Arc<Executor> {
        &self.shared.ctx.executor
    }

    /// Attach a connection to the user's session (creating an idle one if
    /// needed), replaying output from `since_seq`.
    pub async fn attach(
        &self,
        user: &UserInfo,
        workspace_dir: PathBuf,
        conn_id: &str,
        since_seq: u64,
    ) -> Result<Attachment, RunnerError> {
        // A session can end (idle removal) between lookup and attach: retry then.
        for _ in 0..3 {
            if self.shared.ctx.token.is_cancelled() {
                return Err(RunnerError::Busy {
                    retry_after_ms: self.shared.ctx.cfg.busy_retry_after.as_millis() as u64,
                });
            }
            let handle = self.session_for(user, &workspace_dir);
            let (reply, rx) = oneshot::channel();
            let sent = handle
                .tx
                .send(Command::Attach {
                    conn_id: conn_id.to_string(),
                    since_seq,
                    reply,
                })
                .await;
            if sent.is_ok() {
                if let Ok((attached, events, serial)) = rx.await {
                    return Ok(Attachment {
                        attached,
                        events,
                        handle,
                        conn_id: conn_id.to_string(),
                        serial,
                    });
                }
            }
            let id = handle.id;
            self.shared.sessions.remove_if(&user.id, |_, h| h.id == id);
        }
        Err(RunnerError::SessionGone)
    }

    /// The user's session handle, creating the session if there is none.
    fn session_for(&self, user: &UserInfo, workspace_dir: &std::path::Path) -> SessionHandle {
        if let Some(h) = self.shared.sessions.get(&user.id) {
            if !h.is_closed() {
                return h.clone();
            }
        }
        let create = || {
            let (tx, rx) = mpsc::channel(COMMAND_CHANNEL);
            let id = self.shared.next_session_id.fetch_add(1, Ordering::Relaxed);
            let session = Session::new(
                id,
                user.clone(),
                workspace_dir.to_path_buf(),
                Arc::clone(&self.shared.ctx),
                rx,
            );
            // The registry, not the session, forgets the session when it ends.
            let sessions = Arc::clone(&self.shared.sessions);
            let user_id = user.id;
            self.shared.tracker.spawn(async move {
                session.run().await;
                sessions.remove_if(&user_id, |_, h| h.id == id);
            });
            SessionHandle { id, tx }
        };
        match self.shared.sessions.entry(user.id) {
            Entry::Occupied(mut o) => {
                if o.get().is_closed() {
                    o.insert(create());
                }
                o.get().clone()
            }
            Entry::Vacant(v) => v.insert(create()).clone(),
        }
    }

    /// The user's session handle, if a session exists.
    pub fn handle(&self, user_id: i64) -> Option<SessionHandle> {
        self.shared
            .sessions
            .get(&user_id)
            .map(|h| h.clone())
            .filter(|h| !h.is_closed())
    }

    /// A snapshot of one user's session.
    pub async fn session_info(&self, user_id: i64) -> Option<SessionInfo> {
        let handle = self.handle(user_id)?;
        tokio::time::timeout(INFO_WAIT, handle.info())
            .await
            .ok()?
            .ok()
    }

    /// Snapshots of every session, by user id (the admin feed, tests).
    pub async fn sessions(&self) -> Vec<SessionInfo> {
        let handles: Vec<SessionHandle> = self
            .shared
            .sessions
            .iter()
            .map(|e| e.value().clone())
            .collect();
        // Asked at once: one busy session costs the others nothing.
        let asks = handles
            .iter()
            .map(|h| tokio::time::timeout(INFO_WAIT, h.info()));
        let mut out: Vec<SessionInfo> = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(|r| r.ok().and_then(Result::ok))
            .collect();
        out.sort_by_key(|i| i.user_id);
        out
    }

    /// An admin stops a user's run (`killed_by_admin`). False when nothing
    /// was running.
    /// With `run_id`, only that run (a newer one is left alone).
    pub async fn kill_by_admin(
        &self,
        user_id: i64,
        run_id: Option<&str>,
    ) -> Result<bool, RunnerError> {
        let Some(h) = self.handle(user_id) else {
            return Ok(false);
        };
        if let Some(want) = run_id {
            let info = h.info().await?;
            if !info.running || info.run_id.as_deref() != Some(want) {
                return Ok(false);
            }
        }
        h.end_run(None, None, EndReason::KilledByAdmin).await
    }

    /// End a user's live run with `reason` (e.g. `revoked`), waiting at most
    /// `wait` for the session to confirm. False when nothing was running.
    pub async fn end_user_run(&self, user_id: i64, reason: EndReason, wait: Duration) -> bool {
        let Some(h) = self.handle(user_id) else {
            return false;
        };
        matches!(
            tokio::time::timeout(wait, h.end_run(None, None, reason)).await,
            Ok(Ok(true))
        )
    }

    /// The reaper's liveness: how long since its last pass, and its period.
    /// Started at construction, so a fresh runner counts as just beaten.
    pub fn reaper_liveness(&self) -> (Duration, Duration) {
        let beat = self.shared.reaper_beat.load(Ordering::Relaxed);
        let ago = u64::try_from(crate::store::now_ms() - beat).unwrap_or(0);
        (Duration::from_millis(ago), self.shared.reaper_every)
    }

    /// Sandboxes running now (interactive and batch).
    pub fn active_runs(&self) -> usize {
        self.executor().admission().in_use()
    }

    /// The admission limit in force.
    pub fn max_concurrent_runs(&self) -> usize {
        self.executor().admission().capacity()
    }

    /// Sessions in the registry.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// End every run with `server_shutdown` and wait (bounded) until each
    /// session has recorded and announced it.
    pub async fn shutdown(&self) {
        self.shared.ctx.token.cancel();
        self.shared.ctx.executor.shutdown();
        self.shared.tracker.close();
        let wait = self.shared.ctx.cfg.shutdown_wait;
        if tokio::time::timeout(wait, self.shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                active_runs = self.active_runs(),
                "runner shutdown timed out; some runs may not be recorded"
            );
        }
    }
}

/// Periodic sweep: drop registry entries of ended sessions, forget idle
/// rate-limit keys and retry removing run cgroups that stayed busy when their
/// run ended. Time-based culling (max ages, abandonment, idle sessions)
/// is done precisely by each session's own timers; this is the backstop.
async fn reaper(shared: Weak<Shared>, token: CancellationToken, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(shared) = shared.upgrade() else {
            break;
        };
        shared
            .reaper_beat
            .store(crate::store::now_ms(), Ordering::Relaxed);
        let before = shared.sessions.len();
        shared.sessions.retain(|_, h| !h.is_closed());
        shared.ctx.rate.shrink();
        let removed = before.saturating_sub(shared.sessions.len());
        tracing::debug!(
            sessions = shared.sessions.len(),
            removed,
            active_runs = shared.ctx.executor.admission().in_use(),
            "reaper pass"
        );
        if shared.ctx.executor.sandbox().orphan_count() > 0 {
            let sandbox = Arc::clone(shared.ctx.executor.sandbox());
            drop(shared);
            // Blocking (kill and rmdir retries with deadlines): off the async workers.
            let sweep = tokio::task::spawn_blocking(move || sandbox.sweep_orphans());
            tokio::select! {
                _ = token.cancelled() => break,
                done = sweep => match done {
                    Ok(s) => tracing::info!(removed = s.removed, remaining = s.remaining, "orphaned run cgroups swept"),
                    Err(e) => tracing::error!(error = %e, "orphan sweep task failed"),
                },
            }
        }
    }
}
