//! File operations end to end on a real filesystem: versions, limits, conflicts, history,
//! trash, rename, copy, rescan, ownership.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use common::*;
use workspace_fs::{EntryKind, FsError, Limits, Precondition, Usage, Workspaces};

const MIB: u64 = 1024 * 1024;

#[test]
fn write_read_list_agree_on_version_and_bytes() {
    let f = fixture();
    let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let out =
        f.ws.write("data/blob.bin", &binary, Precondition::CreateOnly)
            .unwrap();
    assert!(out.created);
    assert_eq!(out.entry.size, 3000);
    let v = out.entry.version.clone().unwrap();
    assert_eq!(v.len(), 16);
    let (bytes, e) = f.ws.read("data/blob.bin").unwrap();
    assert_eq!(bytes, binary);
    assert_eq!(e, out.entry);
    assert_eq!(f.ws.stat("data/blob.bin").unwrap(), out.entry);
    let listed = f.ws.list("", true).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].path, "data");
    assert_eq!(listed[0].kind, EntryKind::Dir);
    assert_eq!(listed[1], out.entry);
    assert_eq!(f.ws.list("data", false).unwrap(), vec![out.entry.clone()]);
    let (mut file, e2) = f.ws.open_read("data/blob.bin").unwrap();
    let mut streamed = Vec::new();
    file.read_to_end(&mut streamed).unwrap();
    assert_eq!((streamed, e2.version), (binary, Some(v)));
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 3000,
            entries: 2
        }
    );
}

#[test]
fn mime_guesses() {
    let f = fixture();
    for (name, mime) in [
        ("main.py", "text/x-python"),
        ("data.csv", "text/csv"),
        ("img.png", "image/png"),
        ("doc.pdf", "application/pdf"),
        ("noext", "application/octet-stream"),
    ] {
        let out = f.ws.write(name, b"x", Precondition::CreateOnly).unwrap();
        assert_eq!(out.entry.mime.as_deref(), Some(mime), "{name}");
        // The one function every reply (listings, reads, version reads) takes its type from.
        assert_eq!(workspace_fs::mime_type(name), mime, "{name}");
    }
    assert_eq!(f.ws.mkdir("d").unwrap().mime, None);
}

#[test]
fn versions_change_on_every_content_change_including_external_edits() {
    let f = fixture();
    let mut seen = std::collections::HashSet::new();
    // Quick same-size API writes never share a version.
    for i in 0..50 {
        let out =
            f.ws.write(
                "f.txt",
                format!("{:04}", i).as_bytes(),
                Precondition::Overwrite,
            )
            .unwrap();
        assert!(seen.insert(out.entry.version.unwrap()));
    }
    let host = f.tree().join("f.txt");
    // In-place edit by "sandboxed code", same size, even with the mtime put back: ctime still
    // moves (fine-grained once observed, on Linux >= 6.13 as on the reference machine).
    let before = f.ws.stat("f.txt").unwrap();
    let mtime = std::fs::metadata(&host).unwrap().modified().unwrap();
    std::fs::write(&host, b"XXXX").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&host)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = f.ws.stat("f.txt").unwrap();
    assert_eq!(before.size, after.size);
    assert_ne!(before.version, after.version);
    // Reads do not change it.
    assert_eq!(f.ws.read("f.txt").unwrap().1.version, after.version);
    assert_eq!(f.ws.stat("f.txt").unwrap().version, after.version);
}

