//! The store's circuit breaker: a [`GuardedStore`] wraps the real store so that
//! no caller waits out the pool's acquire timeout (5 s) when the database is
//! gone. Every call gets a budget; a call that fails because the database
//! cannot be reached marks it down ([`DbHealth`]), and while it is down every
//! call is refused at once with [`StoreError::Unavailable`]. One probe task
//! pings the database until it answers again, then marks it up: everything
//! recovers by itself.
//!
//! A call that is merely slow (a busy or saturated database) does not mark it
//! down by itself: after 150 ms it starts the probe ([`Store::probe`], a fresh
//! connection outside the pool), and the probe decides. If the probe finds the
//! database unreachable, waiting calls end at once with `Unavailable`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campus_protocol::Role;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    now_ms, AccountChanges, AuditLog, AuditRecord, Catalog, Course, CourseRole, Courses, DynStore,
    MaterialRelease, NewAudit, NewCourse, NewRun, NewUser, Record, RevokedToken, RosterChange,
    RunFinish, RunRecord, Runs, Section, SectionException, SectionFields, Store, StoreError,
    StoreResult, User, Users,
};
use super::{
    Assignment, GradeResult, GradebookRow, Grading, NewSubmission, ProgressRow, ResultRow,
    Submission, SubmitRefused, SubmitRules, TestStat,
};

/// Budget of an interactive call (login, the WebSocket gate, an account
/// re-check): with it the caller has an answer well within a second even
/// when the first call after an outage has to find out.
pub const INTERACTIVE_BUDGET: Duration = Duration::from_millis(800);
/// Budget of a batch of records (background work; nobody waits for it).
pub const BATCH_BUDGET: Duration = Duration::from_secs(10);
/// Budget of one probe.
const PROBE_BUDGET: Duration = Duration::from_secs(1);
/// A call unanswered this long starts a probe (a healthy database answers a
/// point query in a few milliseconds).
const SUSPECT_AFTER: Duration = Duration::from_millis(150);
/// Pause between probes while the database is down.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// What refused callers are told to wait before trying again: about the time
/// the probe needs to notice the database is back.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Whether the database is reachable, as last seen by the breaker.
#[derive(Debug)]
pub struct DbHealth {
    up: watch::Sender<bool>,
    /// When it went down (ms since the epoch), 0 while up.
    down_since_ms: AtomicI64,
    probing: AtomicBool,
}

