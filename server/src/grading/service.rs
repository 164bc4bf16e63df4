//! The grading service: assignment settings and test files, checks,
//! submissions and their durable queue, the workers that grade them, live
//! progress to the student's connections, gradebook and re-grade.
//!
//! A submission is accepted in one transaction (its row is its job); the
//! workers claim the oldest with a lease they renew, and only the lease's
//! holder can store a grade, so a restart, a re-grade or a second replica
//! never grades one twice into the book. A platform failure gives the job
//! back (never an attempt); shutdown leaves it for the next start.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use campus_protocol::{
    AssignmentConfig, AssignmentInfo, ErrorCode, GradebookLine, GradingMsg, GradingRequest,
    LatePolicy, ServerMsg, SubmissionInfo, SubmissionState, TestResultInfo, TestStatInfo,
    TestVisibility, UserInfo,
};
use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pair::{GradeEvent, GradeReport, GradeSpec, Grader, Outcome};
use super::snapshot::{self, SnapshotError};
use crate::authz::CourseAction;
use crate::courses::CourseService;
use crate::error::AppError;
use crate::files::FileService;
use crate::hub::Hub;
use crate::sandbox::SandboxLimits;
use crate::store::{
    now_ms, Assignment, DynStore, GradeResult, NewSubmission, ResultRow, StoreError, Submission,
    SubmissionStatus, SubmitRefused, SubmitRules,
};

/// Most test files per assignment.
const MAX_TEST_FILES: usize = 50;
/// Largest test file.
const MAX_TEST_FILE: usize = 256 << 10;
/// Most per-test settings.
const MAX_SETTINGS: usize = 500;
/// Output kept in a submission's summary.
const OUTPUT_KEEP: usize = 64 << 10;
/// How long a gradebook is served from memory.
const BOOK_CACHE: Duration = Duration::from_secs(3);
/// A worker with nothing to do looks again this often (a restart's jobs,
/// expired leases, another replica's submits).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// Queue positions are pushed at most this often.
const POSITION_TICK: Duration = Duration::from_millis(500);
const DAY_MS: i64 = 86_400_000;
/// The longest a check may run.
const CHECK_WALL: Duration = Duration::from_secs(120);

/// Settings of the grading service.
#[derive(Debug, Clone)]
pub struct GradingConfig {
    /// Gradings at once (each takes two sandbox slots).
    pub workers: usize,
    /// Most submissions queued on the server (beyond: `busy`).
    pub queue_max: i64,
    /// Default per-student, per-assignment submissions per day.
    pub per_day: i64,
    /// A worker's lease on a job (renewed at a third of it).
    pub lease: Duration,
    /// Platform failures before a submission is `failed`.
    pub max_retries: i64,
    /// Where snapshots and work trees live (`<data dir>/grading`).
    pub root: PathBuf,
    /// This process's name in leases.
    pub owner: String,
    /// Where gradings are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// See the module docs.
#[derive(Debug)]
pub struct GradingService {
    store: DynStore,
    courses: Arc<CourseService>,
    files: Arc<FileService>,
    hub: Arc<Hub>,
    grader: Arc<Grader>,
    config: GradingConfig,
    wake: Notify,
    positions_dirty: AtomicBool,
    /// Users with a check running (one each).
    checks: DashMap<i64, ()>,
    /// Last pushed queue position per queued submission.
    positions: DashMap<i64, u32>,
    books: DashMap<i64, (Instant, ServerMsg)>,
    /// Worker tasks running now (a worker that ended or panicked is gone
    /// from the count: `/readyz` reports it).
    workers_alive: Arc<AtomicUsize>,
}

/// Counts its worker as alive until dropped (returned, cancelled or panicked).
struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn bad(msg: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::BadRequest, msg)
}

fn parse_config(a: &Assignment) -> AssignmentConfig {
    serde_json::from_str(&a.config).unwrap_or_default()
}

/// How a test is set up: its points, visibility and secrecy.
fn setting_for(config: &AssignmentConfig, node: &str) -> (f64, TestVisibility, bool) {
    let short = node.split_once("::").map_or(node, |(_, rest)| rest);
    let last = node.rsplit("::").next().unwrap_or(node);
    config
        .tests
        .iter()
        .find(|t| t.name == node)
        .or_else(|| {
            config
                .tests
                .iter()
                .find(|t| t.name == short || t.name == last)
        })
        .map_or(
            (config.default_points, TestVisibility::Visible, false),
            |t| (t.points, t.visibility, t.secret_name),
        )
}

/// The visibility a student sees now (`after_due_date` opens at the due date).
fn effective(v: TestVisibility, config: &AssignmentConfig, now: i64) -> TestVisibility {
    effective_at(v, config.due_at_ms, now)
}

fn effective_at(v: TestVisibility, due: Option<i64>, now: i64) -> TestVisibility {
    match v {
        TestVisibility::AfterDueDate if due.is_some_and(|d| now >= d) => TestVisibility::Visible,
        TestVisibility::AfterDueDate => TestVisibility::Hidden,
        other => other,
    }
}

/// Snapshot a student's folder on the blocking pool, its failures as the
/// user's refusals (a check and a submit alike).
async fn take_snapshot(
    src: PathBuf,
    root: PathBuf,
    folder: String,
) -> Result<snapshot::Snapshot, AppError> {
    tokio::task::spawn_blocking(move || snapshot::take(&src, &root, &folder))
        .await
        .map_err(AppError::internal)?
        .map_err(|e| match e {
            SnapshotError::Missing(_) => AppError::new(ErrorCode::NotFound, e.to_string()),
            SnapshotError::TooLarge(_) => AppError::new(ErrorCode::TooLarge, e.to_string()),
            SnapshotError::Io(e) if crate::disk::out_of_space(&e) => {
                AppError::insufficient_storage("nothing was submitted or checked")
            }
            SnapshotError::Io(e) => AppError::internal(e),
        })
}

/// A visibility's stored and wire name.
fn vis_name(v: TestVisibility) -> &'static str {
    match v {
        TestVisibility::Visible => "visible",
        TestVisibility::Hidden => "hidden",
        TestVisibility::AfterDueDate => "after_due_date",
    }
}