#[test]
fn exactly_the_size_limit_is_accepted_and_one_byte_more_refused() {
    let f = fixture();
    let ok = vec![7u8; (10 * MIB) as usize];
    f.ws.write("big.bin", &ok, Precondition::CreateOnly)
        .unwrap();
    assert_eq!(f.ws.stat("big.bin").unwrap().size, 10 * MIB);
    let too_big = vec![8u8; (10 * MIB + 1) as usize];
    match f.ws.write("big2.bin", &too_big, Precondition::CreateOnly) {
        Err(FsError::TooLarge { limit }) => assert_eq!(limit, 10 * MIB),
        other => panic!("{other:?}"),
    }
    // Overwriting with too much leaves the old content alone.
    assert!(matches!(
        f.ws.write("big.bin", &too_big, Precondition::Overwrite),
        Err(FsError::TooLarge { .. })
    ));
    assert_eq!(raw_names(&f.tree()), vec!["big.bin"]);
    assert_eq!(f.ws.read("big.bin").unwrap().0, ok);

    // Streaming: declared length refused before anything exists ...
    assert!(matches!(
        f.ws.begin_write("up.bin", Precondition::CreateOnly, Some(10 * MIB + 1)),
        Err(FsError::TooLarge { .. })
    ));
    assert_eq!(raw_names(&f.tree()), vec!["big.bin"]);
    // ... and an undeclared stream is cut off as soon as it passes the limit.
    let mut w =
        f.ws.begin_write("up.bin", Precondition::CreateOnly, None)
            .unwrap();
    assert_eq!(
        raw_names(&f.tree()).len(),
        2,
        "temp file exists while streaming"
    );
    assert!(
        f.ws.list("", false)
            .unwrap()
            .iter()
            .all(|e| e.path == "big.bin"),
        "temp hidden"
    );
    w.write_chunk(&ok).unwrap();
    assert!(matches!(w.write_chunk(b"!"), Err(FsError::TooLarge { .. })));
    assert_eq!(
        raw_names(&f.tree()),
        vec!["big.bin"],
        "temp removed at once"
    );
    assert!(w.commit(10 * MIB).is_err());
    assert_eq!(f.ws.usage().bytes, 10 * MIB);
}

#[test]
fn streaming_write_commits_atomically_and_drop_cleans_up() {
    let f = fixture();
    f.ws.write("s.txt", b"old", Precondition::CreateOnly)
        .unwrap();
    let v = f.ws.stat("s.txt").unwrap().version.unwrap();
    let mut w =
        f.ws.begin_write("s.txt", Precondition::Match(v.clone()), Some(6))
            .unwrap();
    w.write_chunk(b"new").unwrap();
    // Readers still see the old content until commit.
    assert_eq!(f.ws.read("s.txt").unwrap().0, b"old");
    w.write_chunk(b"new").unwrap();
    assert_eq!(w.written(), 6);
    let out = w.commit(6).unwrap();
    assert!(!out.created);
    assert_eq!(f.ws.read("s.txt").unwrap().0, b"newnew");
    assert_eq!(f.ws.list_versions("s.txt").unwrap()[0].version, v);

    let mut w =
        f.ws.begin_write("dropped.txt", Precondition::CreateOnly, None)
            .unwrap();
    w.write_chunk(b"partial").unwrap();
    drop(w);
    assert_eq!(raw_names(&f.tree()), vec!["s.txt"]);
    // A stale base version is refused before the upload starts.
    assert!(matches!(
        f.ws.begin_write("s.txt", Precondition::Match(v), Some(1)),
        Err(FsError::Conflict { .. })
    ));
}

#[test]
fn byte_quota_is_enforced_before_writing() {
    let f = fixture_with(Limits {
        quota_bytes: 1000,
        max_file_bytes: 600,
        ..Limits::default()
    });
    f.ws.write("a", &[1; 600], Precondition::CreateOnly)
        .unwrap();
    match f.ws.write("b", &[2; 401], Precondition::CreateOnly) {
        Err(FsError::QuotaExceeded(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(raw_names(&f.tree()), vec!["a"]);
    f.ws.write("b", &[2; 400], Precondition::CreateOnly)
        .unwrap();
    // Replacing a file only needs room for the difference.
    f.ws.write("a", &[3; 500], Precondition::Overwrite).unwrap();
    assert!(matches!(
        f.ws.write("a", &[3; 601], Precondition::Overwrite),
        Err(FsError::TooLarge { .. })
    ));
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 900,
            entries: 2
        }
    );
    assert!(matches!(
        f.ws.copy("b", "c"),
        Err(FsError::QuotaExceeded(_))
    ));
    assert!(matches!(
        f.ws.begin_write("d", Precondition::CreateOnly, Some(101)),
        Err(FsError::QuotaExceeded(_))
    ));
    // Undeclared stream: refused at commit, nothing left behind.
    let mut w =
        f.ws.begin_write("d", Precondition::CreateOnly, None)
            .unwrap();
    w.write_chunk(&[0; 101]).unwrap();
    assert!(matches!(w.commit(101), Err(FsError::QuotaExceeded(_))));
    assert_eq!(raw_names(&f.tree()), vec!["a", "b"]);
    // Deleting frees space.
    f.ws.delete("a").unwrap();
    f.ws.write("c", &[4; 600], Precondition::CreateOnly)
        .unwrap();
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 1000,
            entries: 2
        }
    );
}

