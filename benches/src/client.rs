//! A minimal typed Campus client: HTTP login and a WebSocket that matches
//! replies by id and surfaces terminal output frames.

use std::time::Duration;

use anyhow::{bail, Context};
use campus_protocol::{frames, ClientMsg, ServerMsg};
use campus_protocol::{ConnectionMsg, FileMsg, SessionMsg};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Something the server sent.
#[derive(Debug)]
pub enum Event {
    /// A JSON message.
    Msg(ServerMsg),
    /// Terminal output at byte offset `seq`.
    Output(u64, Vec<u8>),
}

/// Log in over HTTP; returns the token.
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("login {user}: {}", r.status());
    }
    let v: serde_json::Value = r.json().await?;
    Ok(v["token"].as_str().context("token")?.to_string())
}

/// An open WebSocket connection.
pub struct Client {
    ws: Stream,
    next_id: u64,
    /// Messages that arrived while waiting for a reply.
    pub backlog: std::collections::VecDeque<Event>,
}

impl Client {
    /// Connect with a token and read `hello`.
    pub async fn connect(base: &str, token: &str) -> anyhow::Result<Client> {
        let url = base.replacen("http://", "ws://", 1) + "/ws";
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        // TCP_NODELAY on the client too: otherwise a keystroke sent right after an
        // `ack` waits for the server's delayed ACK (40 ms) — Nagle, not Campus.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
        let mut c = Client {
            ws,
            next_id: 1,
            backlog: Default::default(),
        };
        match c.next_raw().await? {
            Event::Msg(ServerMsg::Connection(ConnectionMsg::Hello { .. })) => Ok(c),
            other => bail!("expected hello, got {other:?}"),
        }
    }

    /// Send a message.
    pub async fn send(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        self.ws
            .send(Message::Text(serde_json::to_string(msg)?.into()))
            .await?;
        Ok(())
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    async fn next_raw(&mut self) -> anyhow::Result<Event> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .context("timed out waiting for the server")?
                .context("connection closed")??;
            match m {
                Message::Text(t) => return Ok(Event::Msg(serde_json::from_str(t.as_str())?)),
                Message::Binary(b) => {
                    let (seq, bytes) = frames::decode_output(&b).context("bad frame")?;
                    return Ok(Event::Output(seq, bytes.to_vec()));
                }
                Message::Close(f) => {
                    bail!("closed with code {}", f.map_or(1005, |f| u16::from(f.code)))
                }
                _ => {}
            }
        }
    }

    /// Next event (backlog first).
    pub async fn next(&mut self) -> anyhow::Result<Event> {
        if let Some(e) = self.backlog.pop_front() {
            return Ok(e);
        }
        self.next_raw().await
    }

    /// Send `msg` (which must carry `id`) and wait for the reply with that id.
    pub async fn request(&mut self, id: u64, msg: &ClientMsg) -> anyhow::Result<ServerMsg> {
        self.send(msg).await?;
        loop {
            match self.next_raw().await? {
                Event::Msg(m) if reply_id(&m) == Some(id) => return Ok(m),
                other => {
                    if self.backlog.len() < 10_000 {
                        self.backlog.push_back(other);
                    }
                }
            }
        }
    }

    /// Close politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The `id` a reply carries.
pub fn reply_id(m: &ServerMsg) -> Option<u64> {
    match m {
        ServerMsg::Connection(ConnectionMsg::Pong { id })
        | ServerMsg::Connection(ConnectionMsg::Error { id, .. })
        | ServerMsg::Files(FileMsg::Listing { id, .. })
        | ServerMsg::Files(FileMsg::Entry { id, .. })
        | ServerMsg::Files(FileMsg::File { id, .. })
        | ServerMsg::Files(FileMsg::Written { id, .. })
        | ServerMsg::Files(FileMsg::Deleted { id, .. })
        | ServerMsg::Files(FileMsg::Versions { id, .. })
        | ServerMsg::Files(FileMsg::Trash { id, .. })
        | ServerMsg::Session(SessionMsg::RunStarted { id, .. })
        | ServerMsg::Session(SessionMsg::RunEnded { id, .. })
        | ServerMsg::Session(SessionMsg::Attached { id, .. }) => *id,
        ServerMsg::Courses(m) => m.id(),
        ServerMsg::Grading(m) => m.id(),
        ServerMsg::Admin(m) => m.id(),
        _ => None,
    }
}
