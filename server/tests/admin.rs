//! The admin view over the WebSocket, on SQLite and PostgreSQL: an admin
//! watching the live feed sees a student's running program with its cgroup
//! memory (a run holding 64 MiB shows about 64 MiB), stops it and the
//! student is told `killed_by_admin` in words; disconnects a user (4011);
//! disables one (connections closed, tokens refused at once, login refused)
//! and enables them again. A student asking for the feed or an action is
//! refused `forbidden`, audited, and gets no feed. Five admins watching cost
//! one computation per tick, the same frame for all.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use campus_protocol::{
    close_codes, AdminMsg, AdminRequest, AdminSessionInfo, AdminSessionState, ClientMsg,
    ConnectionMsg, EndReason, ErrorCode, Role, RunMode, ServerMsg, SessionMsg, SessionRequest,
};
use support::class::save;
use support::db::test_databases;
use support::server::{wait_limit, TestServer, WsClient};

const MIB: u64 = 1024 * 1024;

/// Holds 64 MiB (every page touched) and then waits.
const HOLD_64_MIB: &str = "b = bytearray(64 * 1024 * 1024)\n\
for i in range(0, len(b), 4096):\n    b[i] = 1\n\
print('holding', flush=True)\n\
import time\n\
while True:\n    time.sleep(0.2)\n";

async fn admin(server: &TestServer, name: &str) -> (i64, String) {
    let id = server.add_user(name, "admin-pass-123", Role::Admin).await;
    (id, server.login(name, "admin-pass-123").await)
}

async fn act(c: &mut WsClient, build: impl FnOnce(Option<u64>) -> AdminRequest) -> ServerMsg {
    c.request(|id| ClientMsg::Admin(build(id))).await
}

fn done(m: &ServerMsg) -> (bool, String) {
    match m {
        ServerMsg::Admin(AdminMsg::AdminDone {
            changed, message, ..
        }) => (*changed, message.clone()),
        other => panic!("expected admin_done, got {other:?}"),
    }
}

fn forbidden(m: &ServerMsg) {
    match m {
        ServerMsg::Connection(ConnectionMsg::Error { code, .. }) => {
            assert_eq!(*code, ErrorCode::Forbidden, "{m:?}")
        }
        other => panic!("expected forbidden, got {other:?}"),
    }
}

/// The next feed tick whose line for `user_id` satisfies `pred`.
async fn feed_until(
    c: &mut WsClient,
    user_id: i64,
    pred: impl Fn(&AdminSessionInfo) -> bool,
) -> AdminSessionInfo {
    let deadline = tokio::time::Instant::now() + wait_limit();
    let mut last = None;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no feed tick showed the wanted state; last line: {last:?}"
        );
        let m = c
            .wait_for("admin_feed", |m| {
                matches!(m, ServerMsg::Admin(AdminMsg::AdminFeed { .. }))
            })
            .await;
        let ServerMsg::Admin(AdminMsg::AdminFeed { sessions, .. }) = m else {
            unreachable!()
        };
        let line = sessions.into_iter().find(|s| s.user_id == user_id);
        if let Some(s) = &line {
            if pred(s) {
                return s.clone();
            }
        }
        last = line;
    }
}