#[test]
fn the_5001st_entry_is_refused() {
    let f = fixture();
    // 4,999 files made "by sandboxed code", then counted by a fresh open (initial scan).
    let tree = f.tree();
    std::fs::create_dir(tree.join("many")).unwrap();
    for i in 0..4998 {
        std::fs::write(tree.join(format!("many/f{i}")), b"").unwrap();
    }
    let reg = f.reopen();
    let ws = reg.open("alice", None).unwrap();
    assert_eq!(ws.usage().entries, 4999);
    ws.write("5000th", b"x", Precondition::CreateOnly).unwrap();
    assert!(matches!(
        ws.write("5001st", b"x", Precondition::CreateOnly),
        Err(FsError::QuotaExceeded(_))
    ));
    assert!(matches!(ws.mkdir("newdir"), Err(FsError::QuotaExceeded(_))));
    assert!(matches!(
        ws.copy("5000th", "copy"),
        Err(FsError::QuotaExceeded(_))
    ));
    // Overwriting an existing file adds no entry.
    ws.write("5000th", b"y", Precondition::Overwrite).unwrap();
    assert!(!tree.join("5001st").exists());
    assert_eq!(ws.usage().entries, 5000);
    assert_eq!(ws.rescan().unwrap().entries, 5000);
}

#[test]
fn new_parent_directories_count_as_entries() {
    let f = fixture_with(Limits {
        max_entries: 3,
        ..Limits::default()
    });
    assert!(matches!(
        f.ws.write("a/b/c/d.txt", b"x", Precondition::CreateOnly),
        Err(FsError::QuotaExceeded(_))
    ));
    assert!(raw_names(&f.tree()).is_empty(), "no partial parents");
    f.ws.write("a/b/c.txt", b"x", Precondition::CreateOnly)
        .unwrap();
    assert_eq!(f.ws.usage().entries, 3);
}

#[test]
fn optimistic_concurrency_conflicts() {
    let f = fixture();
    let v1 =
        f.ws.write("f", b"one", Precondition::CreateOnly)
            .unwrap()
            .entry
            .version
            .unwrap();
    let v2 =
        f.ws.write("f", b"two", Precondition::Match(v1.clone()))
            .unwrap()
            .entry
            .version
            .unwrap();
    match f.ws.write("f", b"stale", Precondition::Match(v1)) {
        Err(FsError::Conflict { current_version }) => assert_eq!(current_version, Some(v2.clone())),
        other => panic!("{other:?}"),
    }
    match f.ws.write("f", b"again", Precondition::CreateOnly) {
        Err(FsError::Conflict { current_version }) => assert_eq!(current_version, Some(v2.clone())),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.ws.write("missing", b"x", Precondition::Match(v2.clone())),
        Err(FsError::Conflict {
            current_version: None
        })
    ));
    assert_eq!(f.ws.read("f").unwrap().0, b"two");
    f.ws.mkdir("d").unwrap();
    assert!(matches!(
        f.ws.write("d", b"x", Precondition::Overwrite),
        Err(FsError::IsADirectory(_))
    ));
    assert!(matches!(
        f.ws.write("f/x", b"x", Precondition::Overwrite),
        Err(FsError::NotADirectory(_))
    ));
    assert!(matches!(f.ws.read("d"), Err(FsError::IsADirectory(_))));
    assert!(matches!(f.ws.read("nope"), Err(FsError::NotFound(_))));
    assert!(matches!(
        f.ws.list("f", false),
        Err(FsError::NotADirectory(_))
    ));
    assert!(matches!(f.ws.mkdir("f"), Err(FsError::Conflict { .. })));
}

