//! A live class through a PostgreSQL outage: a real Campus server on a private
//! PostgreSQL instance (never the shared CI cluster), a few connected students,
//! the database stopped for a while and started again.
//!
//! While it is down: typing, output, saves and runs go on (no database call is
//! on their path, and a connected user keeps its last known account state);
//! logins and new WebSockets are refused at once with `unavailable` and
//! `retry_after_ms`; `/readyz` says the database is down. When it is back:
//! everything recovers without restarting Campus, and every run started or
//! ended during the outage is in the database, in order, with the times it
//! really happened.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use campus_protocol::{ClientMsg, RunMode, ServerMsg};
use campus_protocol::{SessionMsg, SessionRequest};
use support::class::{ask_run, ping, save, start_run, timed, ASK};
use support::pg_private::PrivatePg;
use support::server::{wait_limit, TestServer};

/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(12);
/// The pool's acquire timeout in this test. Anything on the path of a
/// keystroke, save or run that waited for the database would take at least
/// this long; everything must be answered well before
/// (`support::class::ANSWERED_WITHIN`, 5 s).
const ACQUIRE_TIMEOUT_SECS: u64 = 10;
/// Logins and new sockets must fail fast; ~1 s by design, generous here.
const REFUSED_WITHIN: Duration = Duration::from_millis(2_500);
/// Students connected through the outage.
const STUDENTS: usize = 4;
/// Runs each student does during the outage (the run limit is 10 per minute).
const RUNS_EACH: usize = 4;

/// Login over HTTP: (status, body, time taken).
async fn login(server: &TestServer, user: &str) -> (u16, serde_json::Value, Duration) {
    let t = Instant::now();
    let r = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": "password-123"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or_default();
    (status, body, t.elapsed())
}

/// Try to open a WebSocket: Ok on upgrade, else (status, JSON body).
async fn try_ws(server: &TestServer, token: &str) -> Result<(), (u16, serde_json::Value)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("unexpected ws error {e}"),
    }
}

fn assert_unavailable(status: u16, body: &serde_json::Value, what: &str) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["code"], "unavailable", "{what}: {body}");
    assert!(
        body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{what}: {body}"
    );
}

