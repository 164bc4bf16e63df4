//! `campus run --as USER`: one run through the same session code as the
//! WebSocket path, attached to the caller's terminal.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use campus_protocol::SessionMsg;
use campus_protocol::{RunEnded, RunMode, ServerMsg, UserInfo};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{Runner, SessionEvent};

/// Connection id of the terminal within the session.
const CONN_ID: &str = "cli";
/// Request id of our `run`, to recognise our `run_started`.
const REQ_ID: u64 = 1;

/// Puts the caller's terminal in raw mode (keys, Ctrl-C included, go to the
/// program's PTY) and restores it on drop.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enable_if_tty() -> RawMode {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return RawMode { saved: None };
        }
        let Ok(saved) = termios::tcgetattr(&stdin) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).is_err() {
            return RawMode { saved: None };
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}

/// Terminal size from `COLUMNS`/`LINES`, else 80×24.
fn terminal_size() -> (u16, u16) {
    let get = |k: &str, d: u16| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(d)
    };
    (get("COLUMNS", 80), get("LINES", 24))
}

/// Stdin on a plain thread (a blocked read must not hold up runtime
/// shutdown); EOF is passed on as Ctrl-D so the program sees end of input.
fn spawn_stdin() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    let spawned = std::thread::Builder::new()
        .name("campus-cli-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 4096];
            loop {
                let chunk = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => Bytes::from_static(b"\x04"),
                    Ok(n) => Bytes::copy_from_slice(&buf[..n]),
                };
                let eof = chunk.as_ref() == b"\x04";
                if tx.blocking_send(chunk).is_err() || eof {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no stdin forwarding");
    }
    rx
}

/// Run `path` (ignored for `repl`) for `user`, with stdin forwarded to the
/// program and its output written to stdout; returns the `run_ended` record.
pub async fn run_in_terminal(
    runner: &Arc<Runner>,
    user: &UserInfo,
    workspace_dir: PathBuf,
    mode: RunMode,
    path: String,
) -> anyhow::Result<RunEnded> {
    // u64::MAX: no replay of earlier output, only this run's.
    let mut att = runner
        .attach(user, workspace_dir, CONN_ID, u64::MAX)
        .await
        .context("attach to the session")?;
    let (cols, rows) = terminal_size();
    let _raw = RawMode::enable_if_tty();
    att.handle
        .run(CONN_ID, Some(REQ_ID), path, mode, cols, rows)
        .await
        .context("start the run")?;
    let mut stdin = spawn_stdin();
    let mut stdin_open = true;
    let mut stdout = tokio::io::stdout();
    let mut our_run: Option<String> = None;
    loop {
        tokio::select! {
            input = stdin.recv(), if stdin_open => match input {
                Some(bytes) => att.handle.input(bytes).await?,
                None => stdin_open = false,
            },
            ev = att.events.recv() => match ev {
                Some(SessionEvent::Output { seq, bytes }) => {
                    stdout.write_all(&bytes).await?;
                    stdout.flush().await?;
                    att.handle.ack(CONN_ID, seq + bytes.len() as u64).await?;
                }
                Some(SessionEvent::Msg(ServerMsg::Session(SessionMsg::RunStarted { id: Some(REQ_ID), run_id, .. }))) => {
                    our_run = Some(run_id);
                }
                Some(SessionEvent::Msg(ServerMsg::Session(SessionMsg::RunEnded { ended, .. })))
                    if our_run.as_deref() == Some(ended.run_id.as_str()) =>
                {
                    return Ok(ended);
                }
                Some(SessionEvent::Msg(_)) => {}
                None => anyhow::bail!("the session dropped this terminal"),
            },
        }
    }
}
