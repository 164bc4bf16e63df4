//! Many writers at once on one workspace: the write lock makes check-and-rename atomic.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use common::*;
use workspace_fs::{FsError, Precondition, Usage};

const WRITERS: usize = 20;

fn content(i: usize) -> Vec<u8> {
    format!("writer {i:02} says hello\n")
        .repeat(100)
        .into_bytes()
}

#[test]
fn twenty_overwrites_keep_exactly_one_and_history_holds_the_rest() {
    let f = fixture();
    f.ws.write("shared.py", b"initial", Precondition::CreateOnly)
        .unwrap();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let ws = f.ws.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                ws.write("shared.py", &content(i), Precondition::Overwrite)
                    .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let versions: BTreeSet<_> = outcomes
        .iter()
        .map(|o| o.entry.version.clone().unwrap())
        .collect();
    assert_eq!(versions.len(), WRITERS, "every write got its own version");

    let (final_bytes, final_entry) = f.ws.read("shared.py").unwrap();
    let all: BTreeSet<Vec<u8>> = (0..WRITERS).map(content).collect();
    assert!(
        all.contains(&final_bytes),
        "final content is exactly one of the writes"
    );
    assert!(versions.contains(&final_entry.version.clone().unwrap()));

    // 21 contents existed (initial + 20); the current one plus 20 in history = all of them.
    let history = f.ws.list_versions("shared.py").unwrap();
    assert_eq!(history.len(), 20);
    let mut seen: BTreeSet<Vec<u8>> = history
        .iter()
        .map(|v| f.ws.read_version("shared.py", &v.version).unwrap())
        .collect();
    seen.insert(final_bytes);
    let mut expected = all;
    expected.insert(b"initial".to_vec());
    assert_eq!(seen, expected);
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: content(0).len() as u64,
            entries: 1
        }
    );
    assert_eq!(
        raw_names(&f.tree()),
        vec!["shared.py"],
        "no temporaries left"
    );
}

#[test]
fn twenty_conditional_writes_on_one_base_have_exactly_one_winner() {
    let f = fixture();
    let base =
        f.ws.write("doc.md", b"base", Precondition::CreateOnly)
            .unwrap()
            .entry
            .version
            .unwrap();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let ws = f.ws.clone();
            let b = barrier.clone();
            let base = base.clone();
            std::thread::spawn(move || {
                b.wait();
                ws.write("doc.md", &content(i), Precondition::Match(base))
                    .map(|o| (i, o))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1);
    let (wi, wout) = winners[0];
    for r in &results {
        match r {
            Ok(_) => {}
            Err(FsError::Conflict { current_version }) => {
                assert_eq!(current_version, &wout.entry.version)
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(f.ws.read("doc.md").unwrap().0, content(*wi));
    let history = f.ws.list_versions("doc.md").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].version, base);
}

#[test]
fn twenty_create_only_writers_one_wins() {
    let f = fixture();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let ws = f.ws.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                ws.write("new/file.txt", &content(i), Precondition::CreateOnly)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(_)
            | Err(FsError::Conflict {
                current_version: Some(_)
            })
    )));
    assert_eq!(f.ws.usage().entries, 2);
}

#[test]
fn parallel_writers_of_distinct_files_keep_exact_usage() {
    let f = fixture();
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let ws = f.ws.clone();
            std::thread::spawn(move || {
                for j in 0..5 {
                    ws.write(
                        &format!("d{}/f{i}_{j}", i % 3),
                        &content(i),
                        Precondition::CreateOnly,
                    )
                    .unwrap();
                }
                ws.delete(&format!("d{}/f{i}_0", i % 3)).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let tracked = f.ws.usage();
    assert_eq!(tracked, f.ws.rescan().unwrap());
    assert_eq!(tracked.entries, 3 + WRITERS as u64 * 4);
}
