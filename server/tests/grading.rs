//! Assignments and grading end to end over the real WebSocket, on SQLite and
//! PostgreSQL, with the real sandbox: a professor attaches tests (visible,
//! hidden with a secret name, after the due date) with points, limits and a
//! late policy; a student checks the public tests live in their workspace,
//! submits (snapshot + hash, later edits change nothing) and watches it go
//! queued → running (test by test) → graded without polling; a correct
//! solution scores full, a partial one the right points, an infinite loop
//! times out one test and the rest are graded; nothing of a hidden test
//! reaches the student's socket; attempts are limited even for concurrent
//! submits; late is flagged and penalised or refused; the gradebook, the
//! statistics and a re-grade after fixing a test; a full queue says `busy`;
//! a server stopped mid-grading finishes the submission exactly once after
//! its restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use campus_protocol::{
    AssignmentConfig, AssignmentInfo, ClientMsg, ConnectionMsg, Encoding, ErrorCode, FileRequest,
    GradingMsg, GradingRequest, LatePolicy, Role, ServerMsg, SubmissionInfo, SubmissionState,
    TestSetting, TestVisibility,
};
use support::db::test_databases;
use support::grading::{course_with_assignment, grading};
use support::server::{TestServer, WsClient};

const PW: &str = "password-123";
/// In the hidden test only: must never reach a student.
const SECRET: &str = "hidden-expected-91f2";

const TESTS: &str = r#"
from solution import add, mul, fib

def test_add():
    assert add(2, 3) == 5

def test_mul():
    assert mul(3, 4) == 12

def test_fib():
    assert fib(10) == 55

def test_hidden_edge():
    # hidden-expected-91f2
    assert add(-1, 1) == 0, "hidden-expected-91f2"
"#;

const CORRECT: &str = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n";
const PARTIAL: &str = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a + b\n\ndef fib(n):\n    return 55\n";
const LOOPING: &str = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    while True:\n        pass\n\ndef fib(n):\n    return 55\n";

