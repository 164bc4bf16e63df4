//! A grading survives its server's SIGKILL: the real `campus serve` binary
//! (default SQLite in its data dir) grades a submission whose first test
//! sleeps; while that test runs the server is killed with SIGKILL. Both
//! sandboxes of the grading (the harness under the grader's uid, the
//! student's code under the student's) must be gone within seconds, and the
//! server started again on the same data dir must grade the submission once:
//! one set of results, full marks, still attempt 1 of 1.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use campus_protocol::{GradingMsg, GradingRequest, ServerMsg, SubmissionState};
use campus_server::grading::pair::GRADER_USER_ID;
use campus_server::sandbox::student_uid;
use support::class::save;
use support::grading::{course_with_assignment, grading};
use support::process::*;
use tokio::time::Instant;

const PW: &str = "a-long-password-1";

/// The first test sleeps, so the kill lands while the grading runs.
const TESTS: &str = "from solution import add\n\n\
def test_slow_add():\n    import time\n    time.sleep(4)\n    assert add(2, 3) == 5\n\n\
def test_zero():\n    assert add(-1, 1) == 0\n";

const SOLUTION: &str = "def add(a, b):\n    return a + b\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grading_killed_with_its_server_is_graded_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let group = format!("campus-gcrash-{}", std::process::id());
    let _cleanup = GroupCleanup(group.clone());
    // Apart from the other tests' ranges (crash.rs uses 400 000 + …).
    let base = 600_000 + (std::process::id() % 5_000) * 16;
    add_user(
        &mut campus(dir.path(), &group, base),
        "prof",
        PW,
        "professor",
    );
    let ann = add_student(&mut campus(dir.path(), &group, base), "ann", PW);
    let ann_uid = student_uid(base, ann).unwrap();
    let grader_uid = student_uid(base, GRADER_USER_ID).unwrap();
    let port = free_port();
    let serve = || {
        Server(
            campus(dir.path(), &group, base)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };

    let mut server = serve();
    wait_listening(port).await;
    let mut prof = connect(port, &login(port, "prof", PW).await).await;
    course_with_assignment(&mut prof, &["ann"], TESTS).await;
    let m = grading(&mut prof, |id| GradingRequest::AssignmentSave {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
        config: campus_protocol::AssignmentConfig {
            max_attempts: Some(1),
            ..Default::default()
        },
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Grading(GradingMsg::Assignment { .. })),
        "{m:?}"
    );
    let mut c = connect(port, &login(port, "ann", PW).await).await;
    save(&mut c, "hw1/solution.py", SOLUTION, None).await;
    let m = grading(&mut c, |id| GradingRequest::Submit {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Submission { submission, .. }) = m else {
        panic!("{m:?}")
    };
    let sid = submission.id;
    // The slow test has started: both sandboxes are up.
    c.wait_for("the slow test starting", |m| {
        matches!(m, ServerMsg::Grading(GradingMsg::TestProgress { submission: Some(s), name, result: None, .. })
            if *s == sid && name.contains("test_slow_add"))
    })
    .await;
    // Both sides up (the student's may still be setting its sandbox up as
    // root when the harness reports the test).
    let up_by = Instant::now() + Duration::from_secs(10);
    while processes_of(grader_uid).is_empty() || processes_of(ann_uid).is_empty() {
        assert!(
            Instant::now() < up_by,
            "the harness runs as {grader_uid} ({:?}), the student's code as {ann_uid} ({:?})",
            processes_of(grader_uid),
            processes_of(ann_uid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Still being graded when the server dies (the slow test sleeps 4 s).
    let m = grading(&mut c, |id| GradingRequest::SubmissionGet {
        id,
        submission: sid,
    })
    .await;
    assert!(
        matches!(&m, ServerMsg::Grading(GradingMsg::Submission { submission, .. }) if submission.state == SubmissionState::Running),
        "{m:?}"
    );
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop((c, prof));
    assert_all_gone(grader_uid, "the grading's harness").await;
    assert_all_gone(ann_uid, "the grading's student side").await;

    // Started again on the same data dir: graded once.
    let _server = serve();
    wait_listening(port).await;
    let mut c = connect(port, &login(port, "ann", PW).await).await;
    // The new server grades it again (its tests run again, pushed live).
    c.wait_for("the submission graded again", |m| {
        matches!(m, ServerMsg::Grading(GradingMsg::TestProgress { submission: Some(s), .. }) if *s == sid)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let graded = loop {
        let m = grading(&mut c, |id| GradingRequest::SubmissionGet {
            id,
            submission: sid,
        })
        .await;
        let ServerMsg::Grading(GradingMsg::Submission { submission, .. }) = m else {
            panic!("{m:?}")
        };
        if submission.state == SubmissionState::Graded {
            break submission;
        }
        assert_ne!(submission.state, SubmissionState::Failed, "{submission:?}");
        assert!(
            Instant::now() < deadline,
            "not graded after the restart: {submission:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        (graded.score, graded.max_score, graded.attempt),
        (Some(2.0), Some(2.0), 1),
        "{graded:?}"
    );
    assert_eq!(graded.tests.len(), 2, "{graded:?}");
    assert!(
        graded.tests.iter().all(|t| t.outcome == "passed"),
        "{graded:?}"
    );
    let m = grading(&mut c, |id| GradingRequest::AssignmentGet {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Assignment { assignment, .. }) = m else {
        panic!("{m:?}")
    };
    assert_eq!(
        (assignment.submissions.len(), assignment.attempts_used),
        (1, 1),
        "one submission, one attempt: {assignment:?}"
    );
}
