//! Paged listings: every entry exactly once, in pre-order, pages bounded in entries and bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use workspace_fs::{FsError, ListPage, Precondition, MAX_PAGE_BYTES, MAX_PAGE_ENTRIES};

/// Every page of a listing, following the cursors.
fn all_pages(f: &Fixture, dir: &str, recursive: bool, per_page: usize) -> Vec<ListPage> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page =
            f.ws.list_page(dir, recursive, cursor.as_deref(), per_page)
                .unwrap();
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 10_000, "the cursor does not advance");
    }
}

#[test]
fn pages_cover_the_tree_once_in_pre_order() {
    let f = fixture();
    let tree = f.tree();
    // Names that sort around '/' ('-' and '.' sort before it): pre-order differs from a plain
    // sort of the paths there, which is what a cursor must get right.
    for d in ["a", "a/b", "a/b/c", "a-x", "z"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    for file in [
        "a.txt", "a/1", "a/b/2", "a/b/c/3", "a/b/c/4", "a-x/5", "z/6", "m",
    ] {
        std::fs::write(tree.join(file), b"x").unwrap();
    }
    let full: Vec<String> = all_pages(&f, "", true, MAX_PAGE_ENTRIES)
        .into_iter()
        .flat_map(|p| p.entries.into_iter().map(|e| e.path))
        .collect();
    assert_eq!(
        full,
        [
            "a", "a/1", "a/b", "a/b/2", "a/b/c", "a/b/c/3", "a/b/c/4", "a-x", "a-x/5", "a.txt",
            "m", "z", "z/6"
        ]
    );
    for per_page in 1..=full.len() + 1 {
        let pages = all_pages(&f, "", true, per_page);
        let paths: Vec<String> = pages
            .iter()
            .flat_map(|p| p.entries.iter().map(|e| e.path.clone()))
            .collect();
        assert_eq!(paths, full, "{per_page} per page");
        assert!(pages.iter().all(|p| p.entries.len() <= per_page));
        assert_eq!(pages.len(), full.len().div_ceil(per_page).max(1));
    }
    // A sub-folder, and a flat listing, page the same way.
    let sub: Vec<String> = all_pages(&f, "a/b", true, 2)
        .into_iter()
        .flat_map(|p| p.entries.into_iter().map(|e| e.path))
        .collect();
    assert_eq!(sub, ["a/b/2", "a/b/c", "a/b/c/3", "a/b/c/4"]);
    let flat: Vec<String> = all_pages(&f, "", false, 2)
        .into_iter()
        .flat_map(|p| p.entries.into_iter().map(|e| e.path))
        .collect();
    assert_eq!(flat, ["a", "a-x", "a.txt", "m", "z"]);
}

#[test]
fn changes_between_pages_never_repeat_an_entry() {
    let f = fixture();
    for i in 0..50 {
        f.ws.write(&format!("d/f{i:02}"), b"x", Precondition::CreateOnly)
            .unwrap();
    }
    let first = f.ws.list_page("", true, None, 10).unwrap();
    let cursor = first.next_cursor.clone().unwrap();
    assert_eq!(cursor, "d/f08");
    // The cursor's own entry goes away, one before it and one after it appear.
    f.ws.delete("d/f08").unwrap();
    f.ws.write("d/f00a", b"x", Precondition::CreateOnly)
        .unwrap();
    f.ws.write("d/f30a", b"x", Precondition::CreateOnly)
        .unwrap();
    let mut seen: Vec<String> = first.entries.into_iter().map(|e| e.path).collect();
    let mut cursor = Some(cursor);
    while let Some(c) = cursor {
        let p = f.ws.list_page("", true, Some(&c), 10).unwrap();
        seen.extend(p.entries.into_iter().map(|e| e.path));
        cursor = p.next_cursor;
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    assert!(seen.contains(&"d/f30a".to_string()) && !seen.contains(&"d/f00a".to_string()));
    assert_eq!(seen.first().map(String::as_str), Some("d"));
    assert_eq!(seen.last().map(String::as_str), Some("d/f49"));
}

#[test]
fn pages_are_bounded_in_bytes_and_entries() {
    let f = fixture();
    let tree = f.tree();
    // Long paths (~450 bytes): 1000 of them would be ~640 KiB as JSON, over the byte bound.
    let long = "n".repeat(240);
    let folder = format!("deep/{}", "d".repeat(200));
    std::fs::create_dir_all(tree.join(&folder)).unwrap();
    for i in 0..3000 {
        std::fs::write(tree.join(format!("{folder}/{long}{i:05}")), b"").unwrap();
    }
    let pages = all_pages(&f, "", true, usize::MAX);
    let total: usize = pages.iter().map(|p| p.entries.len()).sum();
    assert_eq!(total, 3002);
    for p in &pages {
        assert!(p.entries.len() <= MAX_PAGE_ENTRIES);
        assert!(p.approx_bytes() <= MAX_PAGE_BYTES, "{}", p.approx_bytes());
        let json = serde_json::to_vec(&p.entries).unwrap();
        assert!(json.len() <= MAX_PAGE_BYTES, "{} bytes of JSON", json.len());
    }
    // The byte bound, not the entry bound, ended the first page.
    assert!(
        pages[0].entries.len() < MAX_PAGE_ENTRIES,
        "{}",
        pages[0].entries.len()
    );
}

#[test]
fn foreign_cursors_are_refused() {
    let f = fixture();
    f.ws.write("a/x", b"x", Precondition::CreateOnly).unwrap();
    f.ws.write("b/y", b"x", Precondition::CreateOnly).unwrap();
    for (dir, recursive, cursor) in [
        ("a", true, "b/y"),
        ("a", true, "a"),
        ("", false, "a/x"),
        ("a", true, &*"x/".repeat(20_000)),
    ] {
        assert!(
            matches!(
                f.ws.list_page(dir, recursive, Some(cursor), 10),
                Err(FsError::InvalidPath(_))
            ),
            "{dir:?} {cursor:?}"
        );
    }
    // A cursor naming something that never existed still resumes at the right place.
    let p = f.ws.list_page("", true, Some("a/w"), 10).unwrap();
    let paths: Vec<String> = p.entries.into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["a/x", "b", "b/y"]);
}
