//! A professor's course with one published assignment, set up over the
//! WebSocket the way the course page does it, for the grading tests.
#![allow(clippy::unwrap_used)]

use campus_protocol::{ClientMsg, ConnectionMsg, CourseMsg, CourseRequest};
use campus_protocol::{GradingMsg, GradingRequest, ServerMsg};

use super::server::WsClient;

/// A grading request with a fresh id; its reply.
pub async fn grading(
    c: &mut WsClient,
    build: impl FnOnce(Option<u64>) -> GradingRequest,
) -> ServerMsg {
    c.request(|id| ClientMsg::Grading(build(id))).await
}

/// A course request with a fresh id; its reply.
pub async fn course(
    c: &mut WsClient,
    build: impl FnOnce(Option<u64>) -> CourseRequest,
) -> ServerMsg {
    c.request(|id| ClientMsg::Courses(build(id))).await
}

fn refused(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Connection(ConnectionMsg::Error { .. }))
}

/// Course `cs101` with `students` enrolled and the published assignment
/// section `hw1` whose test file `test_solution.py` is `tests`.
pub async fn course_with_assignment(prof: &mut WsClient, students: &[&str], tests: &str) {
    let m = course(prof, |id| CourseRequest::CourseCreate {
        id,
        slug: "cs101".into(),
        title: "Intro".into(),
        term: String::new(),
    })
    .await;
    assert!(!refused(&m), "{m:?}");
    for s in students {
        let username = s.to_string();
        let m = course(prof, |id| CourseRequest::Enroll {
            id,
            course: "cs101".into(),
            username,
            role: None,
        })
        .await;
        assert!(!refused(&m), "{m:?}");
    }
    let m = course(prof, |id| CourseRequest::SectionSave {
        id,
        course: "cs101".into(),
        section: None,
        folder: "hw1".into(),
        title: "Homework 1".into(),
        kind: "assignment".into(),
        position: None,
        published: true,
        release_at_ms: None,
        close_at_ms: None,
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::Course { .. })),
        "{m:?}"
    );
    let m = grading(prof, |id| GradingRequest::TestFilePut {
        id,
        course: "cs101".into(),
        folder: "hw1".into(),
        name: "test_solution.py".into(),
        content: tests.into(),
    })
    .await;
    let ServerMsg::Grading(GradingMsg::Assignment { assignment, .. }) = m else {
        panic!("{m:?}")
    };
    assert_eq!(assignment.test_files, vec!["test_solution.py"]);
}
