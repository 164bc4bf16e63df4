//! The session actor: one task per user that owns the live run, the output
//! log and the attached connections, and enforces flow control, limits and
//! the culling rules (see the module docs of [`super`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod lifecycle;
mod warming;

use bytes::{Bytes, BytesMut};
use campus_protocol::SessionMsg;
use campus_protocol::{EndReason, Phase, RunEnded, ServerMsg, UserInfo};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

use super::context::Context;
use super::handle::Command;
use super::output::{parse_phase_report, OutputLog};
use super::priority::PriorityPolicy;
use super::run::{LiveRun, RunIo};
use super::warm::WarmSandbox;
use super::{BufferStats, SessionEvent, SessionInfo};
use crate::execution::proc::{ExitInfo, PtyRead};
use crate::execution::TermSize;
use crate::sandbox::CpuPriority;

/// How often usage is sampled while a run is live (CPU limit, peak memory).
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// Housekeeping wake-up (closed connections) while running.
const HOUSEKEEPING_RUNNING: Duration = Duration::from_secs(1);
/// Housekeeping wake-up while idle.
const HOUSEKEEPING_IDLE: Duration = Duration::from_secs(5);
/// After the main process exited, how long the PTY may stay silent before EOF is forced.
const EOF_GRACE: Duration = Duration::from_secs(2);
/// How long a killed process gets to be reported dead.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Per-chunk timeout while draining a dead run's PTY.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

struct Conn {
    tx: mpsc::Sender<SessionEvent>,
    /// Output offset this connection has acknowledged.
    acked: u64,
    serial: u64,
}

/// The actor's state.
/// Frames that may be sent back to back before coalescing starts.
const FRAME_BURST: f64 = 8.0;
/// Frames granted by each input message (its echo and the program's answer).
const INPUT_FRAME_CREDIT: f64 = 4.0;

pub(crate) struct Session {
    id: u64,
    user: UserInfo,
    workspace_dir: PathBuf,
    ctx: Arc<Context>,
    cmd_rx: mpsc::Receiver<Command>,
    conns: HashMap<String, Conn>,
    next_serial: u64,
    log: OutputLog,
    pending: BytesMut,
    last_flush: Instant,
    /// Frames that may go out at once (token bucket refilled at one per
    /// `frame_interval`): interactive echo is never held back, while a flood
    /// settles at ~60 frames/s.
    frame_credit: f64,
    credit_at: Instant,
    paused: bool,
    run: Option<LiveRun>,
    io: RunIo,
    last_run_id: Option<String>,
    /// The live or last run started on a warm sandbox.
    last_start_warm: bool,
    last_ended: Option<RunEnded>,
    cols: u16,
    rows: u16,
    /// Since when the session has had no run (for idle removal).
    idle_since: Instant,
    /// Since when nobody is attached.
    detached_since: Option<Instant>,
    next_sample: Instant,
    /// CPU priority of the live run (interactive first).
    priority: PriorityPolicy,
    max_tail: usize,
    max_pending: usize,
    max_unacked: u64,
    /// A ready sandbox for the next run (see [`super::warm`]).
    warm: Option<WarmSandbox>,
    /// One being prepared on the blocking pool.
    warming: Option<oneshot::Receiver<Result<WarmSandbox, String>>>,
    /// No new warm sandbox before this (after one failed to start).
    warm_retry_at: Instant,
}

async fn recv_chunk(rx: &mut Option<mpsc::Receiver<PtyRead>>) -> Option<PtyRead> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_warm(
    rx: &mut Option<oneshot::Receiver<Result<WarmSandbox, String>>>,
) -> Result<WarmSandbox, String> {
    let res = match rx.as_mut() {
        Some(rx) => rx
            .await
            .unwrap_or_else(|_| Err("the preparing task ended".into())),
        None => std::future::pending().await,
    };
    *rx = None;
    res
}

async fn recv_exit(rx: &mut Option<tokio::sync::oneshot::Receiver<ExitInfo>>) -> ExitInfo {
    let info = match rx.as_mut() {
        // The sender only disappears if the waiter thread died: status unknown.
        Some(rx) => rx.await.unwrap_or_default(),
        None => std::future::pending().await,
    };
    *rx = None;
    info
}

