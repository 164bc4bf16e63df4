//! The grading aggregate: assignments (a section with tests), their test
//! files, submissions — each one its own durable grading job, claimed with a
//! lease and finished only by the lease's holder — and their per-test
//! results. Gradebook and statistics are one aggregation query each.

use async_trait::async_trait;

use super::StoreResult;

/// An assignment row.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Primary key.
    pub id: i64,
    /// Its section.
    pub section_id: i64,
    /// Its settings, JSON (validated by [`crate::grading`]).
    pub config: String,
    /// Last change, ms since the epoch.
    pub updated_at_ms: i64,
}

/// A submission's grading state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionStatus {
    /// Waiting for a grader.
    Queued,
    /// A grader holds it (see the lease).
    Running,
    /// Done: score and results are final (until a re-grade).
    Graded,
    /// The platform could not grade it (never counts as an attempt).
    Failed,
}

impl SubmissionStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Queued => "queued",
            SubmissionStatus::Running => "running",
            SubmissionStatus::Graded => "graded",
            SubmissionStatus::Failed => "failed",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> StoreResult<SubmissionStatus> {
        Ok(match s {
            "queued" => SubmissionStatus::Queued,
            "running" => SubmissionStatus::Running,
            "graded" => SubmissionStatus::Graded,
            "failed" => SubmissionStatus::Failed,
            other => {
                return Err(super::StoreError::Corrupt(format!(
                    "submission status {other:?}"
                )))
            }
        })
    }
}

/// A submission row.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Primary key.
    pub id: i64,
    /// Its assignment.
    pub assignment_id: i64,
    /// Its student.
    pub user_id: i64,
    /// 1, 2, … per student and assignment.
    pub attempt: i64,
    /// When it was accepted, ms since the epoch.
    pub created_at_ms: i64,
    /// SHA-256 of the snapshot (see [`crate::grading::snapshot`]).
    pub files_hash: String,
    /// Submitted after the due date.
    pub late: bool,
    /// Where it is.
    pub status: SubmissionStatus,
    /// Points after any late penalty (graded only).
    pub score: Option<f64>,
    /// Points possible.
    pub max_score: Option<f64>,
    /// The grading's summary, JSON (output, ending, counts).
    pub summary: Option<String>,
    /// Platform failures so far (retried).
    pub platform_retries: i64,
    /// When it was graded.
    pub graded_at_ms: Option<i64>,
}

/// One test's stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// Node id.
    pub name: String,
    /// `passed`, `failed`, `error`, `timeout`, `skipped`, `not_run`.
    pub outcome: String,
    /// Points earned.
    pub points: f64,
    /// Points possible.
    pub max_points: f64,
    /// `visible`, `hidden`, `after_due_date`.
    pub visibility: String,
    /// The failure's message.
    pub message: String,
    /// Duration, ms.
    pub duration_ms: i64,
}

/// What a new submission must satisfy, checked in its own transaction.
#[derive(Debug, Clone)]
pub struct SubmitRules {
    /// Most attempts (failed ones not counted); None: unlimited.
    pub max_attempts: Option<i64>,
    /// Most submissions per student and assignment since `day_start_ms`.
    pub per_day: Option<i64>,
    /// Start of the current day, ms.
    pub day_start_ms: i64,
    /// Most submissions queued on the whole server.
    pub queue_max: i64,
}

/// Why a submission was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitRefused {
    /// This student already has a submission queued or running.
    InFlight,
    /// The attempt limit is reached.
    NoAttemptsLeft,
    /// The per-day limit is reached.
    DailyLimit,
    /// Too many submissions queued.
    QueueFull,
}

/// A fresh submission.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    /// Its assignment.
    pub assignment_id: i64,
    /// Its student.
    pub user_id: i64,
    /// When, ms.
    pub at_ms: i64,
    /// Snapshot hash.
    pub files_hash: String,
    /// After the due date.
    pub late: bool,
}

/// The outcome of a grading, to store.
#[derive(Debug, Clone)]
pub struct GradeResult {
    /// Points after penalty.
    pub score: f64,
    /// Points possible.
    pub max_score: f64,
    /// Summary JSON.
    pub summary: String,
    /// Per test, in order.
    pub results: Vec<ResultRow>,
    /// When, ms.
    pub at_ms: i64,
}

/// One student's line of the gradebook.
#[derive(Debug, Clone, PartialEq)]
pub struct GradebookRow {
    /// The student.
    pub user_id: i64,
    /// Their username.
    pub username: String,
    /// Best score (a submission being re-graded keeps its last one).
    pub best: Option<f64>,
    /// Attempts (failed ones not counted).
    pub attempts: i64,
    /// Their last submission's id and time.
    pub last: Option<(i64, i64)>,
    /// Any submission was late.
    pub late: bool,
}

