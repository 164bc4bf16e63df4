//! One conformance suite for every store backend: the same story runs against
//! a fresh SQLite file and a fresh PostgreSQL database, each directly and
//! behind the breaker (`store::guard`, which delegates every method by hand),
//! calling every method of each aggregate's trait (`Users`, `AuditLog`,
//! `Runs`, `Courses`) and of their composition `Store` (`apply_records`), plus
//! concurrency checks. A new aggregate adds its part of the story here.
//!
//! PostgreSQL: see tests/support/db.rs (`CAMPUS_TEST_PG_URL`, `.ci/postgres.sh`).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic there is a failed test (clippy.toml)

#[path = "support/db.rs"]
mod db;

use std::collections::BTreeSet;
use std::sync::Arc;

use campus_protocol::{EndReason, Role, RunMode};
use campus_server::store::{
    connect, guard, now_ms, CourseRole, DynStore, GradeResult, NewAudit, NewCourse, NewRun,
    NewSubmission, NewUser, PoolSettings, Record, ResultRow, RevokedToken, RosterChange, RunFinish,
    SectionException, SectionFields, StoreError, SubmissionStatus, SubmitRefused, SubmitRules,
};
use db::TestDb;

const HOUR_MS: i64 = 3_600_000;

async fn open(db: &TestDb) -> DynStore {
    connect(&db.url, &PoolSettings::default())
        .await
        .unwrap_or_else(|e| panic!("{}: connect {}: {e}", db.backend, db.url))
}

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        username: name.to_string(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${name}"),
        role,
    }
}

fn new_run(id: &str, user_id: i64, started_at_ms: i64) -> NewRun {
    NewRun {
        id: id.to_string(),
        user_id,
        path: format!("{id}.py"),
        mode: RunMode::Script,
        started_at_ms,
        instance: Some("i1".into()),
    }
}

#[tokio::test]
async fn sqlite_conformance() {
    story(&db::sqlite(), false).await;
}

#[tokio::test]
async fn postgres_conformance() {
    if let Some(db) = db::postgres().await {
        story(&db, false).await;
    }
}

#[tokio::test]
async fn sqlite_conformance_behind_the_breaker() {
    story(&db::sqlite(), true).await;
}

#[tokio::test]
async fn postgres_conformance_behind_the_breaker() {
    if let Some(db) = db::postgres().await {
        story(&db, true).await;
    }
}

#[tokio::test]
async fn sqlite_tokens_and_instances() {
    tokens_and_instances(&db::sqlite(), false).await;
}

#[tokio::test]
async fn postgres_tokens_and_instances() {
    if let Some(db) = db::postgres().await {
        tokens_and_instances(&db, false).await;
    }
}

#[tokio::test]
async fn sqlite_tokens_and_instances_behind_the_breaker() {
    tokens_and_instances(&db::sqlite(), true).await;
}

#[tokio::test]
async fn postgres_tokens_and_instances_behind_the_breaker() {
    if let Some(db) = db::postgres().await {
        tokens_and_instances(&db, true).await;
    }
}

