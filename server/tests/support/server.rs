//! A real Campus server on 127.0.0.1:0 for integration tests, plus typed HTTP
//! and WebSocket clients. Shutdown happens in `stop()` or on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use campus_protocol::ConnectionMsg;
use campus_protocol::{ClientMsg, Role, ServerMsg};
use campus_server::config::ServeArgs;
use campus_server::server::{self, Running};
use campus_server::store::{DynStore, NewUser, StoreError};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

/// The token secret of every test server (tests may sign tokens with it).
pub const JWT_SECRET: &str = "test-secret-0123456789-abcdefghij-klmnop";

/// Default test-server args for a data dir and database.
pub fn default_args(data_dir: PathBuf, database_url: &str) -> ServeArgs {
    let mut a = Args::parse_from(["campus"]).serve;
    a.listen = "127.0.0.1:0".parse().expect("addr");
    a.storage.data_dir = data_dir;
    a.storage.database_url = Some(database_url.to_string());
    a.storage.db_max_connections = 4;
    a.jwt_secret = Some(JWT_SECRET.into());
    a.shutdown_grace_secs = 3;
    // The test binary is not `campus`: point the sandbox at the real helper.
    a.run.sandbox_helper = Some(PathBuf::from(env!("CARGO_BIN_EXE_campus")));
    // Each test server gets its own cgroup group so their stale-run cleanups
    // cannot touch each other's runs.
    a.run.cgroup_group = format!("campus-test-{}", uuid::Uuid::new_v4().simple());
    a
}

/// A running test server.
pub struct TestServer {
    pub running: Option<Running>,
    pub addr: std::net::SocketAddr,
    pub store: DynStore,
    pub data_dir: tempfile::TempDir,
}

impl TestServer {
    /// Start on `database_url` with default args changed by `tweak`.
    pub async fn start(database_url: &str, tweak: impl FnOnce(&mut ServeArgs)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(data_dir, database_url, tweak).await
    }

    /// Like [`TestServer::start`], on an existing data dir (e.g. one a test prepared).
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        database_url: &str,
        tweak: impl FnOnce(&mut ServeArgs),
    ) -> TestServer {
        let mut args = default_args(data_dir.path().to_path_buf(), database_url);
        tweak(&mut args);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = server::start(args, listener).await.expect("server starts");
        let store = running.store.clone();
        TestServer {
            addr: running.addr,
            running: Some(running),
            store,
            data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Create a user directly in the store.
    pub async fn add_user(&self, username: &str, password: &str, role: Role) -> i64 {
        // Hashing takes a while in debug builds: off the runtime's threads,
        // or a single-threaded test runtime stalls the server it also runs.
        let pw = password.to_string();
        let hash = tokio::task::spawn_blocking(move || campus_server::auth::password::hash(&pw))
            .await
            .expect("hash task")
            .expect("hash");
        // Set-up, not the subject of any test: on a loaded machine the
        // store breaker may briefly call the database down (a slow call is
        // what it watches for); wait for it to come back, bounded.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut retried = false;
        loop {
            let created = self
                .store
                .create_user(NewUser {
                    username: username.into(),
                    password_hash: hash.clone(),
                    role,
                })
                .await;
            match created {
                Ok(u) => return u.id,
                Err(StoreError::Unavailable) if tokio::time::Instant::now() < deadline => {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // The call the breaker gave up on did insert the row.
                Err(StoreError::Conflict) if retried => {
                    if let Ok(Some(u)) = self.store.user_by_username(username).await {
                        return u.id;
                    }
                    panic!("create user {username}: conflict after a retry");
                }
                Err(e) => panic!("create user {username}: {e:?}"),
            }
        }
    }

    /// Log in over HTTP; returns the token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let resp = reqwest::Client::new()
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200, "login of {username} should succeed");
        let v: serde_json::Value = resp.json().await.expect("json");
        v["token"].as_str().expect("token").to_string()
    }

    /// Create a student and log in: (user id, token).
    pub async fn student(&self, username: &str) -> (i64, String) {
        let id = self.add_user(username, "password-123", Role::Student).await;
        (id, self.login(username, "password-123").await)
    }

    /// Open an authenticated WebSocket and read `hello`.
    pub async fn connect(&self, token: &str) -> WsClient {
        connect_to(&self.ws_url(), token).await
    }

    /// The server's state (tests inspect it).
    pub fn state(&self) -> &campus_server::state::SharedState {
        &self.running.as_ref().expect("server running").state
    }

    /// The server's background writer of run records and audit entries.
    pub fn records(&self) -> &campus_server::records::Records {
        &self.running.as_ref().expect("server running").records
    }

    /// Wait until every run record and audit entry handed to the background
    /// writer so far is in the database (they are written off the hot path).
    pub async fn records_flushed(&self) {
        assert!(
            self.records().flush(wait_limit()).await,
            "records did not reach the database within {:?}: {:?}",
            wait_limit(),
            self.records().stats()
        );
    }

    /// Graceful shutdown and wait.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
            r.wait().await.expect("clean shutdown");
        }
    }
}

