//! Tokens can be revoked (issue 12, §4; docs/security.md, "Sessions and
//! tokens"): each attack the security review verified, against a real server
//! on SQLite and on PostgreSQL, with the account changes made by the real
//! `campus` binary in its own process where the review used it.
//!
//! - logout, then `GET /api/auth/me` with the old token: 401;
//! - `campus user passwd`: the old token 401, its open socket closed (4013);
//! - `campus user disable`: the running program stopped (`revoked`) and the
//!   socket closed;
//! - `campus user role`: the old token refused (HTTP and WebSocket);
//! - logout in one tab: another tab with the same token is closed at once and
//!   its save is never applied.

// Multi-threaded: the test helpers hash passwords on the calling thread, and a
// stalled runtime would stall the server under test with it.
#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use campus_protocol::{close_codes, ClientMsg, Encoding, RunMode, ServerMsg};
use campus_protocol::{FileMsg, FileRequest};
use futures_util::StreamExt;
use support::class::{output_contains, save, start_run};
use support::db::{self, TestDb};
use support::server::{wait_limit, TestServer, WsClient};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_campus");

/// `campus user …` in its own process, on the server's database.
async fn cli(db: &TestDb, args: &[&str], stdin: Option<&str>) {
    let shown = args.join(" ");
    let (url, args, stdin) = (
        db.url.clone(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        stdin.map(str::to_string),
    );
    let data = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CAMPUS_DATA_DIR", data.path())
            .env("DATABASE_URL", &url)
            .env("CAMPUS_LOG", "warn")
            .arg("user")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "campus user {shown}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Status of `GET /api/auth/me` with `token`.
async fn me(srv: &TestServer, token: &str) -> u16 {
    reqwest::Client::new()
        .get(srv.url("/api/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn logout(srv: &TestServer, token: &str) {
    let r = reqwest::Client::new()
        .post(srv.url("/api/auth/logout"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Wait for the socket to close; returns the close code and reason. Messages
/// arriving first are kept in `pending`.
async fn close_frame(c: &mut WsClient) -> (u16, String) {
    loop {
        let next = tokio::time::timeout(wait_limit(), c.ws.next())
            .await
            .expect("the socket was not closed within the wait limit");
        match next {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) => return (0, String::new()),
            Some(Ok(Message::Text(t))) => c.pending.push(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    }
}

/// Poll `pred` (bounded by the wait limit).
async fn eventually(what: &str, mut pred: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + wait_limit();
    while !pred().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A WebSocket upgrade with `token` is refused with 401.
async fn upgrade_refused(srv: &TestServer, token: &str) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = srv.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401)
        }
        other => panic!("upgrade with a revoked token: {:?}", other.map(|_| ())),
    }
}

async fn start(db: &TestDb) -> TestServer {
    // Heartbeats far away: every close below is the revocation's, not a heartbeat re-check's.
    TestServer::start(&db.url, |a| {
        a.heartbeat_secs = 300;
        a.heartbeat_timeout_secs = 900;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token_it_was_called_with() {
    for db in db::test_databases().await {
        eprintln!("backend: {}", db.backend);
        let srv = start(&db).await;
        let (_, laptop) = srv.student("ann").await;
        let phone = srv.login("ann", "password-123").await;
        assert_eq!(me(&srv, &laptop).await, 200);

        logout(&srv, &laptop).await;
        assert_eq!(
            me(&srv, &laptop).await,
            401,
            "{}: old token after logout",
            db.backend
        );
        upgrade_refused(&srv, &laptop).await;
        assert_eq!(
            me(&srv, &phone).await,
            200,
            "{}: another login of the same user keeps working",
            db.backend
        );

        // The revocation is in the database: a restarted server refuses it too.
        srv.records_flushed().await;
        let data_dir = {
            let mut srv = srv;
            let dir = std::mem::replace(&mut srv.data_dir, tempfile::tempdir().unwrap());
            srv.stop().await;
            dir
        };
        let srv = TestServer::start_in(data_dir, &db.url, |_| {}).await;
        assert_eq!(
            me(&srv, &laptop).await,
            401,
            "{}: after a restart",
            db.backend
        );
        assert_eq!(me(&srv, &phone).await, 200, "{}", db.backend);
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_in_one_tab_stops_another_tab_with_the_same_token() {
    for db in db::test_databases().await {
        eprintln!("backend: {}", db.backend);
        let srv = start(&db).await;
        let (uid, token) = srv.student("ann").await;
        let mut tab_a = srv.connect(&token).await;
        let mut tab_b = srv.connect(&token).await;
        let v = save(&mut tab_b, "notes.txt", "before", None).await;

        logout(&srv, &token).await;
        // Tab B tries to save right after: the server refuses it (the socket
        // is closed, the message never handled), whichever comes first.
        let _ = futures_util::SinkExt::send(
            &mut tab_b.ws,
            Message::Text(
                serde_json::to_string(&ClientMsg::Files(FileRequest::Write {
                    id: Some(99),
                    path: "notes.txt".into(),
                    content: "after logout".into(),
                    encoding: Encoding::Utf8,
                    base_version: Some(v),
                }))
                .unwrap()
                .into(),
            ),
        )
        .await;
        let (code, reason) = close_frame(&mut tab_b).await;
        assert_eq!(code, close_codes::REVOKED, "{}: {reason}", db.backend);
        assert!(reason.contains("logged out"), "{reason}");
        assert!(
            !tab_b
                .pending
                .iter()
                .any(|m| matches!(m, ServerMsg::Files(FileMsg::Written { .. }))),
            "{}: the save after logout was acknowledged: {:?}",
            db.backend,
            tab_b.pending
        );
        assert_eq!(close_frame(&mut tab_a).await.0, close_codes::REVOKED);
        let (on_disk, _) = srv
            .state()
            .files
            .workspace(uid)
            .await
            .unwrap()
            .read("notes.txt")
            .unwrap();
        assert_eq!(
            on_disk, b"before",
            "{}: the save after logout was applied",
            db.backend
        );
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_by_the_cli_revokes_every_token_and_closes_sockets() {
    for db in db::test_databases().await {
        eprintln!("backend: {}", db.backend);
        let srv = start(&db).await;
        let (_, token) = srv.student("ann").await;
        let other = srv.login("ann", "password-123").await;
        let (_, bob) = srv.student("bob").await;
        let mut ws = srv.connect(&token).await;
        let mut bob_ws = srv.connect(&bob).await;

        cli(
            &db,
            &["passwd", "ann", "--password-stdin"],
            Some("a-new-password\n"),
        )
        .await;
        // Another process changed the database: the server's poll (1 s) finds it.
        let (code, reason) = close_frame(&mut ws).await;
        assert_eq!(code, close_codes::REVOKED, "{}: {reason}", db.backend);
        assert!(reason.contains("password"), "{reason}");
        assert_eq!(me(&srv, &token).await, 401, "{}", db.backend);
        assert_eq!(
            me(&srv, &other).await,
            401,
            "{}: every token of the user",
            db.backend
        );
        upgrade_refused(&srv, &token).await;

        // The new password works and its token is good; bob never noticed.
        let fresh = srv.login("ann", "a-new-password").await;
        assert_eq!(me(&srv, &fresh).await, 200);
        let mut ws = srv.connect(&fresh).await;
        support::class::ping(&mut ws).await;
        support::class::ping(&mut bob_ws).await;
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_by_the_cli_stops_the_run_and_closes_the_socket() {
    for db in db::test_databases().await {
        eprintln!("backend: {}", db.backend);
        let srv = start(&db).await;
        let (uid, token) = srv.student("ann").await;
        let mut ws = srv.connect(&token).await;
        save(
            &mut ws,
            "loop.py",
            "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.1)\n",
            None,
        )
        .await;
        let run_id = start_run(&mut ws, "loop.py", RunMode::Script).await;
        output_contains(&mut ws, "started").await;

        cli(&db, &["disable", "ann"], None).await;
        let (code, reason) = close_frame(&mut ws).await;
        assert_eq!(code, close_codes::REVOKED, "{}: {reason}", db.backend);
        assert!(reason.contains("disabled"), "{reason}");
        let runner = std::sync::Arc::clone(&srv.state().runner);
        eventually("the run is stopped", async || runner.active_runs() == 0).await;
        srv.records_flushed().await;
        let runs = srv.store.recent_runs(uid, 5).await.unwrap();
        let run = runs.iter().find(|r| r.id == run_id).unwrap();
        assert_eq!(
            run.reason.as_deref(),
            Some("revoked"),
            "{}: {run:?}",
            db.backend
        );
        assert_eq!(me(&srv, &token).await, 401);
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_change_by_the_cli_refuses_the_old_token() {
    for db in db::test_databases().await {
        eprintln!("backend: {}", db.backend);
        let srv = start(&db).await;
        let (_, token) = srv.student("ann").await;
        let mut ws = srv.connect(&token).await;

        cli(&db, &["role", "ann", "professor"], None).await;
        let (code, reason) = close_frame(&mut ws).await;
        assert_eq!(code, close_codes::REVOKED, "{}: {reason}", db.backend);
        assert!(reason.contains("role"), "{reason}");
        assert_eq!(me(&srv, &token).await, 401, "{}", db.backend);
        upgrade_refused(&srv, &token).await;

        let fresh = srv.login("ann", "password-123").await;
        let v: serde_json::Value = reqwest::Client::new()
            .get(srv.url("/api/auth/me"))
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["role"], "professor");
        srv.stop().await;
    }
}
