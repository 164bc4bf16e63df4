//! The grading domain: an assignment's settings and test files (staff), a
//! student's check (public tests, live, in their own IDE) and submission
//! (snapshotted, hashed, queued, graded test by test, live), the gradebook
//! with statistics, re-grading. An assignment is a course section: `course`
//! is the course's slug, `folder` the section's folder.

use serde::{Deserialize, Serialize};

/// Who sees a test's details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TestVisibility {
    /// Students see its name, result, points and message; `check` runs it.
    #[default]
    Visible,
    /// Students see only passed/failed and the points (and the name unless secret).
    Hidden,
    /// Hidden until the due date, visible after.
    AfterDueDate,
}

/// A test's settings (tests not listed get the default points, visible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct TestSetting {
    /// The test: its function (`test_add`), or a node id (`test_main.py::test_add`).
    pub name: String,
    /// Points it is worth.
    pub points: f64,
    /// Who sees its details.
    #[serde(default)]
    pub visibility: TestVisibility,
    /// While hidden, students see "Hidden test N" instead of its name.
    #[serde(default)]
    pub secret_name: bool,
}

/// What happens to a submission after the due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Accepted, flagged late, with the penalty.
    #[default]
    Accept,
    /// Refused (`past_due`).
    Refuse,
}

/// An assignment's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct AssignmentConfig {
    /// Due date, ms since the epoch (UTC); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_ms: Option<i64>,
    /// After the due date.
    #[serde(default)]
    pub late_policy: LatePolicy,
    /// Percent of the score taken off a late submission (0-100).
    #[serde(default)]
    pub late_penalty_percent: f64,
    /// Most graded attempts per student; absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Most submissions per student per day (UTC); absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
    /// Each test's time limit, ms.
    #[serde(default = "default_test_timeout_ms")]
    pub test_timeout_ms: u64,
    /// Memory of the student's code while graded, MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Points of a test not listed in `tests`.
    #[serde(default = "default_points")]
    pub default_points: f64,
    /// Per-test settings.
    #[serde(default)]
    pub tests: Vec<TestSetting>,
}

fn default_test_timeout_ms() -> u64 {
    10_000
}

fn default_memory_mib() -> u64 {
    128
}

fn default_points() -> f64 {
    1.0
}

impl Default for AssignmentConfig {
    fn default() -> Self {
        AssignmentConfig {
            due_at_ms: None,
            late_policy: LatePolicy::Accept,
            late_penalty_percent: 0.0,
            max_attempts: None,
            per_day: None,
            test_timeout_ms: default_test_timeout_ms(),
            memory_mib: default_memory_mib(),
            default_points: default_points(),
            tests: Vec::new(),
        }
    }
}

/// Where a submission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SubmissionState {
    /// Waiting for a grader (see `position`).
    Queued,
    /// Being graded (tests arrive as `test_progress`).
    Running,
    /// Graded.
    Graded,
    /// The platform could not grade it (not counted as an attempt).
    Failed,
}

/// One test's result as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct TestResultInfo {
    /// Its name (a hidden test with a secret name: "Hidden test N").
    pub name: String,
    /// `passed`, `failed`, `error`, `timeout`, `skipped` or `not_run`.
    pub outcome: String,
    /// Points earned.
    pub points: f64,
    /// Points possible.
    pub max_points: f64,
    /// Its visibility.
    pub visibility: TestVisibility,
    /// The failure's message (absent for a hidden test, for students).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long it ran, ms.
    pub duration_ms: u64,
}