/// Token generations, the account poll, revoked tokens, and the per-instance
/// repair of runs left open; `guarded` runs it through the breaker.
async fn tokens_and_instances(db: &TestDb, guarded: bool) {
    let b = db.backend;
    let store = open(db).await;
    let store = if guarded { guard(store).0 } else { store };
    let ann = store
        .create_user(new_user("ann", Role::Student))
        .await
        .unwrap();
    let bob = store
        .create_user(new_user("bob", Role::Student))
        .await
        .unwrap();
    assert_eq!(ann.token_generation, 0, "{b}");

    // The cursor: the database clock, nothing changed since.
    let start = store.account_changes(i64::MAX).await.unwrap();
    assert!(start.users.is_empty() && start.revoked.is_empty(), "{b}");
    let since = start.now_ms - 2_000;
    assert!(
        (start.now_ms - now_ms()).abs() < 60_000,
        "{b}: database clock is ms since the epoch"
    );
    let quiet = store.account_changes(start.now_ms).await.unwrap();
    assert!(quiet.users.is_empty(), "{b}: nothing changed");

    // Each credential or rights change moves the generation on and shows in the poll.
    store.set_password_hash("ann", "new-hash").await.unwrap();
    store.set_user_role("ann", Role::Professor).await.unwrap();
    store.set_user_disabled("ann", true).await.unwrap();
    let ch = store.account_changes(since).await.unwrap();
    assert_eq!(ch.users.len(), 1, "{b}: only ann changed: {:?}", ch.users);
    let u = &ch.users[0];
    assert_eq!(
        (u.id, u.token_generation, u.role, u.disabled),
        (ann.id, 3, Role::Professor, true),
        "{b}"
    );
    assert!(ch.now_ms >= start.now_ms, "{b}");
    assert!(
        store
            .account_changes(ch.now_ms)
            .await
            .unwrap()
            .users
            .is_empty(),
        "{b}: a later cursor does not see it again"
    );
    assert!(matches!(
        store.set_user_role("nobody", Role::Admin).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .user_by_id(bob.id)
            .await
            .unwrap()
            .unwrap()
            .token_generation,
        0,
        "{b}: bob untouched"
    );

    // Revoked tokens: recorded once, polled, live until expiry, then purged.
    let now = now_ms();
    let t = |jti: &str, user_id: i64, exp: i64| RevokedToken {
        jti: jti.into(),
        user_id,
        expires_at_ms: exp,
    };
    let records = [
        Record::TokenRevoked(t("j-live", bob.id, now + HOUR_MS)),
        Record::TokenRevoked(t("j-live", bob.id, now + HOUR_MS)),
        Record::TokenRevoked(t("j-old", bob.id, now - 1)),
        Record::TokenRevoked(t("j-ghost", 999_999, now + HOUR_MS)),
    ];
    store.apply_records(&records).await.unwrap();
    let ch = store.account_changes(since).await.unwrap();
    let mut jtis: Vec<_> = ch.revoked.iter().map(|r| r.jti.as_str()).collect();
    jtis.sort();
    assert_eq!(
        jtis,
        ["j-live", "j-old"],
        "{b}: replay-safe, unknown users skipped"
    );
    assert_eq!(
        store.live_revocations(now).await.unwrap(),
        vec![t("j-live", bob.id, now + HOUR_MS)],
        "{b}"
    );
    assert_eq!(store.purge_revocations(now).await.unwrap(), 1, "{b}");
    assert_eq!(store.live_revocations(now).await.unwrap().len(), 1, "{b}");

    // Runs of two instances sharing the database: each repair closes its own
    // (and those recorded before instances existed), never the other's.
    let run = |id: &str, instance: Option<&str>| NewRun {
        instance: instance.map(str::to_string),
        ..new_run(id, bob.id, now)
    };
    store.insert_run(run("a-1", Some("aaaa"))).await.unwrap();
    store
        .apply_records(&[Record::RunStarted(run("b-1", Some("bbbb")))])
        .await
        .unwrap();
    store.insert_run(run("legacy", None)).await.unwrap();
    store.insert_run(run("cli-1", Some("cli"))).await.unwrap();
    assert_eq!(
        store.close_dangling_runs("aaaa").await.unwrap(),
        2,
        "{b}: a-1 and legacy"
    );
    let runs = store.recent_runs(bob.id, 10).await.unwrap();
    let get = |id: &str| runs.iter().find(|r| r.id == id).unwrap().clone();
    assert_eq!(get("a-1").reason.as_deref(), Some("server_shutdown"), "{b}");
    assert_eq!(
        get("legacy").reason.as_deref(),
        Some("server_shutdown"),
        "{b}"
    );
    assert_eq!(
        get("b-1").ended_at_ms,
        None,
        "{b}: the other instance's live run untouched"
    );
    assert_eq!(get("b-1").instance_id.as_deref(), Some("bbbb"), "{b}");
    assert_eq!(
        get("cli-1").ended_at_ms,
        None,
        "{b}: command-line runs untouched"
    );
    assert_eq!(store.close_dangling_runs("bbbb").await.unwrap(), 1, "{b}");
    store.close().await;
}

/// The whole story for one backend: every store method, in the order a
/// server's life would call them; `guarded` runs it through the breaker, as
/// the server does.
async fn story(db: &TestDb, guarded: bool) {
    let b = db.backend;
    let store = open(db).await;
    let (store, health) = if guarded {
        let (store, health) = guard(store);
        (store, Some(health))
    } else {
        (store, None)
    };
    assert_eq!(store.backend(), b);
    store.ping().await.unwrap();
    store.probe().await.unwrap();

    users(&store, b).await;
    audit(&store, b).await;
    runs(&store, b).await;
    records(&store, b).await;
    courses(&store, b).await;
    grading(&store, b).await;

    // Migrations are idempotent: a second connect to the same database (the
    // CLI next to a running server) applies nothing and sees the same data.
    let again = open(db).await;
    let names: Vec<String> = again
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(
        names,
        [
            "alice",
            "gstudent1",
            "gstudent2",
            "gstudent3",
            "mike",
            "newbie",
            "zed"
        ],
        "{b}: data survives reconnect"
    );
    again.close().await;
    store.close().await;
    // Nothing in the story looked like an outage to the breaker.
    assert!(
        health.is_none_or(|h| h.is_up()),
        "{b}: the breaker marked the database down"
    );
}

/// The `Users` aggregate.
async fn users(store: &DynStore, b: &str) {
    assert_eq!(store.count_users_with_role(Role::Admin).await.unwrap(), 0);
    assert!(store.list_users().await.unwrap().is_empty());

    let before = now_ms();
    // Inserted out of alphabetical order so list ordering is really checked.
    let zed = store
        .create_user(new_user("zed", Role::Admin))
        .await
        .unwrap();
    let alice = store
        .create_user(new_user("alice", Role::Student))
        .await
        .unwrap();
    let mike = store
        .create_user(new_user("mike", Role::Professor))
        .await
        .unwrap();
    let after = now_ms();

    assert_eq!(alice.username, "alice");
    assert_eq!(alice.role, Role::Student);
    assert_eq!(
        alice.password_hash,
        new_user("alice", Role::Student).password_hash
    );
    assert!(!alice.disabled);
    assert!(
        (before..=after).contains(&alice.created_at_ms),
        "{b}: created_at_ms {} outside [{before}, {after}]",
        alice.created_at_ms
    );
    let ids: BTreeSet<i64> = [zed.id, alice.id, mike.id].into();
    assert_eq!(ids.len(), 3, "{b}: ids are distinct");

    // Duplicate username, even with another role: Conflict, and nothing changes.
    let dup = store.create_user(new_user("alice", Role::Admin)).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict)),
        "{b}: duplicate gave {dup:?}"
    );
    assert_eq!(store.count_users_with_role(Role::Admin).await.unwrap(), 1);

    assert_eq!(
        store.user_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_username("mike").await.unwrap(),
        Some(mike.clone())
    );
    assert_eq!(store.user_by_id(i64::MAX).await.unwrap(), None);
    assert_eq!(store.user_by_username("nobody").await.unwrap(), None);
    // Usernames are matched exactly.
    assert_eq!(store.user_by_username("Alice").await.unwrap(), None);

    let listed = store.list_users().await.unwrap();
    assert_eq!(
        listed,
        vec![alice.clone(), mike.clone(), zed.clone()],
        "{b}: by username"
    );

    store.set_user_disabled("mike", true).await.unwrap();
    assert!(store.user_by_id(mike.id).await.unwrap().unwrap().disabled);
    assert!(!store.user_by_id(alice.id).await.unwrap().unwrap().disabled);
    store.set_user_disabled("mike", false).await.unwrap();
    assert!(
        !store
            .user_by_username("mike")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let missing = store.set_user_disabled("nobody", true).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound)),
        "{b}: {missing:?}"
    );

    store
        .set_password_hash("alice", "$argon2id$new")
        .await
        .unwrap();
    let alice2 = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(alice2.password_hash, "$argon2id$new");
    assert_eq!(
        store.user_by_id(zed.id).await.unwrap(),
        Some(zed.clone()),
        "{b}: others untouched"
    );
    let missing = store.set_password_hash("nobody", "x").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound)),
        "{b}: {missing:?}"
    );

    assert_eq!(store.count_users_with_role(Role::Student).await.unwrap(), 1);
    assert_eq!(
        store.count_users_with_role(Role::Professor).await.unwrap(),
        1
    );
    assert_eq!(store.count_users_with_role(Role::Admin).await.unwrap(), 1);
}

