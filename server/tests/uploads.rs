//! `PUT /api/files/{path}` cut short in every way a network, a client or the server can cut
//! it, written by hand on raw sockets (HTTP/1.1 over a tokio `TcpStream`): a file changes only
//! when its whole body arrived (the declared length reached exactly, or the chunked terminator
//! read). Otherwise — client FIN or RST mid-body, a stalled or too slow body, server shutdown,
//! the size limit — the old content, its version and its history stay as they were, nothing is
//! created (not even a parent directory), and no temporary file is left.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::db::{test_databases, TestDb};
use support::server::{wait_limit, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Size of the file that is there before each upload.
const OLD_LEN: usize = 104_000;
/// What the cut uploads declare (or would have sent, chunked) ...
const DECLARED: usize = 200_000;
/// ... and what they send before they are cut.
const SENT: usize = 50_000;
/// The body idle timeout of the test server, seconds.
const IDLE_SECS: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Length,
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    /// The client closes its side (FIN).
    Fin,
    /// The connection is reset (RST, zero linger).
    Rst,
}

#[derive(Debug, Clone)]
enum Condition {
    None,
    IfMatch(String),
    IfNoneMatchStar,
}

/// A server, a logged-in student and where their files live on disk.
struct Env {
    server: TestServer,
    token: String,
    tree: PathBuf,
    meta: PathBuf,
    /// Dropped after the server (fields drop in order).
    _db: TestDb,
}

async fn env(tweak: impl FnOnce(&mut campus_server::config::ServeArgs)) -> Env {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| {
        a.upload_idle_timeout_secs = IDLE_SECS;
        a.file_ops_per_min = 10_000;
        tweak(a);
    })
    .await;
    let (id, token) = server.student("uma").await;
    let tree = server.data_dir.path().join(format!("workspaces/{id}"));
    let meta = server.data_dir.path().join(format!("workspace-meta/{id}"));
    Env {
        server,
        token,
        tree,
        meta,
        _db: db,
    }
}

/// Files (with their bytes) and directories (`None`) by relative path.
type DiskState = BTreeMap<String, Option<Vec<u8>>>;

/// Every file below `dir` with its bytes (directories as `None`), temporaries included.
fn disk_state(dir: &Path) -> DiskState {
    fn walk(base: &Path, dir: &Path, out: &mut DiskState) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            // A temporary may vanish between the listing and the stat.
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                out.insert(rel, None);
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).ok());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Temporaries (`.campus-tmp-*`) anywhere below `dir`.
fn temps(dir: &Path) -> Vec<String> {
    disk_state(dir)
        .into_keys()
        .filter(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".campus-tmp-"))
        })
        .collect()
}