/// A submission as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct SubmissionInfo {
    /// Its id.
    pub id: i64,
    /// Course slug.
    pub course: String,
    /// The assignment's folder.
    pub folder: String,
    /// Whose (staff views; absent in a student's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    /// 1, 2, …
    pub attempt: i64,
    /// When it was accepted, ms since the epoch.
    pub created_at_ms: i64,
    /// SHA-256 of the snapshot of the submitted files (hex).
    pub files_hash: String,
    /// The submitted files' paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Submitted after the due date.
    pub late: bool,
    /// Where it is.
    pub state: SubmissionState,
    /// Place in the grading queue (1 = next), while queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Points after any late penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Points possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<f64>,
    /// Per test, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestResultInfo>,
    /// What the student's code printed while graded (staff; students only
    /// when every test is visible to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why it failed or how it ended, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An assignment as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct AssignmentInfo {
    /// Course slug.
    pub course: String,
    /// The section's folder.
    pub folder: String,
    /// The section's title.
    pub title: String,
    /// Its settings (for students, hidden tests' secret names left out).
    pub config: AssignmentConfig,
    /// The test files' names (staff only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_files: Vec<String>,
    /// Points possible (of the tests graded last; or of the listed settings).
    pub max_score: f64,
    /// The viewer's own submissions, newest first (students).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submissions: Vec<SubmissionInfo>,
    /// The viewer's best score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_score: Option<f64>,
    /// Attempts used (failed ones not counted).
    pub attempts_used: u32,
    /// Server time when this was made, ms (for a countdown).
    pub now_ms: i64,
}

/// A line of the gradebook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct GradebookLine {
    /// The student.
    pub student: String,
    /// Best score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<f64>,
    /// Attempts.
    pub attempts: u32,
    /// Their last submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_submission: Option<i64>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at_ms: Option<i64>,
    /// Any submission late.
    pub late: bool,
}

/// One assignment on a student's progress page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct ProgressLine {
    /// The section's folder.
    pub folder: String,
    /// The section's title.
    pub title: String,
    /// Due date, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_ms: Option<i64>,
    /// Points possible (of the last graded submission; or of the settings).
    pub max_score: f64,
    /// Best score so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_score: Option<f64>,
    /// Attempts used (failed ones not counted).
    pub attempts_used: u32,
    /// Attempt limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The last submission's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<SubmissionState>,
    /// The last submission's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_submission: Option<i64>,
    /// When it was made, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at_ms: Option<i64>,
    /// Any submission was late.
    pub late: bool,
}

/// One test's pass rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TestStatInfo {
    /// Node id.
    pub name: String,
    /// Graded results.
    pub runs: u32,
    /// Passed.
    pub passed: u32,
}

/// A grading request (staff operations need the course's professor; TAs read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GradingRequest {
    /// The assignment of a section, with the caller's submissions.
    AssignmentGet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
    },
    /// Make a section an assignment, or change its settings (professors).
    AssignmentSave {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
        /// The settings.
        config: AssignmentConfig,
    },
    /// Add or replace a test file (professors; `test_*.py` or `*_test.py`, or a helper `.py`).
    TestFilePut {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
        /// File name (`test_basic.py`).
        name: String,
        /// Its text (≤ 256 KiB).
        content: String,
    },
    /// Remove a test file (professors).
    TestFileDelete {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
        /// File name.
        name: String,
    },
    /// Read a test file (staff).
    TestFileGet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
        /// File name.
        name: String,
    },
    /// Run the visible tests on the caller's workspace folder of the same
    /// name, now; results arrive as `test_progress`, then `check_done`.
    Check {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
    },
    /// Submit the caller's workspace folder named like the section (students).
    Submit {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
    },
    /// One submission (the student's own, or any for staff).
    SubmissionGet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Submission id.
        submission: i64,
    },
    /// Every student × best score, attempts, last submission, late; and statistics (staff).
    GradebookGet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
    },
    /// Grade every submission of the assignment again (professors; idempotent).
    Regrade {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
    },
    /// The caller's progress in a course: every assignment they can see,
    /// with their best score and attempts.
    ProgressGet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
    },
}