#[test]
fn rename_over_existing_file() {
    let f = fixture();
    f.ws.write("a.py", b"new code", Precondition::CreateOnly)
        .unwrap();
    let old =
        f.ws.write("b.py", b"old code", Precondition::CreateOnly)
            .unwrap()
            .entry;
    match f.ws.rename("a.py", "b.py", false) {
        Err(FsError::Conflict { current_version }) => assert_eq!(current_version, old.version),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.ws.read("a.py").unwrap().0, b"new code");
    let e = f.ws.rename("a.py", "b.py", true).unwrap();
    assert_eq!(e.path, "b.py");
    assert_eq!(f.ws.read("b.py").unwrap().0, b"new code");
    assert!(matches!(f.ws.stat("a.py"), Err(FsError::NotFound(_))));
    let versions = f.ws.list_versions("b.py").unwrap();
    assert_eq!(versions[0].version, old.version.clone().unwrap());
    assert_eq!(
        f.ws.read_version("b.py", &versions[0].version).unwrap(),
        b"old code"
    );
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 8,
            entries: 1
        }
    );

    // A file's history follows it; directories move whole, into new parents too.
    f.ws.rename("b.py", "src/pkg/main.py", false).unwrap();
    assert_eq!(f.ws.list_versions("src/pkg/main.py").unwrap(), versions);
    assert!(f.ws.list_versions("b.py").unwrap().is_empty());
    f.ws.rename("src", "lib", false).unwrap();
    assert_eq!(f.ws.read("lib/pkg/main.py").unwrap().0, b"new code");
    assert!(matches!(
        f.ws.rename("lib", "lib/pkg/inner", false),
        Err(FsError::InvalidPath(_))
    ));
    assert!(matches!(
        f.ws.rename("nope", "x", false),
        Err(FsError::NotFound(_))
    ));
    // Directories are never overwritten.
    f.ws.write("other/x", b"1", Precondition::CreateOnly)
        .unwrap();
    assert!(matches!(
        f.ws.rename("lib", "other", true),
        Err(FsError::Conflict { .. })
    ));
    assert_eq!(f.ws.usage().entries, 5);
}

#[test]
fn history_is_capped_and_restorable() {
    let f = fixture_with(Limits {
        history_keep: 3,
        ..Limits::default()
    });
    let mut versions = Vec::new();
    for i in 0..6 {
        let out =
            f.ws.write(
                "h.txt",
                format!("content {i}").as_bytes(),
                Precondition::Overwrite,
            )
            .unwrap();
        versions.push(out.entry.version.unwrap());
    }
    let hist = f.ws.list_versions("h.txt").unwrap();
    assert_eq!(hist.len(), 3);
    // Newest first: contents 4, 3, 2.
    let got: Vec<String> = hist.iter().map(|v| v.version.clone()).collect();
    assert_eq!(
        got,
        vec![
            versions[4].clone(),
            versions[3].clone(),
            versions[2].clone()
        ]
    );
    assert!(hist
        .windows(2)
        .all(|w| w[0].saved_at_ms >= w[1].saved_at_ms));
    assert_eq!(
        f.ws.read_version("h.txt", &versions[2]).unwrap(),
        b"content 2"
    );
    assert!(matches!(
        f.ws.read_version("h.txt", &versions[0]),
        Err(FsError::NotFound(_))
    ));
    assert!(matches!(
        f.ws.read_version("h.txt", "../../etc/passwd"),
        Err(FsError::NotFound(_))
    ));

    let out = f.ws.restore_version("h.txt", &versions[2]).unwrap();
    assert!(!out.created);
    assert_eq!(f.ws.read("h.txt").unwrap().0, b"content 2");
    assert_ne!(
        out.entry.version,
        Some(versions[2].clone()),
        "a restore is a new version"
    );
    // The content that was current before the restore is now the newest history entry.
    let hist = f.ws.list_versions("h.txt").unwrap();
    assert_eq!(hist[0].version, versions[5]);
    assert_eq!(
        f.ws.read_version("h.txt", &versions[5]).unwrap(),
        b"content 5"
    );
    assert_eq!(hist.len(), 3);
    // History lives outside the visible tree.
    assert_eq!(raw_names(&f.tree()), vec!["h.txt"]);
}