/// The `AuditLog` aggregate.
async fn audit(store: &DynStore, b: &str) {
    assert!(store.recent_audit(None, 10).await.unwrap().is_empty());
    let alice = store.user_by_username("alice").await.unwrap().unwrap();

    let before = now_ms();
    let full = NewAudit {
        actor_id: Some(alice.id),
        actor: Some("alice".into()),
        action: "login.ok".into(),
        target: Some("alice".into()),
        detail: Some("via password".into()),
        ip: Some("192.0.2.7".into()),
    };
    store.append_audit(full.clone()).await.unwrap();
    for (i, action) in [
        "login.failed",
        "user.disabled",
        "login.failed",
        "login.failed",
    ]
    .into_iter()
    .enumerate()
    {
        store
            .append_audit(NewAudit {
                action: action.into(),
                target: Some(format!("t{i}")),
                ..NewAudit::default()
            })
            .await
            .unwrap();
    }
    let after = now_ms();

    // Unfiltered: newest first (ids strictly decreasing), every field back.
    let all = store.recent_audit(None, 100).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "login.failed",
            "login.failed",
            "user.disabled",
            "login.failed",
            "login.ok"
        ],
        "{b}: newest first"
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].id > w[1].id && w[0].at_ms >= w[1].at_ms),
        "{b}: {all:?}"
    );
    let oldest = all.last().unwrap();
    assert_eq!(oldest.actor_id, full.actor_id);
    assert_eq!(oldest.actor, full.actor);
    assert_eq!(oldest.target, full.target);
    assert_eq!(oldest.detail, full.detail);
    assert_eq!(oldest.ip, full.ip);
    assert!(
        (before..=after).contains(&oldest.at_ms),
        "{b}: at_ms {}",
        oldest.at_ms
    );
    let newest = &all[0];
    assert_eq!(
        (newest.actor_id, &newest.actor, &newest.detail, &newest.ip),
        (None, &None, &None, &None)
    );
    assert_eq!(newest.target.as_deref(), Some("t3"));

    // Limit keeps the newest.
    let two = store.recent_audit(None, 2).await.unwrap();
    assert_eq!(two, all[..2].to_vec(), "{b}: limit");

    // Filtered by action, still newest first, limit applies after the filter.
    let failed = store.recent_audit(Some("login.failed"), 100).await.unwrap();
    let targets: Vec<&str> = failed.iter().filter_map(|r| r.target.as_deref()).collect();
    assert_eq!(targets, ["t3", "t2", "t0"], "{b}: filtered");
    let failed_one = store.recent_audit(Some("login.failed"), 1).await.unwrap();
    assert_eq!(failed_one, failed[..1].to_vec());
    assert!(store
        .recent_audit(Some("no.such.action"), 10)
        .await
        .unwrap()
        .is_empty());
}

/// The `Runs` aggregate.
async fn runs(store: &DynStore, b: &str) {
    let alice = store.user_by_username("alice").await.unwrap().unwrap();
    let mike = store.user_by_username("mike").await.unwrap().unwrap();
    // A fixed, hour-aligned origin so the buckets are known exactly.
    let h = 1_700_000_000_000 / HOUR_MS * HOUR_MS;

    assert!(store.recent_runs(alice.id, 10).await.unwrap().is_empty());

    store
        .insert_run(new_run("r-old", alice.id, h - 1))
        .await
        .unwrap();
    store
        .insert_run(new_run("r1", alice.id, h + 1_000))
        .await
        .unwrap();
    store
        .insert_run(new_run("r2", alice.id, h + 2_000))
        .await
        .unwrap();
    store
        .insert_run(new_run("r3", alice.id, h + HOUR_MS + 5))
        .await
        .unwrap();
    store
        .insert_run(new_run("r4", alice.id, h + 2 * HOUR_MS))
        .await
        .unwrap();
    store
        .insert_run(NewRun {
            mode: RunMode::Repl,
            path: String::new(),
            ..new_run("m1", mike.id, h + 10)
        })
        .await
        .unwrap();

    let dup = store.insert_run(new_run("r1", alice.id, h)).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict)),
        "{b}: duplicate run id gave {dup:?}"
    );
    let orphan = store.insert_run(new_run("orphan", i64::MAX, h)).await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound)),
        "{b}: run of unknown user gave {orphan:?}"
    );

    // Newest first, only the user's own, limit keeps the newest.
    let recent = store.recent_runs(alice.id, 10).await.unwrap();
    let ids: Vec<&str> = recent.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r4", "r3", "r2", "r1", "r-old"], "{b}: newest first");
    let recent2 = store.recent_runs(alice.id, 2).await.unwrap();
    assert_eq!(recent2, recent[..2].to_vec());
    let mikes = store.recent_runs(mike.id, 10).await.unwrap();
    assert_eq!(mikes.len(), 1);
    assert_eq!(
        (mikes[0].mode.as_str(), mikes[0].path.as_str()),
        ("repl", "")
    );
    let open = &recent[3];
    assert_eq!(
        (open.id.as_str(), open.user_id, open.path.as_str()),
        ("r1", alice.id, "r1.py")
    );
    assert_eq!(
        (open.mode.as_str(), open.started_at_ms),
        ("script", h + 1_000)
    );
    assert_eq!(
        (open.ended_at_ms, &open.reason, open.exit_code, open.cpu_ms),
        (None, &None, None, None)
    );
    assert_eq!((open.peak_memory_bytes, open.output_bytes), (None, None));

    store
        .finish_run(
            "r1",
            RunFinish {
                ended_at_ms: h + 1_500,
                reason: EndReason::Exited,
                exit_code: Some(3),
                cpu_ms: 420,
                peak_memory_bytes: 64 << 20,
                output_bytes: 5_000_000_000, // > i32::MAX: really 64-bit
            },
        )
        .await
        .unwrap();
    store
        .finish_run(
            "r2",
            RunFinish {
                ended_at_ms: h + 2_500,
                reason: EndReason::MemoryLimit,
                exit_code: None,
                cpu_ms: 0,
                peak_memory_bytes: 128 << 20,
                output_bytes: 0,
            },
        )
        .await
        .unwrap();
    let unknown = store
        .finish_run(
            "no-such-run",
            RunFinish {
                ended_at_ms: h,
                reason: EndReason::Stopped,
                exit_code: None,
                cpu_ms: 0,
                peak_memory_bytes: 0,
                output_bytes: 0,
            },
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound)),
        "{b}: {unknown:?}"
    );

    let recent = store.recent_runs(alice.id, 10).await.unwrap();
    let r1 = recent.iter().find(|r| r.id == "r1").unwrap();
    assert_eq!(r1.ended_at_ms, Some(h + 1_500));
    assert_eq!(r1.reason.as_deref(), Some("exited"));
    assert_eq!(r1.exit_code, Some(3));
    assert_eq!(r1.cpu_ms, Some(420));
    assert_eq!(r1.peak_memory_bytes, Some(64 << 20));
    assert_eq!(r1.output_bytes, Some(5_000_000_000));
    let r2 = recent.iter().find(|r| r.id == "r2").unwrap();
    assert_eq!(
        (r2.reason.as_deref(), r2.exit_code),
        (Some("memory_limit"), None)
    );

    // Liveness marks: only open runs move, and never backwards.
    let mark = h + 2 * HOUR_MS + 500;
    let alive = |at_ms: i64, ids: &[&str]| Record::RunsAlive {
        at_ms,
        run_ids: ids.iter().map(|s| s.to_string()).collect(),
    };
    store
        .apply_records(&[alive(mark, &["r3", "r4", "r1"]), alive(mark - 100, &["r3"])])
        .await
        .unwrap();
    let recent = store.recent_runs(alice.id, 10).await.unwrap();
    let seen = |id: &str| recent.iter().find(|r| r.id == id).unwrap().last_seen_ms;
    assert_eq!(seen("r3"), Some(mark), "{b}: marked");
    assert_eq!(seen("r4"), Some(mark), "{b}: marked");
    assert_eq!(
        seen("r1"),
        Some(h + 1_500),
        "{b}: an ended run keeps its end as last sign of life"
    );
    assert_eq!(seen("r-old"), Some(h - 1), "{b}: a start is a sign of life");

    // Dangling: r-old, r3, r4, m1 never finished. Each ends at its last sign
    // of life (mark, or its start), not at the repair time.
    assert_eq!(
        store.close_dangling_runs("i1").await.unwrap(),
        4,
        "{b}: dangling count"
    );
    let mut all = store.recent_runs(alice.id, 10).await.unwrap();
    all.extend(store.recent_runs(mike.id, 10).await.unwrap());
    for run in &all {
        let expected_end = match run.id.as_str() {
            "r1" | "r2" => {
                assert_ne!(
                    run.reason.as_deref(),
                    Some("server_shutdown"),
                    "{b}: finished run untouched"
                );
                continue;
            }
            "r3" | "r4" => mark,
            "r-old" => h - 1,
            "m1" => h + 10,
            other => panic!("{b}: unexpected run {other}"),
        };
        assert_eq!(run.ended_at_ms, Some(expected_end), "{b}: {}", run.id);
        assert_eq!(
            run.reason.as_deref(),
            Some("server_shutdown"),
            "{b}: {}",
            run.id
        );
    }
    assert_eq!(
        r1,
        all.iter().find(|r| r.id == "r1").unwrap(),
        "{b}: r1 unchanged"
    );
    assert_eq!(
        store.close_dangling_runs("i1").await.unwrap(),
        0,
        "{b}: nothing left open"
    );
}