/// A test file's name: `test_*.py` or `*_test.py` (letters, digits, `_`).
/// Nothing else is stored with the tests, so no module among them can be
/// mistaken for the student's (a reference `solution.py` answering for every
/// student) or be shadowed by one.
fn valid_test_file(name: &str) -> bool {
    let stem = name.strip_suffix(".py").unwrap_or("");
    name.len() <= 64
        && (stem.starts_with("test_") || stem.ends_with("_test"))
        && name.ends_with(".py")
        && name.len() > 3
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name[..name.len() - 3]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn validate(config: &AssignmentConfig) -> Result<(), AppError> {
    let finite = |x: f64| x.is_finite() && (0.0..=10_000.0).contains(&x);
    if !finite(config.default_points) {
        return Err(bad("default_points must be between 0 and 10000"));
    }
    if !(0.0..=100.0).contains(&config.late_penalty_percent) {
        return Err(bad("late_penalty_percent must be between 0 and 100"));
    }
    if !(100..=300_000).contains(&config.test_timeout_ms) {
        return Err(bad("test_timeout_ms must be between 100 and 300000"));
    }
    if !(32..=2048).contains(&config.memory_mib) {
        return Err(bad("memory_mib must be between 32 and 2048"));
    }
    if config.max_attempts == Some(0) || config.per_day == Some(0) {
        return Err(bad(
            "max_attempts and per_day must be at least 1 when given",
        ));
    }
    if config.tests.len() > MAX_SETTINGS {
        return Err(bad(format!("at most {MAX_SETTINGS} test settings")));
    }
    for t in &config.tests {
        if t.name.trim().is_empty() || t.name.len() > 300 || t.name.chars().any(char::is_control) {
            return Err(bad("a test's name must be 1-300 characters"));
        }
        if !finite(t.points) {
            return Err(bad(format!(
                "{}: points must be between 0 and 10000",
                t.name
            )));
        }
    }
    Ok(())
}

/// The progress page of one student in a course: the assignments among
/// `sections` (those the student may see), in the course's order.
fn progress(
    id: Option<u64>,
    course: &crate::store::Course,
    sections: &[crate::store::Section],
    rows: Vec<crate::store::ProgressRow>,
) -> GradingMsg {
    let mut lines = Vec::new();
    for r in rows {
        let Some(section) = sections.iter().find(|s| s.id == r.section_id) else {
            continue;
        };
        let config = serde_json::from_str::<AssignmentConfig>(&r.config).unwrap_or_default();
        let from_settings = config.tests.iter().map(|t| t.points).sum::<f64>();
        let max_score = r.max_score.unwrap_or(from_settings);
        lines.push(campus_protocol::ProgressLine {
            folder: section.folder.clone(),
            title: section.title.clone(),
            due_at_ms: config.due_at_ms,
            max_score,
            best_score: r.best,
            attempts_used: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            max_attempts: config.max_attempts,
            last_state: r.last.as_ref().map(|l| state_of(l.1)),
            last_submission: r.last.as_ref().map(|l| l.0),
            last_at_ms: r.last.as_ref().map(|l| l.2),
            late: r.late,
        });
    }
    GradingMsg::Progress {
        id,
        course: course.slug.clone(),
        title: course.title.clone(),
        total_best: lines.iter().filter_map(|l| l.best_score).sum(),
        total_max: lines.iter().map(|l| l.max_score).sum(),
        assignments: lines,
    }
}

fn state_of(s: SubmissionStatus) -> SubmissionState {
    match s {
        SubmissionStatus::Queued => SubmissionState::Queued,
        SubmissionStatus::Running => SubmissionState::Running,
        SubmissionStatus::Graded => SubmissionState::Graded,
        SubmissionStatus::Failed => SubmissionState::Failed,
    }
}

/// The summary stored with a graded submission.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Summary {
    #[serde(default)]
    output: String,
    #[serde(default)]
    harness_output: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    complete: bool,
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[output truncated]", &s[..end])
}

/// One test result as the viewer may see it (`staff` see everything);
/// `secret_count` numbers the tests whose names are withheld.
fn shown(
    r: &ResultRow,
    secret_count: &mut usize,
    staff: bool,
    config: &AssignmentConfig,
    now: i64,
) -> TestResultInfo {
    let vis = match r.visibility.as_str() {
        "hidden" => TestVisibility::Hidden,
        "after_due_date" => TestVisibility::AfterDueDate,
        _ => TestVisibility::Visible,
    };
    let open = staff || effective(vis, config, now) == TestVisibility::Visible;
    let (_, _, secret) = setting_for(config, &r.name);
    let name = if open || !secret {
        r.name.clone()
    } else {
        *secret_count += 1;
        format!("Hidden test {secret_count}")
    };
    // Hidden: passed or not, and the points; nothing of what it checked.
    let outcome = if open || r.outcome == "passed" {
        r.outcome.clone()
    } else {
        "failed".into()
    };
    TestResultInfo {
        name,
        outcome,
        points: r.points,
        max_points: r.max_points,
        visibility: vis,
        message: (open && !r.message.is_empty()).then(|| r.message.clone()),
        duration_ms: if open { r.duration_ms.max(0) as u64 } else { 0 },
    }
}

/// Every result as the viewer may see them, and whether all are open to them.
fn shown_all(
    rows: &[ResultRow],
    staff: bool,
    config: &AssignmentConfig,
    now: i64,
) -> (Vec<TestResultInfo>, bool) {
    let mut secret = 0;
    let tests: Vec<TestResultInfo> = rows
        .iter()
        .map(|r| shown(r, &mut secret, staff, config, now))
        .collect();
    let all_open = staff
        || tests
            .iter()
            .all(|t| effective(t.visibility, config, now) == TestVisibility::Visible);
    (tests, all_open)
}