async fn readyz(server: &TestServer) -> (u16, serde_json::Value) {
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_keeps_live_classes_going() {
    if std::env::var("CAMPUS_TEST_LOG").is_ok() {
        campus_server::logging::init(false, campus_server::logging::Target::Stderr);
    }
    let Some(pg) = PrivatePg::start().await else {
        return;
    };
    let server = TestServer::start(&pg.url(), |a| {
        a.heartbeat_secs = 1;
        a.storage.db_acquire_timeout_secs = ACQUIRE_TIMEOUT_SECS;
        a.storage.run_liveness_secs = 1;
    })
    .await;

    let mut class = Vec::new();
    for i in 0..STUDENTS {
        let (uid, token) = server.student(&format!("s{i}")).await;
        let mut c = server.connect(&token).await;
        save(&mut c, "ask.py", ASK, None).await;
        class.push((uid, token, c));
    }
    // Logged in before the outage, but opens its socket only during it.
    let (_, late_token) = server.student("late").await;

    pg.stop().await;
    let down_at = Instant::now();
    let down_at_ms = campus_server::store::now_ms();

    // Logins and new sockets: `unavailable` at once, with a retry hint.
    let (status, body, took) = login(&server, "late").await;
    assert_unavailable(status, &body, "login");
    assert!(took < REFUSED_WITHIN, "login refused after {took:?}");
    let t = Instant::now();
    let (status, body) = try_ws(&server, &late_token).await.unwrap_err();
    assert_unavailable(status, &body, "new WebSocket");
    assert!(
        t.elapsed() < REFUSED_WITHIN,
        "new WebSocket refused after {:?}",
        t.elapsed()
    );
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"]["ok"], false, "{body}");
    assert!(
        body["database"]["down_since_ms"].as_i64().is_some(),
        "{body}"
    );

    // The class goes on: every student saves, runs, types and pings, paced over
    // the whole outage (heartbeats every second meanwhile).
    let mut tasks = Vec::new();
    for (i, (uid, token, mut c)) in class.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut runs = Vec::new();
            let mut round = 0;
            let mut version = None;
            while down_at.elapsed() < OUTAGE || runs.len() < 2 {
                let text = format!("round {round}\n");
                version = Some(timed("save", save(&mut c, "notes.txt", &text, version)).await);
                if runs.len() < RUNS_EACH {
                    runs.push(ask_run(&mut c, &format!("s{i}r{round}")).await);
                }
                timed("ping", ping(&mut c)).await;
                round += 1;
                // Pacing, not synchronization: spread the work over the outage.
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            (uid, token, c, runs)
        }));
    }
    let mut class = Vec::new();
    for t in tasks {
        class.push(t.await.unwrap());
    }
    // A connected student downloads a file over HTTP (its last known account state).
    let http = reqwest::Client::new();
    let r = http
        .get(server.url("/api/files/notes.txt"))
        .bearer_auth(&class[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a connected user's download during the outage"
    );
    assert!(r.text().await.unwrap().starts_with("round "));
    // Someone without a live connection is asked to come back.
    let r = http
        .get(server.url("/api/files/notes.txt"))
        .bearer_auth(&late_token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_unavailable(status, &body, "download without a live connection");

    // A REPL started during the outage and still running when the database returns.
    let repl_id = timed("REPL start", start_run(&mut class[0].2, "", RunMode::Repl)).await;
    let stats = server.records().stats();
    assert!(
        stats.journal_bytes > 0,
        "run records of the outage should wait in the journal: {stats:?}"
    );
    assert!(down_at.elapsed() >= OUTAGE);
    // Still down (nothing recovered by accident).
    let (status, _) = readyz(&server).await;
    assert_eq!(status, 503);

    pg.start_again().await;

    // Recovery by itself: readiness, logins, new sockets.
    let deadline = Instant::now() + wait_limit();
    loop {
        let (status, body) = readyz(&server).await;
        if status == 200 {
            assert_eq!(body["database"]["ok"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "database not ready again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body, _) = login(&server, "late").await;
    assert_eq!(status, 200, "{body}");
    try_ws(&server, &late_token)
        .await
        .expect("a new WebSocket after the outage");

    // Every connection lived through it.
    for (_, _, c, _) in class.iter_mut() {
        ping(c).await;
    }

    // Every run of the outage is recorded, in order, at the times it happened.
    server.records_flushed().await;
    for (uid, _, _, runs) in &class {
        let mut stored = server.store.recent_runs(*uid, 100).await.unwrap();
        stored.reverse();
        let scripts: Vec<_> = stored.iter().filter(|r| r.mode == "script").collect();
        let ids: Vec<&str> = scripts.iter().map(|r| r.id.as_str()).collect();
        let expected: Vec<&str> = runs.iter().map(|s| s.as_str()).collect();
        assert_eq!(ids, expected, "user {uid}: every run, in order");
        let mut previous_end = down_at_ms;
        for r in &scripts {
            assert_eq!(r.reason.as_deref(), Some("exited"), "{r:?}");
            assert_eq!(r.exit_code, Some(0), "{r:?}");
            let end = r.ended_at_ms.expect("ended");
            assert!(
                r.started_at_ms >= previous_end,
                "start after the previous end: {r:?}"
            );
            assert!(end >= r.started_at_ms, "{r:?}");
            previous_end = end;
        }
    }
    let stats = server.records().stats();
    assert_eq!((stats.journal_bytes, stats.dropped), (0, 0), "{stats:?}");

    // The REPL is marked alive once the database is back, then recorded when it ends.
    let deadline = Instant::now() + wait_limit();
    loop {
        let runs = server.store.recent_runs(class[0].0, 100).await.unwrap();
        let repl = runs
            .iter()
            .find(|r| r.id == repl_id)
            .expect("REPL recorded");
        assert!(repl.ended_at_ms.is_none());
        if repl
            .last_seen_ms
            .is_some_and(|s| s > repl.started_at_ms + 1_000)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "REPL never marked alive: {repl:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = &mut class[0].2;
    c.send(&ClientMsg::Session(SessionRequest::Stop { id: None }))
        .await;
    c.wait_for("run_ended", |m| {
        matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
    })
    .await;
    server.records_flushed().await;
    let runs = server.store.recent_runs(class[0].0, 100).await.unwrap();
    let repl = runs.iter().find(|r| r.id == repl_id).unwrap();
    assert_eq!(repl.reason.as_deref(), Some("stopped"), "{repl:?}");

    server.stop().await;
    drop(pg);
}