impl GradingRequest {
    /// The `type` of each grading request, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "assignment_get",
        "assignment_save",
        "test_file_put",
        "test_file_delete",
        "test_file_get",
        "check",
        "submit",
        "submission_get",
        "gradebook_get",
        "regrade",
        "progress_get",
    ];

    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            GradingRequest::AssignmentGet { id, .. }
            | GradingRequest::AssignmentSave { id, .. }
            | GradingRequest::TestFilePut { id, .. }
            | GradingRequest::TestFileDelete { id, .. }
            | GradingRequest::TestFileGet { id, .. }
            | GradingRequest::Check { id, .. }
            | GradingRequest::Submit { id, .. }
            | GradingRequest::SubmissionGet { id, .. }
            | GradingRequest::GradebookGet { id, .. }
            | GradingRequest::Regrade { id, .. }
            | GradingRequest::ProgressGet { id, .. } => *id,
        }
    }
}

/// A reply to a grading request, or a grading's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GradingMsg {
    /// Reply to `assignment_get`, `assignment_save`, `test_file_put`, `test_file_delete`.
    Assignment {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The assignment (boxed: a large payload in a small message enum).
        assignment: Box<AssignmentInfo>,
    },
    /// Reply to `test_file_get`.
    TestFile {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// File name.
        name: String,
        /// Its text.
        content: String,
    },
    /// Reply to `submit` and `submission_get`; and pushed, without `id`,
    /// whenever one of the user's submissions moves (queue position, running, graded).
    Submission {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The submission.
        submission: Box<SubmissionInfo>,
    },
    /// Reply to `check`: it started (its tests follow as `test_progress`,
    /// then `check_done`, all carrying the request's id as `check`).
    CheckStarted {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
    },
    /// A test of a check or a submission started or ended (pushed).
    TestProgress {
        /// The submission; absent for a check.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        submission: Option<i64>,
        /// The check's id (the `check` request's id); absent for a submission.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
        /// The test's name as the user may see it.
        name: String,
        /// The result, once it ended; absent when it starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Box<TestResultInfo>>,
    },
    /// A check ended (pushed, after its `test_progress`).
    CheckDone {
        /// The check's id (the `check` request's id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
        /// Per visible test.
        tests: Vec<TestResultInfo>,
        /// Why it could not finish, in plain words (absent when it did).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// What the code printed.
        output: String,
        /// Points of the visible tests passed.
        score: f64,
        /// Points of the visible tests.
        max_score: f64,
    },
    /// Reply to `gradebook_get`.
    Gradebook {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section folder.
        folder: String,
        /// Points possible.
        max_score: f64,
        /// Every student.
        lines: Vec<GradebookLine>,
        /// Best scores in ten bins of 10 % of the maximum (the last includes 100 %).
        distribution: Vec<u32>,
        /// Per-test pass rates.
        tests: Vec<TestStatInfo>,
    },
    /// Reply to `regrade`.
    Regraded {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Submissions queued again.
        queued: u32,
    },
    /// Reply to `progress_get`.
    Progress {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Course title.
        title: String,
        /// Per assignment, in the course's order.
        assignments: Vec<ProgressLine>,
        /// Sum of the best scores.
        total_best: f64,
        /// Sum of the points possible.
        total_max: f64,
    },
}

impl GradingMsg {
    /// The request id a reply echoes (pushed messages have none).
    pub fn id(&self) -> Option<u64> {
        match self {
            GradingMsg::Assignment { id, .. }
            | GradingMsg::TestFile { id, .. }
            | GradingMsg::Submission { id, .. }
            | GradingMsg::CheckStarted { id, .. }
            | GradingMsg::Gradebook { id, .. }
            | GradingMsg::Regraded { id, .. }
            | GradingMsg::Progress { id, .. } => *id,
            GradingMsg::TestProgress { .. } | GradingMsg::CheckDone { .. } => None,
        }
    }

    /// The `type` of each grading message, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "assignment",
        "test_file",
        "submission",
        "check_started",
        "test_progress",
        "check_done",
        "gradebook",
        "regraded",
        "progress",
    ];
}
