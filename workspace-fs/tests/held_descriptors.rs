//! What a running program holds when the API replaces or deletes its files: an open file
//! descriptor, its working directory, a directory descriptor. None of it may reach history or
//! trash afterwards. The programs here are real processes (python3) running as the workspace
//! owner's uid, as sandboxed runs do, so the kernel's permission checks are the real ones.
//! Needs root (to run a child as another uid), like the sandbox tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use workspace_fs::{Limits, Precondition, Workspaces};

/// The uid (= gid) the "student" programs run as.
const STUDENT: u32 = 4_271;
const MIB: usize = 1024 * 1024;

/// Sum of the sizes of all regular files below `dir` (what the data really takes).
fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            total += disk_bytes(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

#[test]
fn a_descriptor_held_across_an_overwrite_cannot_change_the_saved_version() {
    let f = fixture();
    let v0 =
        f.ws.write("h.txt", b"original", Precondition::CreateOnly)
            .unwrap()
            .entry
            .version
            .unwrap();
    // A running program opened the file for writing before the save.
    let mut held = std::fs::OpenOptions::new()
        .write(true)
        .open(f.tree().join("h.txt"))
        .unwrap();
    f.ws.write("h.txt", b"saved from the editor", Precondition::Overwrite)
        .unwrap();
    // ...and keeps writing through its descriptor afterwards.
    held.seek(SeekFrom::Start(0)).unwrap();
    held.write_all(b"EVIL EVIL EVIL EVIL EVIL").unwrap();
    held.sync_all().unwrap();
    assert_eq!(f.ws.read_version("h.txt", &v0).unwrap(), b"original");
    assert_eq!(f.ws.list_versions("h.txt").unwrap()[0].size, 8);
    assert_eq!(f.ws.read("h.txt").unwrap().0, b"saved from the editor");
    let restored = f.ws.restore_version("h.txt", &v0).unwrap();
    assert_eq!(restored.entry.size, 8);
    assert_eq!(f.ws.read("h.txt").unwrap().0, b"original");

    // The same through a rename that overwrites: the replaced target's descriptor.
    f.ws.write("b.txt", b"target", Precondition::CreateOnly)
        .unwrap();
    let vb = f.ws.stat("b.txt").unwrap().version.unwrap();
    f.ws.write("a.txt", b"source", Precondition::CreateOnly)
        .unwrap();
    let mut held = std::fs::OpenOptions::new()
        .write(true)
        .open(f.tree().join("b.txt"))
        .unwrap();
    f.ws.rename("a.txt", "b.txt", true).unwrap();
    held.write_all(b"EVIL").unwrap();
    held.sync_all().unwrap();
    assert_eq!(f.ws.read_version("b.txt", &vb).unwrap(), b"target");

    // No saved version shares an inode with anything the tree ever had.
    let tree_inodes: Vec<u64> = ["h.txt", "b.txt"]
        .iter()
        .map(|p| std::fs::metadata(f.tree().join(p)).unwrap().ino())
        .collect();
    let hist = f.meta().join("alice/history");
    for d in std::fs::read_dir(&hist).unwrap() {
        for e in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let m = std::fs::metadata(e.unwrap().path()).unwrap();
            assert_eq!(m.nlink(), 1);
            assert!(!tree_inodes.contains(&m.ino()));
        }
    }
}

