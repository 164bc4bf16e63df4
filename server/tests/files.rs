//! Workspace file operations over the real server: WebSocket messages, the
//! streamed HTTP API, conflicts, history, trash, limits, hostile paths and
//! cross-user access — for SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod support;

use campus_protocol::{ChangeKind, ClientMsg, Encoding, EntryKind, ErrorCode, Role, ServerMsg};
use campus_protocol::{ConnectionMsg, FileMsg, FileRequest};
use support::db::test_databases;
use support::server::{TestServer, WsClient};

fn write(path: &str, content: &str, base: Option<&str>) -> impl FnOnce(Option<u64>) -> ClientMsg {
    let (path, content, base) = (
        path.to_string(),
        content.to_string(),
        base.map(str::to_string),
    );
    move |id| {
        ClientMsg::Files(FileRequest::Write {
            id,
            path,
            content,
            encoding: Encoding::Utf8,
            base_version: base,
        })
    }
}

fn expect_error(m: ServerMsg, want: ErrorCode) -> ServerMsg {
    match &m {
        ServerMsg::Connection(ConnectionMsg::Error { code, .. }) if *code == want => m,
        other => panic!("expected {want}, got {other:?}"),
    }
}

async fn written(c: &mut WsClient, path: &str, content: &str, base: Option<&str>) -> String {
    match c.request(write(path, content, base)).await {
        ServerMsg::Files(FileMsg::Written { version, .. }) => version,
        other => panic!("write {path} failed: {other:?}"),
    }
}

