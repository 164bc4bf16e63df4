//! The registry's cache: idle, unreferenced workspaces are evicted (closing their descriptors),
//! held ones never are, a re-open rebuilds the same state from disk and purges expired trash.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use workspace_fs::{Limits, Precondition, Usage, Workspaces};

const HOUR: Duration = Duration::from_secs(3600);

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn idle_unreferenced_workspace_is_evicted() {
    let f = fixture();
    let Fixture { dir: _dir, reg, ws } = f;
    drop(ws);
    assert_eq!(reg.cached_len(), 1);
    // Just used: not idle for an hour yet.
    assert_eq!(reg.evict_idle(HOUR), 0);
    assert_eq!(reg.cached_len(), 1);
    assert_eq!(reg.evict_idle(Duration::ZERO), 1);
    assert_eq!(reg.cached_len(), 0);
    assert_eq!(reg.evict_idle(Duration::ZERO), 0);
}

#[test]
fn held_workspace_is_never_evicted() {
    let f = fixture();
    assert_eq!(f.reg.evict_idle(Duration::ZERO), 0);
    assert_eq!(f.reg.cached_len(), 1);
    // Still the one instance: a re-open while held returns the same object.
    let again = f.reg.open("alice", None).unwrap();
    assert!(Arc::ptr_eq(&again, &f.ws));
    drop(again);
    assert_eq!(f.reg.evict_idle(Duration::ZERO), 0);
    f.ws.write("a.txt", b"still here", Precondition::CreateOnly)
        .unwrap();
    assert_eq!(f.ws.read("a.txt").unwrap().0, b"still here");
}

#[test]
fn pending_write_keeps_its_workspace_and_temp_file() {
    let f = fixture();
    let Fixture { dir: _dir, reg, ws } = f;
    let mut pending = ws
        .begin_write("big.bin", Precondition::CreateOnly, None)
        .unwrap();
    pending.write_chunk(b"first half, ").unwrap();
    drop(ws);
    // The pending write holds the workspace: no eviction, so no re-open sweeps its temp file.
    assert_eq!(reg.evict_idle(Duration::ZERO), 0);
    let ws = reg.open("alice", None).unwrap();
    drop(ws);
    pending.write_chunk(b"second half").unwrap();
    let out = pending.commit(23).unwrap();
    assert_eq!(out.entry.size, 23);
    assert_eq!(reg.evict_idle(Duration::ZERO), 1);
    let ws = reg.open("alice", None).unwrap();
    assert_eq!(ws.read("big.bin").unwrap().0, b"first half, second half");
}

#[test]
fn reopen_after_eviction_reports_correct_usage() {
    let f = fixture();
    let Fixture { dir: _dir, reg, ws } = f;
    ws.write("src/main.py", b"print('hi')\n", Precondition::CreateOnly)
        .unwrap();
    ws.write("notes.txt", &[b'x'; 1000], Precondition::CreateOnly)
        .unwrap();
    let before = ws.usage();
    assert_eq!(
        before,
        Usage {
            bytes: 1012,
            entries: 3
        }
    );
    drop(ws);
    assert_eq!(reg.evict_idle(Duration::ZERO), 1);

    let ws = reg.open("alice", None).unwrap();
    assert_eq!(ws.usage(), before);
    assert_eq!(ws.read("src/main.py").unwrap().0, b"print('hi')\n");
    // Counting goes on from the rescanned figure.
    ws.write("notes.txt", b"short", Precondition::Overwrite)
        .unwrap();
    assert_eq!(
        ws.usage(),
        Usage {
            bytes: 17,
            entries: 3
        }
    );
    assert_eq!(ws.rescan().unwrap(), ws.usage());
}

