//! Run records written off the hot path, on SQLite: a database that cannot
//! take writes (another process holds its write lock) does not slow runs
//! down and loses no record; a journal left by a crash is written at the next
//! start-up, before the repair of dangling runs; and a run cut off by
//! `kill -9` of the server is recorded as ended at its last sign of life, not
//! at the restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use campus_protocol::{EndReason, Role, RunMode};
use campus_server::records::journal;
use campus_server::store::{
    connect, now_ms, DynStore, NewAudit, NewRun, NewUser, PoolSettings, Record, RunFinish,
};
use sqlx::Connection;
use support::class::{ask_run, output_contains, ping, save, start_run, timed, ASK};
use support::server::{connect_to, wait_limit, TestServer};

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("campus.db").display())
}

async fn open(url: &str) -> DynStore {
    connect(url, &PoolSettings::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_keeps_runs_going_and_records_them_afterwards() {
    let db = support::db::sqlite();
    let server = TestServer::start(&db.url, |a| a.storage.run_liveness_secs = 1).await;
    let mut class = Vec::new();
    for name in ["ada", "bo"] {
        let (uid, token) = server.student(name).await;
        let mut c = server.connect(&token).await;
        save(&mut c, "ask.py", ASK, None).await;
        class.push((uid, c, Vec::new()));
    }

    // Another process (a backup, a long `campus user` command) holds the write
    // lock: every write waits out SQLite's busy timeout (5 s) and fails.
    let mut locker = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();

    for round in 0..2 {
        for (_, c, runs) in class.iter_mut() {
            runs.push(ask_run(c, &format!("r{round}")).await);
            timed("ping", ping(c)).await;
        }
    }
    // Reads still work, so logins do (their audit entries wait in the background).
    let token = timed("login", async { server.login("ada", "password-123").await }).await;
    assert!(!token.is_empty());

    // The writer could not write them, so they went to the journal.
    let deadline = Instant::now() + wait_limit();
    while server.records().stats().journal_bytes == 0 {
        assert!(
            Instant::now() < deadline,
            "records never journaled: {:?}",
            server.records().stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let journals: Vec<_> = std::fs::read_dir(server.data_dir.path().join("journal"))
        .unwrap()
        .collect();
    assert_eq!(journals.len(), 1, "one journal file: {journals:?}");

    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();

    server.records_flushed().await;
    for (uid, _, runs) in &class {
        let mut stored = server.store.recent_runs(*uid, 100).await.unwrap();
        stored.reverse();
        let ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
        let expected: Vec<&str> = runs.iter().map(|s| s.as_str()).collect();
        assert_eq!(ids, expected, "every run, in order");
        for r in &stored {
            assert_eq!(
                (r.reason.as_deref(), r.exit_code),
                (Some("exited"), Some(0))
            );
        }
    }
    let audit = server
        .store
        .recent_audit(Some("login.ok"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 3, "the logins' audit entries: {audit:?}");
    let stats = server.records().stats();
    assert_eq!((stats.journal_bytes, stats.dropped), (0, 0), "{stats:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_writes_a_left_journal_before_repairing_runs() {
    let data = tempfile::tempdir().unwrap();
    let url = sqlite_url(data.path());
    let t = now_ms() - 60_000;
    let store = open(&url).await;
    let ana = store
        .create_user(NewUser {
            username: "ana".into(),
            password_hash: "x".into(),
            role: Role::Student,
        })
        .await
        .unwrap();
    // Recorded before the crash: a run that was still going.
    store
        .insert_run(NewRun {
            id: "open-run".into(),
            user_id: ana.id,
            path: "long.py".into(),
            mode: RunMode::Script,
            started_at_ms: t,
        })
        .await
        .unwrap();
    store.close().await;

    // What the crashed server still had in its journal (the database was down):
    // an audit entry already applied (before the offset), a whole run, a
    // liveness mark of the open run, and a line cut by the crash.
    let dir = data.path().join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("server-1-0badf00d.journal");
    let applied = journal::encode(&[Record::Audit {
        at_ms: t,
        entry: NewAudit {
            action: "test.already_applied".into(),
            ..NewAudit::default()
        },
    }]);
    let pending = journal::encode(&[
        Record::RunStarted(NewRun {
            id: "in-journal".into(),
            user_id: ana.id,
            path: "main.py".into(),
            mode: RunMode::Script,
            started_at_ms: t + 100,
        }),
        Record::RunFinished {
            run_id: "in-journal".into(),
            finish: RunFinish {
                ended_at_ms: t + 900,
                reason: EndReason::Exited,
                exit_code: Some(0),
                cpu_ms: 5,
                peak_memory_bytes: 1 << 20,
                output_bytes: 12,
            },
        },
        Record::RunsAlive {
            at_ms: t + 5_000,
            run_ids: vec!["open-run".into()],
        },
    ]);
    let mut bytes = applied.clone();
    bytes.extend_from_slice(&pending);
    bytes.extend_from_slice(br#"{"kind":"run_sta"#);
    std::fs::write(&file, &bytes).unwrap();
    std::fs::write(
        dir.join("server-1-0badf00d.journal.offset"),
        applied.len().to_string(),
    )
    .unwrap();

    let server = TestServer::start_in(data, &url, |_| {}).await;
    let runs = server.store.recent_runs(ana.id, 10).await.unwrap();
    let get = |id: &str| runs.iter().find(|r| r.id == id).unwrap().clone();
    let done = get("in-journal");
    assert_eq!(
        (done.started_at_ms, done.ended_at_ms, done.reason.as_deref()),
        (t + 100, Some(t + 900), Some("exited")),
        "the journal's run, with its real times"
    );
    let open_run = get("open-run");
    assert_eq!(
        (open_run.ended_at_ms, open_run.reason.as_deref()),
        (Some(t + 5_000), Some("server_shutdown")),
        "the dangling run ends at its last mark from the journal"
    );
    assert!(server
        .store
        .recent_audit(Some("test.already_applied"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(!file.exists(), "the replayed journal is removed");
    server.stop().await;
}

/// `campus serve` as its own process, on SQLite in `data`.
struct ServeProcess {
    child: tokio::process::Child,
    base: String,
}

async fn serve(data: &Path, port: u16, cgroup_group: &str) -> ServeProcess {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(data.join("serve.log"))
        .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_campus"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .args(["--jwt-secret", "crash-test-secret-0123456789-abcdefghij"])
        .args(["--run-liveness-secs", "1"])
        .args(["--cgroup-group", cgroup_group])
        .env_remove("DATABASE_URL")
        .env("CAMPUS_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + wait_limit();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "campus serve did not come up: {}",
            std::fs::read_to_string(data.join("serve.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ServeProcess { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_by_a_crash_ends_at_its_last_sign_of_life() {
    let data = tempfile::tempdir().unwrap();
    let url = sqlite_url(data.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let group = format!("campus-test-{}", uuid::Uuid::new_v4().simple());
    let mut server = serve(data.path(), port, &group).await;

    let store = open(&url).await;
    let hash = campus_server::auth::password::hash("password-123").unwrap();
    let uid = store
        .create_user(NewUser {
            username: "cy".into(),
            password_hash: hash,
            role: Role::Student,
        })
        .await
        .unwrap()
        .id;
    let r = reqwest::Client::new()
        .post(format!("{}/api/auth/login", server.base))
        .json(&serde_json::json!({"username": "cy", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = connect_to(&format!("ws://127.0.0.1:{port}/ws"), &token).await;
    save(
        &mut c,
        "long.py",
        "import time\nprint('working', flush=True)\ntime.sleep(600)\n",
        None,
    )
    .await;
    let run_id = start_run(&mut c, "long.py", RunMode::Script).await;
    output_contains(&mut c, "working").await;

    // The server marks the run alive every second: wait for two marks.
    let deadline = Instant::now() + wait_limit();
    let last_mark = loop {
        let runs = store.recent_runs(uid, 10).await.unwrap();
        let run = runs.iter().find(|r| r.id == run_id);
        if let Some(seen) = run
            .and_then(|r| r.last_seen_ms.map(|s| (s, r.started_at_ms)))
            .filter(|(s, started)| *s >= started + 2_000)
        {
            break seen.0;
        }
        assert!(Instant::now() < deadline, "no liveness marks: {run:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    server.child.kill().await.unwrap(); // SIGKILL: no shutdown, no run end recorded
    let killed_ms = now_ms();
    drop(c);
    // Down for a while, so a repair at restart time would be obvious.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restart_ms = now_ms();
    let mut server = serve(data.path(), port, &group).await;

    let runs = store.recent_runs(uid, 10).await.unwrap();
    let run = runs.iter().find(|r| r.id == run_id).unwrap();
    let ended = run.ended_at_ms.expect("closed by the start-up repair");
    assert_eq!(run.reason.as_deref(), Some("server_shutdown"), "{run:?}");
    assert_eq!(
        Some(ended),
        run.last_seen_ms,
        "ends at its last mark: {run:?}"
    );
    assert!(
        ended >= last_mark && ended <= killed_ms,
        "ended {ended}, last mark seen {last_mark}, killed at {killed_ms}"
    );
    assert!(
        ended < restart_ms - 2_000,
        "recorded at the restart ({restart_ms}), not its last sign of life: {ended}"
    );

    // A clean stop of the restarted server.
    let pid = nix::unistd::Pid::from_raw(server.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(wait_limit(), server.child.wait())
        .await
        .expect("campus serve stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    store.close().await;
}

#[tokio::test]
async fn journal_file_appends_reads_back_in_order_and_empties() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal::JournalFile::create(dir.path(), "unit").unwrap();
    let audit = |n: i64| Record::Audit {
        at_ms: n,
        entry: NewAudit {
            action: format!("a{n}"),
            ..NewAudit::default()
        },
    };
    let records: Vec<Record> = (0..10).map(audit).collect();
    j.append(&journal::encode(&records[..4])).unwrap();
    j.append(&journal::encode(&records[4..])).unwrap();
    let first = j.read_batch(3).unwrap();
    assert_eq!(first.records, records[..3].to_vec());
    j.applied_to(first.end).unwrap();
    assert!(j.pending_bytes() > 0);
    // Another process cannot take a journal this one holds.
    assert!(journal::Leftover::find(dir.path()).unwrap().is_empty());
    let rest = j.read_batch(100).unwrap();
    assert_eq!(rest.records, records[3..].to_vec());
    j.applied_to(rest.end).unwrap();
    assert_eq!(
        (j.pending_bytes(), j.len()),
        (0, 0),
        "emptied once all applied"
    );
    let path = j.path().to_path_buf();
    j.close();
    assert!(!path.exists(), "an empty journal is removed at close");
}

/// The journal's bound: records beyond it are dropped and counted, the rest
/// reach the database in order once it takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_drops_and_counts_the_rest_is_written_in_order() {
    let data = tempfile::tempdir().unwrap();
    let url = sqlite_url(data.path());
    let (store, health) = campus_server::store::guard(open(&url).await);
    let mut cfg = campus_server::records::RecordsConfig::new(
        data.path().join("journal"),
        "bound",
        Duration::from_secs(3600),
    );
    let entry = |i: u32| NewAudit {
        action: "test.bound".into(),
        detail: Some(format!("{i:03}")),
        ..NewAudit::default()
    };
    let line = journal::encode(&[Record::Audit {
        at_ms: now_ms(),
        entry: entry(0),
    }])
    .len() as u64;
    // Room for 5 records.
    cfg.journal_max_bytes = 5 * line + line / 2;
    let records = campus_server::records::Records::start(cfg, Arc::clone(&store), health);

    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    // The first goes to the database and fails there (after SQLite's busy
    // timeout); from then on everything is journaled, one spill at a time.
    for i in 0..20 {
        records.audit(entry(i));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + wait_limit();
    while records.stats().dropped == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing dropped: {:?}",
            records.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(records.stats().journal_bytes <= 5 * line + line / 2);
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();

    assert!(records.flush(wait_limit()).await, "{:?}", records.stats());
    let stats = records.stats();
    assert_eq!(stats.applied + stats.dropped, 20, "{stats:?}");
    assert!(
        stats.applied >= 5,
        "the journal's worth was kept: {stats:?}"
    );
    let mut written = store.recent_audit(Some("test.bound"), 100).await.unwrap();
    written.reverse();
    let details: Vec<String> = written.iter().filter_map(|a| a.detail.clone()).collect();
    let mut sorted = details.clone();
    sorted.sort();
    assert_eq!(details, sorted, "in submission order");
    assert_eq!(details.len() as u64, stats.applied);
    records.close(Duration::from_secs(5)).await;
    store.close().await;
}