impl DbHealth {
    fn new() -> Self {
        DbHealth {
            up: watch::Sender::new(true),
            down_since_ms: AtomicI64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// True unless a call or probe found the database unreachable and no probe has reached it since.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Since when the database is down (ms since the epoch), if it is.
    pub fn down_since_ms(&self) -> Option<i64> {
        let at = self.down_since_ms.load(Ordering::Relaxed);
        (!self.is_up() && at > 0).then_some(at)
    }

    /// Changes of [`DbHealth::is_up`], for background work that waits for recovery.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    fn mark_down(&self) {
        if self.up.send_if_modified(|up| std::mem::replace(up, false)) {
            self.down_since_ms.store(now_ms(), Ordering::Relaxed);
            tracing::error!("database unreachable: refusing logins and new connections, queueing run records; live sessions continue");
        }
    }

    fn mark_up(&self) {
        if self.up.send_if_modified(|up| !std::mem::replace(up, true)) {
            let since = self.down_since_ms.swap(0, Ordering::Relaxed);
            tracing::warn!(
                down_for_ms = now_ms().saturating_sub(since),
                "database reachable again"
            );
        }
    }
}

/// A store behind the breaker (see the module docs).
#[derive(Debug)]
pub struct GuardedStore {
    inner: DynStore,
    health: Arc<DbHealth>,
    token: CancellationToken,
    tracker: TaskTracker,
}

/// Put `inner` behind a breaker; returns the guarded store and its health flag.
/// Must be called inside a tokio runtime (the probe is a task).
pub fn guard(inner: DynStore) -> (DynStore, Arc<DbHealth>) {
    let store = Arc::new(GuardedStore {
        inner,
        health: Arc::new(DbHealth::new()),
        token: CancellationToken::new(),
        tracker: TaskTracker::new(),
    });
    let health = Arc::clone(&store.health);
    (store, health)
}

impl GuardedStore {
    /// Run one call within `budget`, refusing at once while the database is
    /// down. A call still unanswered after [`SUSPECT_AFTER`] starts the probe,
    /// and ends as `Unavailable` as soon as the probe finds the database down:
    /// the first callers after an outage learn it in a fraction of the budget.
    async fn call<T>(
        &self,
        budget: Duration,
        fut: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        if !self.health.is_up() {
            return Err(StoreError::Unavailable);
        }
        let mut down = self.health.subscribe();
        let fut = tokio::time::timeout(budget, fut);
        tokio::pin!(fut);
        let answer = tokio::select! {
            r = &mut fut => Some(r),
            _ = tokio::time::sleep(SUSPECT_AFTER) => None,
        };
        let answer = match answer {
            Some(r) => r,
            None => {
                self.probe();
                tokio::select! {
                    r = &mut fut => r,
                    _ = down.wait_for(|up| !*up) => return Err(StoreError::Unavailable),
                }
            }
        };
        match answer {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database call failed: the database looks unreachable");
                self.health.mark_down();
                self.probe();
                Err(StoreError::Unavailable)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.probe();
                Err(StoreError::Unavailable)
            }
        }
    }

    /// Start the probe task unless one is running.
    fn probe(&self) {
        if self.token.is_cancelled()
            || self
                .health
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let inner = Arc::clone(&self.inner);
        let health = Arc::clone(&self.health);
        let token = self.token.clone();
        self.tracker.spawn(async move {
            loop {
                let ok = tokio::select! {
                    _ = token.cancelled() => break,
                    r = tokio::time::timeout(PROBE_BUDGET, inner.probe()) => matches!(r, Ok(Ok(()))),
                };
                if ok {
                    health.mark_up();
                    health.probing.store(false, Ordering::Release);
                    // A call may have marked it down after our ping but before
                    // `probing` was cleared (and so not started a probe): go on then.
                    if health.is_up()
                        || health
                            .probing
                            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                            .is_err()
                    {
                        return;
                    }
                } else {
                    health.mark_down();
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                }
            }
            health.probing.store(false, Ordering::Release);
        });
    }
}

#[async_trait]
impl Store for GuardedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.ping()).await
    }

    async fn probe(&self) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.probe()).await
    }

    async fn close(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.inner.close().await;
    }

    async fn apply_records(&self, records: &[Record]) -> StoreResult<()> {
        self.call(BATCH_BUDGET, self.inner.apply_records(records))
            .await
    }
}

#[async_trait]
impl Users for GuardedStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.call(INTERACTIVE_BUDGET, self.inner.create_user(user))
            .await
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        self.call(INTERACTIVE_BUDGET, self.inner.user_by_id(id))
            .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.call(INTERACTIVE_BUDGET, self.inner.user_by_username(username))
            .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.call(INTERACTIVE_BUDGET, self.inner.list_users()).await
    }

    async fn set_user_disabled(&self, username: &str, disabled: bool) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.set_user_disabled(username, disabled),
        )
        .await
    }

    async fn set_password_hash(&self, username: &str, password_hash: &str) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.set_password_hash(username, password_hash),
        )
        .await
    }

    async fn set_user_role(&self, username: &str, role: Role) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.set_user_role(username, role))
            .await
    }

    async fn account_changes(&self, since_ms: i64) -> StoreResult<AccountChanges> {
        self.call(INTERACTIVE_BUDGET, self.inner.account_changes(since_ms))
            .await
    }

    async fn live_revocations(&self, now_ms: i64) -> StoreResult<Vec<RevokedToken>> {
        self.call(BATCH_BUDGET, self.inner.live_revocations(now_ms))
            .await
    }

    async fn purge_revocations(&self, now_ms: i64) -> StoreResult<u64> {
        self.call(BATCH_BUDGET, self.inner.purge_revocations(now_ms))
            .await
    }

    async fn count_users_with_role(&self, role: Role) -> StoreResult<i64> {
        self.call(INTERACTIVE_BUDGET, self.inner.count_users_with_role(role))
            .await
    }
}