async fn start_run(c: &mut WsClient, path: &str) {
    let p = path.to_string();
    let m = c
        .request(move |id| {
            ClientMsg::Session(SessionRequest::Run {
                id,
                path: p,
                mode: RunMode::Script,
                cols: Some(80),
                rows: Some(24),
                course: None,
            })
        })
        .await;
    assert!(
        matches!(m, ServerMsg::Session(SessionMsg::RunStarted { .. })),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_a_run_with_its_memory_and_stops_it() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let (_, admin_token) = admin(&server, "root").await;
        let (ann_id, ann_token) = server.student("ann").await;
        let mut ann = server.connect(&ann_token).await;
        save(&mut ann, "hold.py", HOLD_64_MIB, None).await;
        start_run(&mut ann, "hold.py").await;
        ann.output_contains("holding").await;

        let mut root = server.connect(&admin_token).await;
        let (changed, _) = done(&act(&mut root, |id| AdminRequest::AdminWatch { id }).await);
        assert!(changed);
        let line = feed_until(&mut root, ann_id, |s| {
            s.running && s.memory_bytes >= 60 * MIB
        })
        .await;
        assert_eq!(line.username, "ann");
        assert_eq!(line.state, AdminSessionState::Script);
        assert_eq!(line.path.as_deref(), Some("hold.py"));
        assert!(line.memory_bytes < 100 * MIB, "{line:?}");
        assert!(line.peak_memory_bytes >= line.memory_bytes, "{line:?}");
        assert_eq!((line.attached, line.clients), (1, 1), "{line:?}");
        assert!(line.output_bytes >= "holding".len() as u64, "{line:?}");

        // A stop for a run that is no longer the live one stops nothing.
        let (changed, message) = done(
            &act(&mut root, |id| AdminRequest::AdminStopRun {
                id,
                user_id: ann_id,
                run_id: Some("not-this-run".into()),
            })
            .await,
        );
        assert!(!changed && message.contains("already ended"), "{message}");
        let (changed, message) = done(
            &act(&mut root, |id| AdminRequest::AdminStopRun {
                id,
                user_id: ann_id,
                run_id: line.run_id.clone(),
            })
            .await,
        );
        assert!(changed, "{message}");
        let ended = ann
            .wait_for("run_ended", |m| {
                matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
            })
            .await;
        let ServerMsg::Session(SessionMsg::RunEnded { ended, .. }) = ended else {
            unreachable!()
        };
        assert_eq!(ended.reason, EndReason::KilledByAdmin);
        assert!(
            ended.message.contains("Stopped by an administrator"),
            "{}",
            ended.message
        );
        let idle = feed_until(&mut root, ann_id, |s| !s.running).await;
        assert_eq!(idle.state, AdminSessionState::Idle);
        // Nothing left to stop: said so, not an error.
        let (changed, message) = done(
            &act(&mut root, |id| AdminRequest::AdminStopRun {
                id,
                user_id: ann_id,
                run_id: None,
            })
            .await,
        );
        assert!(!changed && message.contains("nothing running"), "{message}");

        server.records_flushed().await;
        let audit = server
            .store
            .recent_audit(Some("admin.stop_run"), 10)
            .await
            .unwrap();
        // Every attempt, with its outcome: the one that stopped has no detail.
        assert_eq!(audit.len(), 3, "{audit:?}");
        assert!(audit
            .iter()
            .all(|a| a.actor.as_deref() == Some("root") && a.target.as_deref() == Some("ann")));
        assert_eq!(
            audit.iter().filter(|a| a.detail.is_none()).count(),
            1,
            "{audit:?}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_get_no_feed_and_no_actions_and_are_audited() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let (bob_id, bob_token) = server.student("bob").await;
        let (_, eve_token) = server.student("eve").await;
        let mut bob = server.connect(&bob_token).await;
        let mut eve = server.connect(&eve_token).await;
        forbidden(&act(&mut eve, |id| AdminRequest::AdminWatch { id }).await);
        forbidden(
            &act(&mut eve, |id| AdminRequest::AdminStopRun {
                id,
                user_id: bob_id,
                run_id: None,
            })
            .await,
        );
        forbidden(
            &act(&mut eve, |id| AdminRequest::AdminDisconnect {
                id,
                user_id: bob_id,
            })
            .await,
        );
        forbidden(
            &act(&mut eve, |id| AdminRequest::AdminSetDisabled {
                id,
                user_id: bob_id,
                disabled: true,
            })
            .await,
        );
        forbidden(&act(&mut eve, |id| AdminRequest::AdminAccounts { id }).await);
        // No feed came: a ping's answer is the next message.
        let m = eve
            .request(|id| ClientMsg::Connection(campus_protocol::ConnectionRequest::Ping { id }))
            .await;
        assert!(matches!(
            m,
            ServerMsg::Connection(ConnectionMsg::Pong { .. })
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let m = eve
            .request(|id| ClientMsg::Connection(campus_protocol::ConnectionRequest::Ping { id }))
            .await;
        assert!(matches!(
            m,
            ServerMsg::Connection(ConnectionMsg::Pong { .. })
        ));
        assert!(
            !eve.pending.iter().any(|m| matches!(m, ServerMsg::Admin(_))),
            "a student received admin messages: {:?}",
            eve.pending
        );
        assert_eq!(server.state().admin.feed.watchers(), 0);
        // Bob was not touched.
        let m = bob
            .request(|id| ClientMsg::Connection(campus_protocol::ConnectionRequest::Ping { id }))
            .await;
        assert!(matches!(
            m,
            ServerMsg::Connection(ConnectionMsg::Pong { .. })
        ));
        server.records_flushed().await;
        let audit = server
            .store
            .recent_audit(Some("admin.forbidden"), 10)
            .await
            .unwrap();
        assert_eq!(audit.len(), 5, "{audit:?}");
        assert!(audit.iter().all(|a| a.actor.as_deref() == Some("eve")));
        assert!(
            audit
                .iter()
                .any(|a| a.detail.as_deref() == Some("admin_set_disabled")
                    && a.target == Some(bob_id.to_string())),
            "{audit:?}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_then_disable_then_enable() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let (root_id, admin_token) = admin(&server, "root").await;
        let (cat_id, cat_token) = server.student("cat").await;
        let mut root = server.connect(&admin_token).await;

        // Disconnect: the socket closes with 4011; the token still works.
        let mut cat = server.connect(&cat_token).await;
        let (changed, message) = done(
            &act(&mut root, |id| AdminRequest::AdminDisconnect {
                id,
                user_id: cat_id,
            })
            .await,
        );
        assert!(changed, "{message}");
        assert_eq!(cat.closed().await, Some(close_codes::KICKED));
        let mut cat = server.connect(&cat_token).await;
        save(
            &mut cat,
            "wait.py",
            "import time\nprint('waiting', flush=True)\nwhile True:\n    time.sleep(0.2)\n",
            None,
        )
        .await;
        start_run(&mut cat, "wait.py").await;
        cat.output_contains("waiting").await;

        // Disable: closed at once, the run stopped, the token refused over
        // HTTP, login refused.
        let (changed, message) = done(
            &act(&mut root, |id| AdminRequest::AdminSetDisabled {
                id,
                user_id: cat_id,
                disabled: true,
            })
            .await,
        );
        assert!(changed, "{message}");
        assert_eq!(cat.closed().await, Some(close_codes::REVOKED));
        let info = server.state().runner.session_info(cat_id).await;
        assert!(info.as_ref().is_some_and(|i| !i.running), "{info:?}");
        let last = info.and_then(|i| i.last_ended).map(|e| e.reason);
        assert_eq!(last, Some(EndReason::Revoked));
        let http = reqwest::Client::new();
        let me = http
            .get(server.url("/api/auth/me"))
            .bearer_auth(&cat_token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401);
        let login = http
            .post(server.url("/api/auth/login"))
            .json(&serde_json::json!({"username": "cat", "password": "password-123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 401);
        // The account list says so (how the dashboard finds whom to enable).
        match act(&mut root, |id| AdminRequest::AdminAccounts { id }).await {
            ServerMsg::Admin(AdminMsg::AdminAccounts { accounts, .. }) => {
                let cat = accounts.iter().find(|a| a.username == "cat").unwrap();
                assert!(cat.disabled && cat.role == Role::Student, "{cat:?}");
                assert!(accounts.iter().any(|a| a.username == "root" && !a.disabled));
            }
            other => panic!("expected admin_accounts, got {other:?}"),
        }
        // Twice is not an error.
        let (changed, _) = done(
            &act(&mut root, |id| AdminRequest::AdminSetDisabled {
                id,
                user_id: cat_id,
                disabled: true,
            })
            .await,
        );
        assert!(!changed);
        // An admin cannot lock themselves out; an unknown user is not_found.
        let m = act(&mut root, |id| AdminRequest::AdminSetDisabled {
            id,
            user_id: root_id,
            disabled: true,
        })
        .await;
        assert!(
            matches!(
                &m,
                ServerMsg::Connection(ConnectionMsg::Error {
                    code: ErrorCode::BadRequest,
                    ..
                })
            ),
            "{m:?}"
        );
        let m = act(&mut root, |id| AdminRequest::AdminStopRun {
            id,
            user_id: 999_999,
            run_id: None,
        })
        .await;
        assert!(
            matches!(
                &m,
                ServerMsg::Connection(ConnectionMsg::Error {
                    code: ErrorCode::NotFound,
                    ..
                })
            ),
            "{m:?}"
        );

        // Enable: cat logs in again.
        let (changed, _) = done(
            &act(&mut root, |id| AdminRequest::AdminSetDisabled {
                id,
                user_id: cat_id,
                disabled: false,
            })
            .await,
        );
        assert!(changed);
        let token = server.login("cat", "password-123").await;
        let _cat = server.connect(&token).await;

        server.records_flushed().await;
        // The changes (no detail) once each, on cat; the attempts that did
        // nothing or failed with what happened.
        for action in ["admin.disconnect", "user.disabled", "user.enabled"] {
            let audit = server.store.recent_audit(Some(action), 10).await.unwrap();
            let changes: Vec<_> = audit.iter().filter(|a| a.detail.is_none()).collect();
            assert_eq!(changes.len(), 1, "{action}: {audit:?}");
            assert_eq!(changes[0].target.as_deref(), Some("cat"));
        }
        let disables = server
            .store
            .recent_audit(Some("user.disabled"), 10)
            .await
            .unwrap();
        assert!(
            disables
                .iter()
                .any(|a| a.detail.as_deref() == Some("nothing to do"))
                && disables.iter().any(|a| a
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains("your own account"))),
            "{disables:?}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_admins_cost_one_computation_per_tick() {
    let db = &test_databases().await[0];
    let server = TestServer::start(&db.url, |_| {}).await;
    let feed = &server.state().admin.feed;
    let mut admins = Vec::new();
    for i in 0..5 {
        let (_, token) = admin(&server, &format!("admin{i}")).await;
        admins.push(server.connect(&token).await);
    }
    // Nobody watching: nothing computed.
    let before = feed.computed();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(feed.computed(), before, "computed with nobody watching");

    for c in admins.iter_mut() {
        done(&act(c, |id| AdminRequest::AdminWatch { id }).await);
    }
    assert_eq!(feed.watchers(), 5);
    let start = feed.computed();
    let t0 = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let computed = feed.computed() - start;
    let elapsed = t0.elapsed().as_secs_f64();
    // One computation a tick, not one per admin (17 here), plus the
    // wake-ups of watchers that came before the first frame: the first
    // wakes the task, one more may find it computing and wake it once more.
    let ticks = elapsed / campus_server::admin::feed::TICK.as_secs_f64();
    assert!(
        computed >= 2 && (computed as f64) <= ticks.ceil() + 2.0,
        "{computed} computations in {elapsed:.1} s for 5 watchers"
    );
    // Every admin received the ticks (a watch keeps the latest: at most one each).
    for c in admins.iter_mut() {
        let mut ticks = Vec::new();
        while ticks.len() < 3 {
            if let ServerMsg::Admin(AdminMsg::AdminFeed { at_ms, .. }) = c
                .wait_for("admin_feed", |m| {
                    matches!(m, ServerMsg::Admin(AdminMsg::AdminFeed { .. }))
                })
                .await
            {
                ticks.push(at_ms);
            }
        }
        assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "{ticks:?}");
    }
    assert!(feed.last_frame_bytes() > 0);
    // Unwatching stops the frames.
    for c in admins.iter_mut() {
        done(&act(c, |id| AdminRequest::AdminUnwatch { id }).await);
    }
    assert_eq!(feed.watchers(), 0);
    server.stop().await;
}
