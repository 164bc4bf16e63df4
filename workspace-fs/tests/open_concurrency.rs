//! Opening is per workspace: a slow cold open (a large tree to scan) never delays the cold
//! open of another workspace, concurrent opens of one workspace open it once, and a failed
//! open leaves nothing behind. (No timing is asserted: the tests look at what the registry
//! is doing while an open is in progress.)
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use workspace_fs::{Limits, Precondition, Workspaces};

/// Files in the large tree: its cold open takes hundreds of milliseconds (a scan of every
/// entry). The medium tree is a tenth of it.
const LARGE_DIRS: usize = 100;
const FILES_PER_DIR: usize = 300;

fn registry(dir: &Path) -> Workspaces {
    let limits = Limits {
        max_entries: 1_000_000,
        ..Limits::default()
    };
    Workspaces::new(dir.join("tree"), dir.join("meta"), limits).unwrap()
}

/// Fills `key`'s tree with `dirs` folders of files, directly on disk (as a run would), so
/// only a scan can count them; returns the entries.
fn tree(reg: &Workspaces, key: &str, dirs: usize) -> u64 {
    reg.open(key, None).unwrap();
    let root = reg.tree_path(key).unwrap();
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            std::fs::write(dir.join(format!("f{f:03}.txt")), b"x").unwrap();
        }
    }
    (dirs * (FILES_PER_DIR + 1)) as u64
}

fn large_tree(reg: &Workspaces, key: &str) -> u64 {
    tree(reg, key, LARGE_DIRS)
}

/// Waits (bounded) until `f` holds; false if `give_up` turned true first.
fn until(f: impl Fn() -> bool, give_up: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if f() {
            return true;
        }
        if give_up() {
            return false;
        }
        assert!(Instant::now() < deadline, "timed out");
        thread::yield_now();
    }
}

#[test]
fn a_slow_cold_open_does_not_delay_another_workspaces_open() {
    let dir = tempfile::tempdir().unwrap();
    let entries = large_tree(&registry(dir.path()), "big");
    // Not empty: if opens were serialized, the large open's last step (making it open) would
    // have all of this scan's time to happen before the check below, not a few microseconds.
    let medium = tree(&registry(dir.path()), "medium", LARGE_DIRS / 10);
    // Each attempt is a fresh registry (a server after the idle eviction): both are cold.
    // An attempt only counts if this thread saw the slow open in progress before it opened
    // the other workspace; a scheduler that let the whole scan finish first is retried.
    for _ in 0..20 {
        let reg = Arc::new(registry(dir.path()));
        let slow = {
            let reg = Arc::clone(&reg);
            thread::spawn(move || reg.open("big", None).unwrap())
        };
        if !until(|| reg.opening_len() == 1, || slow.is_finished()) {
            slow.join().unwrap();
            continue;
        }
        // Cold too: it has to be built, with the large open still in progress.
        let other = reg.open("medium", None).unwrap();
        assert_eq!(other.usage().entries, medium);
        assert_eq!(
            reg.opening_len(),
            1,
            "the medium workspace's open waited for the large one"
        );
        assert!(reg.get("big").is_none(), "the large one is open already");
        assert_eq!(reg.cached_len(), 1, "only the medium one is open yet");
        let big = slow.join().unwrap();
        assert_eq!(big.usage().entries, entries);
        assert_eq!(reg.opening_len(), 0);
        return;
    }
    panic!("the large open never stayed in progress long enough to be seen");
}

#[test]
fn concurrent_opens_of_one_workspace_open_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let entries = large_tree(&registry(dir.path()), "big");
    let reg = Arc::new(registry(dir.path()));
    let start = Arc::new(Barrier::new(8));
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let (reg, start) = (Arc::clone(&reg), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                reg.open("big", None).unwrap()
            })
        })
        .collect();
    let opened: Vec<_> = opens.into_iter().map(|t| t.join().unwrap()).collect();
    for ws in &opened {
        assert!(
            Arc::ptr_eq(ws, &opened[0]),
            "two instances of one workspace"
        );
    }
    assert_eq!(opened[0].usage().entries, entries);
    assert_eq!((reg.cached_len(), reg.opening_len()), (1, 0));
    // `get` answers the open instance, never building one.
    assert!(Arc::ptr_eq(&reg.get("big").unwrap(), &opened[0]));
    assert!(reg.get("other").is_none());
    assert_eq!(reg.cached_len(), 1);
}

#[test]
fn a_failed_open_is_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    // A file where the workspace's tree should be: the open cannot make it a directory.
    let tree = reg.tree_path("eve").unwrap();
    std::fs::write(&tree, b"not a folder").unwrap();
    assert!(reg.open("eve", None).is_err());
    assert_eq!((reg.cached_len(), reg.opening_len()), (0, 0));
    // Once the obstacle is gone the next open builds it normally.
    std::fs::remove_file(&tree).unwrap();
    let ws = reg.open("eve", None).unwrap();
    ws.write("a.txt", b"hi", Precondition::CreateOnly).unwrap();
    assert_eq!(reg.cached_len(), 1);
}

#[test]
fn the_start_up_sweep_skips_a_workspace_being_opened_and_sweeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let reg = registry(dir.path());
        large_tree(&reg, "big");
        reg.open("quiet", None).unwrap();
    }
    // A crash leftover in the closed workspace.
    let reg = Arc::new(registry(dir.path()));
    let quiet = reg.tree_path("quiet").unwrap();
    std::fs::write(quiet.join(".campus-tmp-leftover"), b"half a save").unwrap();
    let slow = {
        let reg = Arc::clone(&reg);
        thread::spawn(move || reg.open("big", None).unwrap())
    };
    let seen = until(|| reg.opening_len() == 1, || slow.is_finished());
    let report = reg
        .sweep_temporaries(Instant::now() + Duration::from_secs(60))
        .unwrap();
    slow.join().unwrap();
    assert!(report.complete);
    assert_eq!(report.removed, 1);
    assert!(!quiet.join(".campus-tmp-leftover").exists());
    // "big" was either being opened (skipped) or already open (skipped): never swept twice.
    assert_eq!(report.skipped_open, 1, "seen opening: {seen}");
    assert_eq!(report.workspaces, 1);
}