#[async_trait]
impl AuditLog for GuardedStore {
    async fn append_audit(&self, entry: NewAudit) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.append_audit(entry))
            .await
    }

    async fn recent_audit(
        &self,
        action: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        self.call(BATCH_BUDGET, self.inner.recent_audit(action, limit))
            .await
    }
}

#[async_trait]
impl Runs for GuardedStore {
    async fn insert_run(&self, run: NewRun) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.insert_run(run))
            .await
    }

    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.finish_run(run_id, finish))
            .await
    }

    async fn recent_runs(&self, user_id: i64, limit: i64) -> StoreResult<Vec<RunRecord>> {
        self.call(BATCH_BUDGET, self.inner.recent_runs(user_id, limit))
            .await
    }

    async fn close_dangling_runs(&self, instance: &str) -> StoreResult<u64> {
        self.call(BATCH_BUDGET, self.inner.close_dangling_runs(instance))
            .await
    }
}

#[async_trait]
impl Courses for GuardedStore {
    async fn catalog_generation(&self) -> StoreResult<i64> {
        self.call(INTERACTIVE_BUDGET, self.inner.catalog_generation())
            .await
    }

    async fn load_catalog(&self) -> StoreResult<Catalog> {
        // The whole catalog: more rows than one interactive read.
        self.call(BATCH_BUDGET, self.inner.load_catalog()).await
    }

    async fn create_course(&self, course: NewCourse) -> StoreResult<Course> {
        self.call(INTERACTIVE_BUDGET, self.inner.create_course(course))
            .await
    }

    async fn delete_course(&self, course_id: i64) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.delete_course(course_id))
            .await
    }

    async fn set_member(&self, course_id: i64, user_id: i64, role: CourseRole) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.set_member(course_id, user_id, role),
        )
        .await
    }

    async fn remove_member(&self, course_id: i64, user_id: i64) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.remove_member(course_id, user_id),
        )
        .await
    }

    async fn apply_roster(&self, course_id: i64, change: RosterChange) -> StoreResult<Vec<i64>> {
        // A whole class in one transaction.
        self.call(BATCH_BUDGET, self.inner.apply_roster(course_id, change))
            .await
    }

    async fn create_section(&self, course_id: i64, fields: SectionFields) -> StoreResult<Section> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.create_section(course_id, fields),
        )
        .await
    }

    async fn update_section(&self, section_id: i64, fields: SectionFields) -> StoreResult<Section> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.update_section(section_id, fields),
        )
        .await
    }

    async fn delete_section(&self, section_id: i64) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.delete_section(section_id))
            .await
    }

    async fn set_exception(&self, exception: SectionException) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.set_exception(exception))
            .await
    }

    async fn remove_exception(&self, section_id: i64, user_id: i64) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.remove_exception(section_id, user_id),
        )
        .await
    }

    async fn set_release(&self, release: MaterialRelease) -> StoreResult<()> {
        self.call(INTERACTIVE_BUDGET, self.inner.set_release(release))
            .await
    }

    async fn remove_release(&self, section_id: i64, path: &str) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.remove_release(section_id, path),
        )
        .await
    }
}