impl GradingService {
    /// The service; [`GradingService::start`] starts its workers.
    pub fn new(
        store: DynStore,
        courses: Arc<CourseService>,
        files: Arc<FileService>,
        hub: Arc<Hub>,
        grader: Arc<Grader>,
        config: GradingConfig,
    ) -> Arc<GradingService> {
        Arc::new(GradingService {
            store,
            courses,
            files,
            hub,
            grader,
            config,
            wake: Notify::new(),
            positions_dirty: AtomicBool::new(true),
            checks: DashMap::new(),
            positions: DashMap::new(),
            books: DashMap::new(),
            workers_alive: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Start the workers and the queue-position pusher (tracked; they end with `token`).
    pub fn start(self: &Arc<Self>, tracker: &TaskTracker, token: CancellationToken) {
        for n in 0..self.config.workers.max(1) {
            let me = Arc::clone(self);
            let token = token.clone();
            self.workers_alive.fetch_add(1, Ordering::Relaxed);
            let alive = AliveGuard(Arc::clone(&self.workers_alive));
            tracker.spawn(async move {
                let _alive = alive;
                me.work(n, token).await
            });
        }
        let me = Arc::clone(self);
        tracker.spawn(async move { me.push_positions(token).await });
    }

    /// Grading workers running now, and how many were started.
    pub fn workers(&self) -> (usize, usize) {
        (
            self.workers_alive.load(Ordering::Relaxed),
            self.config.workers.max(1),
        )
    }

    /// Submissions queued now and how long the oldest has waited (None when
    /// the database does not answer).
    pub async fn queue_depth(&self) -> Option<(usize, Duration)> {
        let queued = self.store.queued_ids().await.ok()?;
        let waited = match queued.first() {
            Some((id, _)) => {
                let (s, _) = self.store.submission(*id).await.ok()?;
                Duration::from_millis(u64::try_from(now_ms() - s.created_at_ms).unwrap_or(0))
            }
            None => Duration::ZERO,
        };
        Some((queued.len(), waited))
    }

    /// Do one grading request of `user`.
    pub async fn handle(
        self: &Arc<Self>,
        user: &UserInfo,
        req: GradingRequest,
    ) -> Result<ServerMsg, AppError> {
        self.files.charge(user.id, 1)?;
        use GradingRequest as R;
        let msg = match req {
            R::AssignmentGet { id, course, folder } => {
                let (c, section, _, staff) = self
                    .courses
                    .assignment_section(user, &course, &folder, CourseAction::View)
                    .await?;
                let a = self.assignment_of(section.id, &folder).await?;
                GradingMsg::Assignment {
                    id,
                    assignment: Box::new(self.info(user, &c.slug, &section, &a, staff).await?),
                }
            }
            R::AssignmentSave {
                id,
                course,
                folder,
                config,
            } => {
                let (c, section, _, _) = self
                    .courses
                    .assignment_section(user, &course, &folder, CourseAction::Edit)
                    .await?;
                validate(&config)?;
                let text = serde_json::to_string(&config).map_err(AppError::internal)?;
                let a = self
                    .store
                    .set_assignment(section.id, &text, now_ms())
                    .await?;
                self.courses.audit_grading(
                    user,
                    "grading.assignment_save",
                    &c.slug,
                    folder.clone(),
                );
                GradingMsg::Assignment {
                    id,
                    assignment: Box::new(self.info(user, &c.slug, &section, &a, true).await?),
                }
            }
            R::TestFilePut {
                id,
                course,
                folder,
                name,
                content,
            } => {
                let (c, section, _, _) = self
                    .courses
                    .assignment_section(user, &course, &folder, CourseAction::Edit)
                    .await?;
                if !valid_test_file(&name) {
                    return Err(AppError::new(
                        ErrorCode::InvalidPath,
                        "a test file is named test_*.py or *_test.py (letters, digits and _), like test_basic.py",
                    ));
                }
                if content.len() > MAX_TEST_FILE {
                    return Err(AppError::new(
                        ErrorCode::TooLarge,
                        format!("a test file is at most {} KiB", MAX_TEST_FILE >> 10),
                    ));
                }
                // Uploading the first test makes the section an assignment.
                let a = match self.store.assignment_of_section(section.id).await? {
                    Some(a) => a,
                    None => {
                        let text = serde_json::to_string(&AssignmentConfig::default())
                            .map_err(AppError::internal)?;
                        self.store
                            .set_assignment(section.id, &text, now_ms())
                            .await?
                    }
                };
                let files = self.store.assignment_files(a.id).await?;
                if files.len() >= MAX_TEST_FILES && !files.iter().any(|(n, _)| *n == name) {
                    return Err(AppError::new(
                        ErrorCode::TooLarge,
                        format!("an assignment has at most {MAX_TEST_FILES} test files"),
                    ));
                }
                self.store
                    .put_assignment_file(a.id, &name, content.as_bytes())
                    .await?;
                self.courses.audit_grading(
                    user,
                    "grading.test_file_put",
                    &c.slug,
                    format!("{folder}/{name}"),
                );
                GradingMsg::Assignment {
                    id,
                    assignment: Box::new(self.info(user, &c.slug, &section, &a, true).await?),
                }
            }
            R::TestFileDelete {
                id,
                course,
                folder,
                name,
            } => {
                let (c, section, _, _) = self
                    .courses
                    .assignment_section(user, &course, &folder, CourseAction::Edit)
                    .await?;
                let a = self.assignment_of(section.id, &folder).await?;
                self.store.delete_assignment_file(a.id, &name).await?;
                self.courses.audit_grading(
                    user,
                    "grading.test_file_delete",
                    &c.slug,
                    format!("{folder}/{name}"),
                );
                GradingMsg::Assignment {
                    id,
                    assignment: Box::new(self.info(user, &c.slug, &section, &a, true).await?),
                }
            }
            R::TestFileGet {
                id,
                course,
                folder,
                name,
            } => {
                let (_, section, _, _) = self
                    .courses
                    .assignment_section(user, &course, &folder, CourseAction::ReadStudentWork)
                    .await?;
                let a = self.assignment_of(section.id, &folder).await?;
                let files = self.store.assignment_files(a.id).await?;
                let (_, content) =
                    files.into_iter().find(|(n, _)| *n == name).ok_or_else(|| {
                        AppError::new(ErrorCode::NotFound, format!("no test file {name:?}"))
                    })?;
                GradingMsg::TestFile {
                    id,
                    name,
                    content: String::from_utf8_lossy(&content).into_owned(),
                }
            }
            R::Check { id, course, folder } => {
                self.need_isolation()?;
                self.check(user, id, course, folder).await?
            }
            R::Submit { id, course, folder } => {
                self.need_isolation()?;
                self.submit(user, id, course, folder).await?
            }
            R::SubmissionGet { id, submission } => {
                let (sub, rows) = self
                    .store
                    .submission(submission)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound => {
                            AppError::new(ErrorCode::NotFound, "no such submission")
                        }
                        e => e.into(),
                    })?;
                let a = self.store.assignment(sub.assignment_id).await?;
                let (course, section, staff) =
                    self.courses.section_by_id(user, a.section_id).await?;
                if !staff && sub.user_id != user.id {
                    return Err(AppError::new(ErrorCode::NotFound, "no such submission"));
                }
                let info = self
                    .submission_info(
                        &sub,
                        &rows,
                        &course.slug,
                        &section.folder,
                        &parse_config(&a),
                        staff,
                        true,
                    )
                    .await;
                GradingMsg::Submission {
                    id,
                    submission: Box::new(info),
                }
            }
            R::GradebookGet { id, course, folder } => {
                let (c, section, _, _) = self
                    .courses
                    .assignment_section(user, &course, &folder, CourseAction::ReadStudentWork)
                    .await?;
                let a = self.assignment_of(section.id, &folder).await?;
                let mut msg = self.gradebook(c.id, &c.slug, &folder, &a).await?;
                if let ServerMsg::Grading(GradingMsg::Gradebook { id: mid, .. }) = &mut msg {
                    *mid = id;
                }
                return Ok(msg);
            }
            R::Regrade { id, course, folder } => {
                let (c, section, _, _) = self
                    .courses
                    .assignment_section(user, &course, &folder, CourseAction::Edit)
                    .await?;
                let a = self.assignment_of(section.id, &folder).await?;
                let n = self.store.regrade_assignment(a.id).await?;
                self.courses.audit_grading(
                    user,
                    "grading.regrade",
                    &c.slug,
                    format!("{folder}: {n} submissions"),
                );
                self.books.remove(&a.id);
                self.positions_dirty.store(true, Ordering::Relaxed);
                self.wake.notify_waiters();
                GradingMsg::Regraded {
                    id,
                    queued: n as u32,
                }
            }
            R::ProgressGet { id, course } => {
                let (c, sections) = self
                    .courses
                    .visible_sections(user, &course, CourseAction::View)
                    .await?;
                let rows = self.store.progress(c.id, user.id).await?;
                progress(id, &c, &sections, rows)
            }
        };
        Ok(ServerMsg::Grading(msg))
    }

    /// Grading runs only with the full sandbox: without it the student's
    /// code would share the harness's uid and file system.
    fn need_isolation(&self) -> Result<(), AppError> {
        if self.grader.isolated() {
            return Ok(());
        }
        Err(AppError::new(
            ErrorCode::Unavailable,
            "grading needs the full sandbox, and this server runs without it (it is not running as root); tell your teacher or the server's administrator",
        ))
    }

    async fn assignment_of(&self, section_id: i64, folder: &str) -> Result<Assignment, AppError> {
        self.store
            .assignment_of_section(section_id)
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::NotFound,
                    format!("{folder:?} is not an assignment"),
                )
            })
    }

    async fn info(
        &self,
        user: &UserInfo,
        slug: &str,
        section: &crate::store::Section,
        a: &Assignment,
        staff: bool,
    ) -> Result<AssignmentInfo, AppError> {
        let mut config = parse_config(a);
        let now = now_ms();
        let test_files = if staff {
            self.store
                .assignment_files(a.id)
                .await?
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        } else {
            Vec::new()
        };
        let subs = if staff {
            Vec::new()
        } else {
            self.store.submissions_of(a.id, user.id).await?
        };
        // Of the newest graded submission (one queued or running has none yet).
        let max_score = subs
            .iter()
            .find_map(|s| s.max_score)
            .unwrap_or_else(|| config.tests.iter().map(|t| t.points).sum::<f64>());
        let mut submissions = Vec::new();
        for (i, s) in subs.iter().enumerate() {
            // Results only for the newest (history lines need no test list).
            let rows = if i == 0 {
                self.store.submission(s.id).await?.1
            } else {
                Vec::new()
            };
            submissions.push(
                self.submission_info(s, &rows, slug, &section.folder, &config, false, i == 0)
                    .await,
            );
        }
        if !staff {
            // A secret hidden test's name is not the student's to know.
            let due = config.due_at_ms;
            config.tests.retain(|t| {
                !(t.secret_name && effective_at(t.visibility, due, now) != TestVisibility::Visible)
            });
        }
        // A submission being re-graded keeps its last score meanwhile.
        let best_score = subs
            .iter()
            .filter_map(|s| s.score)
            .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.max(x))));
        Ok(AssignmentInfo {
            course: slug.to_string(),
            folder: section.folder.clone(),
            title: section.title.clone(),
            config,
            test_files,
            max_score,
            submissions,
            best_score,
            attempts_used: subs
                .iter()
                .filter(|s| s.status != SubmissionStatus::Failed)
                .count() as u32,
            now_ms: now,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn submission_info(
        &self,
        s: &Submission,
        rows: &[ResultRow],
        slug: &str,
        folder: &str,
        config: &AssignmentConfig,
        staff: bool,
        detail: bool,
    ) -> SubmissionInfo {
        let now = now_ms();
        let (tests, all_open) = shown_all(rows, staff, config, now);
        let summary: Summary = s
            .summary
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let output = if staff {
            let mut o = summary.output.clone();
            if !summary.harness_output.is_empty() {
                o.push_str("\n--- tests' own output ---\n");
                o.push_str(&summary.harness_output);
            }
            Some(o)
        } else {
            // The student's own prints could carry a hidden test's inputs.
            all_open.then(|| summary.output.clone())
        };
        let files = if detail {
            let dir = self.config.root.join("snapshots").join(&s.files_hash);
            tokio::task::spawn_blocking(move || snapshot::list(&dir))
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let student = if staff {
            self.store
                .user_by_id(s.user_id)
                .await
                .ok()
                .flatten()
                .map(|u| u.username)
        } else {
            None
        };
        SubmissionInfo {
            id: s.id,
            course: slug.to_string(),
            folder: folder.to_string(),
            student,
            attempt: s.attempt,
            created_at_ms: s.created_at_ms,
            files_hash: s.files_hash.clone(),
            files,
            late: s.late,
            state: state_of(s.status),
            position: self.positions.get(&s.id).map(|p| *p),
            score: s.score,
            max_score: s.max_score,
            tests: if detail { tests } else { Vec::new() },
            output: if detail {
                output.filter(|o| !o.is_empty())
            } else {
                None
            },
            message: (!summary.message.is_empty()).then_some(summary.message),
        }
    }

    async fn submit(
        &self,
        user: &UserInfo,
        id: Option<u64>,
        course: String,
        folder: String,
    ) -> Result<GradingMsg, AppError> {
        let (c, section, role, _) = self
            .courses
            .assignment_section(user, &course, &folder, CourseAction::View)
            .await?;
        if role != Some(campus_protocol::CourseRole::Student) {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "only the course's students submit; use Check to try the tests",
            ));
        }
        let a = self.assignment_of(section.id, &folder).await?;
        let config = parse_config(&a);
        let now = now_ms();
        let late = config.due_at_ms.is_some_and(|d| now > d);
        if late && config.late_policy == LatePolicy::Refuse {
            return Err(AppError::new(
                ErrorCode::PastDue,
                "the due date has passed and this assignment does not accept late submissions",
            ));
        }
        // The workspace folder named like the section, at this moment.
        let src = self.files.tree_path(user.id)?.join(&folder);
        let root = self.config.root.join("snapshots");
        let f = folder.clone();
        let snap = take_snapshot(src, root, f).await?;
        let rules = SubmitRules {
            max_attempts: config.max_attempts.map(i64::from),
            per_day: Some(config.per_day.map_or(self.config.per_day, i64::from)),
            day_start_ms: now - now.rem_euclid(DAY_MS),
            queue_max: self.config.queue_max,
        };
        let new = NewSubmission {
            assignment_id: a.id,
            user_id: user.id,
            at_ms: now,
            files_hash: snap.hash.clone(),
            late,
        };
        let mut tries = 0;
        let sub = loop {
            tries += 1;
            match self.store.create_submission(&new, &rules).await {
                Ok(r) => break r,
                // Two submits raced for one attempt number: count again.
                Err(StoreError::Conflict) if tries < 5 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let sub = match sub {
            Ok(s) => s,
            Err(SubmitRefused::InFlight) => {
                return Err(AppError::rate_limited(
                    "submissions at once: your previous submission is still being graded",
                    Duration::from_secs(5),
                ))
            }
            Err(SubmitRefused::NoAttemptsLeft) => {
                return Err(AppError::new(
                    ErrorCode::NoAttemptsLeft,
                    format!(
                        "you have used all {} attempts of this assignment",
                        config.max_attempts.unwrap_or(0)
                    ),
                ))
            }
            Err(SubmitRefused::DailyLimit) => {
                let wait = (DAY_MS - now.rem_euclid(DAY_MS)).max(1000) as u64;
                return Err(AppError::rate_limited(
                    "submissions of this assignment today",
                    Duration::from_millis(wait),
                ));
            }
            Err(SubmitRefused::QueueFull) => {
                let mut e = AppError::new(
                    ErrorCode::Busy,
                    "the grader has too many submissions waiting; nothing was submitted, try again in a minute",
                );
                e.retry_after = Some(Duration::from_secs(30));
                return Err(e);
            }
        };
        self.courses.audit_grading(
            user,
            "grading.submit",
            &c.slug,
            format!("{folder} attempt {} {}", sub.attempt, sub.files_hash),
        );
        self.positions_dirty.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let mut info = self
            .submission_info(&sub, &[], &c.slug, &folder, &config, false, false)
            .await;
        info.files = snap.files;
        Ok(GradingMsg::Submission {
            id,
            submission: Box::new(info),
        })
    }

    async fn check(
        self: &Arc<Self>,
        user: &UserInfo,
        id: Option<u64>,
        course: String,
        folder: String,
    ) -> Result<GradingMsg, AppError> {
        let (c, section, _, _) = self
            .courses
            .assignment_section(user, &course, &folder, CourseAction::View)
            .await?;
        let a = self.assignment_of(section.id, &folder).await?;
        let config = parse_config(&a);
        // The folder as it is now, copied as a submission is (never mounted
        // live: the student's session could swap it for a link meanwhile).
        let src = self.files.tree_path(user.id)?.join(&folder);
        // Its own tree, removed when the check ends.
        let root = self
            .config
            .root
            .join("checks")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let f = folder.clone();
        let snap = take_snapshot(src, root, f).await?;
        let home = snap.dir;
        if self.checks.insert(user.id, ()).is_some() {
            return Err(AppError::rate_limited(
                "checks at once: your previous check is still running",
                Duration::from_secs(2),
            ));
        }
        let files = match self.store.assignment_files(a.id).await {
            Ok(f) => f,
            Err(e) => {
                self.checks.remove(&user.id);
                return Err(e.into());
            }
        };
        let now = now_ms();
        // Only what a student may see runs: the hidden tests stay unrun.
        let skip: Vec<String> = config
            .tests
            .iter()
            .filter(|t| effective(t.visibility, &config, now) != TestVisibility::Visible)
            .map(|t| t.name.clone())
            .collect();
        let job = CheckJob {
            user_id: user.id,
            check: id,
            course: c.slug.clone(),
            folder: folder.clone(),
            home,
            files,
            config,
            skip,
        };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            me.run_check(job).await;
        });
        Ok(GradingMsg::CheckStarted {
            id,
            course: c.slug,
            folder,
        })
    }
}

