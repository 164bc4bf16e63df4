//! A recursive `list` of a huge tree a program made: replies are pages bounded in entries
//! and bytes, and paging spends the file-operation rate limit by size (the review's attack:
//! 150,000 files, one 22.7 MB reply, 1.3 s of CPU; twenty at once, 16 s and 1.5 GB).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;

use campus_protocol::{ClientMsg, ErrorCode, ServerMsg};
use campus_protocol::{ConnectionMsg, FileMsg, FileRequest};
use support::db::sqlite;
use support::server::{TestServer, WsClient};

/// Files the "program" made: far past the quota's 5,000 entries, as a run can
/// before the usage scan stops it.
const FILES: usize = 30_000;

/// Make `FILES` files in the workspace on disk, as a student's program would.
fn big_tree(server: &TestServer, user: i64) {
    let root = server
        .running
        .as_ref()
        .unwrap()
        .state
        .files
        .tree_path(user)
        .unwrap();
    for d in 0..30 {
        let dir = root.join(format!("out{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..FILES / 30 {
            std::fs::write(dir.join(format!("result-{f:05}.txt")), b"").unwrap();
        }
    }
}

fn list(cursor: Option<String>) -> impl FnOnce(Option<u64>) -> ClientMsg {
    move |id| {
        ClientMsg::Files(FileRequest::List {
            id,
            path: String::new(),
            recursive: true,
            cursor,
            limit: None,
        })
    }
}

/// The reply as the server sent it (the same serializer), in bytes.
fn wire_len(m: &ServerMsg) -> usize {
    serde_json::to_vec(m).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_recursive_lists_are_paged_and_refused() {
    // The listing does not touch the database: SQLite only.
    let db = sqlite();
    let server = TestServer::start(&db.url, |a| a.file_ops_per_min = 60).await;
    let (uid, token) = server.student("lister").await;
    big_tree(&server, uid);
    // Twenty recursive lists at once, five on each of four connections.
    let mut conns: Vec<WsClient> = Vec::new();
    for _ in 0..4 {
        conns.push(server.connect(&token).await);
    }
    let mut ids = Vec::new();
    for (c, conn) in conns.iter_mut().enumerate() {
        for i in 0..5u64 {
            let id = 1000 + (c as u64) * 10 + i;
            conn.send(&list(None)(Some(id))).await;
            ids.push((c, id));
        }
    }
    let (mut pages, mut refused) = (0, 0);
    for (c, id) in ids {
        let m = conns[c]
            .wait_for("list reply", |m| support::server::reply_id(m) == Some(id))
            .await;
        match &m {
            ServerMsg::Files(FileMsg::Listing {
                entries,
                next_cursor,
                ..
            }) => {
                pages += 1;
                assert!(entries.len() <= workspace_fs::MAX_PAGE_ENTRIES);
                // Bounded: about half a MiB, not the whole tree (~3 MB of JSON here).
                assert!(
                    wire_len(&m) <= workspace_fs::MAX_PAGE_BYTES + 1024,
                    "{} bytes",
                    wire_len(&m)
                );
                assert!(
                    next_cursor.is_some(),
                    "a page of {FILES} files must continue"
                );
            }
            ServerMsg::Connection(ConnectionMsg::Error {
                code,
                retry_after_ms,
                ..
            }) => {
                assert!(
                    matches!(code, ErrorCode::RateLimited | ErrorCode::Busy),
                    "{m:?}"
                );
                assert!(retry_after_ms.is_some(), "{m:?}");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pages + refused, 20);
    // A full page costs 1 + 1000/250 = 5 of the 60-per-minute burst: at most 12 pages.
    assert!(refused > 0, "twenty full pages must not all be admitted");
    assert!(pages <= 12, "{pages} pages admitted");
    assert!(pages > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_cursor_lists_every_entry_once() {
    let db = sqlite();
    let server = TestServer::start(&db.url, |a| a.file_ops_per_min = 100_000).await;
    let (uid, token) = server.student("pager").await;
    big_tree(&server, uid);
    let mut c = server.connect(&token).await;
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut n_pages = 0;
    loop {
        let m = c.request(list(cursor.take())).await;
        let ServerMsg::Files(FileMsg::Listing {
            entries,
            next_cursor,
            ..
        }) = m
        else {
            panic!("{m:?}");
        };
        n_pages += 1;
        for e in entries {
            assert!(seen.insert(e.path.clone()), "{} twice", e.path);
        }
        match next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(n_pages < 1000);
    }
    assert_eq!(seen.len(), FILES + 30);
    assert_eq!(
        n_pages,
        (FILES + 30).div_ceil(workspace_fs::MAX_PAGE_ENTRIES)
    );
    // Small pages on request; a cursor from elsewhere is a clear invalid_path.
    let m = c
        .request(|id| {
            ClientMsg::Files(FileRequest::List {
                id,
                path: "out03".into(),
                recursive: false,
                cursor: None,
                limit: Some(7),
            })
        })
        .await;
    match m {
        ServerMsg::Files(FileMsg::Listing {
            entries,
            next_cursor,
            ..
        }) => {
            assert_eq!(entries.len(), 7);
            assert_eq!(next_cursor.as_deref(), Some("out03/result-00006.txt"));
        }
        other => panic!("{other:?}"),
    }
    let m = c
        .request(|id| {
            ClientMsg::Files(FileRequest::List {
                id,
                path: "out03".into(),
                recursive: false,
                cursor: Some("out04/result-00001.txt".into()),
                limit: None,
            })
        })
        .await;
    assert!(
        matches!(
            &m,
            ServerMsg::Connection(ConnectionMsg::Error {
                code: ErrorCode::InvalidPath,
                ..
            })
        ),
        "{m:?}"
    );
}
