//! A full disk is not an internal error. The server's data dir is a real,
//! small tmpfs (mounted here, as root) that the test fills: saves over the
//! WebSocket and HTTP get `insufficient_storage` (507) with a human message and
//! change nothing, `/readyz` reports the disk as degraded, logins still work
//! and say that the server cannot accept changes; freeing space heals it.
//! SQLite in that data dir (the default setup) and PostgreSQL elsewhere; and
//! the store's own "database or disk is full" maps to the same code.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use campus_protocol::{ClientMsg, Encoding, ErrorCode, Role, ServerMsg};
use campus_protocol::{ConnectionMsg, FileMsg, FileRequest};
use campus_server::store::{connect, NewAudit, PoolSettings};
use support::db::{in_ci, test_databases};
use support::server::{TestServer, WsClient};

/// A tmpfs of `size` mounted on a fresh directory; unmounted (lazily, so a
/// straggling descriptor cannot keep it) on drop, whatever the test did.
struct SmallDisk {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl SmallDisk {
    /// None when we may not mount (not root): a skip outside CI, a failure in CI.
    fn mount(size: &str) -> Option<SmallDisk> {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                !in_ci(),
                "the disk-full tests need root (mount -t tmpfs) in CI"
            );
            eprintln!("SKIPPING: not root, cannot mount a small tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},nr_inodes=4096,mode=0755"))
            .arg("campus-disk-full-test")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Some(SmallDisk { dir, mounted: true })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a filler file until the filesystem refuses with ENOSPC.
    fn fill(&self) -> PathBuf {
        let p = self.path().join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        // Bounded: the disk is a few MiB; then byte-sized writes take the last page.
        for _ in 0..10_000 {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        for _ in 0..100_000 {
            match f.write(&[1]) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let st = rustix::fs::statvfs(self.path()).unwrap();
        assert_eq!(st.f_bavail, 0, "the disk is full");
        p
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
            self.mounted = false;
        }
    }
}

async fn write(c: &mut WsClient, path: &str, content: &str, base: Option<String>) -> ServerMsg {
    let (p, content) = (path.to_string(), content.to_string());
    c.request(move |id| {
        ClientMsg::Files(FileRequest::Write {
            id,
            path: p,
            content,
            encoding: Encoding::Utf8,
            base_version: base,
        })
    })
    .await
}

async fn read(c: &mut WsClient, path: &str) -> ServerMsg {
    let p = path.to_string();
    c.request(move |id| ClientMsg::Files(FileRequest::Read { id, path: p }))
        .await
}

async fn readyz(server: &TestServer) -> serde_json::Value {
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a full disk does not make the server unready"
    );
    r.json().await.unwrap()
}

async fn login(server: &TestServer, user: &str, pw: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn assert_disk_full(m: &ServerMsg) {
    match m {
        ServerMsg::Connection(ConnectionMsg::Error { code, message, .. }) => {
            assert_eq!(*code, ErrorCode::InsufficientStorage, "{message}");
            assert!(message.contains("disk is full"), "{message}");
            assert!(message.contains("nothing was saved"), "{message}");
        }
        other => panic!("expected insufficient_storage, got {other:?}"),
    }
}

/// Files the workspace-fs left in a directory tree that are not the user's.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with(".campus-tmp") {
                out.push(p);
            }
        }
    }
    out
}