struct CheckJob {
    user_id: i64,
    check: Option<u64>,
    course: String,
    folder: String,
    home: PathBuf,
    files: Vec<(String, Vec<u8>)>,
    config: AssignmentConfig,
    skip: Vec<String>,
}

/// Write an assignment's test files into a fresh work tree (readable by the
/// harness's uid; nothing of it is ever mounted for the student).
fn write_tests(dir: &std::path::Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::write(&p, content)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// The results of a grading, per collected test, with points decided here.
fn score(report: &GradeReport, config: &AssignmentConfig) -> (Vec<ResultRow>, f64, f64) {
    let mut rows = Vec::new();
    let (mut got, mut max) = (0.0, 0.0);
    // Every test collected counts, run or not: one the harness never
    // finished is `not_run`, worth nothing.
    for name in &report.collected {
        let (points, vis, _) = setting_for(config, name);
        let run = report.tests.iter().find(|t| &t.name == name);
        let (outcome, message, duration) = match run {
            Some(t) => (
                t.outcome.as_str().to_string(),
                t.message.clone(),
                t.duration_ms,
            ),
            None => (
                "not_run".to_string(),
                "the grader ended before this test ran".to_string(),
                0,
            ),
        };
        let earned = if run.is_some_and(|t| t.outcome == Outcome::Passed) {
            points
        } else {
            0.0
        };
        got += earned;
        max += points;
        rows.push(ResultRow {
            name: name.clone(),
            outcome,
            points: earned,
            max_points: points,
            visibility: vis_name(vis).into(),
            message: cut(&message, 4000),
            duration_ms: duration as i64,
        });
    }
    (rows, got, max)
}

impl GradingService {
    fn tell(&self, user_id: i64, msg: GradingMsg) {
        self.hub
            .send_to_user(user_id, None, &ServerMsg::Grading(msg));
    }

    /// One worker: claim, grade, store; again.
    async fn work(self: Arc<Self>, n: usize, token: CancellationToken) {
        let owner = format!("{}-{n}", self.config.owner);
        loop {
            if token.is_cancelled() {
                return;
            }
            let now = now_ms();
            let lease = self.config.lease.as_millis() as i64;
            let claimed = self.store.claim_submission(&owner, now, now + lease).await;
            match claimed {
                Ok(Some(sub)) => {
                    self.positions.remove(&sub.id);
                    self.positions_dirty.store(true, Ordering::Relaxed);
                    self.grade_one(&owner, sub, &token).await;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "grading: cannot claim a submission");
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
            }
        }
    }

    async fn grade_one(&self, owner: &str, sub: Submission, token: &CancellationToken) {
        let started = Instant::now();
        let a = match self.store.assignment(sub.assignment_id).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, id = sub.id, "grading: assignment unreadable");
                let _ = self
                    .store
                    .requeue_submission(sub.id, owner, self.config.max_retries, "{}")
                    .await;
                return;
            }
        };
        let config = parse_config(&a);
        let (slug, folder) = self
            .courses
            .section_names(a.section_id)
            .await
            .unwrap_or_default();
        let mut running = self
            .submission_info(&sub, &[], &slug, &folder, &config, false, false)
            .await;
        running.state = SubmissionState::Running;
        running.position = None;
        self.tell(
            sub.user_id,
            GradingMsg::Submission {
                id: None,
                submission: Box::new(running),
            },
        );
        let work = self.config.root.join("work").join(format!(
            "{}-{}",
            sub.id,
            uuid::Uuid::new_v4().simple()
        ));
        let outcome = self
            .run_grading(&sub, &a, &config, &slug, &folder, &work, owner, token)
            .await;
        let w = work.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(w)).await;
        if token.is_cancelled() {
            // Shutdown: the lease runs out (or the next start re-queues it).
            return;
        }
        let platform_ok = outcome.is_ok();
        let stored = match outcome {
            Ok(report) => {
                let (results, got, max) = score(&report, &config);
                let penalty = if sub.late {
                    config.late_penalty_percent / 100.0
                } else {
                    0.0
                };
                let summary = Summary {
                    output: cut(&report.student_output, OUTPUT_KEEP),
                    harness_output: cut(&report.harness_output, OUTPUT_KEEP),
                    message: if report.complete {
                        String::new()
                    } else {
                        "the grader stopped before every test ran (time limit of the whole submission)".into()
                    },
                    duration_ms: started.elapsed().as_millis() as u64,
                    complete: report.complete,
                };
                let result = GradeResult {
                    score: got * (1.0 - penalty),
                    max_score: max,
                    summary: serde_json::to_string(&summary).unwrap_or_default(),
                    results,
                    at_ms: now_ms(),
                };
                self.store.finish_submission(sub.id, owner, &result).await
            }
            Err(e) => {
                tracing::warn!(error = %e, id = sub.id, "grading: platform failure, given back to the queue");
                let summary = Summary {
                    message: format!("Campus could not grade this submission ({e}); it is tried again and does not cost an attempt"),
                    ..Summary::default()
                };
                self.store
                    .requeue_submission(
                        sub.id,
                        owner,
                        self.config.max_retries,
                        &serde_json::to_string(&summary).unwrap_or_default(),
                    )
                    .await
            }
        };
        match stored {
            Ok(true) => self
                .config
                .metrics
                .grading_done(platform_ok, started.elapsed()),
            // Someone else holds it now (a re-grade): their result counts.
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, id = sub.id, "grading: result not stored; the lease will run out and it is graded again");
                return;
            }
        }
        self.books.remove(&a.id);
        self.positions_dirty.store(true, Ordering::Relaxed);
        if let Ok((s, rows)) = self.store.submission(sub.id).await {
            let info = self
                .submission_info(&s, &rows, &slug, &folder, &config, false, true)
                .await;
            self.tell(
                sub.user_id,
                GradingMsg::Submission {
                    id: None,
                    submission: Box::new(info),
                },
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_grading(
        &self,
        sub: &Submission,
        a: &Assignment,
        config: &AssignmentConfig,
        slug: &str,
        folder: &str,
        work: &std::path::Path,
        owner: &str,
        token: &CancellationToken,
    ) -> Result<GradeReport, super::GradeError> {
        let platform = |m: String| super::GradeError::Harness(m);
        let files = self
            .store
            .assignment_files(a.id)
            .await
            .map_err(|e| platform(format!("test files: {e}")))?;
        let tests_dir = work.join("tests");
        let f = files.clone();
        let td = tests_dir.clone();
        tokio::task::spawn_blocking(move || write_tests(&td, &f))
            .await
            .map_err(|e| platform(e.to_string()))?
            .map_err(|e| platform(format!("test files: {e}")))?;
        let home = self.config.root.join("snapshots").join(&sub.files_hash);
        if !home.is_dir() {
            return Err(platform("the submission's snapshot is missing".into()));
        }
        // What the student's code saw during a test hidden from them must
        // not reach a later visible test's message: a fresh process after each.
        let now = now_ms();
        let hidden: Vec<String> = config
            .tests
            .iter()
            .filter(|t| effective(t.visibility, config, now) != TestVisibility::Visible)
            .map(|t| t.name.clone())
            .collect();
        let spec = self.spec(
            format!("sub-{}", sub.id),
            sub.user_id,
            home,
            tests_dir,
            config,
            Vec::new(),
            hidden,
            files.len(),
        );
        let (tx, mut rx) = mpsc::channel(64);
        let forward = async {
            let mut secret = 0;
            while let Some(ev) = rx.recv().await {
                let (name, result) = match ev {
                    GradeEvent::Started(name) => (name, None),
                    GradeEvent::Finished(t) => {
                        let (points, vis, _) = setting_for(config, &t.name);
                        let row = ResultRow {
                            name: t.name.clone(),
                            outcome: t.outcome.as_str().into(),
                            points: if t.outcome == Outcome::Passed {
                                points
                            } else {
                                0.0
                            },
                            max_points: points,
                            visibility: vis_name(vis).into(),
                            message: t.message.clone(),
                            duration_ms: t.duration_ms as i64,
                        };
                        let shown = shown(&row, &mut secret, false, config, now);
                        (shown.name.clone(), Some(shown))
                    }
                    GradeEvent::Collected(_) => continue,
                };
                // A hidden test's start says nothing: its name comes with its result.
                if result.is_none() {
                    let (_, vis, secret) = setting_for(config, &name);
                    if effective(vis, config, now) != TestVisibility::Visible && secret {
                        continue;
                    }
                }
                self.tell(
                    sub.user_id,
                    GradingMsg::TestProgress {
                        submission: Some(sub.id),
                        check: None,
                        course: slug.to_string(),
                        folder: folder.to_string(),
                        name,
                        result: result.map(Box::new),
                    },
                );
            }
        };
        let renew = async {
            let every = self.config.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let until = now_ms() + self.config.lease.as_millis() as i64;
                match self.store.renew_lease(sub.id, owner, until).await {
                    Ok(true) => {}
                    // Taken back (a re-grade): stop; its new holder grades it.
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, id = sub.id, "grading: lease not renewed"),
                }
            }
        };
        let grading = self.grader.grade(&spec, Some(tx));
        tokio::pin!(grading);
        tokio::pin!(renew);
        let mut forward = std::pin::pin!(forward);
        let mut forwarding = true;
        loop {
            tokio::select! {
                r = &mut grading => {
                    // Let the last events out.
                    if forwarding {
                        let _ = tokio::time::timeout(Duration::from_secs(1), &mut forward).await;
                    }
                    return r;
                }
                _ = &mut forward, if forwarding => forwarding = false,
                _ = &mut renew => {
                    return Err(platform("the submission was taken back (re-grade)".into()));
                }
                _ = token.cancelled() => {
                    return Err(super::GradeError::Exec(crate::execution::ExecError::ShuttingDown));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spec(
        &self,
        id: String,
        user_id: i64,
        home: PathBuf,
        tests_dir: PathBuf,
        config: &AssignmentConfig,
        skip: Vec<String>,
        fresh_after: Vec<String>,
        files: usize,
    ) -> GradeSpec {
        let per_test = Duration::from_millis(config.test_timeout_ms);
        // The whole submission: every test at its limit, bounded.
        let wall = (per_test * (files.max(1) as u32 * 20)).min(Duration::from_secs(600));
        GradeSpec {
            id,
            user_id,
            student_modules: super::student_modules(&home),
            student_home: home,
            tests_dir,
            skip,
            fresh_after,
            test_timeout: per_test,
            student_limits: SandboxLimits {
                memory_bytes: config.memory_mib << 20,
                cpu_secs: wall.as_secs().max(1),
                ..SandboxLimits::default()
            },
            wall,
        }
    }

    async fn run_check(self: Arc<Self>, job: CheckJob) {
        let work = self.config.root.join("work").join(format!(
            "check-{}-{}",
            job.user_id,
            uuid::Uuid::new_v4().simple()
        ));
        let tests_dir = work.join("tests");
        let files = job.files.clone();
        let td = tests_dir.clone();
        let wrote = tokio::task::spawn_blocking(move || write_tests(&td, &files)).await;
        let n = job.files.len();
        let mut spec = self.spec(
            format!("check-{}", uuid::Uuid::new_v4().simple()),
            job.user_id,
            job.home.clone(),
            tests_dir,
            &job.config,
            job.skip.clone(),
            Vec::new(),
            n,
        );
        // A check holds two batch slots the queue also needs: two minutes at most.
        spec.wall = spec.wall.min(CHECK_WALL);
        let (tx, mut rx) = mpsc::channel(64);
        let now = now_ms();
        let (course, folder) = (job.course.clone(), job.folder.clone());
        let forward = async {
            while let Some(ev) = rx.recv().await {
                let (name, result) = match ev {
                    GradeEvent::Started(name) => (name, None),
                    GradeEvent::Finished(t) => {
                        let (points, _, _) = setting_for(&job.config, &t.name);
                        let r = TestResultInfo {
                            name: t.name.clone(),
                            outcome: t.outcome.as_str().into(),
                            points: if t.outcome == Outcome::Passed {
                                points
                            } else {
                                0.0
                            },
                            max_points: points,
                            visibility: TestVisibility::Visible,
                            message: (!t.message.is_empty()).then(|| t.message.clone()),
                            duration_ms: t.duration_ms,
                        };
                        (t.name, Some(r))
                    }
                    GradeEvent::Collected(_) => continue,
                };
                self.tell(
                    job.user_id,
                    GradingMsg::TestProgress {
                        submission: None,
                        check: job.check,
                        course: course.clone(),
                        folder: folder.clone(),
                        name,
                        result: result.map(Box::new),
                    },
                );
            }
        };
        let result = match wrote {
            Ok(Ok(())) => {
                let (r, ()) = tokio::join!(self.grader.grade(&spec, Some(tx)), forward);
                r
            }
            _ => Err(super::GradeError::Harness(
                "test files could not be written".into(),
            )),
        };
        let copy = job.home.parent().map(std::path::Path::to_path_buf);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(work);
            if let Some(c) = copy {
                let _ = std::fs::remove_dir_all(c);
            }
        })
        .await;
        self.checks.remove(&job.user_id);
        let done = match result {
            Ok(report) => {
                let (rows, got, max) = score(&report, &job.config);
                let tests = rows
                    .iter()
                    .map(|r| shown(r, &mut 0, true, &job.config, now))
                    .collect();
                GradingMsg::CheckDone {
                    check: job.check,
                    course: job.course,
                    folder: job.folder,
                    tests,
                    message: (!report.complete)
                        .then(|| "the check stopped before every test ran".to_string()),
                    output: cut(&report.student_output, OUTPUT_KEEP),
                    score: got,
                    max_score: max,
                }
            }
            Err(e) => GradingMsg::CheckDone {
                check: job.check,
                course: job.course,
                folder: job.folder,
                tests: Vec::new(),
                message: Some(format!("the check could not run: {e}")),
                output: String::new(),
                score: 0.0,
                max_score: 0.0,
            },
        };
        self.tell(job.user_id, done);
    }

    /// Push queue positions that changed (one query per tick, only when the
    /// queue moved).
    async fn push_positions(self: Arc<Self>, token: CancellationToken) {
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(POSITION_TICK) => {}
            }
            if !self.positions_dirty.swap(false, Ordering::Relaxed) {
                continue;
            }
            let Ok(queued) = self.store.queued_ids().await else {
                self.positions_dirty.store(true, Ordering::Relaxed);
                continue;
            };
            let live: std::collections::HashSet<i64> = queued.iter().map(|(id, _)| *id).collect();
            self.positions.retain(|id, _| live.contains(id));
            for (i, (id, user_id)) in queued.iter().enumerate() {
                let pos = i as u32 + 1;
                if self.positions.insert(*id, pos) == Some(pos) {
                    continue;
                }
                let Ok((s, _)) = self.store.submission(*id).await else {
                    continue;
                };
                let Ok(a) = self.store.assignment(s.assignment_id).await else {
                    continue;
                };
                let (slug, folder) = self
                    .courses
                    .section_names(a.section_id)
                    .await
                    .unwrap_or_default();
                let info = self
                    .submission_info(&s, &[], &slug, &folder, &parse_config(&a), false, false)
                    .await;
                self.tell(
                    *user_id,
                    GradingMsg::Submission {
                        id: None,
                        submission: Box::new(info),
                    },
                );
            }
        }
    }

    async fn gradebook(
        &self,
        course_id: i64,
        slug: &str,
        folder: &str,
        a: &Assignment,
    ) -> Result<ServerMsg, AppError> {
        if let Some(hit) = self.books.get(&a.id) {
            if hit.0.elapsed() < BOOK_CACHE {
                return Ok(hit.1.clone());
            }
        }
        let rows = self.store.gradebook(course_id, a.id).await?;
        let stats = self.store.test_stats(a.id).await?;
        let config = parse_config(a);
        // What the tests graded so far are worth under today's settings
        // (before any grading: the listed settings).
        let max_score: f64 = if stats.is_empty() {
            config.tests.iter().map(|t| t.points).sum()
        } else {
            stats.iter().map(|t| setting_for(&config, &t.name).0).sum()
        };
        let mut distribution = vec![0u32; 10];
        for r in &rows {
            if let (Some(b), true) = (r.best, max_score > 0.0) {
                let bin = ((b / max_score) * 10.0_f64).floor().clamp(0.0, 9.0) as usize;
                distribution[bin] += 1;
            }
        }
        let msg = ServerMsg::Grading(GradingMsg::Gradebook {
            id: None,
            course: slug.to_string(),
            folder: folder.to_string(),
            max_score,
            lines: rows
                .into_iter()
                .map(|r| GradebookLine {
                    student: r.username,
                    best: r.best,
                    attempts: r.attempts.max(0) as u32,
                    last_submission: r.last.map(|l| l.0),
                    last_at_ms: r.last.map(|l| l.1),
                    late: r.late,
                })
                .collect(),
            distribution,
            tests: stats
                .into_iter()
                .map(|t| TestStatInfo {
                    name: t.name,
                    runs: t.runs.max(0) as u32,
                    passed: t.passed.max(0) as u32,
                })
                .collect(),
        });
        self.books.insert(a.id, (Instant::now(), msg.clone()));
        Ok(msg)
    }
}