#[async_trait]
impl Grading for GuardedStore {
    async fn assignment_of_section(&self, section_id: i64) -> StoreResult<Option<Assignment>> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.assignment_of_section(section_id),
        )
        .await
    }

    async fn assignment(&self, id: i64) -> StoreResult<Assignment> {
        self.call(INTERACTIVE_BUDGET, self.inner.assignment(id))
            .await
    }

    async fn set_assignment(
        &self,
        section_id: i64,
        config: &str,
        at_ms: i64,
    ) -> StoreResult<Assignment> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.set_assignment(section_id, config, at_ms),
        )
        .await
    }

    async fn assignment_files(&self, assignment_id: i64) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.call(BATCH_BUDGET, self.inner.assignment_files(assignment_id))
            .await
    }

    async fn put_assignment_file(
        &self,
        assignment_id: i64,
        name: &str,
        content: &[u8],
    ) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.put_assignment_file(assignment_id, name, content),
        )
        .await
    }

    async fn delete_assignment_file(&self, assignment_id: i64, name: &str) -> StoreResult<()> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.delete_assignment_file(assignment_id, name),
        )
        .await
    }

    async fn create_submission(
        &self,
        new: &NewSubmission,
        rules: &SubmitRules,
    ) -> StoreResult<Result<Submission, SubmitRefused>> {
        self.call(INTERACTIVE_BUDGET, self.inner.create_submission(new, rules))
            .await
    }

    async fn claim_submission(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<Submission>> {
        self.call(
            BATCH_BUDGET,
            self.inner.claim_submission(owner, now_ms, lease_until_ms),
        )
        .await
    }

    async fn renew_lease(&self, id: i64, owner: &str, lease_until_ms: i64) -> StoreResult<bool> {
        self.call(
            BATCH_BUDGET,
            self.inner.renew_lease(id, owner, lease_until_ms),
        )
        .await
    }

    async fn finish_submission(
        &self,
        id: i64,
        owner: &str,
        result: &GradeResult,
    ) -> StoreResult<bool> {
        self.call(
            BATCH_BUDGET,
            self.inner.finish_submission(id, owner, result),
        )
        .await
    }

    async fn requeue_submission(
        &self,
        id: i64,
        owner: &str,
        max_retries: i64,
        summary: &str,
    ) -> StoreResult<bool> {
        self.call(
            BATCH_BUDGET,
            self.inner
                .requeue_submission(id, owner, max_retries, summary),
        )
        .await
    }

    async fn requeue_running(&self) -> StoreResult<u64> {
        self.call(BATCH_BUDGET, self.inner.requeue_running()).await
    }

    async fn regrade_assignment(&self, assignment_id: i64) -> StoreResult<u64> {
        self.call(BATCH_BUDGET, self.inner.regrade_assignment(assignment_id))
            .await
    }

    async fn submission(&self, id: i64) -> StoreResult<(Submission, Vec<ResultRow>)> {
        self.call(INTERACTIVE_BUDGET, self.inner.submission(id))
            .await
    }

    async fn submissions_of(
        &self,
        assignment_id: i64,
        user_id: i64,
    ) -> StoreResult<Vec<Submission>> {
        self.call(
            INTERACTIVE_BUDGET,
            self.inner.submissions_of(assignment_id, user_id),
        )
        .await
    }

    async fn queued_ids(&self) -> StoreResult<Vec<(i64, i64)>> {
        self.call(BATCH_BUDGET, self.inner.queued_ids()).await
    }

    async fn gradebook(
        &self,
        course_id: i64,
        assignment_id: i64,
    ) -> StoreResult<Vec<GradebookRow>> {
        self.call(BATCH_BUDGET, self.inner.gradebook(course_id, assignment_id))
            .await
    }

    async fn test_stats(&self, assignment_id: i64) -> StoreResult<Vec<TestStat>> {
        self.call(BATCH_BUDGET, self.inner.test_stats(assignment_id))
            .await
    }

    async fn progress(&self, course_id: i64, user_id: i64) -> StoreResult<Vec<ProgressRow>> {
        self.call(INTERACTIVE_BUDGET, self.inner.progress(course_id, user_id))
            .await
    }
}
