//! `/readyz` tells the truth about student runs: it reflects one real run
//! through the student path (probe workspace in the data dir, the configured
//! helper, cgroup, namespaces, uid, Python), including a sandbox that breaks
//! after start-up, and recovers when it works again.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::db::test_databases;
use support::server::{wait_limit, TestServer};

async fn readyz(server: &TestServer) -> (u16, serde_json::Value) {
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn check<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["sandbox"]["probe"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {body:#}"))
}

/// Poll /readyz until `pred` holds for (status, body), within the test wait limit.
async fn readyz_until(
    server: &TestServer,
    what: &str,
    pred: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + wait_limit();
    loop {
        let (status, body) = readyz(server).await;
        if pred(status, &body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last /readyz: {status} {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_the_probe_run() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| a.run.reaper_interval_secs = 1).await;
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["ready"], true);
    // Each part separately: the database, the disk, and the background
    // loops — the reaper passing every interval, every grading worker alive.
    assert_eq!(body["database"]["ok"], true, "{body:#}");
    assert!(body["disk"]["free_bytes"].as_u64().unwrap() > 0, "{body:#}");
    assert_eq!(body["grading"]["ok"], true, "{body:#}");
    let workers = body["grading"]["workers"].as_u64().unwrap();
    assert!(workers >= 1);
    assert_eq!(body["grading"]["workers_alive"].as_u64(), Some(workers));
    assert_eq!(body["reaper"]["interval_ms"], 1000, "{body:#}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, later) = readyz(&server).await;
    assert_eq!(later["reaper"]["ok"], true, "{later:#}");
    let ago = later["reaper"]["last_pass_ms_ago"].as_u64().unwrap();
    assert!(
        ago < 2000,
        "the reaper has not passed for {ago} ms: {later:#}"
    );
    assert_eq!(body["sandbox"]["ok"], true);
    assert_eq!(body["sandbox"]["isolated"], true, "{body:#}");
    for name in [
        "run",
        "workspace",
        "uid",
        "network",
        "probe port",
        "server port",
        "answer file",
        "probe port unreached",
    ] {
        assert_eq!(check(&body, name)["ok"], true, "{name}: {body:#}");
    }
    // The server's own port is what the run tried (and failed) to reach.
    let port = server.addr.port().to_string();
    let detail = check(&body, "server port")["detail"].as_str().unwrap();
    assert!(detail.contains(&port), "{detail}");
    // The probe ran in the configured data dir and left nothing there.
    let root = server.data_dir.path().join("workspaces");
    let summary = body["sandbox"]["probe"]["summary"].as_str().unwrap();
    assert!(summary.contains(&root.display().to_string()), "{summary}");
    let left: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("sandbox-probe"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_helper_makes_readyz_not_ready_in_development() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| {
        a.run.sandbox_helper = Some(PathBuf::from("/bin/false"));
    })
    .await;
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"]["ok"], true, "only the sandbox is at fault");
    assert_eq!(body["sandbox"]["ok"], false);
    assert_eq!(check(&body, "run")["ok"], false, "{body:#}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_python_makes_readyz_not_ready() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| {
        a.run.python = PathBuf::from("/nonexistent/python3");
    })
    .await;
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body:#}");
    // Isolation itself is complete: only a real run shows the problem.
    assert_eq!(body["sandbox"]["complete"], true, "{body:#}");
    let run = check(&body, "run");
    assert_eq!(run["ok"], false);
    assert!(
        run["detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/python3"),
        "{run}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_that_breaks_later_is_reported_and_recovers() {
    for db in test_databases().await {
        // The helper through a symlink we can take away after start-up.
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("campus-helper");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_campus"), &link).unwrap();
        let helper = link.clone();
        let server = TestServer::start(&db.url, move |a| {
            a.run.sandbox_helper = Some(helper);
            a.sandbox_probe_secs = 1;
        })
        .await;
        let (status, body) = readyz(&server).await;
        assert_eq!(status, 200, "{body:#}");

        std::fs::remove_file(&link).unwrap();
        let body = readyz_until(&server, "not ready", |s, _| s == 503).await;
        assert_eq!(body["sandbox"]["ok"], false, "{body:#}");
        assert_eq!(check(&body, "run")["ok"], false, "{body:#}");

        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_campus"), &link).unwrap();
        let body = readyz_until(&server, "ready again", |s, _| s == 200).await;
        assert_eq!(body["sandbox"]["probe"]["ok"], true);
        server.stop().await;
    }
}
