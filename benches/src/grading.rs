//! `wsbench grading`: the end of a lab. N students (300) submit an
//! assignment of ten tests within a window (30 s), while M other students
//! (50) type in their REPLs. Reported: the time to drain the grading queue,
//! submit → graded latency (p50/p99, pushed over the WebSocket), grading
//! throughput, and keystroke → echo of the typists — before the burst (the
//! baseline, same run) and during it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use campus_protocol::{
    AssignmentConfig, ClientMsg, GradingMsg, GradingRequest, RunMode, ServerMsg, SubmissionState,
};
use serde::Serialize;

use crate::client::{login, Client, Event};
use crate::runs::{echo_samples, run_msg, until_output};
use crate::server::ServerProcess;
use crate::stats::{summarize, Summary};

const PASSWORD: &str = "bench-password-1";
const SLUG: &str = "cs101";

const TESTS: &str = r#"from solution import add, mul, fib, rev, count

def test_add(): assert add(2, 3) == 5
def test_add_neg(): assert add(-2, -3) == -5
def test_mul(): assert mul(3, 4) == 12
def test_mul_zero(): assert mul(0, 9) == 0
def test_fib_small(): assert fib(1) == 1
def test_fib(): assert fib(20) == 6765
def test_rev(): assert rev("abc") == "cba"
def test_rev_empty(): assert rev("") == ""
def test_count(): assert count([1, 2, 2, 3], 2) == 2
def test_count_none(): assert count([], 1) == 0
"#;

const SOLUTION: &str = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\ndef rev(s):\n    return s[::-1]\n\ndef count(xs, x):\n    return xs.count(x)\n";

/// What the run found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Students who submitted.
    pub submissions: usize,
    /// Tests per submission.
    pub tests_per_submission: usize,
    /// The window the submits were spread over, s.
    pub window_s: f64,
    /// First submit → last graded, s.
    pub drain_s: f64,
    /// Submissions graded per second (over the drain).
    pub throughput_per_s: f64,
    /// Submit → graded (pushed), per submission.
    pub submit_to_graded: Summary,
    /// Submit → its reply (snapshot + queued).
    pub submit_reply: Summary,
    /// Keystroke → echo of the typists before the burst (baseline).
    pub echo_idle: Summary,
    /// Keystroke → echo of the typists during the burst.
    pub echo_during: Summary,
    /// Submissions that did not score full marks (must be 0).
    pub wrong_scores: usize,
}

async fn ask(
    c: &mut Client,
    build: impl FnOnce(Option<u64>) -> GradingRequest,
) -> anyhow::Result<ServerMsg> {
    let id = c.id();
    c.request(id, &ClientMsg::Grading(build(Some(id)))).await
}

/// A typist during the burst: one key per ~200 ms until `stop`, each
/// echo's time pushed to `out` as it is measured.
async fn type_while(
    mut c: Client,
    stop: tokio_util::sync::CancellationToken,
    out: std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
) -> anyhow::Result<()> {
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = echo_samples(&mut c, 1).await?;
        out.lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .extend(s);
    }
    Ok(())
}