#[test]
fn delete_non_empty_directory_goes_to_trash_and_comes_back() {
    let f = fixture();
    f.ws.write("proj/a.py", b"aaaa", Precondition::CreateOnly)
        .unwrap();
    f.ws.write("proj/sub/b.py", b"bb", Precondition::CreateOnly)
        .unwrap();
    f.ws.write("keep.txt", b"k", Precondition::CreateOnly)
        .unwrap();
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 7,
            entries: 5
        }
    );
    let item = f.ws.delete("proj").unwrap();
    assert_eq!(item.kind, EntryKind::Dir);
    assert_eq!(item.original_path, "proj");
    assert_eq!(item.size, 6);
    assert_eq!(
        item.expires_at_ms - item.deleted_at_ms,
        7 * 24 * 3600 * 1000
    );
    assert_eq!(raw_names(&f.tree()), vec!["keep.txt"]);
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 1,
            entries: 1
        }
    );
    assert_eq!(f.ws.trash_list().unwrap(), vec![item.clone()]);

    let e = f.ws.trash_restore(&item.trash_id, None).unwrap();
    assert_eq!((e.path.as_str(), e.kind), ("proj", EntryKind::Dir));
    assert_eq!(f.ws.read("proj/sub/b.py").unwrap().0, b"bb");
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 7,
            entries: 5
        }
    );
    assert!(f.ws.trash_list().unwrap().is_empty());
    assert!(matches!(
        f.ws.trash_restore(&item.trash_id, None),
        Err(FsError::NotFound(_))
    ));
    assert!(matches!(
        f.ws.trash_restore("../../etc", None),
        Err(FsError::NotFound(_))
    ));
}

#[test]
fn trash_restore_refuses_to_overwrite_and_can_restore_elsewhere() {
    let f = fixture();
    f.ws.write("a.txt", b"first", Precondition::CreateOnly)
        .unwrap();
    let item = f.ws.delete("a.txt").unwrap();
    assert_eq!(item.kind, EntryKind::File);
    let v =
        f.ws.write("a.txt", b"second", Precondition::CreateOnly)
            .unwrap()
            .entry
            .version;
    match f.ws.trash_restore(&item.trash_id, None) {
        Err(FsError::Conflict { current_version }) => assert_eq!(current_version, v),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.ws.read("a.txt").unwrap().0, b"second");
    f.ws.trash_restore(&item.trash_id, Some("restored/a.txt"))
        .unwrap();
    assert_eq!(f.ws.read("restored/a.txt").unwrap().0, b"first");
    assert_invalid(f.ws.trash_restore(&f.ws.delete("a.txt").unwrap().trash_id, Some("../x")));
}

#[test]
fn purge_removes_only_expired_trash() {
    let f = fixture();
    f.ws.write("a", b"1", Precondition::CreateOnly).unwrap();
    f.ws.write("b/c", b"2", Precondition::CreateOnly).unwrap();
    f.ws.delete("a").unwrap();
    f.ws.delete("b").unwrap();
    let now = SystemTime::now();
    assert_eq!(f.ws.purge_expired(now).unwrap(), 0);
    assert_eq!(
        f.ws.purge_expired(now + Duration::from_secs(6 * 24 * 3600))
            .unwrap(),
        0
    );
    assert_eq!(f.ws.trash_list().unwrap().len(), 2);
    assert_eq!(
        f.ws.purge_expired(now + Duration::from_secs(7 * 24 * 3600 + 1))
            .unwrap(),
        2
    );
    assert!(f.ws.trash_list().unwrap().is_empty());
    assert!(raw_names(&f.meta().join("alice/trash")).is_empty());
}

#[test]
fn copy_files_and_trees() {
    let f = fixture();
    f.ws.write("t/a.py", b"print(1)", Precondition::CreateOnly)
        .unwrap();
    f.ws.write("t/d/b.csv", b"x,y", Precondition::CreateOnly)
        .unwrap();
    std::os::unix::fs::symlink("/etc", f.tree().join("t/d/link")).unwrap();
    f.ws.rescan().unwrap();
    let src = f.ws.stat("t/a.py").unwrap();
    let c = f.ws.copy("t/a.py", "copy.py").unwrap();
    assert_eq!(c.size, 8);
    assert_ne!(c.version, src.version);
    let tree = f.ws.copy("t", "t2").unwrap();
    assert_eq!(tree.kind, EntryKind::Dir);
    assert_eq!(f.ws.read("t2/d/b.csv").unwrap().0, b"x,y");
    assert_eq!(f.ws.stat("t2/d/link").unwrap().kind, EntryKind::Symlink);
    assert!(matches!(
        f.ws.copy("t", "t2"),
        Err(FsError::Conflict { .. })
    ));
    assert!(matches!(
        f.ws.copy("t", "t/inner"),
        Err(FsError::InvalidPath(_))
    ));
    assert!(matches!(f.ws.copy("nope", "x"), Err(FsError::NotFound(_))));
    let tracked = f.ws.usage();
    assert_eq!(tracked, f.ws.rescan().unwrap());
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 8 * 3 + 3 * 2,
            entries: 11
        }
    );
}