fn code(m: &ServerMsg) -> Option<ErrorCode> {
    match m {
        ServerMsg::Connection(ConnectionMsg::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

fn retry_after(m: &ServerMsg) -> Option<u64> {
    match m {
        ServerMsg::Connection(ConnectionMsg::Error { retry_after_ms, .. }) => *retry_after_ms,
        _ => None,
    }
}

/// Save a file, over whatever version is there.
async fn save(c: &mut WsClient, path: &str, content: &str) {
    let mut base = None;
    for _ in 0..2 {
        let (p, text, b) = (path.to_string(), content.to_string(), base.clone());
        let m = c
            .request(|id| {
                ClientMsg::Files(FileRequest::Write {
                    id,
                    path: p,
                    content: text,
                    encoding: Encoding::Utf8,
                    base_version: b,
                })
            })
            .await;
        match m {
            ServerMsg::Connection(ConnectionMsg::Error {
                code: ErrorCode::Conflict,
                current_version,
                ..
            }) => base = current_version,
            m => {
                assert!(code(&m).is_none(), "{m:?}");
                return;
            }
        }
    }
    panic!("{path} could not be saved");
}

fn config(
    due_at_ms: Option<i64>,
    late_policy: LatePolicy,
    max_attempts: Option<u32>,
) -> AssignmentConfig {
    AssignmentConfig {
        due_at_ms,
        late_policy,
        late_penalty_percent: 50.0,
        max_attempts,
        test_timeout_ms: 3000,
        tests: vec![
            TestSetting {
                name: "test_add".into(),
                points: 2.0,
                visibility: TestVisibility::Visible,
                secret_name: false,
            },
            TestSetting {
                name: "test_mul".into(),
                points: 3.0,
                visibility: TestVisibility::Visible,
                secret_name: false,
            },
            TestSetting {
                name: "test_fib".into(),
                points: 1.0,
                visibility: TestVisibility::AfterDueDate,
                secret_name: false,
            },
            TestSetting {
                name: "test_hidden_edge".into(),
                points: 4.0,
                visibility: TestVisibility::Hidden,
                secret_name: true,
            },
        ],
        ..AssignmentConfig::default()
    }
}

async fn set_config(prof: &mut WsClient, cfg: AssignmentConfig) -> AssignmentInfo {
    let m = grading(prof, |id| GradingRequest::AssignmentSave {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
        config: cfg,
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Assignment { assignment, .. }) = m else {
        panic!("{m:?}")
    };
    *assignment
}

/// Submit and follow it to the end; every message the student got on the
/// way is returned as the JSON it was (to search for leaks).
async fn submit_and_wait(c: &mut WsClient) -> (SubmissionInfo, Vec<String>) {
    let m = grading(c, |id| GradingRequest::Submit {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let first = serde_json::to_string(&m).unwrap();
    let ServerMsg::Grading(GradingMsg::Submission { submission, .. }) = m else {
        panic!("{m:?}")
    };
    assert_eq!(submission.state, SubmissionState::Queued);
    assert_eq!(submission.files_hash.len(), 64);
    let sid = submission.id;
    let mut frames = vec![first];
    let mut states = vec![SubmissionState::Queued];
    loop {
        let m = c
            .wait_for("submission update", |m| {
                matches!(m, ServerMsg::Grading(GradingMsg::Submission { id: None, submission }) if submission.id == sid)
                    || matches!(m, ServerMsg::Grading(GradingMsg::TestProgress { submission: Some(s), .. }) if *s == sid)
            })
            .await;
        frames.push(serde_json::to_string(&m).unwrap());
        if let ServerMsg::Grading(GradingMsg::Submission { submission, .. }) = m {
            states.push(submission.state);
            if matches!(
                submission.state,
                SubmissionState::Graded | SubmissionState::Failed
            ) {
                assert!(states.contains(&SubmissionState::Running), "{states:?}");
                return (*submission, frames);
            }
        }
    }
}

fn outcome(s: &SubmissionInfo, name: &str) -> (String, f64) {
    let t = s
        .tests
        .iter()
        .find(|t| t.name.ends_with(name))
        .unwrap_or_else(|| panic!("{name}: {:?}", s.tests));
    (t.outcome.clone(), t.points)
}

async fn setup(server: &TestServer, students: &[&str]) -> (WsClient, Vec<WsClient>) {
    server.add_user("prof", PW, Role::Professor).await;
    let mut prof = server.connect(&server.login("prof", PW).await).await;
    let mut tokens = Vec::new();
    for s in students {
        tokens.push(server.student(s).await.1);
    }
    course_with_assignment(&mut prof, students, TESTS).await;
    let mut clients = Vec::new();
    for token in &tokens {
        clients.push(server.connect(token).await);
    }
    (prof, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_are_checked_submitted_graded_and_regraded_on_both_databases() {
    for db in test_databases().await {
        story(&db.url).await;
    }
}

async fn story(url: &str) {
    let server = TestServer::start(url, |a| a.file_ops_per_min = 100_000).await;
    let (mut prof, mut cs) = setup(&server, &["ann", "bob", "carl", "dave"]).await;
    let [ann, bob, carl, dave] = &mut cs[..] else {
        unreachable!()
    };
    let due = campus_server::store::now_ms() + 3_600_000;
    let info = set_config(&mut prof, config(Some(due), LatePolicy::Accept, Some(3))).await;
    assert_eq!(info.max_score, 10.0);

    // A student sees the assignment, but not a secret hidden test's name.
    let m = grading(ann, |id| GradingRequest::AssignmentGet {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let text = serde_json::to_string(&m).unwrap();
    assert!(
        !text.contains("test_hidden_edge") && !text.contains(SECRET),
        "{text}"
    );
    let ServerMsg::Grading(GradingMsg::Assignment { assignment, .. }) = m else {
        panic!("{m:?}")
    };
    assert!(
        assignment.test_files.is_empty(),
        "students never see test files"
    );
    // Nor may a student read the test files or change the assignment.
    let m = grading(ann, |id| GradingRequest::TestFileGet {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
        name: "test_solution.py".into(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::Forbidden), "{m:?}");

    // Without the folder in the workspace, submit says what to do.
    let m = grading(ann, |id| GradingRequest::Submit {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::NotFound), "{m:?}");

    // Check: the visible tests only, live, on the workspace as it is.
    save(ann, "hw1/solution.py", PARTIAL).await;
    let m = grading(ann, |id| GradingRequest::Check {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::CheckStarted { id: check, .. }) = m else {
        panic!("{m:?}")
    };
    let done = ann
        .wait_for("check_done", |m| {
            matches!(m, ServerMsg::Grading(GradingMsg::CheckDone { check: c, .. }) if *c == check)
        })
        .await;
    let ServerMsg::Grading(GradingMsg::CheckDone {
        tests,
        score,
        max_score,
        ..
    }) = &done
    else {
        panic!("{done:?}")
    };
    let names: Vec<&str> = tests
        .iter()
        .map(|t| t.name.rsplit("::").next().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["test_add", "test_mul"],
        "only visible tests run in a check"
    );
    assert_eq!((*score, *max_score), (2.0, 5.0));
    let progress = ann
        .wait_for("check progress", |m| {
            matches!(m, ServerMsg::Grading(GradingMsg::TestProgress { check: c, result: Some(_), .. }) if *c == check)
        })
        .await;
    assert!(serde_json::to_string(&progress)
        .unwrap()
        .contains("test_add"));

    // Submit a correct solution: full marks, the hidden test passed but anonymous.
    save(ann, "hw1/solution.py", CORRECT).await;
    let (graded, frames) = submit_and_wait(ann).await;
    // Later edits change nothing of what was submitted.
    save(ann, "hw1/solution.py", PARTIAL).await;
    assert_eq!(graded.score, Some(10.0), "{graded:?}");
    assert_eq!(graded.max_score, Some(10.0));
    assert_eq!(graded.files, vec!["solution.py"]);
    assert!(!graded.late);
    let hidden = graded
        .tests
        .iter()
        .find(|t| t.visibility == TestVisibility::Hidden)
        .unwrap();
    assert_eq!(
        (hidden.name.as_str(), hidden.outcome.as_str(), hidden.points),
        ("Hidden test 1", "passed", 4.0)
    );
    assert!(hidden.message.is_none());
    let all = frames.join("\n");
    assert!(
        !all.contains(SECRET) && !all.contains("test_hidden_edge"),
        "{all}"
    );
    assert!(
        all.contains("\"test_progress\""),
        "results stream test by test: {all}"
    );

    // Partial: the right partial points; the hidden test's failure is only "failed".
    save(
        bob,
        "hw1/solution.py",
        PARTIAL
            .replace("a + b\n\ndef mul", "a - b if a < 0 else a + b\n\ndef mul")
            .as_str(),
    )
    .await;
    let (graded, frames) = submit_and_wait(bob).await;
    assert_eq!(outcome(&graded, "test_add"), ("passed".into(), 2.0));
    assert_eq!(outcome(&graded, "test_mul"), ("failed".into(), 0.0));
    assert_eq!(outcome(&graded, "test_fib"), ("passed".into(), 1.0));
    assert_eq!(outcome(&graded, "Hidden test 1"), ("failed".into(), 0.0));
    assert_eq!(graded.score, Some(3.0));
    let all = frames.join("\n");
    assert!(
        !all.contains(SECRET) && !all.contains("test_hidden_edge"),
        "{all}"
    );
    // A failed visible test says why.
    let mul = graded
        .tests
        .iter()
        .find(|t| t.name.ends_with("test_mul"))
        .unwrap();
    assert!(
        mul.message
            .as_deref()
            .unwrap_or("")
            .contains("mul(3, 4) == 12"),
        "{mul:?}"
    );

    // An infinite loop: that test times out, the others are graded.
    save(carl, "hw1/solution.py", LOOPING).await;
    let (graded, _) = submit_and_wait(carl).await;
    assert_eq!(outcome(&graded, "test_mul").0, "timeout");
    assert_eq!(outcome(&graded, "test_add"), ("passed".into(), 2.0));
    assert_eq!(outcome(&graded, "test_fib"), ("passed".into(), 1.0));
    assert_eq!(outcome(&graded, "Hidden test 1"), ("passed".into(), 4.0));
    assert_eq!(graded.score, Some(7.0));

    // Concurrent submits from five tabs: one is accepted, the rest refused.
    save(dave, "hw1/solution.py", CORRECT).await;
    let token = server.login("dave", PW).await;
    let mut tabs = Vec::new();
    for _ in 0..5 {
        tabs.push(server.connect(&token).await);
    }
    let replies = futures_util::future::join_all(tabs.iter_mut().map(|t| {
        grading(t, |id| GradingRequest::Submit {
            id,
            course: "cs101".into(),
            folder: "hw1".into(),
        })
    }))
    .await;
    let accepted = replies.iter().filter(|m| code(m).is_none()).count();
    assert_eq!(accepted, 1, "{replies:?}");
    for m in replies.iter().filter(|m| code(m).is_some()) {
        assert_eq!(code(m), Some(ErrorCode::RateLimited), "{m:?}");
        assert!(retry_after(m).is_some());
    }
    // Attempts: ann has used one of three.
    for _ in 0..2 {
        let (g, _) = submit_and_wait(ann).await;
        assert_eq!(g.state, SubmissionState::Graded);
    }
    let m = grading(ann, |id| GradingRequest::Submit {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::NoAttemptsLeft), "{m:?}");

    // Past the due date: late, flagged, half the points; after_due_date tests open.
    set_config(
        &mut prof,
        config(
            Some(campus_server::store::now_ms() - 1000),
            LatePolicy::Accept,
            Some(3),
        ),
    )
    .await;
    let (graded, _) = submit_and_wait(carl).await;
    assert!(graded.late);
    assert_eq!(graded.score, Some(3.5), "7 points, late: half");
    // Refused when the policy says so.
    set_config(
        &mut prof,
        config(
            Some(campus_server::store::now_ms() - 1000),
            LatePolicy::Refuse,
            Some(3),
        ),
    )
    .await;
    let m = grading(bob, |id| GradingRequest::Submit {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::PastDue), "{m:?}");

    // The professor's gradebook and statistics.
    let m = grading(&mut prof, |id| GradingRequest::GradebookGet {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Gradebook {
        lines,
        tests,
        distribution,
        max_score,
        ..
    }) = &m
    else {
        panic!("{m:?}")
    };
    assert_eq!(*max_score, 10.0);
    let best: Vec<(&str, Option<f64>, u32, bool)> = lines
        .iter()
        .map(|l| (l.student.as_str(), l.best, l.attempts, l.late))
        .collect();
    assert_eq!(
        best,
        vec![
            ("ann", Some(10.0), 3, false),
            ("bob", Some(3.0), 1, false),
            ("carl", Some(7.0), 2, true),
            ("dave", Some(10.0), 1, false),
        ]
    );
    assert_eq!(distribution.iter().sum::<u32>(), 4);
    assert_eq!(distribution[9], 2, "ann and dave at 100 %");
    let mul = tests.iter().find(|t| t.name.ends_with("test_mul")).unwrap();
    // ann 1 of 3 (her later attempts were the partial file), bob 0, carl 0 of 2, dave 1.
    assert_eq!((mul.runs, mul.passed), (7, 2), "{mul:?}");
    // The professor sees a submission whole: the hidden test by name, with its message.
    let sid = graded.id;
    let m = grading(&mut prof, |id| GradingRequest::SubmissionGet {
        id,
        submission: sid,
    })
    .await;
    let text = serde_json::to_string(&m).unwrap();
    assert!(
        text.contains("test_hidden_edge") && text.contains("carl"),
        "{text}"
    );
    // Another student cannot open it.
    let m = grading(ann, |id| GradingRequest::SubmissionGet {
        id,
        submission: sid,
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::NotFound));

    // Her progress page: the assignment with her best score and attempts.
    let m = grading(ann, |id| GradingRequest::ProgressGet {
        id,
        course: "cs101".into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Progress {
        assignments,
        total_best,
        total_max,
        ..
    }) = m
    else {
        panic!("{m:?}")
    };
    assert_eq!(assignments.len(), 1, "{assignments:?}");
    let line = &assignments[0];
    assert_eq!(
        (
            line.folder.as_str(),
            line.best_score,
            line.attempts_used,
            line.max_attempts,
            line.last_state,
            line.due_at_ms.is_some()
        ),
        (
            "hw1",
            Some(10.0),
            3,
            Some(3),
            Some(SubmissionState::Graded),
            true
        ),
        "{line:?}"
    );
    assert_eq!((total_best, total_max), (10.0, 10.0));
    // Counted for Prometheus: her three gradings, none waiting now.
    let text = server.state().metrics.render(server.state()).await;
    let graded = text
        .lines()
        .find_map(|l| l.strip_prefix("campus_gradings_total{result=\"graded\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(graded.is_some_and(|n| n >= 3.0), "{text}");
    assert!(
        text.contains("campus_grading_duration_seconds_count"),
        "{text}"
    );

    // Not a member: the course does not exist for her.
    let m = grading(ann, |id| GradingRequest::ProgressGet {
        id,
        course: "nope".into(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::NotFound));

    // Exports: the gradebook as CSV, a submission as Gradescope's results.json.
    let http = reqwest::Client::new();
    let prof_token = server.login("prof", PW).await;
    let csv = http
        .get(server.url("/api/courses/cs101/assignments/hw1/grades.csv"))
        .bearer_auth(&prof_token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("student,best_score,max_score,attempts,last_submission,last_submitted_at,late")
    );
    assert!(rows.next().unwrap().starts_with("ann,10,10,3,"), "{csv}");
    assert!(
        csv.contains("\ncarl,7,10,2,") && csv.lines().nth(3).unwrap().ends_with(",true"),
        "{csv}"
    );
    let ann_token = server.login("ann", PW).await;
    let refused = http
        .get(server.url("/api/courses/cs101/assignments/hw1/grades.csv"))
        .bearer_auth(&ann_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        403,
        "students cannot export the gradebook"
    );
    let carl_token = server.login("carl", PW).await;
    let url = server.url(&format!("/api/submissions/{sid}/results.json"));
    let as_prof: serde_json::Value = http
        .get(&url)
        .bearer_auth(&prof_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_prof["score"], 3.5);
    let tests = as_prof["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4);
    for field in [
        "name",
        "score",
        "max_score",
        "status",
        "output",
        "visibility",
    ] {
        assert!(tests[0].get(field).is_some(), "{field}: {as_prof}");
    }
    assert!(as_prof.get("execution_time").is_some() && as_prof.get("output").is_some());
    assert!(as_prof.to_string().contains("test_hidden_edge"));
    let as_carl = http
        .get(&url)
        .bearer_auth(&carl_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !as_carl.contains("test_hidden_edge") && !as_carl.contains(SECRET),
        "{as_carl}"
    );
    let as_ann = http.get(&url).bearer_auth(&ann_token).send().await.unwrap();
    assert_eq!(
        as_ann.status(),
        404,
        "another student's submission does not exist for her"
    );

    // Re-grade after fixing a test: everything queued once, students told.
    let fixed = TESTS.replace("assert mul(3, 4) == 12", "assert mul(3, 4) in (7, 12)");
    grading(&mut prof, |id| GradingRequest::TestFilePut {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
        name: "test_solution.py".into(),
        content: fixed,
    })
    .await;
    let m = grading(&mut prof, |id| GradingRequest::Regrade {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Regraded { queued, .. }) = m else {
        panic!("{m:?}")
    };
    assert!(queued >= 7, "{queued}");
    let regraded = bob
        .wait_for("bob's regrade", |m| {
            matches!(m, ServerMsg::Grading(GradingMsg::Submission { id: None, submission }) if submission.state == SubmissionState::Graded && submission.score == Some(6.0))
        })
        .await;
    assert!(matches!(regraded, ServerMsg::Grading(_)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_says_busy_and_a_restart_finishes_a_submission_exactly_once() {
    // Busy: no room in the queue.
    let db = support::db::sqlite();
    let server = TestServer::start(&db.url, |a| {
        a.file_ops_per_min = 100_000;
        a.grading_queue_max = 0;
    })
    .await;
    let (_prof, mut cs) = setup(&server, &["ann"]).await;
    let ann = &mut cs[0];
    save(ann, "hw1/solution.py", CORRECT).await;
    let m = grading(ann, |id| GradingRequest::Submit {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::Busy), "{m:?}");
    assert!(retry_after(&m).is_some());
    server.stop().await;

    // Stopped mid-grading, restarted: graded once, with one set of results.
    let db = support::db::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().to_path_buf();
    let server = TestServer::start_in(dir, &db.url, |a| a.file_ops_per_min = 100_000).await;
    let (mut prof, mut cs) = setup(&server, &["ann"]).await;
    let slow = TESTS.replace(
        "def test_add():\n",
        "def test_add():\n    import time; time.sleep(2)\n",
    );
    grading(&mut prof, |id| GradingRequest::TestFilePut {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
        name: "test_solution.py".into(),
        content: slow,
    })
    .await;
    let ann = &mut cs[0];
    save(ann, "hw1/solution.py", CORRECT).await;
    let m = grading(ann, |id| GradingRequest::Submit {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Submission { submission, .. }) = m else {
        panic!("{m:?}")
    };
    let sid = submission.id;
    ann.wait_for("running", |m| {
        matches!(m, ServerMsg::Grading(GradingMsg::Submission { submission, .. }) if submission.state == SubmissionState::Running)
    })
    .await;
    drop(cs);
    drop(prof);
    let mut server = server;
    assert_eq!(server.data_dir.path(), keep);
    if let Some(r) = server.running.take() {
        r.shutdown();
        r.wait().await.expect("clean shutdown");
    }
    let dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    drop(server);
    let server = TestServer::start_in(dir, &db.url, |a| a.file_ops_per_min = 100_000).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (s, rows) = campus_server::store::Grading::submission(server.store.as_ref(), sid)
            .await
            .unwrap();
        if s.status == campus_server::store::SubmissionStatus::Graded {
            // Four tests at the default point each, all passed.
            assert_eq!(s.score, Some(4.0));
            assert_eq!(rows.len(), 4, "one set of results");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not graded after the restart: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let book = campus_server::store::Grading::submissions_of(
        server.store.as_ref(),
        submission_assignment(&server, sid).await,
        submission_user(&server, sid).await,
    )
    .await
    .unwrap();
    assert_eq!(book.len(), 1, "one submission, graded once");
    server.stop().await;
}

async fn submission_assignment(server: &TestServer, sid: i64) -> i64 {
    campus_server::store::Grading::submission(server.store.as_ref(), sid)
        .await
        .unwrap()
        .0
        .assignment_id
}

async fn submission_user(server: &TestServer, sid: i64) -> i64 {
    campus_server::store::Grading::submission(server.store.as_ref(), sid)
        .await
        .unwrap()
        .0
        .user_id
}
