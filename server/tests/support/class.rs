//! A student's actions over the WebSocket, each checked for its answer, for
//! tests that put the server under a failure (database outage, write lock):
//! saves, a script that asks `input()` and is answered, pings.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use campus_protocol::{ClientMsg, Encoding, EndReason, RunMode, ServerMsg};
use campus_protocol::{
    ConnectionMsg, ConnectionRequest, FileMsg, FileRequest, SessionMsg, SessionRequest,
};

use super::server::{wait_limit, WsClient};

/// Every action is answered within this. Generous for a loaded machine, and
/// still well below the pool's acquire timeout the failure tests configure: a
/// correctness bound ("nothing waited for the database"), not a latency target.
pub const ANSWERED_WITHIN: Duration = Duration::from_secs(5);

/// A script that asks for a name and greets it.
pub const ASK: &str = "name = input('name? ')\nprint('hello', name)\n";

/// Await `fut`; fail if it took longer than [`ANSWERED_WITHIN`].
pub async fn timed<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = fut.await;
    assert!(
        t.elapsed() < ANSWERED_WITHIN,
        "{what} took {:?}: something waited for the database",
        t.elapsed()
    );
    out
}

/// Save `content`, based on `base` (`None`: a new file); returns the new version.
pub async fn save(c: &mut WsClient, path: &str, content: &str, base: Option<String>) -> String {
    let (p, body) = (path.to_string(), content.to_string());
    let m = c
        .request(move |id| {
            ClientMsg::Files(FileRequest::Write {
                id,
                path: p,
                content: body,
                encoding: Encoding::Utf8,
                base_version: base,
            })
        })
        .await;
    match m {
        ServerMsg::Files(FileMsg::Written { version, .. }) => version,
        other => panic!("save: {other:?}"),
    }
}

/// Wait until the output received so far contains `needle`, keeping every
/// JSON message that arrives meanwhile for later `wait_for`s.
pub async fn output_contains(c: &mut WsClient, needle: &str) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + wait_limit();
    while !String::from_utf8_lossy(&c.output_bytes()).contains(needle) {
        let next = tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {needle:?}; got {:?}",
                    String::from_utf8_lossy(&c.output_bytes())
                )
            });
        match next {
            Some(Ok(Message::Binary(b))) => {
                let (seq, bytes) = campus_protocol::frames::decode_output(&b).unwrap();
                c.output.push((seq, bytes.to_vec()));
            }
            Some(Ok(Message::Text(t))) => c.pending.push(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(f))) => panic!("closed while waiting for {needle:?}: {f:?}"),
            Some(Ok(_)) => {}
            other => panic!("socket ended while waiting for {needle:?}: {other:?}"),
        }
    }
}

/// Start a run; returns its id.
pub async fn start_run(c: &mut WsClient, path: &str, mode: RunMode) -> String {
    c.output.clear();
    let m = c
        .request(|id| {
            ClientMsg::Session(SessionRequest::Run {
                id,
                path: path.into(),
                mode,
                cols: Some(80),
                rows: Some(24),
                course: None,
            })
        })
        .await;
    match m {
        ServerMsg::Session(SessionMsg::RunStarted { run_id, .. }) => run_id,
        other => panic!("run: {other:?}"),
    }
}

/// Run `ask.py`, answer its `input()`, and wait for the end; returns the run id.
pub async fn ask_run(c: &mut WsClient, name: &str) -> String {
    let run_id = timed("run start", start_run(c, "ask.py", RunMode::Script)).await;
    timed("prompt", output_contains(c, "name? ")).await;
    c.send(&ClientMsg::Session(SessionRequest::Input {
        id: None,
        data: format!("{name}\r"),
    }))
    .await;
    timed(
        "echo and answer",
        output_contains(c, &format!("hello {name}")),
    )
    .await;
    let ended = timed(
        "run end",
        c.wait_for("run_ended", |m| {
            matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
        }),
    )
    .await;
    match ended {
        ServerMsg::Session(SessionMsg::RunEnded { ended, .. }) => {
            assert_eq!(ended.run_id, run_id);
            assert_eq!(
                (ended.reason, ended.exit_code),
                (EndReason::Exited, Some(0)),
                "{ended:?}"
            );
        }
        _ => unreachable!(),
    }
    run_id
}

/// `ping` → `pong`.
pub async fn ping(c: &mut WsClient) {
    let m = c
        .request(|id| ClientMsg::Connection(ConnectionRequest::Ping { id }))
        .await;
    assert!(
        matches!(m, ServerMsg::Connection(ConnectionMsg::Pong { .. })),
        "{m:?}"
    );
}