/// `apply_records`: the record writer's one entry point. Order within a batch,
/// skips instead of errors, idempotent replays, and big liveness marks.
async fn records(store: &DynStore, b: &str) {
    let alice = store.user_by_username("alice").await.unwrap().unwrap();
    let mike = store.user_by_username("mike").await.unwrap().unwrap();
    let t = 1_800_000_000_000_i64;
    let alive = |at_ms: i64, ids: &[&str]| Record::RunsAlive {
        at_ms,
        run_ids: ids.iter().map(|s| s.to_string()).collect(),
    };
    let finish = |at: i64, reason: EndReason, code: Option<i32>| RunFinish {
        ended_at_ms: at,
        reason,
        exit_code: code,
        cpu_ms: 12,
        peak_memory_bytes: 3 << 20,
        output_bytes: 99,
    };
    let batch = vec![
        Record::RunStarted(new_run("j1", alice.id, t)),
        Record::RunStarted(NewRun {
            mode: RunMode::Repl,
            path: String::new(),
            ..new_run("j2", mike.id, t + 1)
        }),
        Record::Audit {
            at_ms: t + 2,
            entry: NewAudit {
                actor_id: Some(alice.id),
                actor: Some("alice".into()),
                action: "test.journal".into(),
                target: Some("workspace:1".into()),
                detail: Some("replayed".into()),
                ip: Some("127.0.0.1".into()),
            },
        },
        alive(t + 10, &["j1", "j2"]),
        Record::RunFinished {
            run_id: "j1".into(),
            finish: finish(t + 20, EndReason::Exited, Some(0)),
        },
        // After j1's end: only j2 moves.
        alive(t + 30, &["j1", "j2"]),
        // Skipped, not errors: unknown user, unknown run, an older mark.
        Record::RunStarted(new_run("ghost", i64::MAX, t)),
        Record::RunFinished {
            run_id: "no-such-run".into(),
            finish: finish(t, EndReason::Stopped, None),
        },
        alive(t + 5, &["j2", "no-such-run"]),
    ];
    store.apply_records(&batch).await.unwrap();
    store.apply_records(&[]).await.unwrap();

    let check = |alice_runs: &[campus_server::store::RunRecord],
                 mike_runs: &[campus_server::store::RunRecord]| {
        let j1 = alice_runs.iter().find(|r| r.id == "j1").unwrap();
        assert_eq!(
            (j1.started_at_ms, j1.ended_at_ms, j1.last_seen_ms),
            (t, Some(t + 20), Some(t + 20)),
            "{b}: j1"
        );
        assert_eq!(
            (
                j1.reason.as_deref(),
                j1.exit_code,
                j1.cpu_ms,
                j1.output_bytes
            ),
            (Some("exited"), Some(0), Some(12), Some(99)),
            "{b}: j1 finish"
        );
        let j2 = mike_runs.iter().find(|r| r.id == "j2").unwrap();
        assert_eq!(
            (j2.mode.as_str(), j2.ended_at_ms, j2.last_seen_ms),
            ("repl", None, Some(t + 30)),
            "{b}: j2 open, marked, never moved back"
        );
    };
    let alice_runs = store.recent_runs(alice.id, 100).await.unwrap();
    let mike_runs = store.recent_runs(mike.id, 100).await.unwrap();
    check(&alice_runs, &mike_runs);
    assert!(
        !alice_runs
            .iter()
            .any(|r| r.id == "ghost" || r.id == "no-such-run"),
        "{b}: skipped records wrote nothing"
    );
    let audit = store.recent_audit(Some("test.journal"), 10).await.unwrap();
    assert_eq!(audit.len(), 1, "{b}: {audit:?}");
    assert_eq!(
        (
            audit[0].at_ms,
            audit[0].actor.as_deref(),
            audit[0].detail.as_deref()
        ),
        (t + 2, Some("alice"), Some("replayed")),
        "{b}: the audit entry keeps the time it happened"
    );

    // A replay (journal after a crash) leaves the run history as it was.
    store.apply_records(&batch).await.unwrap();
    assert_eq!(
        store.recent_runs(alice.id, 100).await.unwrap(),
        alice_runs,
        "{b}: replay"
    );
    assert_eq!(
        store.recent_runs(mike.id, 100).await.unwrap(),
        mike_runs,
        "{b}: replay"
    );

    // A start replayed after the crash repair closed the run changes nothing;
    // a real end arriving later (from the journal) wins over the repair.
    assert_eq!(store.close_dangling_runs("i1").await.unwrap(), 1, "{b}: j2");
    store
        .apply_records(&[
            Record::RunStarted(new_run("j2", mike.id, t + 1)),
            alive(t + 40, &["j2"]),
        ])
        .await
        .unwrap();
    let j2 = store.recent_runs(mike.id, 100).await.unwrap();
    let j2 = j2.iter().find(|r| r.id == "j2").unwrap();
    assert_eq!(
        (j2.ended_at_ms, j2.reason.as_deref(), j2.last_seen_ms),
        (Some(t + 30), Some("server_shutdown"), Some(t + 30)),
        "{b}: repaired at its last mark; a later mark does not reopen or move it"
    );
    store
        .apply_records(&[Record::RunFinished {
            run_id: "j2".into(),
            finish: finish(t + 35, EndReason::Stopped, None),
        }])
        .await
        .unwrap();
    let j2 = store.recent_runs(mike.id, 100).await.unwrap();
    let j2 = j2.iter().find(|r| r.id == "j2").unwrap();
    assert_eq!(
        (j2.ended_at_ms, j2.reason.as_deref()),
        (Some(t + 35), Some("stopped")),
        "{b}: the real end replaces the repair"
    );

    // Many live runs in one mark (SQLite binds them in chunks).
    let ids: Vec<String> = (0..1_200).map(|i| format!("bulk-{i:04}")).collect();
    let mut bulk: Vec<Record> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Record::RunStarted(new_run(id, alice.id, t + 100 + i as i64)))
        .collect();
    bulk.push(Record::RunsAlive {
        at_ms: t + 5_000,
        run_ids: ids.clone(),
    });
    store.apply_records(&bulk).await.unwrap();
    let runs = store.recent_runs(alice.id, 2_000).await.unwrap();
    let marked = runs
        .iter()
        .filter(|r| r.id.starts_with("bulk-") && r.last_seen_ms == Some(t + 5_000))
        .count();
    assert_eq!(marked, ids.len(), "{b}: every run of a big mark");
    assert_eq!(store.close_dangling_runs("i1").await.unwrap(), 1_200, "{b}");

    // A batch the database refuses for something in it (an audit entry naming
    // an unknown actor id breaks its foreign key) is all-or-nothing, and the
    // error is not mistaken for the database being unreachable.
    let refused = store
        .apply_records(&[
            Record::RunStarted(new_run("atomic", alice.id, t)),
            Record::Audit {
                at_ms: t,
                entry: NewAudit {
                    actor_id: Some(i64::MAX),
                    action: "test.refused".into(),
                    ..NewAudit::default()
                },
            },
        ])
        .await;
    match refused {
        Err(e) => assert!(!e.is_unavailable(), "{b}: {e:?}"),
        Ok(()) => panic!("{b}: a record with a dangling foreign key was accepted"),
    }
    let runs = store.recent_runs(alice.id, 2_000).await.unwrap();
    assert!(
        !runs.iter().any(|r| r.id == "atomic"),
        "{b}: half a batch was written"
    );
}