#[test]
fn rescan_picks_up_changes_made_behind_the_api() {
    let f = fixture();
    f.ws.write("a", b"12345", Precondition::CreateOnly).unwrap();
    std::fs::create_dir(f.tree().join("ext")).unwrap();
    std::fs::write(f.tree().join("ext/out.txt"), vec![0u8; 1000]).unwrap();
    std::fs::remove_file(f.tree().join("a")).unwrap();
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 5,
            entries: 1
        },
        "not walked per call"
    );
    assert_eq!(
        f.ws.rescan().unwrap(),
        Usage {
            bytes: 1000,
            entries: 2
        }
    );
    assert_eq!(
        f.ws.usage(),
        Usage {
            bytes: 1000,
            entries: 2
        }
    );
}

#[test]
fn stale_temporaries_are_hidden_and_swept_on_open() {
    let f = fixture();
    f.ws.write("a", b"1", Precondition::CreateOnly).unwrap();
    std::fs::write(f.tree().join(".campus-tmp-crashed"), b"half").unwrap();
    assert_eq!(f.ws.list("", true).unwrap().len(), 1);
    assert_eq!(f.ws.rescan().unwrap().entries, 1);
    let reg = f.reopen();
    let ws = reg.open("alice", None).unwrap();
    assert_eq!(raw_names(&f.tree()), vec!["a"]);
    assert_eq!(ws.read("a").unwrap().0, b"1");
}

#[test]
fn registry_shares_one_workspace_per_key_and_validates_keys() {
    let f = fixture();
    let again = f.reg.open("alice", None).unwrap();
    assert!(std::sync::Arc::ptr_eq(&f.ws, &again));
    for bad in ["", "..", "../bob", "a/b", ".x"] {
        assert_invalid(f.reg.open(bad, None));
        assert_invalid(f.reg.tree_path(bad));
    }
    let meta_mode = std::fs::metadata(f.meta().join("alice")).unwrap().mode() & 0o777;
    assert_eq!(meta_mode, 0o700);
}

#[test]
fn entries_are_owned_by_the_workspace_owner() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Workspaces::new(
        dir.path().join("t"),
        dir.path().join("m"),
        Limits::default(),
    )
    .unwrap();
    let ws = reg.open("carol", Some((4321, 4322))).unwrap();
    ws.write("d/e/f.py", b"x", Precondition::CreateOnly)
        .unwrap();
    ws.write("d/e/f.py", b"y", Precondition::Overwrite).unwrap();
    ws.copy("d", "d2").unwrap();
    let tree = reg.tree_path("carol").unwrap();
    for p in ["", "d", "d/e", "d/e/f.py", "d2", "d2/e/f.py"] {
        let m = std::fs::symlink_metadata(tree.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322), "{p}");
    }
    let meta = std::fs::metadata(dir.path().join("m/carol")).unwrap();
    assert_eq!(meta.uid(), rustix_uid(), "meta stays with the server");
}

fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn rescan_once_walks_once_per_tag() {
    let f = fixture();
    std::fs::write(f.tree().join("out.txt"), vec![0u8; 10]).unwrap();
    assert_eq!(
        f.ws.rescan_once("run-1").unwrap().map(|u| u.bytes),
        Some(10)
    );
    std::fs::write(f.tree().join("more.txt"), vec![0u8; 5]).unwrap();
    assert_eq!(
        f.ws.rescan_once("run-1").unwrap(),
        None,
        "same run: no walk"
    );
    assert_eq!(f.ws.usage().bytes, 10);
    assert_eq!(
        f.ws.rescan_once("run-2").unwrap().map(|u| u.bytes),
        Some(15)
    );
}