/// One assignment of a course with one student's standing in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressRow {
    /// The assignment's section.
    pub section_id: i64,
    /// Its settings, JSON.
    pub config: String,
    /// The student's best score.
    pub best: Option<f64>,
    /// Their attempts (failed ones not counted).
    pub attempts: i64,
    /// Their last submission: id, status, time.
    pub last: Option<(i64, SubmissionStatus, i64)>,
    /// Points possible: of their last graded submission, else of the
    /// assignment's last graded one (anyone's); None before any grading.
    pub max_score: Option<f64>,
    /// Any submission was late.
    pub late: bool,
}

/// One test's pass rate over an assignment's graded submissions.
#[derive(Debug, Clone, PartialEq)]
pub struct TestStat {
    /// Node id.
    pub name: String,
    /// Results.
    pub runs: i64,
    /// Passed.
    pub passed: i64,
}

/// Grading storage.
#[async_trait]
pub trait Grading: Send + Sync {
    /// The assignment of a section, if it has one.
    async fn assignment_of_section(&self, section_id: i64) -> StoreResult<Option<Assignment>>;
    /// The assignment with this id.
    async fn assignment(&self, id: i64) -> StoreResult<Assignment>;
    /// Create or change a section's assignment settings.
    async fn set_assignment(
        &self,
        section_id: i64,
        config: &str,
        at_ms: i64,
    ) -> StoreResult<Assignment>;
    /// An assignment's test files, by name.
    async fn assignment_files(&self, assignment_id: i64) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Add or replace one test file.
    async fn put_assignment_file(
        &self,
        assignment_id: i64,
        name: &str,
        content: &[u8],
    ) -> StoreResult<()>;
    /// Remove one test file.
    async fn delete_assignment_file(&self, assignment_id: i64, name: &str) -> StoreResult<()>;

    /// Accept a submission if `rules` allow it, in one transaction (two at
    /// once cannot both take the last attempt: the attempt number is unique).
    async fn create_submission(
        &self,
        new: &NewSubmission,
        rules: &SubmitRules,
    ) -> StoreResult<Result<Submission, SubmitRefused>>;
    /// Claim the oldest queued submission (or one whose lease expired) for
    /// `owner` until `lease_until_ms`.
    async fn claim_submission(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<Option<Submission>>;
    /// Extend `owner`'s lease; false if it is no longer theirs.
    async fn renew_lease(&self, id: i64, owner: &str, lease_until_ms: i64) -> StoreResult<bool>;
    /// Store the grade, if `owner` still holds the lease (false: someone
    /// else has it now, e.g. a re-grade; nothing is written).
    async fn finish_submission(
        &self,
        id: i64,
        owner: &str,
        result: &GradeResult,
    ) -> StoreResult<bool>;
    /// Give a submission back to the queue after a platform failure; after
    /// `max_retries`, `failed` — or, if it was graded before (a re-grade),
    /// `graded` again with its old result: a re-grade never loses a grade.
    async fn requeue_submission(
        &self,
        id: i64,
        owner: &str,
        max_retries: i64,
        summary: &str,
    ) -> StoreResult<bool>;
    /// Put every running submission back in the queue (a single-replica
    /// server starting: nobody else can hold them).
    async fn requeue_running(&self) -> StoreResult<u64>;
    /// Queue every submission of an assignment again (idempotent: queued
    /// ones stay as they are; a running one loses its lease). Scores stay
    /// until replaced, so the gradebook keeps them meanwhile.
    async fn regrade_assignment(&self, assignment_id: i64) -> StoreResult<u64>;

    /// One submission and its results.
    async fn submission(&self, id: i64) -> StoreResult<(Submission, Vec<ResultRow>)>;
    /// A student's submissions of an assignment, newest first.
    async fn submissions_of(
        &self,
        assignment_id: i64,
        user_id: i64,
    ) -> StoreResult<Vec<Submission>>;
    /// Queued submissions' ids, oldest first (queue positions).
    async fn queued_ids(&self) -> StoreResult<Vec<(i64, i64)>>;
    /// Every student of `course_id` with their standing on the assignment (one query).
    async fn gradebook(&self, course_id: i64, assignment_id: i64)
        -> StoreResult<Vec<GradebookRow>>;
    /// Per-test pass rates over the assignment's graded submissions (one query).
    async fn test_stats(&self, assignment_id: i64) -> StoreResult<Vec<TestStat>>;
    /// Every assignment of a course with `user_id`'s standing: one query.
    async fn progress(&self, course_id: i64, user_id: i64) -> StoreResult<Vec<ProgressRow>>;
}
