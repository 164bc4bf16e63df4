//! Servers never touch each other's runs or records (issue 12, §6;
//! docs/security.md, "Instances"). The review's attacks, against real
//! servers with the real sandbox:
//!
//! - two servers on one host with different data dirs and the same
//!   `CAMPUS_CGROUP_GROUP`: starting (restarting) one killed the other's live
//!   run (its start-up cleanup removed "sandboxes left by a previous run");
//! - two servers sharing one database: starting one marked the other's live
//!   run `server_shutdown`.
//!
//! Each server now has an instance id in its data dir, its own cgroup group
//! `<group>-<id>`, and repairs only runs recorded with its id.

// Multi-threaded: the test helpers hash passwords on the calling thread, and a
// stalled runtime would stall the servers under test with it.
#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use campus_protocol::SessionMsg;
use campus_protocol::{RunMode, ServerMsg};
use support::class::{output_contains, save, start_run};
use support::db;
use support::server::{TestServer, WsClient};

/// Prints a counter forever, so a live run keeps producing output.
const TICKER: &str =
    "import itertools, time\nfor i in itertools.count():\n    print('tick', i, flush=True)\n    time.sleep(0.2)\n";

/// The base cgroup group both servers are configured with (as two default
/// installs would be: `campus`), unique to this test process.
fn shared_group() -> String {
    format!("campus-inst-{}", std::process::id())
}

/// A student on `srv` running the ticker; returns (user id, client, run id).
async fn ticking(srv: &TestServer, name: &str) -> (i64, WsClient, String) {
    let (uid, token) = srv.student(name).await;
    let mut ws = srv.connect(&token).await;
    save(&mut ws, "tick.py", TICKER, None).await;
    let run_id = start_run(&mut ws, "tick.py", RunMode::Script).await;
    output_contains(&mut ws, "tick 1").await;
    (uid, ws, run_id)
}

/// The run goes on: more output arrives, nothing ended it.
async fn still_running(ws: &mut WsClient, what: &str) {
    let seen = String::from_utf8_lossy(&ws.output_bytes())
        .matches("tick")
        .count();
    ws.output.clear();
    output_contains(ws, "tick").await;
    assert!(
        !ws.pending
            .iter()
            .any(|m| matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))),
        "{what}: the run ended: {:?} (after {seen} ticks)",
        ws.pending
    );
}

/// Restart `srv` on its data dir and database (graceful stop, then start).
async fn restart(srv: TestServer, db_url: &str, group: &str) -> TestServer {
    let mut srv = srv;
    let dir = std::mem::replace(&mut srv.data_dir, tempfile::tempdir().unwrap());
    let before = srv.state().instance_id.clone();
    srv.stop().await;
    let group = group.to_string();
    let srv = TestServer::start_in(dir, db_url, move |a| a.run.cgroup_group = group).await;
    assert_eq!(
        srv.state().instance_id,
        before,
        "the instance id is kept in the data dir"
    );
    srv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_host_leave_each_others_runs_alone() {
    let group = shared_group();
    let (db_a, db_b) = (db::sqlite(), db::sqlite());
    let g = group.clone();
    let a = TestServer::start(&db_a.url, move |x| x.run.cgroup_group = g).await;
    let g = group.clone();
    let b = TestServer::start(&db_b.url, move |x| x.run.cgroup_group = g).await;
    assert_ne!(a.state().instance_id, b.state().instance_id);
    let (_, mut ws_a, _) = ticking(&a, "ann").await;

    // B restarts: its start-up cleanup of stale sandboxes must not reach A's run.
    let b = restart(b, &db_b.url, &group).await;
    still_running(&mut ws_a, "A's run after B restarted").await;
    assert_eq!(a.state().runner.active_runs(), 1);

    // And the other way round, with B running now.
    let (_, mut ws_b, _) = ticking(&b, "bob").await;
    let a = restart(a, &db_a.url, &group).await;
    still_running(&mut ws_b, "B's run after A restarted").await;
    assert_eq!(b.state().runner.active_runs(), 1);
    drop(ws_a);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_a_database_never_close_each_others_runs() {
    // PostgreSQL (the shared-database shape), and one SQLite file opened by
    // two servers on one host (WAL: several processes may share it).
    for db in db::test_databases().await {
        let group = shared_group();
        let g = group.clone();
        let a = TestServer::start(&db.url, move |x| x.run.cgroup_group = g).await;
        let (uid, mut ws_a, run_a) = ticking(&a, "ann").await;
        a.records_flushed().await;
        let a_id = a.state().instance_id.clone();

        // B starts on the same database (and restarts): its repair of runs
        // left open by a crash must not close A's live run.
        let g = group.clone();
        let b = TestServer::start(&db.url, move |x| x.run.cgroup_group = g).await;
        let b = restart(b, &db.url, &group).await;
        let runs = b.store.recent_runs(uid, 5).await.unwrap();
        let rec = runs.iter().find(|r| r.id == run_a).unwrap();
        assert_eq!(
            rec.ended_at_ms, None,
            "{}: A's live run was closed: {rec:?}",
            db.backend
        );
        assert_eq!(rec.reason, None, "{}", db.backend);
        assert_eq!(
            rec.instance_id.as_deref(),
            Some(a_id.as_str()),
            "{}",
            db.backend
        );
        still_running(&mut ws_a, "A's run after B started on its database").await;

        // B's own run left open by a "crash" is still repaired by B: a run
        // recorded with B's id and never ended.
        let (bob, mut ws_b, run_b) = ticking(&b, "bob").await;
        b.records_flushed().await;
        let _ = ws_b.ws.close(None).await;
        // A graceful stop records B's run as ended; the repair is what a
        // crash needs, checked in the store conformance suite. Here: after B
        // stops and starts again, A's run is still untouched.
        let b = restart(b, &db.url, &group).await;
        let runs = b.store.recent_runs(bob, 5).await.unwrap();
        let rec_b = runs.iter().find(|r| r.id == run_b).unwrap();
        assert_eq!(
            rec_b.reason.as_deref(),
            Some("server_shutdown"),
            "{}",
            db.backend
        );
        let runs = b.store.recent_runs(uid, 5).await.unwrap();
        let rec = runs.iter().find(|r| r.id == run_a).unwrap();
        assert_eq!(rec.ended_at_ms, None, "{}: {rec:?}", db.backend);
        still_running(&mut ws_a, "A's run after B's second restart").await;
        b.stop().await;
        a.stop().await;
    }
}