/// Run the benchmark.
pub async fn bench(
    students: usize,
    typists: usize,
    window_s: u64,
    json: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let server = ServerProcess::start(&[
        ("CAMPUS_FILE_OPS_PER_MIN", "1000000".into()),
        ("CAMPUS_WS_MESSAGES_PER_MIN", "1000000".into()),
        ("CAMPUS_LOGIN_ATTEMPTS", "100000".into()),
    ])
    .await?;
    let subs: Vec<String> = (0..students).map(|i| format!("s{i:04}")).collect();
    let typers: Vec<String> = (0..typists).map(|i| format!("t{i:04}")).collect();
    let mut names: Vec<String> = subs.iter().chain(typers.iter()).cloned().collect();
    names.push("prof".into());
    eprintln!("creating {} accounts…", names.len());
    server.add_users(&names, PASSWORD)?;
    names.pop();
    crate::courses::cli(
        &server,
        &[
            "course",
            "create",
            "--slug",
            SLUG,
            "--title",
            "Bench",
            "--professor",
            "prof",
        ],
        None,
    )?;
    crate::courses::cli(
        &server,
        &["course", "import-roster", SLUG, "-"],
        Some(&names.join("\n")),
    )?;
    crate::courses::cli(&server, &["course", "publish", SLUG, "hw1"], None)?;
    let http = reqwest::Client::new();
    let prof_token = login(&http, &server.url, "prof", PASSWORD).await?;
    let mut prof = Client::connect(&server.url, &prof_token).await?;
    // Let the CLI's catalog changes be polled in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = ask(&mut prof, |id| GradingRequest::TestFilePut {
        id,
        course: SLUG.into(),
        folder: "hw1".into(),
        name: "test_solution.py".into(),
        content: TESTS.into(),
    })
    .await?;
    if !matches!(m, ServerMsg::Grading(GradingMsg::Assignment { .. })) {
        bail!("test upload: {m:?}");
    }
    let m = ask(&mut prof, |id| GradingRequest::AssignmentSave {
        id,
        course: SLUG.into(),
        folder: "hw1".into(),
        config: AssignmentConfig {
            test_timeout_ms: 5000,
            ..AssignmentConfig::default()
        },
    })
    .await?;
    if !matches!(m, ServerMsg::Grading(GradingMsg::Assignment { .. })) {
        bail!("settings: {m:?}");
    }

    eprintln!("connecting {students} submitters and {typists} typists…");
    let mut submitters = Vec::new();
    for name in &subs {
        let token = login(&http, &server.url, name, PASSWORD).await?;
        let r = http
            .put(format!("{}/api/files/hw1/solution.py", server.url))
            .bearer_auth(&token)
            .body(SOLUTION)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("solution upload: {}", r.status());
        }
        submitters.push(Client::connect(&server.url, &token).await?);
    }
    let mut typing = Vec::new();
    for name in &typers {
        let token = login(&http, &server.url, name, PASSWORD).await?;
        let mut c = Client::connect(&server.url, &token).await?;
        let (_, msg) = run_msg(&mut c, "", RunMode::Repl);
        c.send(&msg).await?;
        let mut buf = Vec::new();
        until_output(&mut c, &mut buf, |b| b.ends_with(b">>> ")).await?;
        typing.push(c);
    }

    // Baseline: 10 s of typing with nothing graded.
    eprintln!("baseline: typing for 10 s…");
    let until = Instant::now() + Duration::from_secs(10);
    let tasks: Vec<_> = typing
        .into_iter()
        .map(|c| tokio::spawn(type_until_keep(c, until)))
        .collect();
    let mut echo_idle = Vec::new();
    let mut typing = Vec::new();
    for t in tasks {
        let (c, s) = t.await??;
        echo_idle.extend(s);
        typing.push(c);
    }

    // The burst: submits spread evenly over the window, typing throughout.
    eprintln!("burst: {students} submissions over {window_s} s…");
    let start = Instant::now() + Duration::from_millis(500);
    let stop = tokio_util::sync::CancellationToken::new();
    let during = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let typers_tasks: Vec<_> = typing
        .into_iter()
        .map(|c| tokio::spawn(type_while(c, stop.clone(), std::sync::Arc::clone(&during))))
        .collect();
    let n = submitters.len().max(1);
    let mut tasks = Vec::new();
    for (i, mut c) in submitters.into_iter().enumerate() {
        let at = start + Duration::from_secs_f64(window_s as f64 * i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let t = Instant::now();
            let m = ask(&mut c, |id| GradingRequest::Submit {
                id,
                course: SLUG.into(),
                folder: "hw1".into(),
            })
            .await?;
            let reply = t.elapsed();
            let ServerMsg::Grading(GradingMsg::Submission { submission, .. }) = m else {
                bail!("submit: {m:?}");
            };
            let sid = submission.id;
            loop {
                match c.next().await? {
                    Event::Msg(ServerMsg::Grading(GradingMsg::Submission {
                        id: None,
                        submission,
                    })) if submission.id == sid
                        && matches!(
                            submission.state,
                            SubmissionState::Graded | SubmissionState::Failed
                        ) =>
                    {
                        let full = submission.state == SubmissionState::Graded
                            && submission.score == Some(10.0);
                        return Ok::<_, anyhow::Error>((
                            t,
                            reply,
                            t.elapsed(),
                            Instant::now(),
                            full,
                        ));
                    }
                    _ => {}
                }
            }
        }));
    }
    let (mut graded, mut replies, mut wrong) = (Vec::new(), Vec::new(), 0);
    let mut first: Option<Instant> = None;
    let mut last = start;
    for t in tasks {
        let (sent, reply, took, done, full) = t.await??;
        first = Some(first.map_or(sent, |f| f.min(sent)));
        last = last.max(done);
        graded.push(took);
        replies.push(reply);
        if !full {
            wrong += 1;
        }
    }
    // Echo "during": what the typists measured until the queue drained.
    stop.cancel();
    for t in typers_tasks {
        t.await??;
    }
    let echo_during = during
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let first = first.context("no submission")?;
    let drain = last.duration_since(first).as_secs_f64();
    let report = Report {
        submissions: students,
        tests_per_submission: 10,
        window_s: window_s as f64,
        drain_s: drain,
        throughput_per_s: students as f64 / drain.max(0.001),
        submit_to_graded: summarize(&graded),
        submit_reply: summarize(&replies),
        echo_idle: summarize(&echo_idle),
        echo_during: summarize(&echo_during),
        wrong_scores: wrong,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if wrong > 0 {
        bail!("{wrong} submissions were not graded full marks");
    }
    Ok(())
}

/// Like [`type_until`], keeping the client.
async fn type_until_keep(mut c: Client, until: Instant) -> anyhow::Result<(Client, Vec<Duration>)> {
    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        samples.extend(echo_samples(&mut c, 1).await?);
    }
    Ok((c, samples))
}