/// A database nobody answers for is "unavailable" (retry later), never a
/// request error: the record writer keeps its records for such errors.
#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    // A loopback port with nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = PoolSettings {
        acquire_timeout: std::time::Duration::from_secs(1),
        ..PoolSettings::default()
    };
    match connect(
        &format!("postgres://nobody:x@127.0.0.1:{port}/none"),
        &settings,
    )
    .await
    {
        Err(e) => assert!(e.is_unavailable(), "{e:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    assert!(StoreError::Unavailable.is_unavailable());
    assert!(!StoreError::NotFound.is_unavailable());
    assert!(!StoreError::Conflict.is_unavailable());
}

#[tokio::test]
async fn unknown_scheme_is_a_named_error() {
    for url in [
        "mysql://root@localhost/campus",
        "campus.db",
        "file:///tmp/x.db",
    ] {
        match connect(url, &PoolSettings::default()).await {
            Err(StoreError::UnknownScheme(_)) => {}
            other => panic!("{url}: expected UnknownScheme, got {other:?}"),
        }
    }
    match connect("mysql://u:secret@h/db", &PoolSettings::default()).await {
        Err(e @ StoreError::UnknownScheme(_)) => {
            assert!(
                !e.to_string().contains("secret"),
                "the message must not echo the URL"
            );
        }
        other => panic!("expected UnknownScheme, got {other:?}"),
    }
}

/// 20 concurrent `create_user` calls with distinct names all succeed. They are
/// spread over two independent stores on the same database, as a server and
/// the `campus user add` CLI would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_all_succeed() {
    for db in db::test_databases().await {
        let b = db.backend;
        let stores = [open(&db).await, open(&db).await];
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let store = Arc::clone(&stores[i % 2]);
            tasks.spawn(async move {
                store
                    .create_user(new_user(&format!("u{i:02}"), Role::Student))
                    .await
            });
        }
        let mut ids = BTreeSet::new();
        while let Some(joined) = tasks.join_next().await {
            let user = joined
                .unwrap()
                .unwrap_or_else(|e| panic!("{b}: concurrent create: {e}"));
            ids.insert(user.id);
        }
        assert_eq!(ids.len(), 20, "{b}: distinct ids");
        let names: Vec<String> = stores[0]
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("u{i:02}")).collect();
        assert_eq!(names, expected, "{b}");
        for store in stores {
            store.close().await;
        }
    }
}

/// Concurrent `connect`s on a fresh database all succeed: migrations are
/// serialized (flock for SQLite, advisory lock for PostgreSQL), not raced.
/// Four rather than two racers make a lost race far likelier to show up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_connects_on_fresh_database() {
    for db in db::test_databases().await {
        let b = db.backend;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let url = db.url.clone();
            tasks.spawn(async move { connect(&url, &PoolSettings::default()).await });
        }
        let mut stores = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            stores.push(
                joined
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{b}: racing connect: {e}")),
            );
        }
        let made = stores[0]
            .create_user(new_user("racer", Role::Admin))
            .await
            .unwrap();
        for store in &stores {
            assert_eq!(
                store.user_by_username("racer").await.unwrap(),
                Some(made.clone()),
                "{b}"
            );
        }
        for store in stores {
            store.close().await;
        }
    }
}

fn section(folder: &str, position: i64) -> SectionFields {
    SectionFields {
        folder: folder.into(),
        title: format!("Section {folder}"),
        kind: "notes".into(),
        position,
        published: false,
        release_at_ms: None,
        close_at_ms: None,
    }
}