/// A CSV field (quoted when needed; a leading `=+-@` is neutralised so a
/// spreadsheet never runs it as a formula).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl GradingService {
    /// The gradebook as CSV (staff): one line per student.
    pub async fn grades_csv(
        &self,
        user: &UserInfo,
        slug: &str,
        folder: &str,
    ) -> Result<String, AppError> {
        let (c, section, _, _) = self
            .courses
            .assignment_section(user, slug, folder, CourseAction::ReadStudentWork)
            .await?;
        let a = self.assignment_of(section.id, folder).await?;
        let msg = self.gradebook(c.id, &c.slug, folder, &a).await?;
        let ServerMsg::Grading(GradingMsg::Gradebook {
            lines, max_score, ..
        }) = msg
        else {
            return Err(AppError::internal("gradebook"));
        };
        let mut out = String::from(
            "student,best_score,max_score,attempts,last_submission,last_submitted_at,late\n",
        );
        for l in lines {
            let at = l
                .last_at_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                csv_field(&l.student),
                l.best.map(|b| format!("{b}")).unwrap_or_default(),
                max_score,
                l.attempts,
                l.last_submission.map(|s| s.to_string()).unwrap_or_default(),
                at,
                l.late
            ));
        }
        self.courses
            .audit_grading(user, "grading.export_csv", &c.slug, folder.to_string());
        Ok(out)
    }

    /// One submission in Gradescope's `results.json` shape, as `user` may see it.
    pub async fn results_json(
        &self,
        user: &UserInfo,
        submission: i64,
    ) -> Result<serde_json::Value, AppError> {
        let missing = || AppError::new(ErrorCode::NotFound, "no such submission");
        let (sub, rows) = self
            .store
            .submission(submission)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => missing(),
                e => e.into(),
            })?;
        let a = self.store.assignment(sub.assignment_id).await?;
        let (course, section, staff) = self.courses.section_by_id(user, a.section_id).await?;
        if !staff && sub.user_id != user.id {
            return Err(missing());
        }
        let config = parse_config(&a);
        let info = self
            .submission_info(
                &sub,
                &rows,
                &course.slug,
                &section.folder,
                &config,
                staff,
                true,
            )
            .await;
        let summary: Summary = sub
            .summary
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let tests: Vec<serde_json::Value> = info
            .tests
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "score": t.points,
                    "max_score": t.max_points,
                    "status": if t.outcome == "passed" { "passed" } else { "failed" },
                    "output": t.message.clone().unwrap_or_default(),
                    "visibility": vis_name(t.visibility),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "score": info.score.unwrap_or(0.0),
            "execution_time": summary.duration_ms as f64 / 1000.0,
            "output": info.output.unwrap_or_default(),
            "tests": tests,
        }))
    }
}