#[test]
fn eviction_closes_the_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Workspaces::new(
        dir.path().join("tree"),
        dir.path().join("meta"),
        Limits::default(),
    )
    .unwrap();
    let held: Vec<_> = (0..50)
        .map(|i| reg.open(&format!("student{i}"), None).unwrap())
        .collect();
    assert_eq!(reg.cached_len(), 50);
    let with_all_open = open_fds();
    drop(held);
    assert_eq!(reg.evict_idle(Duration::ZERO), 50);
    assert_eq!(reg.cached_len(), 0);
    let after = open_fds();
    // Three descriptors each; other tests of this binary run in parallel and open a few of
    // their own, hence the slack.
    assert!(
        with_all_open >= after + 100,
        "open fds: {with_all_open} with 50 workspaces cached, {after} after eviction"
    );
}

#[test]
fn expired_trash_is_purged_when_a_workspace_is_opened() {
    let f = fixture_with(Limits {
        trash_retention: Duration::ZERO,
        ..Limits::default()
    });
    let Fixture { dir: _dir, reg, ws } = f;
    ws.write("old.txt", b"bye", Precondition::CreateOnly)
        .unwrap();
    ws.delete("old.txt").unwrap();
    assert_eq!(ws.trash_list().unwrap().len(), 1);
    drop(ws);
    assert_eq!(reg.evict_idle(Duration::ZERO), 1);
    let ws = reg.open("alice", None).unwrap();
    assert!(ws.trash_list().unwrap().is_empty());
}

#[test]
fn unexpired_trash_survives_a_reopen() {
    let f = fixture();
    let Fixture { dir: _dir, reg, ws } = f;
    ws.write("keep.txt", b"maybe", Precondition::CreateOnly)
        .unwrap();
    let item = ws.delete("keep.txt").unwrap();
    drop(ws);
    assert_eq!(reg.evict_idle(Duration::ZERO), 1);
    let ws = reg.open("alice", None).unwrap();
    assert_eq!(ws.trash_list().unwrap(), vec![item.clone()]);
    ws.trash_restore(&item.trash_id, None).unwrap();
    assert_eq!(ws.read("keep.txt").unwrap().0, b"maybe");
}

#[test]
fn listing_the_cache_does_not_count_as_use() {
    let f = fixture();
    let Fixture { dir: _dir, reg, ws } = f;
    let bob = reg.open("bob", None).unwrap();
    let all = reg.cached();
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|w| Arc::ptr_eq(w, &ws)));
    assert!(all.iter().any(|w| Arc::ptr_eq(w, &bob)));
    // Held by `all`: nothing can go.
    drop((ws, bob));
    assert_eq!(reg.evict_idle(Duration::ZERO), 0);
    drop(all);
    // A periodic pass keeps listing the cache; both must still become idle.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut evicted = 0;
    while evicted < 2 {
        assert!(
            Instant::now() < deadline,
            "listing kept the workspaces alive"
        );
        drop(reg.cached());
        evicted += reg.evict_idle(Duration::from_millis(20));
        std::thread::yield_now();
    }
    assert_eq!(reg.cached_len(), 0);
}

#[test]
fn concurrent_opens_and_evictions_never_split_a_workspace() {
    let f = fixture();
    let Fixture { dir: _dir, reg, ws } = f;
    drop(ws);
    let reg = Arc::new(reg);
    let done = Arc::new(AtomicBool::new(false));
    let evictor = {
        let (reg, done) = (reg.clone(), done.clone());
        std::thread::spawn(move || {
            let mut evictions = 0;
            while !done.load(Ordering::Acquire) {
                evictions += reg.evict_idle(Duration::ZERO);
            }
            evictions
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let reg = reg.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let ws = reg.open("alice", None).unwrap();
                    // While one reference is held, every open returns that same instance.
                    let again = reg.open("alice", None).unwrap();
                    assert!(Arc::ptr_eq(&ws, &again));
                    drop(again);
                    ws.write(
                        &format!("t{t}/f{i}"),
                        b"0123456789",
                        Precondition::CreateOnly,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let evictions = evictor.join().unwrap();
    let ws = reg.open("alice", None).unwrap();
    // Two live instances would each count only their own writes.
    let expected = Usage {
        bytes: 4 * 100 * 10,
        entries: 4 + 4 * 100,
    };
    assert_eq!(ws.usage(), expected, "after {evictions} evictions");
    assert_eq!(ws.rescan().unwrap(), expected);
}