/// The `Courses` aggregate: every write moves the generation; the catalog
/// reads back exactly what was written; a roster applies wholly or not at all.
async fn courses(store: &DynStore, b: &str) {
    let users = store.list_users().await.unwrap();
    let id_of = |n: &str| users.iter().find(|u| u.username == n).unwrap().id;
    let (alice, mike) = (id_of("alice"), id_of("mike"));

    let empty = store.load_catalog().await.unwrap();
    assert!(empty.courses.is_empty(), "{b}");
    let mut generation = store.catalog_generation().await.unwrap();
    assert_eq!(generation, empty.generation, "{b}");
    let mut moved = || {
        generation += 1;
        generation
    };

    let new = |slug: &str| NewCourse {
        slug: slug.into(),
        title: format!("Course {slug}"),
        term: "2026 Fall".into(),
    };
    let cs = store.create_course(new("cs101")).await.unwrap();
    assert_eq!(store.catalog_generation().await.unwrap(), moved(), "{b}");
    let ma = store.create_course(new("ma201")).await.unwrap();
    assert_eq!(store.catalog_generation().await.unwrap(), moved(), "{b}");
    assert!(
        matches!(
            store.create_course(new("cs101")).await,
            Err(StoreError::Conflict)
        ),
        "{b}: slugs are unique"
    );
    assert_eq!(
        store.catalog_generation().await.unwrap(),
        generation,
        "{b}: a refusal changes nothing"
    );

    store
        .set_member(cs.id, mike, CourseRole::Professor)
        .await
        .unwrap();
    store
        .set_member(cs.id, alice, CourseRole::Ta)
        .await
        .unwrap();
    store
        .set_member(cs.id, alice, CourseRole::Student)
        .await
        .unwrap();
    generation += 3;
    assert!(matches!(
        store.set_member(cs.id, 999_999, CourseRole::Student).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.remove_member(ma.id, alice).await,
        Err(StoreError::NotFound)
    ));

    let s1 = store
        .create_section(cs.id, section("week1", 2))
        .await
        .unwrap();
    let s0 = store
        .create_section(cs.id, section("intro", 1))
        .await
        .unwrap();
    assert!(
        matches!(
            store.create_section(cs.id, section("week1", 3)).await,
            Err(StoreError::Conflict)
        ),
        "{b}: one section per folder"
    );
    let other = store
        .create_section(ma.id, section("week1", 1))
        .await
        .unwrap();
    let published = SectionFields {
        published: true,
        release_at_ms: Some(1_000),
        close_at_ms: Some(9_000),
        ..section("week-1", 2)
    };
    let s1u = store
        .update_section(s1.id, published.clone())
        .await
        .unwrap();
    assert_eq!(
        (s1u.folder.as_str(), s1u.published, s1u.release_at_ms),
        ("week-1", true, Some(1_000))
    );
    assert!(matches!(
        store.update_section(999_999, published).await,
        Err(StoreError::NotFound)
    ));
    generation += 4;
    store
        .set_exception(SectionException {
            section_id: s1.id,
            user_id: alice,
            release_at_ms: None,
            close_at_ms: Some(20_000),
        })
        .await
        .unwrap();
    store
        .set_exception(SectionException {
            section_id: s1.id,
            user_id: alice,
            release_at_ms: Some(500),
            close_at_ms: Some(30_000),
        })
        .await
        .unwrap();
    generation += 2;
    assert_eq!(store.catalog_generation().await.unwrap(), generation, "{b}");

    let cat = store.load_catalog().await.unwrap();
    assert_eq!(cat.generation, generation, "{b}");
    let slugs: Vec<_> = cat.courses.iter().map(|c| c.slug.as_str()).collect();
    assert_eq!(slugs, ["cs101", "ma201"], "{b}");
    assert_eq!(cat.courses[0], cs, "{b}");
    let roles: Vec<_> = cat
        .members
        .iter()
        .map(|m| (m.course_id, m.user_id, m.role))
        .collect();
    let mut want = vec![
        (cs.id, mike, CourseRole::Professor),
        (cs.id, alice, CourseRole::Student),
    ];
    want.sort();
    assert_eq!(roles, want, "{b}: a second set changes the role");
    let order: Vec<_> = cat
        .sections
        .iter()
        .map(|s| (s.course_id, s.folder.as_str()))
        .collect();
    assert_eq!(
        order,
        [(cs.id, "intro"), (cs.id, "week-1"), (ma.id, "week1")],
        "{b}"
    );
    assert_eq!(cat.sections[0], s0, "{b}");
    assert_eq!(
        cat.exceptions,
        [SectionException {
            section_id: s1.id,
            user_id: alice,
            release_at_ms: Some(500),
            close_at_ms: Some(30_000)
        }],
        "{b}: a second exception replaces the first"
    );

    // A roster naming an unknown user applies nothing, not even its new accounts.
    let bad = RosterChange {
        new_accounts: vec![new_user("newbie", Role::Student)],
        members: vec![
            ("newbie".into(), CourseRole::Student),
            ("nobody-at-all".into(), CourseRole::Student),
        ],
    };
    assert!(
        matches!(
            store.apply_roster(ma.id, bad).await,
            Err(StoreError::NotFound)
        ),
        "{b}"
    );
    assert!(
        store.user_by_username("newbie").await.unwrap().is_none(),
        "{b}: all or nothing"
    );
    assert_eq!(store.catalog_generation().await.unwrap(), generation, "{b}");
    let good = RosterChange {
        new_accounts: vec![new_user("newbie", Role::Student)],
        members: vec![
            ("newbie".into(), CourseRole::Student),
            ("alice".into(), CourseRole::Ta),
        ],
    };
    let created = store.apply_roster(ma.id, good).await.unwrap();
    let newbie = store.user_by_username("newbie").await.unwrap().unwrap();
    assert_eq!(created, [newbie.id], "{b}");
    generation += 1;

    store.remove_exception(s1.id, alice).await.unwrap();
    assert!(matches!(
        store.remove_exception(s1.id, alice).await,
        Err(StoreError::NotFound)
    ));
    store
        .set_exception(SectionException {
            section_id: s1.id,
            user_id: alice,
            release_at_ms: Some(1),
            close_at_ms: None,
        })
        .await
        .unwrap();
    // Unenrolling drops the student's exceptions in that course only.
    store.remove_member(cs.id, alice).await.unwrap();
    store.delete_section(s0.id).await.unwrap();
    assert!(matches!(
        store.delete_section(s0.id).await,
        Err(StoreError::NotFound)
    ));
    generation += 4;
    let cat = store.load_catalog().await.unwrap();
    assert_eq!(cat.generation, generation, "{b}");
    assert!(cat.exceptions.is_empty(), "{b}");
    let members: Vec<_> = cat
        .members
        .iter()
        .map(|m| (m.course_id, m.user_id, m.role))
        .collect();
    let mut want = vec![
        (cs.id, mike, CourseRole::Professor),
        (ma.id, alice, CourseRole::Ta),
        (ma.id, newbie.id, CourseRole::Student),
    ];
    want.sort();
    assert_eq!(members, want, "{b}");

    // Deleting a course takes its members and sections with it.
    store.delete_course(ma.id).await.unwrap();
    assert!(matches!(
        store.delete_course(ma.id).await,
        Err(StoreError::NotFound)
    ));
    let cat = store.load_catalog().await.unwrap();
    assert_eq!(cat.generation, generation + 1, "{b}");
    assert!(cat.members.iter().all(|m| m.course_id == cs.id), "{b}");
    assert!(cat.sections.iter().all(|s| s.id != other.id), "{b}");
    assert_eq!(cat.sections.len(), 1, "{b}");
}