async fn read(c: &mut WsClient, path: &str) -> (String, String) {
    let p = path.to_string();
    match c
        .request(|id| ClientMsg::Files(FileRequest::Read { id, path: p }))
        .await
    {
        ServerMsg::Files(FileMsg::File {
            content, version, ..
        }) => (content, version),
        other => panic!("read {path} failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_versions_trash_and_change_events() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let (_, token) = server.student("ann").await;
        let mut a = server.connect(&token).await;
        let mut b = server.connect(&token).await;

        let v1 = written(&mut a, "main.py", "print(1)\n", None).await;
        // The other tab hears about it.
        match b
            .wait_for("file_changed", |m| {
                matches!(m, ServerMsg::Files(FileMsg::FileChanged { .. }))
            })
            .await
        {
            ServerMsg::Files(FileMsg::FileChanged {
                path,
                kind,
                version,
                ..
            }) => {
                assert_eq!(path, "main.py");
                assert_eq!(kind, ChangeKind::Written);
                assert_eq!(version.as_deref(), Some(v1.as_str()));
            }
            _ => unreachable!(),
        }
        // Creating an existing file without base_version is a conflict.
        let m = a.request(write("main.py", "print(2)\n", None)).await;
        expect_error(m, ErrorCode::Conflict);
        let v2 = written(&mut a, "main.py", "print(2)\n", Some(&v1)).await;
        assert_ne!(v1, v2);
        // A stale base version is refused and nothing is overwritten.
        match a.request(write("main.py", "print(3)\n", Some(&v1))).await {
            ServerMsg::Connection(ConnectionMsg::Error {
                code,
                current_version,
                ..
            }) => {
                assert_eq!(code, ErrorCode::Conflict);
                assert_eq!(current_version.as_deref(), Some(v2.as_str()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            read(&mut b, "main.py").await,
            ("print(2)\n".to_string(), v2.clone())
        );

        // Folders, listing, stat.
        assert!(matches!(
            a.request(|id| ClientMsg::Files(FileRequest::Mkdir {
                id,
                path: "data/raw".into()
            }))
            .await,
            ServerMsg::Files(FileMsg::Entry { .. })
        ));
        written(&mut a, "data/raw/x.csv", "a,b\n1,2\n", None).await;
        match a
            .request(|id| {
                ClientMsg::Files(FileRequest::List {
                    id,
                    path: String::new(),
                    recursive: true,
                    cursor: None,
                    limit: None,
                })
            })
            .await
        {
            ServerMsg::Files(FileMsg::Listing { entries, .. }) => {
                let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
                assert!(
                    paths.contains(&"main.py") && paths.contains(&"data/raw/x.csv"),
                    "{paths:?}"
                );
                let csv = entries.iter().find(|e| e.path == "data/raw/x.csv").unwrap();
                assert_eq!(csv.kind, EntryKind::File);
                assert_eq!(csv.size, 8);
                assert!(csv.version.is_some());
                assert!(csv.mime.as_deref().unwrap().contains("csv"));
            }
            other => panic!("{other:?}"),
        }

        // Rename onto an existing file is a conflict; with overwrite it works.
        written(&mut a, "other.py", "x = 1\n", None).await;
        let m = a
            .request(|id| {
                ClientMsg::Files(FileRequest::Rename {
                    id,
                    from: "other.py".into(),
                    to: "main.py".into(),
                    overwrite: false,
                })
            })
            .await;
        expect_error(m, ErrorCode::Conflict);
        assert!(matches!(
            a.request(|id| ClientMsg::Files(FileRequest::Rename {
                id,
                from: "other.py".into(),
                to: "renamed.py".into(),
                overwrite: false
            }))
            .await,
            ServerMsg::Files(FileMsg::Entry { .. })
        ));
        assert!(matches!(
            a.request(|id| ClientMsg::Files(FileRequest::Copy {
                id,
                from: "data".into(),
                to: "data2".into()
            }))
            .await,
            ServerMsg::Files(FileMsg::Entry { .. })
        ));
        assert_eq!(read(&mut a, "data2/raw/x.csv").await.0, "a,b\n1,2\n");

        // History: both earlier versions of main.py are listed and restorable.
        let versions = match a
            .request(|id| {
                ClientMsg::Files(FileRequest::ListVersions {
                    id,
                    path: "main.py".into(),
                })
            })
            .await
        {
            ServerMsg::Files(FileMsg::Versions { versions, .. }) => versions,
            other => panic!("{other:?}"),
        };
        assert!(!versions.is_empty());
        let old = versions.last().unwrap().version.clone();
        match a
            .request(|id| {
                ClientMsg::Files(FileRequest::ReadVersion {
                    id,
                    path: "main.py".into(),
                    version: old.clone(),
                })
            })
            .await
        {
            // A version of a Python file is reported as Python, as the file itself is.
            ServerMsg::Files(FileMsg::File { content, mime, .. }) => {
                assert_eq!(content, "print(1)\n");
                assert_eq!(mime, "text/x-python");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            a.request(|id| ClientMsg::Files(FileRequest::RestoreVersion {
                id,
                path: "main.py".into(),
                version: old
            }))
            .await,
            ServerMsg::Files(FileMsg::Written { .. })
        ));
        assert_eq!(read(&mut a, "main.py").await.0, "print(1)\n");

        // Deleting a non-empty folder moves it to the trash as a whole; restore brings it back.
        let trash_id = match a
            .request(|id| {
                ClientMsg::Files(FileRequest::Delete {
                    id,
                    path: "data".into(),
                })
            })
            .await
        {
            ServerMsg::Files(FileMsg::Deleted { trash_id, .. }) => trash_id,
            other => panic!("{other:?}"),
        };
        let m = a
            .request(|id| {
                ClientMsg::Files(FileRequest::Read {
                    id,
                    path: "data/raw/x.csv".into(),
                })
            })
            .await;
        expect_error(m, ErrorCode::NotFound);
        match a
            .request(|id| ClientMsg::Files(FileRequest::TrashList { id }))
            .await
        {
            ServerMsg::Files(FileMsg::Trash { items, .. }) => assert!(items
                .iter()
                .any(|i| i.trash_id == trash_id && i.original_path == "data")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            a.request(|id| ClientMsg::Files(FileRequest::TrashRestore {
                id,
                trash_id,
                to: None
            }))
            .await,
            ServerMsg::Files(FileMsg::Entry { .. })
        ));
        assert_eq!(read(&mut a, "data/raw/x.csv").await.0, "a,b\n1,2\n");

        // Binary content round-trips as base64.
        let png = [0x89u8, b'P', b'N', b'G', 0, 0xff, 0xfe];
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        let content = b64.clone();
        assert!(matches!(
            a.request(move |id| ClientMsg::Files(FileRequest::Write {
                id,
                path: "img.png".into(),
                content,
                encoding: Encoding::Base64,
                base_version: None
            }))
            .await,
            ServerMsg::Files(FileMsg::Written { .. })
        ));
        match a
            .request(|id| {
                ClientMsg::Files(FileRequest::Read {
                    id,
                    path: "img.png".into(),
                })
            })
            .await
        {
            ServerMsg::Files(FileMsg::File {
                encoding,
                content,
                mime,
                ..
            }) => {
                assert_eq!(encoding, Encoding::Base64);
                assert_eq!(content, b64);
                assert_eq!(mime, "image/png");
            }
            other => panic!("{other:?}"),
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_and_symlinks() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |_| {}).await;
    let (id, token) = server.student("mallory").await;
    let (victim, vtoken) = server.student("victim").await;
    let mut c = server.connect(&token).await;
    let mut v = server.connect(&vtoken).await;
    written(&mut v, "secret.txt", "top secret\n", None).await;
    written(&mut c, "mine.txt", "hello\n", None).await;

    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a\\b",
        "a\0b",
        "new\nline",
        "evil\u{202e}txt.py",
        "",
        "a//b",
        "./a",
    ] {
        let p = bad.to_string();
        let m = c
            .request(move |id| ClientMsg::Files(FileRequest::Read { id, path: p }))
            .await;
        match m {
            ServerMsg::Connection(ConnectionMsg::Error { code, .. }) => assert!(
                code == ErrorCode::InvalidPath || (bad.is_empty() && code == ErrorCode::BadRequest),
                "{bad:?} → {code}"
            ),
            other => panic!("{bad:?} was accepted: {other:?}"),
        }
        let p = bad.to_string();
        let m = c
            .request(move |id| {
                ClientMsg::Files(FileRequest::Write {
                    id,
                    path: p,
                    content: "x".into(),
                    encoding: Encoding::Utf8,
                    base_version: None,
                })
            })
            .await;
        assert!(
            matches!(m, ServerMsg::Connection(ConnectionMsg::Error { .. })),
            "{bad:?} write accepted: {m:?}"
        );
    }

    // Symlinks planted in the workspace (as student code could) are never followed.
    let ws_root = server
        .running
        .as_ref()
        .unwrap()
        .state
        .files
        .tree_path(id)
        .unwrap();
    let victim_root = server
        .running
        .as_ref()
        .unwrap()
        .state
        .files
        .tree_path(victim)
        .unwrap();
    std::os::unix::fs::symlink("/etc", ws_root.join("etc")).unwrap();
    std::os::unix::fs::symlink(&victim_root, ws_root.join("victim")).unwrap();
    std::os::unix::fs::symlink(victim_root.join("secret.txt"), ws_root.join("steal.txt")).unwrap();
    match c
        .request(|id| {
            ClientMsg::Files(FileRequest::List {
                id,
                path: String::new(),
                recursive: true,
                cursor: None,
                limit: None,
            })
        })
        .await
    {
        ServerMsg::Files(FileMsg::Listing { entries, .. }) => {
            let link = entries.iter().find(|e| e.path == "etc").unwrap();
            assert_eq!(link.kind, EntryKind::Symlink);
            assert!(!entries
                .iter()
                .any(|e| e.path.starts_with("etc/") || e.path.starts_with("victim/")));
        }
        other => panic!("{other:?}"),
    }
    for (msg, what) in [
        (
            ClientMsg::Files(FileRequest::Read {
                id: Some(900),
                path: "etc/passwd".into(),
            }),
            "read through dir link",
        ),
        (
            ClientMsg::Files(FileRequest::Read {
                id: Some(901),
                path: "steal.txt".into(),
            }),
            "read file link",
        ),
        (
            ClientMsg::Files(FileRequest::Read {
                id: Some(902),
                path: "victim/secret.txt".into(),
            }),
            "read other workspace",
        ),
        (
            ClientMsg::Files(FileRequest::List {
                id: Some(903),
                path: "etc".into(),
                recursive: false,
                cursor: None,
                limit: None,
            }),
            "list link",
        ),
        (
            ClientMsg::Files(FileRequest::Write {
                id: Some(904),
                path: "victim/pwn.txt".into(),
                content: "x".into(),
                encoding: Encoding::Utf8,
                base_version: None,
            }),
            "write through link",
        ),
        (
            ClientMsg::Files(FileRequest::Write {
                id: Some(905),
                path: "steal.txt".into(),
                content: "x".into(),
                encoding: Encoding::Utf8,
                base_version: None,
            }),
            "write onto link",
        ),
        (
            ClientMsg::Files(FileRequest::Rename {
                id: Some(906),
                from: "mine.txt".into(),
                to: "victim/mine.txt".into(),
                overwrite: true,
            }),
            "rename into link",
        ),
        (
            ClientMsg::Files(FileRequest::Rename {
                id: Some(907),
                from: "mine.txt".into(),
                to: "steal.txt".into(),
                overwrite: true,
            }),
            "rename onto link",
        ),
        (
            ClientMsg::Files(FileRequest::Copy {
                id: Some(908),
                from: "steal.txt".into(),
                to: "copy.txt".into(),
            }),
            "copy from link",
        ),
    ] {
        c.send(&msg).await;
        let reply = c
            .wait_for(what, |m| support::server::reply_id(m) == msg.id())
            .await;
        assert!(
            matches!(reply, ServerMsg::Connection(ConnectionMsg::Error { .. })),
            "{what}: {reply:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(victim_root.join("secret.txt")).unwrap(),
        "top secret\n"
    );
    assert!(!victim_root.join("pwn.txt").exists() && !victim_root.join("mine.txt").exists());
    assert!(std::fs::symlink_metadata(ws_root.join("steal.txt"))
        .unwrap()
        .file_type()
        .is_symlink());

    // HTTP: traversal in the URL, encoded or not.
    let http = reqwest::Client::new();
    for url in [
        "/api/files/%2e%2e/x",
        "/api/files/a/%2e%2e/%2e%2e/x",
        "/api/files/%2Fetc%2Fpasswd",
        "/api/files/etc/passwd",
    ] {
        let r = http
            .get(server.url(url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 400 || r.status() == 404,
            "{url} → {}",
            r.status()
        );
        let body = r.text().await.unwrap();
        assert!(!body.contains("root:"), "{url} leaked {body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_streaming_conditional_requests_and_limits() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| a.run.workspace_quota_mb = 12).await;
    let (_, token) = server.student("pat").await;
    let http = reqwest::Client::new();
    let url = server.url("/api/files/data/blob.bin");

    // Create-only.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .header("if-none-match", "*")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .header("if-none-match", "*")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412, "create-only on an existing file");

    // GET streams the bytes back with the ETag and a MIME type.
    let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().to_vec(), body);
    let r = http
        .get(&url)
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // If-Match: stale → 412, current → 200.
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .header("if-match", "\"stale\"")
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .header("if-match", &etag)
        .body("second")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Unconditional PUT overwrites; the previous content goes to history.
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .body("third")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut c = server.connect(&token).await;
    match c
        .request(|id| {
            ClientMsg::Files(FileRequest::ListVersions {
                id,
                path: "data/blob.bin".into(),
            })
        })
        .await
    {
        ServerMsg::Files(FileMsg::Versions { versions, .. }) => {
            assert!(versions.len() >= 2, "{versions:?}")
        }
        other => panic!("{other:?}"),
    }

    // 10 MiB + 1 declared is refused early (413, from the headers alone) and
    // nothing is written; exactly 10 MiB is fine. A raw socket sends only the
    // start of the body: an HTTP client still writing the rest may see the
    // early close (EPIPE) before it reads the answer.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "PUT /api/files/big.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\n\r\n",
            server.addr,
            10 * 1024 * 1024 + 1
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(&[b'a'; 1024]).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), sock.read(&mut buf))
                .await
                .expect("an answer before the body is sent")
                .unwrap();
            assert!(n > 0, "closed without an answer: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    let r = http
        .get(server.url("/api/files/big.bin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Same limit for a chunked upload without Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..11).map(|_| Ok(vec![b'b'; 1024 * 1024])).collect();
    let r = http
        .put(server.url("/api/files/chunked.bin"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let ok = vec![b'c'; 10 * 1024 * 1024];
    let r = http
        .put(server.url("/api/files/exact.bin"))
        .bearer_auth(&token)
        .body(ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The 12 MiB quota is now nearly used: another 3 MiB does not fit.
    let r = http
        .put(server.url("/api/files/more.bin"))
        .bearer_auth(&token)
        .body(vec![0u8; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "quota_exceeded");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_quota_rate_limit_and_concurrent_writers() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| {
        a.run.workspace_max_entries = 5;
        a.file_ops_per_min = 60;
    })
    .await;
    let (_, token) = server.student("quinn").await;
    let mut c = server.connect(&token).await;
    for i in 0..5 {
        written(&mut c, &format!("f{i}.py"), "x", None).await;
    }
    let m = c.request(write("f5.py", "x", None)).await;
    expect_error(m, ErrorCode::QuotaExceeded);

    // 20 concurrent unconditional writers to one file (HTTP): the result is exactly one of them.
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, url, token) = (http.clone(), server.url("/api/files/f0.py"), token.clone());
        tasks.push(tokio::spawn(async move {
            http.put(url)
                .bearer_auth(token)
                .body(format!("writer {i}\n"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (content, _) = read(&mut c, "f0.py").await;
    assert!(
        (0..20).any(|i| content == format!("writer {i}\n")),
        "{content:?}"
    );
    match c
        .request(|id| {
            ClientMsg::Files(FileRequest::ListVersions {
                id,
                path: "f0.py".into(),
            })
        })
        .await
    {
        ServerMsg::Files(FileMsg::Versions { versions, .. }) => assert!(
            versions.len() >= 19,
            "history keeps the others: {}",
            versions.len()
        ),
        other => panic!("{other:?}"),
    }

    // Two connections racing on the same base version: exactly one wins.
    let mut d = server.connect(&token).await;
    let (_, base) = read(&mut c, "f1.py").await;
    c.send(&write("f1.py", "from c", Some(&base))(Some(500)))
        .await;
    d.send(&write("f1.py", "from d", Some(&base))(Some(501)))
        .await;
    let rc = c
        .wait_for("c reply", |m| support::server::reply_id(m) == Some(500))
        .await;
    let rd = d
        .wait_for("d reply", |m| support::server::reply_id(m) == Some(501))
        .await;
    let wins = [&rc, &rd]
        .iter()
        .filter(|m| matches!(m, ServerMsg::Files(FileMsg::Written { .. })))
        .count();
    assert_eq!(wins, 1, "{rc:?} {rd:?}");

    // File operations are limited per user, WebSocket and HTTP together.
    let mut limited = None;
    for _ in 0..80 {
        match c
            .request(|id| {
                ClientMsg::Files(FileRequest::Stat {
                    id,
                    path: "f1.py".into(),
                })
            })
            .await
        {
            ServerMsg::Connection(ConnectionMsg::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms,
                ..
            }) => {
                limited = retry_after_ms;
                break;
            }
            ServerMsg::Files(FileMsg::Entry { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(limited.unwrap() > 0);
    let r = http
        .get(server.url("/api/files/f1.py"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_user_access_is_forbidden_and_audited() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let (_, token) = server.student("sam").await;
        let (tina, ttoken) = server.student("tina").await;
        server.add_user("root", "root-password", Role::Admin).await;
        let admin = server.login("root", "root-password").await;
        let mut t = server.connect(&ttoken).await;
        written(&mut t, "homework.py", "answer = 42\n", None).await;

        let http = reqwest::Client::new();
        let url = server.url(&format!("/api/files/homework.py?owner={tina}"));
        let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "forbidden");
        // Refusals are audited in the background.
        server.records_flushed().await;
        let audit = server
            .store
            .recent_audit(Some("files.forbidden"), 10)
            .await
            .unwrap();
        assert!(
            audit.iter().any(|a| a.actor.as_deref() == Some("sam")
                && a.target.as_deref() == Some(&*format!("workspace:{tina}"))),
            "{audit:?}"
        );

        // An admin may read any workspace.
        let r = http.get(&url).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "answer = 42\n");
        // Nobody writes into another's workspace: PUT always targets the caller's own.
        let r = http
            .put(server.url("/api/files/homework.py"))
            .bearer_auth(&token)
            .header("if-none-match", "*")
            .body("mine")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(read(&mut t, "homework.py").await.0, "answer = 42\n");
        // Without a token: 401.
        let r = http
            .get(server.url("/api/files/homework.py"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        server.stop().await;
    }
}
