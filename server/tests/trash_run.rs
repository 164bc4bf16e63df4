//! The attack on the trash through the product: a real sandboxed run (per-student uid, the
//! real helper) whose working directory is a folder, and which holds a file of it open, keeps
//! writing after the student deletes that folder over the WebSocket. Nothing it writes may
//! reach the trash: the writes through its working directory are refused, the write through
//! its open file lands in an unlinked inode, and the trash item stays exactly what was deleted.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use campus_protocol::{ClientMsg, Encoding, RunMode, ServerMsg};
use campus_protocol::{FileMsg, FileRequest, SessionMsg, SessionRequest};
use support::db::test_databases;
use support::server::{wait_limit, TestServer, WsClient};

const PROGRAM: &str = r#"import os
os.chdir('proj')
log = open('log.txt', 'ab', buffering=0)
log.write(b'started\n')
print('READY', flush=True)
input()
blob = b'z' * (5 * 1024 * 1024)
def attempt(name, fn):
    try:
        fn()
        print(name, 'ok', flush=True)
    except OSError as e:
        print(name, 'refused', e.errno, flush=True)
def write(name):
    with open(name, 'wb') as f:
        f.write(blob)
for i in range(3):
    attempt('cwd%d' % i, lambda: write('big%d.bin' % i))
attempt('held', lambda: log.write(blob))
print('DONE', flush=True)
"#;

/// Bytes of all regular files below `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            total += disk_bytes(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

/// Waits until the run's output contains `needle`.
async fn output_contains(c: &mut WsClient, needle: &str) {
    let deadline = tokio::time::Instant::now() + wait_limit();
    while !String::from_utf8_lossy(&c.output_bytes()).contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {needle:?}; got {:?}",
            String::from_utf8_lossy(&c.output_bytes())
        );
        // Messages other than the end stay queued; the end is put back for the caller (all
        // output comes before it).
        let end = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            c.wait_for("run_ended", |m| {
                matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
            }),
        )
        .await;
        if let Ok(m) = end {
            c.pending.push(m);
            let out = String::from_utf8_lossy(&c.output_bytes()).into_owned();
            assert!(
                out.contains(needle),
                "the run ended without {needle:?}: {out:?}"
            );
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_a_deleted_folder_cannot_write_into_the_trash() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |_| {}).await;
    let (uid, token) = server.student("tess").await;
    let mut c = server.connect(&token).await;
    for (path, content) in [("proj/main.py", PROGRAM), ("proj/data.csv", "a,b\n1,2\n")] {
        let (p, content) = (path.to_string(), content.to_string());
        let m = c
            .request(move |id| {
                ClientMsg::Files(FileRequest::Write {
                    id,
                    path: p,
                    content,
                    encoding: Encoding::Utf8,
                    base_version: None,
                })
            })
            .await;
        assert!(
            matches!(m, ServerMsg::Files(FileMsg::Written { .. })),
            "{m:?}"
        );
    }
    c.send(&ClientMsg::Session(SessionRequest::Run {
        id: Some(1),
        path: "proj/main.py".into(),
        mode: RunMode::Script,
        cols: Some(80),
        rows: Some(24),
        course: None,
    }))
    .await;
    // The program wrote into its folder while it was live.
    output_contains(&mut c, "READY").await;

    let item = match c
        .request(|id| {
            ClientMsg::Files(FileRequest::Delete {
                id,
                path: "proj".into(),
            })
        })
        .await
    {
        ServerMsg::Files(FileMsg::Deleted { trash_id, .. }) => trash_id,
        other => panic!("delete failed: {other:?}"),
    };
    let trash = server
        .data_dir
        .path()
        .join(format!("workspace-meta/{uid}/trash"));
    let deleted_bytes = (PROGRAM.len() + 8 + "started\n".len()) as u64;
    let before = disk_bytes(&trash);

    c.send(&ClientMsg::Session(SessionRequest::Input {
        id: None,
        data: "go\r".into(),
    }))
    .await;
    output_contains(&mut c, "DONE").await;
    let out = String::from_utf8_lossy(&c.output_bytes()).into_owned();
    for i in 0..3 {
        assert!(out.contains(&format!("cwd{i} refused 13")), "{out}");
    }
    // The open file still takes writes, into an inode nothing refers to any more.
    assert!(out.contains("held ok"), "{out}");
    c.wait_for("run_ended", |m| {
        matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
    })
    .await;

    assert_eq!(disk_bytes(&trash), before, "the run wrote into the trash");
    assert!(before < deleted_bytes + 4096, "{before}");
    match c
        .request(|id| ClientMsg::Files(FileRequest::TrashList { id }))
        .await
    {
        ServerMsg::Files(FileMsg::Trash { items, .. }) => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].trash_id, item);
            assert_eq!(items[0].size, deleted_bytes, "{items:?}");
        }
        other => panic!("{other:?}"),
    }
    // Restored, it is the folder as it was deleted.
    let m = c
        .request(|id| {
            ClientMsg::Files(FileRequest::TrashRestore {
                id,
                trash_id: item,
                to: None,
            })
        })
        .await;
    assert!(
        matches!(m, ServerMsg::Files(FileMsg::Entry { .. })),
        "{m:?}"
    );
    let tree = server
        .data_dir
        .path()
        .join(format!("workspaces/{uid}/proj"));
    assert_eq!(std::fs::read(tree.join("log.txt")).unwrap(), b"started\n");
    assert!(!tree.join("big0.bin").exists());
    server.stop().await;
}