/// The `Grading` aggregate: an assignment with test files; a submission is
/// its own job — refused by the rules in its transaction, claimed once with
/// a lease, finished only by the lease's holder, re-queued by a re-grade —
/// and the gradebook and statistics are one query each.
async fn grading(store: &DynStore, b: &str) {
    let course = store
        .create_course(NewCourse {
            slug: "gr101".into(),
            title: "Grading".into(),
            term: "2026 Fall".into(),
        })
        .await
        .unwrap();
    let sec = store
        .create_section(course.id, section("hw1", 0))
        .await
        .unwrap();
    let s1 = store
        .create_user(new_user("gstudent1", Role::Student))
        .await
        .unwrap();
    let s2 = store
        .create_user(new_user("gstudent2", Role::Student))
        .await
        .unwrap();
    for u in [&s1, &s2] {
        store
            .set_member(course.id, u.id, CourseRole::Student)
            .await
            .unwrap();
    }
    assert_eq!(
        store.assignment_of_section(sec.id).await.unwrap(),
        None,
        "{b}"
    );
    let a = store.set_assignment(sec.id, "{}", 1).await.unwrap();
    let a2 = store.set_assignment(sec.id, "{\"x\":1}", 2).await.unwrap();
    assert_eq!(
        (a2.id, a2.config.as_str()),
        (a.id, "{\"x\":1}"),
        "{b}: upsert"
    );
    assert_eq!(store.assignment(a.id).await.unwrap(), a2, "{b}");
    store
        .put_assignment_file(a.id, "test_a.py", b"def test_x(): pass\n")
        .await
        .unwrap();
    store
        .put_assignment_file(a.id, "test_a.py", b"def test_y(): pass\n")
        .await
        .unwrap();
    store
        .put_assignment_file(a.id, "test_b.py", &[0, 159, 255])
        .await
        .unwrap();
    let files = store.assignment_files(a.id).await.unwrap();
    assert_eq!(files.len(), 2, "{b}");
    assert_eq!(files[0].1, b"def test_y(): pass\n", "{b}: replaced");
    assert_eq!(files[1].1, vec![0, 159, 255], "{b}: bytes kept");
    store
        .delete_assignment_file(a.id, "test_b.py")
        .await
        .unwrap();
    assert!(
        matches!(
            store.delete_assignment_file(a.id, "test_b.py").await,
            Err(StoreError::NotFound)
        ),
        "{b}"
    );

    let rules = SubmitRules {
        max_attempts: Some(2),
        per_day: Some(10),
        day_start_ms: 0,
        queue_max: 100,
    };
    let new = |user_id: i64, at_ms: i64| NewSubmission {
        assignment_id: a.id,
        user_id,
        at_ms,
        files_hash: format!("hash{at_ms}"),
        late: at_ms > 1000,
    };
    let first = store
        .create_submission(&new(s1.id, 10), &rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.attempt, first.status, first.late),
        (1, SubmissionStatus::Queued, false),
        "{b}"
    );
    assert_eq!(
        store
            .create_submission(&new(s1.id, 11), &rules)
            .await
            .unwrap(),
        Err(SubmitRefused::InFlight),
        "{b}: one in flight"
    );
    let other = store
        .create_submission(&new(s2.id, 12), &rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.queued_ids().await.unwrap(),
        vec![(first.id, s1.id), (other.id, s2.id)],
        "{b}"
    );

    // Claimed once, oldest first; an expired lease can be taken over.
    let c = store
        .claim_submission("w1", 100, 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.id, c.status),
        (first.id, SubmissionStatus::Running),
        "{b}"
    );
    let c2 = store
        .claim_submission("w2", 100, 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2.id, other.id, "{b}");
    assert_eq!(
        store.claim_submission("w3", 100, 200).await.unwrap(),
        None,
        "{b}: nothing left"
    );
    assert!(store.renew_lease(first.id, "w1", 300).await.unwrap(), "{b}");
    assert!(
        !store.renew_lease(first.id, "w2", 300).await.unwrap(),
        "{b}: not w2's"
    );
    let taken = store
        .claim_submission("w3", 250, 400)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, other.id, "{b}: w2's lease expired at 200");
    let result = |score: f64| GradeResult {
        score,
        max_score: 3.0,
        summary: "{}".into(),
        results: vec![
            ResultRow {
                name: "t::a".into(),
                outcome: "passed".into(),
                points: 1.0,
                max_points: 1.0,
                visibility: "visible".into(),
                message: String::new(),
                duration_ms: 5,
            },
            ResultRow {
                name: "t::b".into(),
                outcome: "failed".into(),
                points: 0.0,
                max_points: 2.0,
                visibility: "hidden".into(),
                message: "assert 1 == 2".into(),
                duration_ms: 7,
            },
        ],
        at_ms: 500,
    };
    assert!(
        !store
            .finish_submission(other.id, "w2", &result(1.0))
            .await
            .unwrap(),
        "{b}: w2 lost it"
    );
    assert!(
        store
            .finish_submission(other.id, "w3", &result(1.0))
            .await
            .unwrap(),
        "{b}"
    );
    assert!(
        store
            .finish_submission(first.id, "w1", &result(1.0))
            .await
            .unwrap(),
        "{b}"
    );
    assert!(
        !store
            .finish_submission(first.id, "w1", &result(1.0))
            .await
            .unwrap(),
        "{b}: once"
    );
    let (sub, rows) = store.submission(first.id).await.unwrap();
    assert_eq!(
        (sub.status, sub.score, sub.max_score),
        (SubmissionStatus::Graded, Some(1.0), Some(3.0)),
        "{b}"
    );
    assert_eq!(rows.len(), 2, "{b}");
    assert_eq!(rows[1].message, "assert 1 == 2", "{b}");

    // Second attempt, late; then the limit.
    let second = store
        .create_submission(&new(s1.id, 2000), &rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.attempt, second.late), (2, true), "{b}");
    let c = store
        .claim_submission("w1", 2000, 3000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, second.id, "{b}");
    // A platform failure goes back to the queue, then fails for good.
    assert!(
        store
            .requeue_submission(second.id, "w1", 2, "{}")
            .await
            .unwrap(),
        "{b}"
    );
    assert_eq!(
        store.submission(second.id).await.unwrap().0.status,
        SubmissionStatus::Queued,
        "{b}"
    );
    store
        .claim_submission("w1", 2000, 3000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .requeue_submission(second.id, "w1", 2, "{}")
            .await
            .unwrap(),
        "{b}"
    );
    assert_eq!(
        store.submission(second.id).await.unwrap().0.status,
        SubmissionStatus::Failed,
        "{b}"
    );
    // A failed one is not an attempt: one is left.
    let third = store
        .create_submission(&new(s1.id, 2100), &rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.attempt, 3, "{b}");
    store
        .claim_submission("w1", 2100, 3000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .finish_submission(third.id, "w1", &result(2.5))
            .await
            .unwrap(),
        "{b}"
    );
    assert_eq!(
        store
            .create_submission(&new(s1.id, 2200), &rules)
            .await
            .unwrap(),
        Err(SubmitRefused::NoAttemptsLeft),
        "{b}"
    );
    let tight = SubmitRules {
        queue_max: 0,
        ..rules.clone()
    };
    assert_eq!(
        store
            .create_submission(&new(s2.id, 2300), &tight)
            .await
            .unwrap(),
        Err(SubmitRefused::QueueFull),
        "{b}"
    );
    let daily = SubmitRules {
        per_day: Some(1),
        day_start_ms: 0,
        ..rules.clone()
    };
    assert_eq!(
        store
            .create_submission(&new(s2.id, 2300), &daily)
            .await
            .unwrap(),
        Err(SubmitRefused::DailyLimit),
        "{b}"
    );
    let mine = store.submissions_of(a.id, s1.id).await.unwrap();
    assert_eq!(
        mine.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        vec![3, 2, 1],
        "{b}: newest first"
    );

    // One query each.
    let book = store.gradebook(course.id, a.id).await.unwrap();
    assert_eq!(book.len(), 2, "{b}");
    assert_eq!(
        (
            book[0].username.as_str(),
            book[0].best,
            book[0].attempts,
            book[0].late
        ),
        ("gstudent1", Some(2.5), 2, true),
        "{b}"
    );
    assert_eq!(book[0].last.map(|l| l.0), Some(third.id), "{b}");
    assert_eq!(
        (book[1].best, book[1].attempts, book[1].late),
        (Some(1.0), 1, false),
        "{b}"
    );
    // A student's progress: one line per assignment of the course.
    let p1 = store.progress(course.id, s1.id).await.unwrap();
    assert_eq!(p1.len(), 1, "{b}");
    assert_eq!(
        (p1[0].section_id, p1[0].best, p1[0].attempts, p1[0].late),
        (sec.id, Some(2.5), 2, true),
        "{b}"
    );
    assert_eq!(
        p1[0].last.map(|l| (l.0, l.1)),
        Some((third.id, SubmissionStatus::Graded)),
        "{b}"
    );
    assert_eq!(p1[0].max_score, Some(3.0), "{b}");
    let nobody = store.progress(course.id, 0).await.unwrap();
    assert_eq!(
        (
            nobody.len(),
            nobody[0].best,
            nobody[0].attempts,
            nobody[0].last
        ),
        (1, None, 0, None),
        "{b}: an assignment without submissions is listed too"
    );
    assert_eq!(
        nobody[0].max_score,
        Some(3.0),
        "{b}: worth what the assignment's last graded submission was"
    );
    let stats = store.test_stats(a.id).await.unwrap();
    assert_eq!(
        stats
            .iter()
            .map(|t| (t.name.as_str(), t.runs, t.passed))
            .collect::<Vec<_>>(),
        vec![("t::a", 3, 3), ("t::b", 3, 0)],
        "{b}"
    );

    // Re-grade: every graded (and failed) one queued again, twice is the same.
    assert_eq!(store.regrade_assignment(a.id).await.unwrap(), 4, "{b}");
    assert_eq!(
        store.regrade_assignment(a.id).await.unwrap(),
        0,
        "{b}: idempotent"
    );
    assert_eq!(store.queued_ids().await.unwrap().len(), 4, "{b}");
    let book = store.gradebook(course.id, a.id).await.unwrap();
    assert_eq!(
        book[0].best,
        Some(2.5),
        "{b}: a re-grade keeps the grade until replaced"
    );
    // A re-grade the platform cannot do falls back to the old grade, never `failed`.
    let c = store
        .claim_submission("wr", 4000, 4500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, first.id, "{b}");
    assert!(
        store
            .requeue_submission(first.id, "wr", 1, "{\"lost\":1}")
            .await
            .unwrap(),
        "{b}"
    );
    let (back, _) = store.submission(first.id).await.unwrap();
    assert_eq!(
        (back.status, back.score, back.summary.as_deref()),
        (SubmissionStatus::Graded, Some(1.0), Some("{}")),
        "{b}"
    );
    assert_eq!(store.regrade_assignment(a.id).await.unwrap(), 1, "{b}");
    // Eight submits at once for one last attempt: exactly one is accepted
    // (a collision on the attempt number is tried again, as the service does).
    let s3 = store
        .create_user(new_user("gstudent3", Role::Student))
        .await
        .unwrap();
    let one = SubmitRules {
        max_attempts: Some(1),
        ..rules.clone()
    };
    let tries = (0..8).map(|i| {
        let (store, one) = (Arc::clone(store), one.clone());
        let sub = new(s3.id, 7000 + i);
        tokio::spawn(async move {
            loop {
                match store.create_submission(&sub, &one).await {
                    Err(StoreError::Conflict) => continue,
                    // SQLite under write contention may report itself busy: try again too.
                    Err(e) if e.is_unavailable() => continue,
                    other => return other.unwrap(),
                }
            }
        })
    });
    let mut accepted = 0;
    for t in tries {
        if t.await.unwrap().is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(
        accepted, 1,
        "{b}: concurrent submits took more than the last attempt"
    );
    // A restart gives running ones back.
    store
        .claim_submission("w9", 5000, 6000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.requeue_running().await.unwrap(), 1, "{b}");
    assert_eq!(store.queued_ids().await.unwrap().len(), 5, "{b}");
}
