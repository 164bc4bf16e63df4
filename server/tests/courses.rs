//! Courses end to end over the real WebSocket, on SQLite and PostgreSQL,
//! with the real sandbox: a professor creates a course, imports a roster
//! (a bad line applies nothing), writes material, publishes it with a
//! release time; a student sees nothing before the release and is told
//! when it happens, reads and runs the material (read-only at the mount
//! level, another course's material absent), copies it (a clash gets a new
//! name); staff read a student's work and nothing more; exceptions,
//! unpublishing and unenrolling; every refusal an outsider gets says
//! `not_found`; 300 course opens cost no query.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use campus_protocol::{
    ClientMsg, ConnectionMsg, CourseInfo, CourseMsg, CourseRequest, CourseRole, Encoding,
    ErrorCode, FileMsg, FileRequest, Role, SectionState, ServerMsg, SessionMsg, SessionRequest,
};
use support::db::test_databases;
use support::server::{TestServer, WsClient};

async fn ask(c: &mut WsClient, build: impl FnOnce(Option<u64>) -> CourseRequest) -> ServerMsg {
    c.request(|id| ClientMsg::Courses(build(id))).await
}

fn code(m: &ServerMsg) -> Option<ErrorCode> {
    match m {
        ServerMsg::Connection(ConnectionMsg::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

async fn open(c: &mut WsClient, course: &str) -> Result<CourseInfo, ErrorCode> {
    let course = course.to_string();
    match ask(c, |id| CourseRequest::CourseOpen { id, course }).await {
        ServerMsg::Courses(CourseMsg::Course { course, .. }) => Ok(course),
        m => Err(code(&m).unwrap_or_else(|| panic!("{m:?}"))),
    }
}

fn folders(info: &CourseInfo) -> Vec<(&str, SectionState)> {
    info.sections
        .iter()
        .map(|s| (s.folder.as_str(), s.state))
        .collect()
}

async fn write(c: &mut WsClient, course: &str, path: &str, content: &str) -> ServerMsg {
    let (course, path, content) = (course.to_string(), path.to_string(), content.to_string());
    ask(c, |id| CourseRequest::CourseWrite {
        id,
        course,
        path,
        content,
        encoding: Encoding::Utf8,
        base_version: None,
    })
    .await
}

async fn read(c: &mut WsClient, course: &str, path: &str) -> Result<String, ErrorCode> {
    let (course, path) = (course.to_string(), path.to_string());
    match ask(c, |id| CourseRequest::CourseRead { id, course, path }).await {
        ServerMsg::Courses(CourseMsg::CourseFile { content, .. }) => Ok(content),
        m => Err(code(&m).unwrap_or_else(|| panic!("{m:?}"))),
    }
}

async fn list(c: &mut WsClient, course: &str, path: &str) -> Result<Vec<String>, ErrorCode> {
    let (course, path) = (course.to_string(), path.to_string());
    match ask(c, |id| CourseRequest::CourseListFiles { id, course, path }).await {
        ServerMsg::Courses(CourseMsg::CourseListing { entries, .. }) => {
            Ok(entries.into_iter().map(|e| e.path).collect())
        }
        m => Err(code(&m).unwrap_or_else(|| panic!("{m:?}"))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn save_section(
    c: &mut WsClient,
    course: &str,
    section: Option<i64>,
    folder: &str,
    published: bool,
    release_at_ms: Option<i64>,
) -> Result<CourseInfo, ErrorCode> {
    let (course, folder) = (course.to_string(), folder.to_string());
    match ask(c, |id| CourseRequest::SectionSave {
        id,
        course,
        section,
        title: format!("Section {folder}"),
        folder,
        kind: "notes".into(),
        position: None,
        published,
        release_at_ms,
        close_at_ms: None,
    })
    .await
    {
        ServerMsg::Courses(CourseMsg::Course { course, .. }) => Ok(course),
        m => Err(code(&m).unwrap_or_else(|| panic!("{m:?}"))),
    }
}

fn now_ms() -> i64 {
    campus_server::store::now_ms()
}

async fn changed(c: &mut WsClient, course: &str) {
    let want = course.to_string();
    c.wait_for("course_changed", move |m| {
        matches!(m, ServerMsg::Courses(CourseMsg::CourseChanged { course }) if *course == want)
    })
    .await;
}

/// What the professor's demo prints: the data it reads next to it, the
/// write the mount refuses, what is mounted, and where it runs.
const DEMO: &str = r#"import os, pathlib
here = pathlib.Path(__file__).parent
rows = (here / "data" / "grades.csv").read_text().split()
print("total", sum(int(r.split(",")[1]) for r in rows[1:]))
try:
    open(here / "hack.txt", "w")
    print("write allowed")
except OSError as e:
    print("write refused", e.errno)
print("mounted", sorted(os.listdir("/course/cs101")))
print("other course", os.path.exists("/course/ma201"))
print("cwd", os.getcwd())
"#;

async fn run_course_file(c: &mut WsClient, course: &str, path: &str) -> String {
    c.output.clear();
    c.send(&ClientMsg::Session(SessionRequest::Run {
        id: Some(900),
        path: path.into(),
        mode: campus_protocol::RunMode::Script,
        cols: Some(120),
        rows: Some(30),
        course: Some(course.into()),
    }))
    .await;
    let started = c
        .wait_for("run_started or error", |m| {
            matches!(m, ServerMsg::Session(SessionMsg::RunStarted { .. }))
                || code(m).is_some() && support::server::reply_id(m) == Some(900)
        })
        .await;
    if let Some(code) = code(&started) {
        return format!("refused: {code:?}");
    }
    c.wait_for("run_ended", |m| {
        matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
    })
    .await;
    String::from_utf8_lossy(&c.output_bytes()).replace("\r\n", "\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_from_roster_to_run_on_both_databases() {
    for db in test_databases().await {
        story(&db.url).await;
    }
}

async fn story(url: &str) {
    // 300 opens below: more than a minute's file operations of two students.
    let server = TestServer::start(url, |a| a.file_ops_per_min = 100_000).await;
    let pw = "password-123";
    server.add_user("prof", pw, Role::Professor).await;
    server.add_user("tina", pw, Role::Student).await;
    let (_, ann_t) = server.student("ann").await;
    let (_, bob_t) = server.student("bob").await;
    let (_, carl_t) = server.student("carl").await;
    server.add_user("olga", pw, Role::Professor).await;
    let mut prof = server.connect(&server.login("prof", pw).await).await;
    let mut olga = server.connect(&server.login("olga", pw).await).await;
    let mut ann = server.connect(&ann_t).await;
    let mut bob = server.connect(&bob_t).await;
    let mut carl = server.connect(&carl_t).await;

    // Students cannot create courses; professors can, and own them.
    let m = ask(&mut ann, |id| CourseRequest::CourseCreate {
        id,
        slug: "mine".into(),
        title: "Mine".into(),
        term: String::new(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::Forbidden));
    for (c, slug) in [(&mut prof, "cs101"), (&mut olga, "ma201")] {
        let m = ask(c, |id| CourseRequest::CourseCreate {
            id,
            slug: slug.into(),
            title: format!("Course {slug}"),
            term: "2026 Fall".into(),
        })
        .await;
        let ServerMsg::Courses(CourseMsg::Course { course, .. }) = m else {
            panic!("{m:?}")
        };
        assert_eq!(course.role, Some(CourseRole::Professor));
    }
    let m = ask(&mut prof, |id| CourseRequest::CourseCreate {
        id,
        slug: "cs101".into(),
        title: "Again".into(),
        term: String::new(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::Conflict), "slugs are unique");

    // A roster with bad lines applies nothing and says why, line by line.
    let m = ask(&mut prof, |id| CourseRequest::RosterImport {
        id,
        course: "cs101".into(),
        csv: "username,role\nann\nbob\ntina,ta\nbo b\nghost\nann\n".into(),
        create_accounts: false,
    })
    .await;
    let ServerMsg::Courses(CourseMsg::RosterResult { applied, lines, .. }) = m else {
        panic!("{m:?}")
    };
    assert!(!applied);
    let outcome: Vec<_> = lines
        .iter()
        .map(|l| (l.line, l.outcome.as_str(), l.error.is_some()))
        .collect();
    assert_eq!(
        outcome,
        [
            (2, "enroll", false),
            (3, "enroll", false),
            (4, "enroll", false),
            (5, "invalid", true),
            (6, "invalid", true),
            (7, "invalid", true),
        ]
    );
    assert_eq!(open(&mut ann, "cs101").await, Err(ErrorCode::NotFound));
    // Creating accounts is for administrators: a professor holding
    // students' passwords could work as them.
    let m = ask(&mut prof, |id| CourseRequest::RosterImport {
        id,
        course: "cs101".into(),
        csv: "ann\nnewkid\n".into(),
        create_accounts: true,
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::Forbidden));
    // Demoting the only professor is refused, line by line and one at a time.
    let m = ask(&mut prof, |id| CourseRequest::RosterImport {
        id,
        course: "cs101".into(),
        csv: "prof,student\n".into(),
        create_accounts: false,
    })
    .await;
    assert!(
        matches!(&m, ServerMsg::Courses(CourseMsg::RosterResult { applied: false, lines, .. }) if lines[0].error.as_deref() == Some("the course would have no professor left; keep one")),
        "{m:?}"
    );
    let m = ask(&mut prof, |id| CourseRequest::Enroll {
        id,
        course: "cs101".into(),
        username: "prof".into(),
        role: Some(CourseRole::Ta),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::Conflict));
    // Fixed, by an admin, with an account to create: all applied, the
    // initial password shown once.
    server.add_user("root", pw, Role::Admin).await;
    let mut root = server.connect(&server.login("root", pw).await).await;
    let m = ask(&mut root, |id| CourseRequest::RosterImport {
        id,
        course: "cs101".into(),
        csv: "ann\nbob\ntina,ta\nnewkid\n".into(),
        create_accounts: true,
    })
    .await;
    let ServerMsg::Courses(CourseMsg::RosterResult {
        applied, accounts, ..
    }) = m
    else {
        panic!("{m:?}")
    };
    assert!(applied);
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].username, "newkid");
    server.login("newkid", &accounts[0].password).await;
    let mut tina = server.connect(&server.login("tina", pw).await).await;

    // Material in a draft section: staff see it, students see nothing.
    save_section(&mut prof, "cs101", None, "week1", false, None)
        .await
        .unwrap();
    save_section(&mut prof, "cs101", None, "week2", false, None)
        .await
        .unwrap();
    let csv = "name,score\nann,120\nbob,126\n";
    for (path, content) in [
        ("week1/demo.py", DEMO),
        ("week1/data/grades.csv", csv),
        ("week2/answers.py", "print(42)\n"),
    ] {
        let m = write(&mut prof, "cs101", path, content).await;
        assert!(
            matches!(m, ServerMsg::Courses(CourseMsg::CourseWritten { .. })),
            "{m:?}"
        );
    }
    // Binary material streamed over HTTP by the professor.
    let http = reqwest::Client::new();
    let prof_t = server.login("prof", pw).await;
    let slides_url = server.url("/api/courses/cs101/files/week1/slides.pdf");
    let slides: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let put = http
        .put(&slides_url)
        .bearer_auth(&prof_t)
        .body(slides.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let get = |token: String| {
        let (http, url) = (http.clone(), slides_url.clone());
        async move { http.get(&url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(get(ann_t.clone()).await.status(), 404, "not released");
    assert_eq!(get(carl_t.clone()).await.status(), 404, "not enrolled");
    let info = open(&mut ann, "cs101").await.unwrap();
    assert!(info.sections.is_empty(), "drafts are not shown: {info:?}");
    assert_eq!(info.role, Some(CourseRole::Student));
    assert!(list(&mut ann, "cs101", "").await.unwrap().is_empty());
    assert_eq!(
        read(&mut ann, "cs101", "week1/demo.py").await,
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        list(&mut ann, "cs101", "week1").await,
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        read(&mut tina, "cs101", "week1/demo.py").await.unwrap(),
        DEMO
    );
    assert_eq!(
        folders(&open(&mut tina, "cs101").await.unwrap()),
        [
            ("week1", SectionState::Draft),
            ("week2", SectionState::Draft)
        ]
    );

    // A TA changes nothing; a student even less.
    let m = write(&mut tina, "cs101", "week1/x.py", "").await;
    assert_eq!(code(&m), Some(ErrorCode::Forbidden));
    let m = write(&mut ann, "cs101", "week1/x.py", "").await;
    assert_eq!(code(&m), Some(ErrorCode::Forbidden));
    assert_eq!(
        save_section(&mut tina, "cs101", None, "week3", true, None).await,
        Err(ErrorCode::Forbidden)
    );

    // Outsiders (a student and the professor of another course) are told
    // the course does not exist.
    for c in [&mut carl, &mut olga] {
        assert_eq!(open(c, "cs101").await, Err(ErrorCode::NotFound));
        assert_eq!(
            read(c, "cs101", "week1/demo.py").await,
            Err(ErrorCode::NotFound)
        );
        assert_eq!(
            run_course_file(c, "cs101", "week1/demo.py").await,
            "refused: NotFound"
        );
    }

    // Published with a release time just ahead: nothing yet, then it
    // appears, and the student is told when.
    let week1 = open(&mut prof, "cs101").await.unwrap().sections[0].id;
    // Forget what the roster and material changes announced so far.
    open(&mut ann, "cs101").await.unwrap();
    ann.pending.clear();
    let release = now_ms() + 2_000;
    let info = save_section(
        &mut prof,
        "cs101",
        Some(week1),
        "week1",
        true,
        Some(release),
    )
    .await
    .unwrap();
    assert_eq!(folders(&info)[0], ("week1", SectionState::Scheduled));
    changed(&mut ann, "cs101").await; // the save itself
    assert!(open(&mut ann, "cs101").await.unwrap().sections.is_empty());
    assert_eq!(
        read(&mut ann, "cs101", "week1/demo.py").await,
        Err(ErrorCode::NotFound)
    );
    changed(&mut ann, "cs101").await; // the release
    assert!(now_ms() >= release, "told at the release, not before");
    assert_eq!(
        folders(&open(&mut ann, "cs101").await.unwrap()),
        [("week1", SectionState::Open)]
    );
    let mut files = list(&mut ann, "cs101", "").await.unwrap();
    files.sort();
    assert_eq!(
        files,
        [
            "week1",
            "week1/data",
            "week1/data/grades.csv",
            "week1/demo.py",
            "week1/slides.pdf"
        ]
    );
    let got = get(ann_t.clone()).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), slides);
    let put = http
        .put(&slides_url)
        .bearer_auth(&ann_t)
        .body("mine now")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 403, "students never write material");
    assert_eq!(get(carl_t.clone()).await.status(), 404);
    assert_eq!(
        read(&mut ann, "cs101", "week1/demo.py").await.unwrap(),
        DEMO
    );
    assert_eq!(
        read(&mut ann, "cs101", "week2/answers.py").await,
        Err(ErrorCode::NotFound)
    );

    // The student runs the course script: it reads its data, cannot write
    // next to it (EROFS), sees only the released section and no other course.
    let out = run_course_file(&mut ann, "cs101", "week1/demo.py").await;
    assert!(out.contains("total 246"), "{out}");
    assert!(out.contains("write refused 30"), "EROFS: {out}");
    assert!(out.contains("mounted ['week1']"), "{out}");
    assert!(out.contains("other course False"), "{out}");
    assert!(out.contains("cwd /home/student"), "{out}");
    assert_eq!(
        run_course_file(&mut ann, "cs101", "week2/answers.py").await,
        "refused: NotFound"
    );
    // Staff run drafts, with the whole material mounted.
    let out = run_course_file(&mut tina, "cs101", "week1/demo.py").await;
    assert!(out.contains("mounted ['week1', 'week2']"), "{out}");

    // Copy a folder into the workspace, twice: the second gets a new name.
    for (want, renamed) in [("week1", false), ("week1 (2)", true)] {
        let m = ask(&mut ann, |id| CourseRequest::CourseCopy {
            id,
            course: "cs101".into(),
            path: "week1".into(),
            to: None,
        })
        .await;
        let ServerMsg::Courses(CourseMsg::CourseCopied { to, renamed: r, .. }) = m else {
            panic!("{m:?}")
        };
        assert_eq!((to.as_str(), r), (want, renamed));
    }
    let m = ann
        .request(|id| {
            ClientMsg::Files(FileRequest::Read {
                id,
                path: "week1 (2)/data/grades.csv".into(),
            })
        })
        .await;
    let ServerMsg::Files(FileMsg::File { content, .. }) = m else {
        panic!("{m:?}")
    };
    assert_eq!(content, csv);

    // Staff read the student's work and runs; outsiders and other
    // students' courses do not.
    let m = ask(&mut prof, |id| CourseRequest::StudentRead {
        id,
        course: "cs101".into(),
        student: "ann".into(),
        path: "week1/demo.py".into(),
    })
    .await;
    assert!(
        matches!(&m, ServerMsg::Courses(CourseMsg::CourseFile { content, student: Some(s), .. }) if content == DEMO && s == "ann"),
        "{m:?}"
    );
    // ... and its history: ann changes her copy, staff read the version before.
    let m = ann
        .request(|id| {
            ClientMsg::Files(FileRequest::Read {
                id,
                path: "week1/demo.py".into(),
            })
        })
        .await;
    let ServerMsg::Files(FileMsg::File { version: base, .. }) = m else {
        panic!("{m:?}")
    };
    let m = ann
        .request(|id| {
            ClientMsg::Files(FileRequest::Write {
                id,
                path: "week1/demo.py".into(),
                content: "print('mine now')\n".into(),
                encoding: Encoding::Utf8,
                base_version: Some(base),
            })
        })
        .await;
    assert!(
        matches!(m, ServerMsg::Files(FileMsg::Written { .. })),
        "{m:?}"
    );
    let m = ask(&mut tina, |id| CourseRequest::StudentVersions {
        id,
        course: "cs101".into(),
        student: "ann".into(),
        path: "week1/demo.py".into(),
    })
    .await;
    let ServerMsg::Courses(CourseMsg::StudentVersions { versions, .. }) = m else {
        panic!("{m:?}")
    };
    assert_eq!(versions.len(), 1, "{versions:?}");
    let version = versions[0].version.clone();
    let m = ask(&mut tina, |id| CourseRequest::StudentReadVersion {
        id,
        course: "cs101".into(),
        student: "ann".into(),
        path: "week1/demo.py".into(),
        version: version.clone(),
    })
    .await;
    assert!(
        matches!(&m, ServerMsg::Courses(CourseMsg::CourseFile { content, version: v, .. }) if content == DEMO && *v == version),
        "{m:?}"
    );
    // Another course's professor cannot read it, even knowing the version id.
    let m = ask(&mut olga, |id| CourseRequest::StudentReadVersion {
        id,
        course: "cs101".into(),
        student: "ann".into(),
        path: "week1/demo.py".into(),
        version,
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::NotFound), "{m:?}");
    let m = ask(&mut tina, |id| CourseRequest::StudentRuns {
        id,
        course: "cs101".into(),
        student: "ann".into(),
    })
    .await;
    let ServerMsg::Courses(CourseMsg::StudentRuns { runs, .. }) = m else {
        panic!("{m:?}")
    };
    assert!(
        runs.iter().any(|r| r.path == "/course/cs101/week1/demo.py"),
        "{runs:?}"
    );
    for (who, course, student) in [
        ("prof", "cs101", "carl"),
        ("olga", "ma201", "ann"),
        ("olga", "cs101", "ann"),
        ("bob", "cs101", "ann"),
    ] {
        let c = match who {
            "prof" => &mut prof,
            "olga" => &mut olga,
            _ => &mut bob,
        };
        let (course, student) = (course.to_string(), student.to_string());
        let m = ask(c, |id| CourseRequest::StudentListFiles {
            id,
            course,
            student,
            path: String::new(),
        })
        .await;
        assert!(
            matches!(code(&m), Some(ErrorCode::NotFound | ErrorCode::Forbidden)),
            "{m:?}"
        );
    }

    // Enrolling another professor as a "student" does not open their workspace.
    let m = ask(&mut prof, |id| CourseRequest::Enroll {
        id,
        course: "cs101".into(),
        username: "olga".into(),
        role: Some(CourseRole::Student),
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::Roster { .. })),
        "{m:?}"
    );
    let m = ask(&mut prof, |id| CourseRequest::StudentListFiles {
        id,
        course: "cs101".into(),
        student: "olga".into(),
        path: String::new(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::NotFound));

    // An early release for one student only.
    let week2 = open(&mut prof, "cs101").await.unwrap().sections[1].id;
    save_section(
        &mut prof,
        "cs101",
        Some(week2),
        "week2",
        true,
        Some(now_ms() + 3_600_000),
    )
    .await
    .unwrap();
    let m = ask(&mut prof, |id| CourseRequest::ExceptionSet {
        id,
        course: "cs101".into(),
        section: week2,
        username: "bob".into(),
        release_at_ms: Some(now_ms() - 1_000),
        close_at_ms: None,
    })
    .await;
    let ServerMsg::Courses(CourseMsg::Course { course, .. }) = m else {
        panic!("{m:?}")
    };
    assert_eq!(course.sections[1].exceptions.len(), 1);
    assert_eq!(
        folders(&open(&mut bob, "cs101").await.unwrap()),
        [("week1", SectionState::Open), ("week2", SectionState::Open)]
    );
    assert_eq!(
        folders(&open(&mut ann, "cs101").await.unwrap()),
        [("week1", SectionState::Open)]
    );
    assert_eq!(
        read(&mut bob, "cs101", "week2/answers.py").await.unwrap(),
        "print(42)\n"
    );

    // 300 opens of the course and its listing cost no query.
    let loads = server.state().courses.catalog().loads();
    for i in 0..150 {
        let c = if i % 2 == 0 { &mut ann } else { &mut bob };
        open(c, "cs101").await.unwrap();
        list(c, "cs101", "").await.unwrap();
    }
    assert_eq!(server.state().courses.catalog().loads(), loads);

    // Unpublish hides it again.
    save_section(&mut prof, "cs101", Some(week1), "week1", false, None)
        .await
        .unwrap();
    assert!(open(&mut ann, "cs101").await.unwrap().sections.is_empty());
    assert_eq!(
        read(&mut ann, "cs101", "week1/demo.py").await,
        Err(ErrorCode::NotFound)
    );

    // Unenrolled: the course is gone for them, their workspace is not.
    let m = ask(&mut prof, |id| CourseRequest::Unenroll {
        id,
        course: "cs101".into(),
        username: "ann".into(),
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::Roster { .. })),
        "{m:?}"
    );
    assert_eq!(open(&mut ann, "cs101").await, Err(ErrorCode::NotFound));
    let m = ann
        .request(|id| {
            ClientMsg::Files(FileRequest::Stat {
                id,
                path: "week1/demo.py".into(),
            })
        })
        .await;
    assert!(
        matches!(m, ServerMsg::Files(FileMsg::Entry { .. })),
        "{m:?}"
    );
    // The last professor cannot be removed.
    let m = ask(&mut prof, |id| CourseRequest::Unenroll {
        id,
        course: "cs101".into(),
        username: "prof".into(),
    })
    .await;
    assert_eq!(code(&m), Some(ErrorCode::Conflict));

    tokio::time::sleep(Duration::from_millis(10)).await;
    server.stop().await;
}

async fn set_release(
    c: &mut WsClient,
    path: &str,
    published: bool,
    release_at_ms: Option<i64>,
) -> Result<CourseInfo, ErrorCode> {
    let path = path.to_string();
    match ask(c, |id| CourseRequest::ReleaseSet {
        id,
        course: "cs101".into(),
        path,
        published,
        release_at_ms,
        close_at_ms: None,
    })
    .await
    {
        ServerMsg::Courses(CourseMsg::Course { course, .. }) => Ok(course),
        m => Err(code(&m).unwrap_or_else(|| panic!("{m:?}"))),
    }
}

/// What the week's demo sees of its own folder in a run.
const PEEK: &str = r#"import os
print("files", sorted(os.listdir("/course/cs101/week3")))
print("data", sorted(os.listdir("/course/cs101/week3/data")))
print("test", os.path.exists("/course/cs101/week3/test.py"))
try:
    open("/course/cs101/week3/data/new.csv", "w")
    print("write allowed")
except OSError as e:
    print("write refused", e.errno)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_released_on_their_own_on_both_databases() {
    for db in test_databases().await {
        files_story(&db.url).await;
    }
}

async fn files_story(url: &str) {
    let server = TestServer::start(url, |_| {}).await;
    let pw = "password-123";
    server.add_user("prof", pw, Role::Professor).await;
    let (_, ann_t) = server.student("ann").await;
    let mut prof = server.connect(&server.login("prof", pw).await).await;
    let mut ann = server.connect(&ann_t).await;
    let m = ask(&mut prof, |id| CourseRequest::CourseCreate {
        id,
        slug: "cs101".into(),
        title: "Intro".into(),
        term: String::new(),
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::Course { .. })),
        "{m:?}"
    );
    let m = ask(&mut prof, |id| CourseRequest::Enroll {
        id,
        course: "cs101".into(),
        username: "ann".into(),
        role: Some(CourseRole::Student),
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::Roster { .. })),
        "{m:?}"
    );
    save_section(&mut prof, "cs101", None, "week3", true, None)
        .await
        .unwrap();
    for (path, text) in [
        ("week3/demo.py", PEEK),
        ("week3/test.py", "print('the test')\n"),
        ("week3/data/a.csv", "a,1\n"),
        ("week3/data/key/answers.py", "ANSWER = 42\n"),
    ] {
        let m = write(&mut prof, "cs101", path, text).await;
        assert!(
            matches!(m, ServerMsg::Courses(CourseMsg::CourseWritten { .. })),
            "{m:?}"
        );
    }

    // Refused: a section's own folder, a missing path, a student.
    assert_eq!(
        set_release(&mut prof, "week3", false, None).await.err(),
        Some(ErrorCode::BadRequest)
    );
    assert_eq!(
        set_release(&mut prof, "week3/../x.py", false, None)
            .await
            .err(),
        Some(ErrorCode::InvalidPath)
    );
    assert_eq!(
        set_release(&mut ann, "week3/test.py", true, None)
            .await
            .err(),
        Some(ErrorCode::Forbidden)
    );

    // The test opens a few seconds from now; the answer key is a draft.
    let release = now_ms() + 3_000;
    set_release(&mut prof, "week3/test.py", true, Some(release))
        .await
        .unwrap();
    let staff = set_release(&mut prof, "week3/data/key", false, None)
        .await
        .unwrap();
    let rules: Vec<_> = staff.sections[0]
        .releases
        .iter()
        .map(|r| (r.path.as_str(), r.state))
        .collect();
    assert_eq!(
        rules,
        [
            ("week3/data/key", SectionState::Draft),
            ("week3/test.py", SectionState::Scheduled)
        ]
    );

    // A file can be hidden before it is uploaded (never visible for an instant).
    set_release(&mut prof, "week3/later.py", false, None)
        .await
        .unwrap();
    let m = write(&mut prof, "cs101", "week3/later.py", "print('later')\n").await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::CourseWritten { .. })),
        "{m:?}"
    );

    // The student: neither listed, nor readable, nor named, nor copied, nor mounted.
    let info = open(&mut ann, "cs101").await.unwrap();
    assert!(
        info.sections[0].releases.is_empty(),
        "hidden names are not told"
    );
    let listed = list(&mut ann, "cs101", "").await.unwrap();
    assert_eq!(
        listed,
        ["week3", "week3/data", "week3/data/a.csv", "week3/demo.py"]
    );
    assert_eq!(
        list(&mut ann, "cs101", "week3/data/key").await.err(),
        Some(ErrorCode::NotFound)
    );
    // Other spellings of hidden names: decomposed Unicode, a trailing or doubled slash.
    let m = write(
        &mut prof,
        "cs101",
        "week3/r\u{e9}sum\u{e9}.py",
        "print('key')\n",
    )
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::CourseWritten { .. })),
        "{m:?}"
    );
    set_release(&mut prof, "week3/r\u{e9}sum\u{e9}.py", false, None)
        .await
        .unwrap();
    // The same answer for a hidden name as for any other: an invalid spelling
    // is invalid_path before visibility is looked at.
    for (trick, want) in [
        ("week3/re\u{301}sume\u{301}.py", ErrorCode::NotFound),
        ("week3/test.py/", ErrorCode::InvalidPath),
        ("week3/nothing.py/", ErrorCode::InvalidPath),
        ("week3//test.py", ErrorCode::InvalidPath),
        ("week3/data//key/answers.py", ErrorCode::InvalidPath),
        ("week3/./test.py", ErrorCode::InvalidPath),
        ("week3/test.py/..", ErrorCode::InvalidPath),
        ("week3/nothing.py/..", ErrorCode::InvalidPath),
    ] {
        assert_eq!(read(&mut ann, "cs101", trick).await, Err(want), "{trick}");
    }
    // An open rule inside a hidden folder does not name its file.
    set_release(&mut prof, "week3/data/key/answers.py", true, None)
        .await
        .unwrap();
    for hidden in [
        "week3/later.py",
        "week3/test.py",
        "week3/data/key/answers.py",
        "week3/missing.py",
    ] {
        assert_eq!(
            read(&mut ann, "cs101", hidden).await.err(),
            Some(ErrorCode::NotFound),
            "{hidden}"
        );
    }
    let m = ask(&mut ann, |id| CourseRequest::CourseCopy {
        id,
        course: "cs101".into(),
        path: "week3".into(),
        to: None,
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::CourseCopied { .. })),
        "{m:?}"
    );
    let m = ann
        .request(|id| {
            ClientMsg::Files(FileRequest::List {
                id,
                path: "week3".into(),
                recursive: true,
                cursor: None,
                limit: None,
            })
        })
        .await;
    let ServerMsg::Files(FileMsg::Listing { entries, .. }) = m else {
        panic!("{m:?}")
    };
    let copied: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(copied, ["week3/data", "week3/data/a.csv", "week3/demo.py"]);
    let out = run_course_file(&mut ann, "cs101", "week3/demo.py").await;
    assert!(out.contains("files ['data', 'demo.py']"), "{out}");
    assert!(out.contains("data ['a.csv']"), "{out}");
    assert!(out.contains("test False"), "{out}");
    assert!(out.contains("write refused 30"), "EROFS: {out}");

    // At its release the student is told, and the test is theirs to read and run.
    changed(&mut ann, "cs101").await;
    while now_ms() < release {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        read(&mut ann, "cs101", "week3/test.py").await.unwrap(),
        "print('the test')\n"
    );
    let info = open(&mut ann, "cs101").await.unwrap();
    let open_rules: Vec<_> = info.sections[0]
        .releases
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(open_rules, ["week3/test.py"], "open files with their times");
    let out = run_course_file(&mut ann, "cs101", "week3/demo.py").await;
    assert!(
        out.contains("files ['data', 'demo.py', 'test.py']"),
        "{out}"
    );
    assert_eq!(
        read(&mut ann, "cs101", "week3/data/key/answers.py")
            .await
            .err(),
        Some(ErrorCode::NotFound)
    );

    // Removing the key's rule: it follows its section again.
    let m = ask(&mut prof, |id| CourseRequest::ReleaseRemove {
        id,
        course: "cs101".into(),
        path: "week3/data/key".into(),
    })
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::Course { .. })),
        "{m:?}"
    );
    assert_eq!(
        read(&mut ann, "cs101", "week3/data/key/answers.py")
            .await
            .unwrap(),
        "ANSWER = 42\n"
    );
    // A run going while a hidden file is written into the folder it mounted
    // is ended (it would have seen the file), in plain words.
    let m = write(
        &mut prof,
        "cs101",
        "week3/wait.py",
        "import time\nprint('waiting', flush=True)\ntime.sleep(60)\n",
    )
    .await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::CourseWritten { .. })),
        "{m:?}"
    );
    ann.output.clear();
    ann.send(&ClientMsg::Session(SessionRequest::Run {
        id: Some(901),
        path: "week3/wait.py".into(),
        mode: campus_protocol::RunMode::Script,
        cols: Some(120),
        rows: Some(30),
        course: Some("cs101".into()),
    }))
    .await;
    ann.wait_for("run_started", |m| {
        matches!(m, ServerMsg::Session(SessionMsg::RunStarted { .. }))
    })
    .await;
    set_release(&mut prof, "week3/late.py", false, None)
        .await
        .unwrap();
    let m = write(&mut prof, "cs101", "week3/late.py", "SECRET = 1\n").await;
    assert!(
        matches!(m, ServerMsg::Courses(CourseMsg::CourseWritten { .. })),
        "{m:?}"
    );
    let ended = ann
        .wait_for("run_ended", |m| {
            matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
        })
        .await;
    let ServerMsg::Session(SessionMsg::RunEnded { ended, .. }) = ended else {
        unreachable!()
    };
    assert_eq!(ended.reason, campus_protocol::EndReason::MaterialChanged);
    assert!(
        ended
            .message
            .contains("your teacher changed hidden material"),
        "{}",
        ended.message
    );
    server.stop().await;
}