#[test]
fn trash_counts_against_the_quota_and_is_purged_oldest_first_to_make_room() {
    let f = fixture_with(Limits {
        quota_bytes: 1000,
        max_file_bytes: 1000,
        ..Limits::default()
    });
    f.ws.write("old", &[1; 300], Precondition::CreateOnly)
        .unwrap();
    let old = f.ws.delete("old").unwrap();
    f.ws.write("newer", &[2; 200], Precondition::CreateOnly)
        .unwrap();
    let newer = f.ws.delete("newer").unwrap();
    assert_eq!(
        f.ws.trash_usage(),
        Usage {
            bytes: 500,
            entries: 2
        }
    );
    // Tree 400 + trash 500: still within 1000, nothing purged.
    f.ws.write("a", &[3; 400], Precondition::CreateOnly)
        .unwrap();
    assert_eq!(f.ws.trash_list().unwrap().len(), 2);
    // The tree alone would pass the quota: refused, and the trash is left alone.
    assert!(matches!(
        f.ws.write("b", &[4; 601], Precondition::CreateOnly),
        Err(FsError::QuotaExceeded(_))
    ));
    assert_eq!(f.ws.trash_list().unwrap().len(), 2);
    // Room for 300 more means purging the oldest entry only (tree 700 + trash 200).
    f.ws.write("b", &[4; 300], Precondition::CreateOnly)
        .unwrap();
    let left = f.ws.trash_list().unwrap();
    assert_eq!(
        left.iter().map(|t| t.trash_id.clone()).collect::<Vec<_>>(),
        vec![newer.trash_id.clone()]
    );
    assert!(matches!(
        f.ws.trash_restore(&old.trash_id, None),
        Err(FsError::NotFound(_))
    ));
    assert_eq!(f.ws.trash_usage().bytes, 200);
    // Restoring moves bytes from the trash to the tree: no room needed.
    f.ws.trash_restore(&newer.trash_id, None).unwrap();
    assert_eq!(f.ws.usage().bytes, 900);
    assert_eq!(f.ws.trash_usage(), Usage::default());
    // The trash is counted again after a restart.
    f.ws.delete("a").unwrap();
    let reg = f.reopen();
    let ws = reg.open("alice", None).unwrap();
    assert_eq!(
        ws.trash_usage(),
        Usage {
            bytes: 400,
            entries: 1
        }
    );
}

#[test]
fn a_streamed_write_commits_only_with_its_whole_declared_body() {
    let f = fixture();
    f.ws.write("data.txt", b"the old content", Precondition::CreateOnly)
        .unwrap();
    let v = f.ws.stat("data.txt").unwrap().version.unwrap();
    for pre in [Precondition::Overwrite, Precondition::Match(v.clone())] {
        // Declared 10, 5 arrived, the caller says the body ended there.
        let mut w = f.ws.begin_write("data.txt", pre.clone(), Some(10)).unwrap();
        w.write_chunk(b"12345").unwrap();
        match w.commit(5) {
            Err(FsError::Incomplete { expected, received }) => {
                assert_eq!((expected, received), (10, 5))
            }
            other => panic!("{other:?}"),
        }
        // The caller counted more than reached the file (a lost chunk).
        let mut w = f.ws.begin_write("data.txt", pre, None).unwrap();
        w.write_chunk(b"12345").unwrap();
        assert!(matches!(w.commit(6), Err(FsError::Incomplete { .. })));
    }
    let mut w =
        f.ws.begin_write("new.txt", Precondition::CreateOnly, Some(3))
            .unwrap();
    w.write_chunk(b"abcd").unwrap();
    assert!(matches!(w.commit(4), Err(FsError::Incomplete { .. })));
    // Parent directories made for a write that never commits go away with it.
    f.ws.mkdir("kept").unwrap();
    let mut w =
        f.ws.begin_write("kept/new/deep/x.bin", Precondition::CreateOnly, Some(100))
            .unwrap();
    w.write_chunk(&[7; 40]).unwrap();
    assert_eq!(f.ws.usage().entries, 4, "data.txt, kept, new, deep");
    drop(w);
    assert_eq!(f.ws.read("data.txt").unwrap().0, b"the old content");
    assert_eq!(f.ws.stat("data.txt").unwrap().version.unwrap(), v);
    assert!(f.ws.list_versions("data.txt").unwrap().is_empty());
    assert_eq!(raw_names(&f.tree()), vec!["data.txt", "kept"]);
    assert!(raw_names(&f.tree().join("kept")).is_empty());
    assert_eq!(f.ws.usage(), f.ws.rescan().unwrap());
    assert_eq!(f.ws.usage().entries, 2);
}