impl Session {
    /// A new, idle session.
    pub fn new(
        id: u64,
        user: UserInfo,
        workspace_dir: PathBuf,
        ctx: Arc<Context>,
        cmd_rx: mpsc::Receiver<Command>,
    ) -> Self {
        let now = Instant::now();
        let cap = ctx.cfg.log_tail_bytes;
        Session {
            id,
            user,
            workspace_dir,
            ctx,
            cmd_rx,
            conns: HashMap::new(),
            next_serial: 0,
            log: OutputLog::new(cap),
            pending: BytesMut::new(),
            last_flush: now,
            frame_credit: FRAME_BURST,
            credit_at: now,
            paused: false,
            run: None,
            io: RunIo {
                reader: None,
                exit: None,
            },
            last_run_id: None,
            last_start_warm: false,
            last_ended: None,
            cols: 80,
            rows: 24,
            idle_since: now,
            detached_since: Some(now),
            next_sample: now,
            priority: PriorityPolicy::new(now.into_std()),
            max_tail: 0,
            max_pending: 0,
            max_unacked: 0,
            warm: None,
            warming: None,
            warm_retry_at: now,
        }
    }

    /// The actor loop; returns when the session is removed or the server shuts down.
    pub async fn run(mut self) {
        let token = self.ctx.token.clone();
        loop {
            if self.conns.is_empty() && self.warm.is_some() {
                // Nobody is there to press Run.
                self.discard_warm().await;
            }
            let now = Instant::now();
            let read_enabled = self.io.reader.is_some() && !self.paused;
            let exit_pending = self.io.exit.is_some();
            let warming = self.warming.is_some();
            let flush_at =
                (!self.pending.is_empty()).then(|| self.last_flush + self.ctx.cfg.frame_interval);
            let wake_at = self.next_wake(now);
            // Not biased: a program flooding output must not starve `stop`,
            // and a client flooding commands must not starve output.
            tokio::select! {
                _ = token.cancelled() => {
                    if self.run.is_some() {
                        self.end_run(Some(EndReason::ServerShutdown)).await;
                    }
                    break;
                }
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                info = recv_exit(&mut self.io.exit), if exit_pending => self.on_exit(info).await,
                chunk = recv_chunk(&mut self.io.reader), if read_enabled => self.on_chunk(chunk).await,
                _ = sleep_until(flush_at.unwrap_or(now)), if flush_at.is_some() => self.flush(),
                warm = recv_warm(&mut self.warming), if warming => self.on_warm(warm).await,
                _ = sleep_until(wake_at) => {
                    if self.on_wake().await {
                        break;
                    }
                }
            }
        }
        if self.run.is_some() {
            self.end_run(Some(EndReason::ServerShutdown)).await;
        }
        self.end_warm().await;
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Attach {
                conn_id,
                since_seq,
                reply,
            } => {
                let (msg, rx, serial) = self.attach(conn_id, since_seq);
                let _ = reply.send((msg, rx, serial));
                self.maybe_warm();
            }
            Command::Detach { conn_id, serial } => {
                let matches = self
                    .conns
                    .get(&conn_id)
                    .is_some_and(|c| serial.is_none_or(|s| s == c.serial));
                if matches {
                    self.drop_conns(vec![conn_id]);
                }
            }
            Command::Ack { conn_id, seq } => {
                let next = self.log.next_seq();
                if let Some(c) = self.conns.get_mut(&conn_id) {
                    c.acked = c.acked.max(seq.min(next));
                }
                self.update_pause();
            }
            Command::Run {
                conn_id,
                req_id,
                path,
                mode,
                cols,
                rows,
                mounted,
                reply,
            } => {
                // 0 = not given: keep the last known size.
                if cols > 0 && rows > 0 {
                    self.cols = cols;
                    self.rows = rows;
                }
                let res = self.start_run(&conn_id, req_id, path, mode, mounted).await;
                let _ = reply.send(res);
            }
            Command::Input(bytes) => {
                // What the program writes in answer to typing (echo, a REPL
                // result, the next prompt) is interactive: let it out at once.
                self.frame_credit = (self.frame_credit + INPUT_FRAME_CREDIT).min(FRAME_BURST);
                if let Some(run) = self.run.as_mut() {
                    // A typed Ctrl-C (`campus run` forwards raw keys): the
                    // terminal turns it into SIGINT, as the `interrupt` message does.
                    if bytes.contains(&0x03) {
                        run.interrupted = true;
                    }
                }
                if let Some(w) = self.run.as_ref().and_then(|r| r.writer.as_ref()) {
                    if w.try_send(bytes).is_err() {
                        tracing::debug!(user = %self.user.username, "input dropped: program is not reading");
                    }
                }
            }
            Command::Resize { cols, rows } => {
                self.cols = cols.max(1);
                self.rows = rows.max(1);
                if let Some(run) = &self.run {
                    let _ = run.master.resize(TermSize {
                        rows: self.rows,
                        cols: self.cols,
                    });
                }
            }
            Command::Interrupt => {
                if let Some(run) = self.run.as_mut() {
                    run.interrupted = true;
                    run.interrupt();
                }
            }
            Command::Stop {
                conn_id,
                req_id,
                reason,
                reply,
            } => {
                let live = self.run.as_ref().is_some_and(|r| r.exit.is_none());
                if let (true, Some(run)) = (live, self.run.as_mut()) {
                    run.stop_request = conn_id.map(|c| (c, req_id));
                    self.end_run(Some(reason)).await;
                }
                if let Some(reply) = reply {
                    let _ = reply.send(live);
                }
            }
            Command::Info(reply) => {
                let _ = reply.send(self.info());
            }
        }
    }

    fn attach(
        &mut self,
        conn_id: String,
        since_seq: u64,
    ) -> (ServerMsg, mpsc::Receiver<SessionEvent>, u64) {
        self.flush();
        let replay = self.log.replay(since_seq, self.ctx.cfg.max_frame_bytes);
        let cap = self.ctx.cfg.connection_buffer.max(replay.frames.len() + 16);
        let (tx, rx) = mpsc::channel(cap);
        for (seq, bytes) in replay.frames {
            // Cannot fail: the channel is new and large enough.
            let _ = tx.try_send(SessionEvent::Output { seq, bytes });
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        self.conns.insert(
            conn_id,
            Conn {
                tx,
                acked: replay.from,
                serial,
            },
        );
        self.detached_since = None;
        if let Some(run) = self.run.as_mut() {
            run.detached_snapshot = None;
        }
        self.update_pause();
        let running = self.run.is_some();
        let msg = ServerMsg::Session(SessionMsg::Attached {
            id: None,
            run_id: self
                .run
                .as_ref()
                .map(|r| r.run_id.clone())
                .or_else(|| self.last_run_id.clone()),
            running,
            mode: self.run.as_ref().map(|r| r.mode),
            path: self.run.as_ref().map(|r| r.path.clone()),
            phase: self.run.as_ref().map(|r| r.phase),
            script_error: self.run.as_ref().and_then(|r| r.script_error.clone()),
            replay_from: replay.from,
            next_seq: self.log.next_seq(),
            dropped_bytes: replay.dropped,
            last_ended: if running {
                None
            } else {
                self.last_ended.clone().map(Box::new)
            },
        });
        (msg, rx, serial)
    }

    /// Remove connections; the session notices when nobody is left.
    fn drop_conns(&mut self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.conns.remove(&id);
        }
        if self.conns.is_empty() && self.detached_since.is_none() {
            let now = Instant::now();
            self.detached_since = Some(now);
            if self.run.is_none() {
                self.idle_since = now;
            }
        }
        self.update_pause();
    }

    /// Send a message to every attached connection; `requester` gets the variant with its id.
    fn broadcast(&mut self, requester: Option<&str>, make: impl Fn(bool) -> ServerMsg) {
        let mut gone = Vec::new();
        for (id, c) in &self.conns {
            let msg = make(requester == Some(id.as_str()));
            if c.tx.try_send(SessionEvent::Msg(msg)).is_err() {
                gone.push(id.clone());
            }
        }
        self.drop_conns(gone);
    }

    /// Unacknowledged bytes of the slowest attached connection.
    fn unacked(&self) -> u64 {
        let next = self.log.next_seq();
        self.conns
            .values()
            .map(|c| next.saturating_sub(c.acked))
            .max()
            .unwrap_or(0)
    }

    /// Flow control with hysteresis: pause PTY reading at the high-water mark,
    /// resume at the low-water mark. Nobody attached = never paused.
    fn update_pause(&mut self) {
        let unacked = self.unacked();
        self.max_unacked = self.max_unacked.max(unacked);
        let cfg = &self.ctx.cfg;
        if self.paused {
            if unacked <= cfg.low_water_bytes {
                self.paused = false;
            }
        } else if unacked >= cfg.high_water_bytes {
            self.paused = true;
        }
    }

    /// Send pending output as one frame to every connection and into the log.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // An exact-size copy: the log must not pin the pending buffer's capacity.
        let bytes = Bytes::copy_from_slice(&self.pending);
        self.pending.clear();
        if self.pending.capacity() > 4 * self.ctx.cfg.max_frame_bytes {
            self.pending = BytesMut::new();
        }
        let seq = self.log.next_seq();
        self.log.push(bytes.clone());
        self.max_tail = self.max_tail.max(self.log.len());
        self.last_flush = Instant::now();
        let mut gone = Vec::new();
        for (id, c) in &self.conns {
            let ev = SessionEvent::Output {
                seq,
                bytes: bytes.clone(),
            };
            if c.tx.try_send(ev).is_err() {
                // Too slow (or gone): drop it; it re-attaches with since_seq.
                gone.push(id.clone());
            }
        }
        self.drop_conns(gone);
        self.update_pause();
    }

    /// Add program output; returns true when the run passed its output cap.
    fn push_output(&mut self, data: &[u8]) -> bool {
        if data.is_empty() {
            return false;
        }
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        if run.output_bytes == 0 {
            if let Some(m) = self.ctx.records.as_ref().and_then(|r| r.metrics()) {
                m.run_first_output(run.started.elapsed());
            }
        }
        run.output_bytes += data.len() as u64;
        let over = run.output_bytes > self.ctx.cfg.output_limit_bytes;
        self.pending.extend_from_slice(data);
        self.max_pending = self.max_pending.max(self.pending.len());
        if self.pending.len() >= self.ctx.cfg.max_frame_bytes || self.take_frame_credit() {
            self.flush();
        }
        over
    }

    /// Refill the frame bucket and take one frame from it, if there is one.
    fn take_frame_credit(&mut self) -> bool {
        let now = Instant::now();
        let interval = self.ctx.cfg.frame_interval.as_secs_f64().max(1e-3);
        let refill = now.duration_since(self.credit_at).as_secs_f64() / interval;
        self.frame_credit = (self.frame_credit + refill).min(FRAME_BURST);
        self.credit_at = now;
        if self.frame_credit >= 1.0 {
            self.frame_credit -= 1.0;
            true
        } else {
            false
        }
    }

    /// Buffer output; a hybrid run's phase report (from its result
    /// channel, in order with the output) switches it to the REPL.
    fn process_chunk(&mut self, chunk: PtyRead) -> bool {
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        if run.exit.is_some() {
            run.last_data = Instant::now();
        }
        let report = match chunk {
            PtyRead::Output(bytes) => return self.push_output(&bytes),
            PtyRead::Result(line) => line,
        };
        if !run.awaiting_repl {
            return false;
        }
        run.awaiting_repl = false;
        let Some(report) = parse_phase_report(&report) else {
            tracing::debug!(run_id = %run.run_id, "ignored a malformed phase report");
            return false;
        };
        run.phase = Phase::Repl;
        run.phase_started = Instant::now();
        run.warned_max_age = false;
        run.script_error = report.raised.clone();
        let run_id = run.run_id.clone();
        // What the script printed goes out before the phase change.
        self.flush();
        self.broadcast(None, |_| {
            ServerMsg::Session(SessionMsg::Phase {
                run_id: run_id.clone(),
                phase: Phase::Repl,
                script_error: report.raised.clone(),
            })
        });
        false
    }

    async fn on_chunk(&mut self, chunk: Option<PtyRead>) {
        let Some(chunk) = chunk else {
            self.io.reader = None;
            if self.run.as_ref().is_some_and(|r| r.exit.is_some()) {
                self.finish_run().await;
            }
            return;
        };
        let over = self.process_chunk(chunk);
        let live = self
            .run
            .as_ref()
            .is_some_and(|r| r.exit.is_none() && r.kill_reason.is_none());
        if over && live {
            self.end_run(Some(EndReason::OutputLimit)).await;
        }
    }

    fn info(&self) -> SessionInfo {
        let now = Instant::now();
        let run = self.run.as_ref();
        SessionInfo {
            session_id: self.id,
            user_id: self.user.id,
            username: self.user.username.clone(),
            running: run.is_some(),
            run_id: run
                .map(|r| r.run_id.clone())
                .or_else(|| self.last_run_id.clone()),
            mode: run.map(|r| r.mode),
            path: run.map(|r| r.path.clone()),
            phase: run.map(|r| r.phase),
            attached: self.conns.len(),
            next_seq: self.log.next_seq(),
            cpu_ms: run.map_or(0, |r| r.cpu_ms),
            peak_memory_bytes: run.map_or(0, |r| r.peak_memory_bytes),
            memory_bytes: run.map_or(0, |r| r.memory_bytes),
            sampled_ms_ago: run
                .and_then(|r| r.sampled_at)
                .map(|t| now.saturating_duration_since(t).as_millis() as u64),
            output_bytes: run.map_or(0, |r| r.output_bytes),
            idle_ms: match run {
                Some(_) => 0,
                None => now.saturating_duration_since(self.idle_since).as_millis() as u64,
            },
            background: run.is_some() && self.priority.current() == CpuPriority::Background,
            warm_ready: self.warm.is_some(),
            run_warm: self.last_start_warm,
            run_age_ms: run.map_or(0, |r| r.started.elapsed().as_millis() as u64),
            detached_ms: self
                .detached_since
                .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64),
            last_ended: self.last_ended.clone(),
            buffers: BufferStats {
                tail_bytes: self.log.len(),
                pending_bytes: self.pending.len(),
                unacked_bytes: self.unacked(),
                paused: self.paused,
                max_tail_bytes: self.max_tail,
                max_pending_bytes: self.max_pending,
                max_unacked_bytes: self.max_unacked,
            },
        }
    }
}