/// A program as the student uid with its working directory in `cwd`. It opens `log.txt`
/// (append) and a descriptor of `sub/`, shows that it can write, prints `ready`, waits for a
/// line on stdin, then tries to write 3 × 5 MiB by every route it holds and prints what
/// happened, one line per attempt.
fn spawn_holder(cwd: &Path) -> std::process::Child {
    let code = r#"
import os, sys
log = open("log.txt", "ab", buffering=0)
sub = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
log.write(b"before delete\n")
with open("made-before.txt", "wb") as f:
    f.write(b"x")
print("ready", flush=True)
sys.stdin.readline()
blob = b"z" * (5 * 1024 * 1024)
def attempt(name, fn):
    try:
        fn()
        print(name, "ok", flush=True)
    except OSError as e:
        print(name, "refused", e.errno, flush=True)
def via_cwd():
    with open("big-cwd.bin", "wb") as f:
        f.write(blob)
def via_dirfd():
    fd = os.open("big-dirfd.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=sub)
    os.write(fd, blob)
    os.close(fd)
attempt("cwd", via_cwd)
attempt("dirfd", via_dirfd)
attempt("held_file", lambda: log.write(blob))
attempt("mkdir", lambda: os.mkdir("newdir"))
attempt("listdir", lambda: os.listdir("."))
attempt("rename_in", lambda: os.rename("log.txt", "renamed.txt"))
print("done", flush=True)
"#;
    Command::new("/usr/bin/python3")
        .args(["-c", code])
        .current_dir(cwd)
        .uid(STUDENT)
        .gid(STUDENT)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn a_run_inside_a_deleted_folder_cannot_write_into_the_trash() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Workspaces::new(
        dir.path().join("tree"),
        dir.path().join("meta"),
        Limits::default(),
    )
    .unwrap();
    let ws = reg.open("s1", Some((STUDENT, STUDENT))).unwrap();
    ws.write("proj/main.py", b"print('hi')\n", Precondition::CreateOnly)
        .unwrap();
    ws.write("proj/sub/data.csv", b"a,b\n1,2\n", Precondition::CreateOnly)
        .unwrap();
    ws.write("proj/log.txt", b"", Precondition::CreateOnly)
        .unwrap();
    let tree = reg.tree_path("s1").unwrap();
    // The temporary data dir is root's 0700: let the student reach its workspace, as the
    // server's data dir layout does.
    for p in [dir.path(), &dir.path().join("tree")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut child = spawn_holder(&tree.join("proj"));
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the program could not start");
    // The program wrote while the folder was live: 14 + 1 bytes.
    ws.rescan().unwrap();

    let item = ws.delete("proj").unwrap();
    let sealed_size = item.size;
    assert_eq!(
        sealed_size,
        12 + 8 + 14 + 1,
        "manifest counts what was there"
    );
    assert_eq!(ws.trash_usage().bytes, sealed_size);
    let trash = dir.path().join("meta/s1/trash");
    let before = disk_bytes(&trash);

    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut results = Vec::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let l = line.trim().to_owned();
        if l == "done" {
            break;
        }
        results.push(l);
    }
    assert!(child.wait().unwrap().success());
    let outcome = |name: &str| {
        results
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no result for {name}: {results:?}"))
            .clone()
    };
    for route in ["cwd", "dirfd", "mkdir", "listdir", "rename_in"] {
        assert!(
            outcome(route).starts_with(&format!("{route} refused 13")),
            "{route}: {results:?}"
        );
    }
    // Writing through the held file descriptor works, but into an unlinked inode.
    assert_eq!(outcome("held_file"), "held_file ok");

    // Nothing reached the trash: same bytes on disk, same manifest, same count.
    assert_eq!(disk_bytes(&trash), before);
    assert!(before < 4096 + sealed_size, "{before}");
    let listed = ws.trash_list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, sealed_size);
    assert_eq!(ws.trash_usage().bytes, sealed_size);

    // Restored, it belongs to the student again and is writable by a new run.
    let e = ws.trash_restore(&item.trash_id, None).unwrap();
    assert_eq!(e.path, "proj");
    assert_eq!(ws.read("proj/log.txt").unwrap().0, b"before delete\n");
    assert_eq!(ws.read("proj/sub/data.csv").unwrap().0, b"a,b\n1,2\n");
    for p in ["proj", "proj/sub", "proj/log.txt", "proj/made-before.txt"] {
        let m = std::fs::symlink_metadata(tree.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (STUDENT, STUDENT), "{p}");
        if m.is_dir() {
            assert_eq!(m.mode() & 0o777, 0o755, "{p}");
        }
    }
    let status = Command::new("/usr/bin/python3")
        .args(["-c", "open('sub/new.txt','w').write('ok')"])
        .current_dir(tree.join("proj"))
        .uid(STUDENT)
        .gid(STUDENT)
        .env_clear()
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ws.trash_usage().bytes, 0);
}

#[test]
fn a_held_descriptor_of_a_deleted_file_cannot_change_the_trash() {
    let f = fixture();
    f.ws.write("notes.txt", b"keep me", Precondition::CreateOnly)
        .unwrap();
    let mut held = std::fs::OpenOptions::new()
        .append(true)
        .open(f.tree().join("notes.txt"))
        .unwrap();
    let item = f.ws.delete("notes.txt").unwrap();
    held.write_all(&vec![b'z'; 5 * MIB]).unwrap();
    held.sync_all().unwrap();
    assert_eq!(f.ws.trash_list().unwrap()[0].size, 7);
    assert!(disk_bytes(&f.meta().join("alice/trash")) < 4096);
    f.ws.trash_restore(&item.trash_id, None).unwrap();
    assert_eq!(f.ws.read("notes.txt").unwrap().0, b"keep me");
}

#[test]
fn a_trash_entry_left_unsealed_by_a_crash_is_sealed_on_open() {
    let f = fixture();
    f.ws.write("d/a.txt", b"aaa", Precondition::CreateOnly)
        .unwrap();
    let item = f.ws.delete("d").unwrap();
    let entry = f.meta().join("alice/trash").join(&item.trash_id);
    // What a crash between the move into the trash and the seal leaves: a writable item
    // (here: one a run added to) and a manifest that says so.
    std::fs::set_permissions(entry.join("item"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(entry.join("item/added.txt"), b"12345").unwrap();
    let manifest = std::fs::read_to_string(entry.join("manifest.json")).unwrap();
    let unsealed = manifest.replace("\"sealed\":true", "\"sealed\":false");
    assert_ne!(manifest, unsealed);
    std::fs::write(entry.join("manifest.json"), unsealed).unwrap();
    drop(f.ws);
    assert_eq!(f.reg.evict_idle(std::time::Duration::ZERO), 1);

    let ws = f.reg.open("alice", None).unwrap();
    let mode = std::fs::metadata(entry.join("item")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(ws.trash_list().unwrap()[0].size, 8);
    assert_eq!(ws.trash_usage().bytes, 8);
    assert!(std::fs::read_to_string(entry.join("manifest.json"))
        .unwrap()
        .contains("\"sealed\":true"));
}