/// Polls `pred` until it holds (bounded by the test wait limit).
async fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + wait_limit();
    while !pred() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn request_head(env: &Env, path: &str, framing: Framing, cond: &Condition) -> String {
    let mut h = format!(
        "PUT /api/files/{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n",
        env.server.addr, env.token
    );
    match framing {
        Framing::Length => h.push_str(&format!("Content-Length: {DECLARED}\r\n")),
        Framing::Chunked => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    match cond {
        Condition::None => {}
        Condition::IfMatch(v) => h.push_str(&format!("If-Match: \"{v}\"\r\n")),
        Condition::IfNoneMatchStar => h.push_str("If-None-Match: *\r\n"),
    }
    h.push_str("\r\n");
    h
}

/// Body bytes `n..n+len` of the pattern every upload sends.
fn pattern(n: usize, len: usize) -> Vec<u8> {
    (n..n + len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Sends `SENT` bytes of body: raw, or as 5,000-byte chunks followed by the start of a chunk
/// that never ends.
async fn send_part(sock: &mut TcpStream, framing: Framing) {
    match framing {
        Framing::Length => sock.write_all(&pattern(0, SENT)).await.unwrap(),
        Framing::Chunked => {
            for i in 0..SENT / 5000 {
                sock.write_all(b"1388\r\n").await.unwrap();
                sock.write_all(&pattern(i * 5000, 5000)).await.unwrap();
                sock.write_all(b"\r\n").await.unwrap();
            }
            sock.write_all(b"2000\r\n").await.unwrap();
            sock.write_all(&pattern(SENT, 100)).await.unwrap();
        }
    }
    sock.flush().await.unwrap();
}

/// Reads the response head (up to the blank line) or returns what came before EOF.
async fn read_head(sock: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(wait_limit(), sock.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Starts an upload and returns once the server staged it (its temporary file exists), so
/// that what follows really cuts an upload in progress.
async fn start_upload(env: &Env, path: &str, framing: Framing, cond: &Condition) -> TcpStream {
    let mut sock = TcpStream::connect(env.server.addr).await.unwrap();
    sock.write_all(request_head(env, path, framing, cond).as_bytes())
        .await
        .unwrap();
    send_part(&mut sock, framing).await;
    let tree = env.tree.clone();
    wait_until("the upload is staged", || !temps(&tree).is_empty()).await;
    sock
}

/// The version (ETag) of `path`, or `None` if it does not exist.
async fn version(env: &Env, path: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .get(env.server.url(&format!("/api/files/{path}")))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    if r.status() == 404 {
        return None;
    }
    assert_eq!(r.status(), 200);
    Some(
        r.headers()["etag"]
            .to_str()
            .unwrap()
            .trim_matches('"')
            .to_string(),
    )
}

/// Asserts that the workspace (tree and history) is exactly `before` once the server is done
/// with the upload (no temporary left).
async fn assert_untouched(env: &Env, case: &str, before: &(DiskState, DiskState)) {
    let tree = env.tree.clone();
    wait_until(&format!("{case}: the temporary file is gone"), || {
        temps(&tree).is_empty()
    })
    .await;
    // The dropped write removes its temporary first, then the empty parent
    // folders it made: on a cut connection nothing waits for that, so give the
    // second step the same bound before comparing.
    let deadline = tokio::time::Instant::now() + wait_limit();
    let mut now = (disk_state(&env.tree), disk_state(&env.meta));
    while now != *before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        now = (disk_state(&env.tree), disk_state(&env.meta));
    }
    if now != *before {
        let keys = |m: &DiskState| m.keys().cloned().collect::<Vec<_>>();
        let sizes = |m: &DiskState| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map(Vec::len)))
                .collect::<Vec<_>>()
        };
        panic!(
            "{case}: the workspace changed\nbefore: {:?}\nafter:  {:?}\nhistory before: {:?}\nhistory after:  {:?}",
            sizes(&before.0),
            sizes(&now.0),
            keys(&before.1),
            keys(&now.1)
        );
    }
}

/// Puts the 104 KB `data.txt` in place; returns its version.
async fn seed(env: &Env) -> String {
    let r = reqwest::Client::new()
        .put(env.server.url("/api/files/data.txt"))
        .bearer_auth(&env.token)
        .body(vec![b'o'; OLD_LEN])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    version(env, "data.txt").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_upload_changes_nothing_for_every_path_framing_and_condition() {
    let env = env(|_| {}).await;
    let v = seed(&env).await;
    let cases: Vec<(&str, Condition)> = vec![
        ("data.txt", Condition::None),
        ("data.txt", Condition::IfMatch(v.clone())),
        ("fresh/sub/new.bin", Condition::None),
        ("fresh/sub/new.bin", Condition::IfNoneMatchStar),
        ("new-here.bin", Condition::None),
    ];
    for (path, cond) in &cases {
        for framing in [Framing::Length, Framing::Chunked] {
            for cut in [Cut::Fin, Cut::Rst] {
                let case = format!("{path} {cond:?} {framing:?} {cut:?}");
                let before = (disk_state(&env.tree), disk_state(&env.meta));
                let mut sock = start_upload(&env, path, framing, cond).await;
                match cut {
                    Cut::Fin => {
                        sock.shutdown().await.unwrap();
                        // Whatever the server answers (if anything), it must not be success.
                        let head = read_head(&mut sock).await;
                        assert!(!head.starts_with("HTTP/1.1 2"), "{case}: answered {head}");
                    }
                    Cut::Rst => {
                        sock.set_zero_linger().unwrap();
                        drop(sock);
                    }
                }
                assert_untouched(&env, &case, &before).await;
                assert_eq!(version(&env, "data.txt").await.as_deref(), Some(v.as_str()));
                assert_eq!(version(&env, path).await.is_some(), *path == "data.txt");
            }
        }
    }
    // The same requests sent whole do commit, so the cases above could have.
    for framing in [Framing::Length, Framing::Chunked] {
        let mut sock = TcpStream::connect(env.server.addr).await.unwrap();
        let cond = Condition::IfMatch(version(&env, "data.txt").await.unwrap());
        sock.write_all(request_head(&env, "data.txt", framing, &cond).as_bytes())
            .await
            .unwrap();
        let body = pattern(0, DECLARED);
        match framing {
            Framing::Length => sock.write_all(&body).await.unwrap(),
            Framing::Chunked => {
                for c in body.chunks(5000) {
                    sock.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                        .await
                        .unwrap();
                    sock.write_all(c).await.unwrap();
                    sock.write_all(b"\r\n").await.unwrap();
                }
                sock.write_all(b"0\r\n\r\n").await.unwrap();
            }
        }
        // (No FIN before the answer: hyper, with HTTP/1 half-close off as axum runs it, may
        // drop a request whose client half-closes, even after a whole body; see the probe
        // below.)
        let head = read_head(&mut sock).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{framing:?}: {head}");
        assert_eq!(std::fs::read(env.tree.join("data.txt")).unwrap(), body);
    }
    assert!(temps(&env.tree).is_empty());
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_too_slow_upload_times_out_and_changes_nothing() {
    let env = env(|a| a.upload_timeout_secs = 4).await;
    let v = seed(&env).await;
    // Stalled: part of the body, then silence. The answer comes after the idle timeout.
    for (path, cond, framing) in [
        ("data.txt", Condition::IfMatch(v.clone()), Framing::Length),
        ("data.txt", Condition::None, Framing::Chunked),
        ("new/stalled.bin", Condition::None, Framing::Length),
    ] {
        let case = format!("stalled {path} {cond:?} {framing:?}");
        let before = (disk_state(&env.tree), disk_state(&env.meta));
        let mut sock = start_upload(&env, path, framing, &cond).await;
        let head = read_head(&mut sock).await;
        assert!(head.starts_with("HTTP/1.1 408"), "{case}: {head}");
        assert_untouched(&env, &case, &before).await;
    }
    // Too slow: a byte every 200 ms never trips the idle timeout, but the total one.
    let before = (disk_state(&env.tree), disk_state(&env.meta));
    let mut sock = start_upload(&env, "data.txt", Framing::Length, &Condition::None).await;
    let (mut rd, mut wr) = sock.split();
    let trickle = async {
        for i in 0.. {
            if wr.write_all(&pattern(SENT + i, 1)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let answer = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = rd.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    let head = tokio::select! {
        _ = trickle => panic!("the trickle ended without an answer"),
        h = tokio::time::timeout(wait_limit(), answer) => h.expect("an answer"),
    };
    assert!(head.starts_with("HTTP/1.1 408"), "trickle: {head}");
    drop(sock);
    assert_untouched(&env, "trickle", &before).await;
    assert_eq!(version(&env, "data.txt").await.as_deref(), Some(v.as_str()));
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutdown_mid_upload_commits_nothing() {
    let env = env(|_| {}).await;
    let v = seed(&env).await;
    let before = (disk_state(&env.tree), disk_state(&env.meta));
    let mut existing = start_upload(
        &env,
        "data.txt",
        Framing::Length,
        &Condition::IfMatch(v.clone()),
    )
    .await;
    let mut fresh = TcpStream::connect(env.server.addr).await.unwrap();
    fresh
        .write_all(
            request_head(
                &env,
                "made/during/shutdown.bin",
                Framing::Chunked,
                &Condition::None,
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    send_part(&mut fresh, Framing::Chunked).await;
    let tree = env.tree.clone();
    wait_until("both uploads are staged", || temps(&tree).len() == 2).await;
    env.server.running.as_ref().unwrap().shutdown();
    for sock in [&mut existing, &mut fresh] {
        let head = read_head(sock).await;
        assert!(
            head.is_empty() || head.starts_with("HTTP/1.1 503"),
            "answered {head}"
        );
    }
    assert_untouched(&env, "shutdown", &before).await;
    assert_eq!(
        std::fs::read(env.tree.join("data.txt")).unwrap(),
        vec![b'o'; OLD_LEN]
    );
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_size_limit_changes_nothing() {
    let env = env(|_| {}).await;
    let v = seed(&env).await;
    for cond in [Condition::None, Condition::IfMatch(v.clone())] {
        let case = format!("over the limit {cond:?}");
        let before = (disk_state(&env.tree), disk_state(&env.meta));
        let mut sock = TcpStream::connect(env.server.addr).await.unwrap();
        sock.write_all(request_head(&env, "data.txt", Framing::Chunked, &cond).as_bytes())
            .await
            .unwrap();
        let chunk = vec![b'x'; 1 << 20];
        let (mut rd, mut wr) = sock.split();
        // 11 MiB in 1 MiB chunks; the server answers (and stops reading) at 10 MiB.
        let send = async {
            for _ in 0..11 {
                let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                if wr.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = wr.write_all(b"0\r\n\r\n").await;
            std::future::pending::<()>().await;
        };
        let answer = async {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = rd.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&got).into_owned()
        };
        let head = tokio::select! {
            _ = send => unreachable!(),
            h = tokio::time::timeout(wait_limit(), answer) => h.expect("an answer"),
        };
        assert!(head.starts_with("HTTP/1.1 413"), "{case}: {head}");
        drop(sock);
        assert_untouched(&env, &case, &before).await;
    }
    assert_eq!(version(&env, "data.txt").await.as_deref(), Some(v.as_str()));
    env.server.stop().await;
}

/// The next report of the probe handler.
async fn next_report(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(wait_limit(), rx.recv())
        .await
        .expect("the handler reports")
        .unwrap()
}

/// Establishes what hyper (under axum) hands a handler when a body is cut: an error, or the
/// handler is dropped; never a clean end of stream — for a declared length and for chunked
/// framing. `put_file` does not rely on it (it also counts bytes against `Content-Length`,
/// and commits only on an explicit "complete" that a dropped handler never sends), but this
/// pins the behaviour down. Seen here: a cut body gives "error reading a body from connection";
/// a client that half-closes right after a whole body sometimes has its handler dropped or
/// never called (hyper's HTTP/1 half-close support is off), which is why `put_file` must
/// survive being dropped at any await.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_reports_a_cut_body_as_an_error_not_as_its_end() {
    use axum::body::Body;
    use futures_util::StreamExt;

    /// Reports how the body ended, or that the handler was dropped before it saw an end.
    struct Report(Option<tokio::sync::mpsc::UnboundedSender<String>>);
    impl Drop for Report {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send("handler dropped".into());
            }
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/probe",
        axum::routing::put(move |body: Body| {
            let mut report = Report(Some(tx.clone()));
            let _ = tx.send("started".into());
            async move {
                let mut stream = body.into_data_stream();
                let mut n = 0;
                let ending = loop {
                    match stream.next().await {
                        None => break format!("end of stream after {n}"),
                        Some(Ok(b)) => n += b.len(),
                        Some(Err(e)) => break format!("error after {n}: {e}"),
                    }
                };
                if let Some(tx) = report.0.take() {
                    let _ = tx.send(ending);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = tokio::spawn(async move { axum::serve(listener, app).await });
    let cases: [(&str, &[u8], bool); 4] = [
        ("Content-Length: 10", b"12345", false),
        ("Content-Length: 5", b"12345", true),
        ("Transfer-Encoding: chunked", b"5\r\n12345\r\n", false),
        (
            "Transfer-Encoding: chunked",
            b"5\r\n12345\r\n0\r\n\r\n",
            true,
        ),
    ];
    for (framing, body, complete) in cases {
        for cut in [Cut::Fin, Cut::Rst] {
            let mut sock = TcpStream::connect(addr).await.unwrap();
            let head = format!("PUT /probe HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n");
            sock.write_all(head.as_bytes()).await.unwrap();
            sock.write_all(body).await.unwrap();
            // The handler runs (and waits for the rest of a cut body) before anything is cut.
            assert_eq!(next_report(&mut rx).await, "started");
            if complete {
                // A whole body: the handler sees its end and answers.
                assert!(read_head(&mut sock).await.starts_with("HTTP/1.1 200"));
            } else if cut == Cut::Fin {
                sock.shutdown().await.unwrap();
            } else {
                sock.set_zero_linger().unwrap();
                drop(sock);
            }
            let ending = next_report(&mut rx).await;
            if complete {
                assert_eq!(ending, "end of stream after 5", "{framing}");
            } else {
                assert!(
                    ending.starts_with("error after 5") || ending == "handler dropped",
                    "{framing} {cut:?}: {ending}"
                );
            }
        }
    }
    srv.abort();
}

/// Shutdown with everything in flight at once: a run (ends `server_shutdown`
/// and is recorded), saves (every acknowledged one is on disk), an upload
/// (not committed); the server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_run_saves_and_an_upload_in_flight() {
    use campus_protocol::{
        ClientMsg, ConnectionMsg, Encoding, EndReason, FileMsg, FileRequest, RunMode, ServerMsg,
        SessionMsg, SessionRequest,
    };
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let mut env = env(|a| a.shutdown_grace_secs = 5).await;
    let uid: i64 = env
        .tree
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let v = seed(&env).await;
    let mut c = env.server.connect(&env.token).await;
    c.send(&ClientMsg::Files(FileRequest::Write {
        id: Some(1),
        path: "long.py".into(),
        content: "import time\nprint('working', flush=True)\ntime.sleep(600)\n".into(),
        encoding: Encoding::Utf8,
        base_version: None,
    }))
    .await;
    c.wait_for("written", |m| {
        matches!(m, ServerMsg::Files(FileMsg::Written { id: Some(1), .. }))
    })
    .await;
    c.send(&ClientMsg::Session(SessionRequest::Run {
        id: Some(2),
        path: "long.py".into(),
        mode: RunMode::Script,
        cols: None,
        rows: None,
        course: None,
    }))
    .await;
    let run_id = match c
        .wait_for("run_started", |m| {
            matches!(
                m,
                ServerMsg::Session(SessionMsg::RunStarted { id: Some(2), .. })
            )
        })
        .await
    {
        ServerMsg::Session(SessionMsg::RunStarted { run_id, .. }) => run_id,
        _ => unreachable!(),
    };
    let deadline = tokio::time::Instant::now() + wait_limit();
    while !String::from_utf8_lossy(&c.output_bytes()).contains("working") {
        assert!(tokio::time::Instant::now() < deadline, "no output");
        let _ = tokio::time::timeout(Duration::from_millis(200), c.wait_for("any", |_| true)).await;
    }
    // An upload staged but not finished.
    let mut upload = start_upload(&env, "data.txt", Framing::Length, &Condition::IfMatch(v)).await;
    // Saves sent back to back; shutdown starts once the first is acknowledged.
    for i in 0..20u64 {
        c.send(&ClientMsg::Files(FileRequest::Write {
            id: Some(100 + i),
            path: format!("save-{i}.txt"),
            content: i.to_string().repeat(10_000),
            encoding: Encoding::Utf8,
            base_version: None,
        }))
        .await;
    }
    let mut heard: Vec<ServerMsg> = vec![
        c.wait_for("first save", |m| {
            matches!(m, ServerMsg::Files(FileMsg::Written { id: Some(100), .. }))
        })
        .await,
    ];
    let running = env.server.running.take().unwrap();
    running.shutdown();
    // Everything the client hears until the socket closes.
    heard.append(&mut c.pending);
    loop {
        match tokio::time::timeout(wait_limit(), c.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => heard.push(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the connection was not closed"),
        }
    }
    let head = read_head(&mut upload).await;
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 503"),
        "answered {head}"
    );
    tokio::time::timeout(wait_limit() * 2, running.wait())
        .await
        .expect("the server did not stop")
        .expect("clean stop");

    assert!(
        heard
            .iter()
            .any(|m| matches!(m, ServerMsg::Connection(ConnectionMsg::Shutdown { .. }))),
        "the client was not told: {heard:?}"
    );
    // Every acknowledged save is on disk, whole.
    let acked: Vec<u64> = heard
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Files(FileMsg::Written { id: Some(id), .. }) if *id >= 100 => Some(id - 100),
            _ => None,
        })
        .collect();
    assert!(acked.contains(&0), "{heard:?}");
    for i in &acked {
        let got = std::fs::read_to_string(env.tree.join(format!("save-{i}.txt"))).unwrap();
        assert_eq!(got, i.to_string().repeat(10_000), "save {i}");
    }
    // The upload committed nothing.
    assert_eq!(
        std::fs::read(env.tree.join("data.txt")).unwrap(),
        vec![b'o'; OLD_LEN]
    );
    assert!(
        temps(&env.tree).is_empty(),
        "the upload left its temporary file"
    );
    // The run ended with server_shutdown (announced if the socket was still
    // open for it) and is recorded.
    for m in &heard {
        if let ServerMsg::Session(SessionMsg::RunEnded { ended, .. }) = m {
            assert_eq!(ended.reason, EndReason::ServerShutdown, "{ended:?}");
        }
    }
    // The server closed its pool: look with a fresh one.
    let store = campus_server::store::connect(&env._db.url, &Default::default())
        .await
        .unwrap();
    let runs = store.recent_runs(uid, 10).await.unwrap();
    let run = runs.iter().find(|r| r.id == run_id).expect("run recorded");
    assert_eq!(run.reason.as_deref(), Some("server_shutdown"), "{run:?}");
}