/// Open an authenticated WebSocket to `ws_url` and read `hello`.
pub async fn connect_to(ws_url: &str, token: &str) -> WsClient {
    {
        let mut req = ws_url.into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect");
        let mut c = WsClient {
            ws,
            next_id: 1,
            output: Vec::new(),
            pending: Vec::new(),
        };
        match c.recv().await {
            ServerMsg::Connection(ConnectionMsg::Hello { .. }) => {}
            other => panic!("expected hello, got {other:?}"),
        }
        c
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown();
        }
    }
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A typed WebSocket client.
pub struct WsClient {
    pub ws: Stream,
    pub next_id: u64,
    /// Terminal output received so far: (seq, bytes) frames.
    pub output: Vec<(u64, Vec<u8>)>,
    /// JSON messages received while waiting for something else.
    pub pending: Vec<ServerMsg>,
}

/// How long a test waits for a message before failing.
pub fn wait_limit() -> Duration {
    Duration::from_secs(
        std::env::var("CAMPUS_TEST_WAIT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    )
}

impl WsClient {
    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        let t = serde_json::to_string(msg).expect("ser");
        self.send_raw(&t).await;
    }

    /// Next JSON message (binary output frames are collected on the side).
    pub async fn recv(&mut self) -> ServerMsg {
        if !self.pending.is_empty() {
            return self.pending.remove(0);
        }
        self.recv_socket().await
    }

    async fn recv_socket(&mut self) -> ServerMsg {
        // One deadline for the whole wait: heartbeat pings must not extend it.
        let deadline = tokio::time::Instant::now() + wait_limit();
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for a server message");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("bad server json {t}: {e}"))
                }
                Some(Ok(Message::Binary(b))) => {
                    let (seq, bytes) =
                        campus_protocol::frames::decode_output(&b).expect("output frame");
                    self.output.push((seq, bytes.to_vec()));
                }
                Some(Ok(Message::Close(f))) => panic!("connection closed: {f:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("socket ended"),
            }
        }
    }

    /// Wait for the first message matching `pred`, keeping the others for later.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + wait_limit();
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            let m = self.recv_socket().await;
            if pred(&m) {
                return m;
            }
            self.pending.push(m);
        }
    }

    /// Send a request with a fresh id and wait for the reply carrying it.
    pub async fn request(&mut self, build: impl FnOnce(Option<u64>) -> ClientMsg) -> ServerMsg {
        let id = self.next_id;
        self.next_id += 1;
        let msg = build(Some(id));
        self.send(&msg).await;
        self.wait_for("reply", |m| reply_id(m) == Some(id)).await
    }

    /// Wait for the socket to close; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let next = tokio::time::timeout(wait_limit(), self.ws.next())
                .await
                .expect("timed out waiting for close");
            match next {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(t))) => {
                    if let Ok(m) = serde_json::from_str(t.as_str()) {
                        self.pending.push(m);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Wait until the output received contains `needle` (messages meanwhile are kept).
    pub async fn output_contains(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + wait_limit();
        while !String::from_utf8_lossy(&self.output_bytes()).contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.output_bytes())
            );
            // Any message (or output frame) moves us forward.
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                self.wait_for("anything", |_| true),
            )
            .await;
        }
    }

    /// All output bytes received so far, in order.
    pub fn output_bytes(&self) -> Vec<u8> {
        self.output.iter().flat_map(|(_, b)| b.clone()).collect()
    }
}

/// The `id` of a reply, if it has one.
pub fn reply_id(m: &ServerMsg) -> Option<u64> {
    let v = serde_json::to_value(m).ok()?;
    v.get("id")?.as_u64()
}

/// Open an authenticated WebSocket to `ws_url` (a server started some other
/// way, e.g. the `campus` binary) and read `hello`.
pub async fn connect_url(ws_url: &str, token: &str) -> WsClient {
    let mut req = ws_url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let (ws, _) = tokio::time::timeout(wait_limit(), tokio_tungstenite::connect_async(req))
        .await
        .expect("ws connect timed out")
        .expect("ws connect");
    let mut c = WsClient {
        ws,
        next_id: 1,
        output: Vec::new(),
        pending: Vec::new(),
    };
    match c.recv().await {
        ServerMsg::Connection(ConnectionMsg::Hello { .. }) => {}
        other => panic!("expected hello, got {other:?}"),
    }
    c
}