/// `PUT` of 2 MB declared, 256 KiB sent, on a raw socket: the server's answer.
async fn big_upload_answer(server: &TestServer, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /api/files/big.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 2000000\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may stop reading (and answer) at any point of this.
    let _ = s.write_all(&vec![b'q'; 256 * 1024]).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(support::server::wait_limit(), async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if String::from_utf8_lossy(&buf).contains("\"message\"") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to the big upload");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_saves_in_plain_words_and_logins_say_so() {
    // SQLite inside the data dir (the default setup), then PostgreSQL on its own disk.
    let pg = test_databases()
        .await
        .into_iter()
        .find(|d| d.backend == "postgres");
    let mut backends: Vec<Option<String>> = vec![None];
    backends.push(pg.as_ref().map(|d| d.url.clone()));
    for (i, pg_url) in backends.into_iter().enumerate() {
        if i > 0 && pg_url.is_none() {
            continue;
        }
        let Some(disk) = SmallDisk::mount("8m") else {
            return;
        };
        let data_dir = disk.path().to_path_buf();
        let db_url =
            pg_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("campus.db").display()));
        let backend = if db_url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        };
        let server = TestServer::start(&db_url, |a| {
            a.storage.data_dir = data_dir.clone();
            a.disk_min_free_mb = 1;
            a.disk_min_free_inodes = 100;
        })
        .await;
        server.add_user("dora", "password-123", Role::Student).await;
        let (status, body) = login(&server, "dora", "password-123").await;
        assert_eq!(status, 200, "{backend}: {body}");
        assert!(body.get("warning").is_none(), "{backend}: {body}");
        let token = body["token"].as_str().unwrap().to_string();
        let v = readyz(&server).await;
        assert_eq!(v["disk"]["status"], "ok", "{backend}: {v}");
        assert!(v["disk"]["free_bytes"].as_u64().unwrap() > 1 << 20);

        let mut c = server.connect(&token).await;
        let ServerMsg::Files(FileMsg::Written { version, .. }) =
            write(&mut c, "a.py", "print('v1')\n", None).await
        else {
            panic!("{backend}: the first save works");
        };

        let filler = disk.fill();

        // WebSocket saves: an existing file and a new one. Nothing changes.
        let m = write(&mut c, "a.py", "print('v2')\n", Some(version.clone())).await;
        assert_disk_full(&m);
        let m = write(&mut c, "new.py", &"x = 1\n".repeat(2000), None).await;
        assert_disk_full(&m);
        match read(&mut c, "a.py").await {
            ServerMsg::Files(FileMsg::File {
                content,
                version: v,
                ..
            }) => {
                assert_eq!(
                    content, "print('v1')\n",
                    "{backend}: the old content is intact"
                );
                assert_eq!(v, version);
            }
            other => panic!("{backend}: read after a refused save: {other:?}"),
        }
        match read(&mut c, "new.py").await {
            ServerMsg::Connection(ConnectionMsg::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::NotFound)
            }
            other => panic!("{backend}: a refused new file must not exist: {other:?}"),
        }

        // HTTP PUT: a new file, and a conditional overwrite.
        let http = reqwest::Client::new();
        let put = |path: &str| {
            http.put(server.url(&format!("/api/files/{path}")))
                .bearer_auth(&token)
                .body(vec![b'z'; 4096])
        };
        for req in [
            put("upload.bin"),
            put("a.py").header("if-match", format!("\"{version}\"")),
        ] {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 507, "{backend}");
            let b: serde_json::Value = r.json().await.unwrap();
            assert_eq!(b["code"], "insufficient_storage", "{backend}: {b}");
            assert!(
                b["message"].as_str().unwrap().contains("disk is full"),
                "{b}"
            );
        }
        // A large upload is refused as soon as the first chunk cannot be
        // written, before the rest of the body: read the answer on a raw
        // socket (an HTTP client still sending may see only the early close).
        let head = big_upload_answer(&server, &token).await;
        assert!(head.starts_with("HTTP/1.1 507"), "{backend}: {head}");
        assert!(head.contains("insufficient_storage"), "{backend}: {head}");
        let r = http
            .get(server.url("/api/files/a.py"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "reads still work");
        assert_eq!(r.text().await.unwrap(), "print('v1')\n");
        assert_eq!(
            temp_files(&data_dir.join("workspaces")),
            Vec::<PathBuf>::new(),
            "{backend}: no temp file is left behind"
        );

        // Readiness tells the truth about the disk.
        let v = readyz(&server).await;
        assert_eq!(v["disk"]["status"], "degraded", "{backend}: {v}");
        assert_eq!(v["disk"]["free_bytes"], 0, "{backend}: {v}");
        assert_eq!(v["disk"]["min_free_bytes"], 1 << 20);

        // Logins work and say clearly that changes cannot be accepted; a wrong
        // password is still a plain 401.
        let (status, body) = login(&server, "dora", "password-123").await;
        assert_eq!(status, 200, "{backend}: {body}");
        assert_eq!(body["warning"]["code"], "insufficient_storage", "{body}");
        assert!(
            body["warning"]["message"]
                .as_str()
                .unwrap()
                .contains("cannot accept changes"),
            "{body}"
        );
        let (status, body) = login(&server, "dora", "wrong-password").await;
        assert_eq!(status, 401, "{backend}: {body}");

        // Space is back: everything works again, without a restart.
        std::fs::remove_file(&filler).unwrap();
        assert!(matches!(
            write(&mut c, "a.py", "print('v2')\n", Some(version)).await,
            ServerMsg::Files(FileMsg::Written { .. })
        ));
        assert_eq!(readyz(&server).await["disk"]["status"], "ok");
        let (status, body) = login(&server, "dora", "password-123").await;
        assert_eq!(status, 200);
        assert!(body.get("warning").is_none(), "{body}");
        drop(c);
        server.stop().await;
        drop(disk);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_or_disk_is_full_is_insufficient_storage() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("campus.db").display());
    let store = connect(&url, &PoolSettings::default()).await.unwrap();
    disk.fill();
    // Appends go into free pages of the database and its WAL first; on a
    // disk with no block left one of them has to fail, and it must say why.
    let detail = "x".repeat(4000);
    let mut failure = None;
    for i in 0..10_000 {
        let entry = NewAudit {
            action: format!("test.fill.{i}"),
            detail: Some(detail.clone()),
            ..Default::default()
        };
        if let Err(e) = store.append_audit(entry).await {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("a full disk refuses writes eventually");
    assert!(e.is_storage_full(), "{e}");
    let app = campus_server::error::AppError::from(e);
    assert_eq!(app.code, ErrorCode::InsufficientStorage, "{}", app.message);
    assert_eq!(app.code.http_status(), 507);
    assert!(app.message.contains("disk is full"), "{}", app.message);
    store.close().await;
    drop(disk);
}