#[test]
fn start_up_sweep_removes_temporaries_of_closed_workspaces_only() {
    let f = fixture();
    // alice is open with an upload in flight: its temporary must survive.
    let mut pending =
        f.ws.begin_write("up.bin", Precondition::CreateOnly, None)
            .unwrap();
    pending.write_chunk(b"in flight").unwrap();
    // bob was used by an earlier server that crashed mid-save, mid-history, mid-delete.
    {
        let ws = f.reg.open("bob", None).unwrap();
        ws.write("d/f.txt", b"1", Precondition::CreateOnly).unwrap();
        ws.write("d/f.txt", b"2", Precondition::Overwrite).unwrap();
        ws.write("gone/x", b"3", Precondition::CreateOnly).unwrap();
        ws.delete("gone").unwrap();
    }
    assert_eq!(f.reg.evict_idle(Duration::ZERO), 1);
    let bob_tree = f.reg.tree_path("bob").unwrap();
    let bob_meta = f.meta().join("bob");
    let hist_dir = std::fs::read_dir(bob_meta.join("history"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let trash_dir = std::fs::read_dir(bob_meta.join("trash"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let crumbs = [
        bob_tree.join(".campus-tmp-1-2-3"),
        bob_tree.join("d/.campus-tmp-4-5-6"),
        hist_dir.join(".campus-tmp-7"),
        trash_dir.join(".campus-tmp-8"),
        trash_dir.join("item/.campus-tmp-9"),
    ];
    for c in &crumbs {
        std::fs::write(c, b"half written").unwrap();
    }
    let report = f
        .reg
        .sweep_temporaries(std::time::Instant::now() + Duration::from_secs(60))
        .unwrap();
    assert_eq!(report.removed, 5, "{report:?}");
    assert_eq!((report.workspaces, report.skipped_open), (1, 1));
    assert!(report.complete);
    for c in &crumbs {
        assert!(!c.exists(), "{c:?} survived");
    }
    assert_eq!(raw_names(&f.tree()).len(), 1, "alice's upload temp kept");
    let out = pending.commit(9).unwrap();
    assert!(out.created);
    // bob's real files are untouched.
    let ws = f.reg.open("bob", None).unwrap();
    assert_eq!(ws.read("d/f.txt").unwrap().0, b"2");
    assert_eq!(ws.list_versions("d/f.txt").unwrap().len(), 1);
    assert_eq!(ws.trash_list().unwrap().len(), 1);
    // A deadline already passed sweeps nothing and says so.
    let report = f.reg.sweep_temporaries(std::time::Instant::now()).unwrap();
    assert!(!report.complete);
}

#[test]
fn restoring_the_oldest_trash_entry_never_purges_it_to_make_room() {
    let f = fixture_with(Limits {
        max_entries: 3,
        ..Limits::default()
    });
    f.ws.write("x", b"oldest", Precondition::CreateOnly)
        .unwrap();
    let x = f.ws.delete("x").unwrap();
    f.ws.write("y", b"newer", Precondition::CreateOnly).unwrap();
    let y = f.ws.delete("y").unwrap();
    f.ws.write("z", b"z", Precondition::CreateOnly).unwrap();
    // Tree 1 + trash 2 = 3: restoring x under a new folder needs one entry more, which only
    // purging trash can give; x itself must not be the one purged.
    let e = f.ws.trash_restore(&x.trash_id, Some("sub/x")).unwrap();
    assert_eq!(e.path, "sub/x");
    assert_eq!(f.ws.read("sub/x").unwrap().0, b"oldest");
    assert!(matches!(
        f.ws.trash_restore(&y.trash_id, None),
        Err(FsError::NotFound(_))
    ));
    assert_eq!(f.ws.trash_usage(), Usage::default());
    assert_eq!(f.ws.usage().entries, 3);
}
