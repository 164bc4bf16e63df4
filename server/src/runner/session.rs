//! The session actor: one task per user that owns the live run, the output
//! log and the attached connections, and enforces flow control, limits and
//! the culling rules (see the module docs of [`super`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use campus_protocol::{EndReason, Phase, RunEnded, RunMode, ServerMsg, UserInfo};
use governor::clock::Clock;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use super::ending::{self, EndFacts};
use super::handle::Command;
use super::launcher;
use super::output::OutputLog;
use super::proc::ExitInfo;
use super::registry::Shared;
use super::run::{self, LiveRun, RunIo, StartRequest};
use super::{BufferStats, RunnerError, SessionEvent, SessionInfo};
use crate::store::{NewRun, RunFinish};

/// How often usage is sampled while a run is live (CPU limit, peak memory).
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// Housekeeping wake-up (closed connections) while running / while idle.
const HOUSEKEEPING_RUNNING: Duration = Duration::from_secs(1);
const HOUSEKEEPING_IDLE: Duration = Duration::from_secs(5);
/// After the main process exited, how long the PTY may stay silent before EOF is forced.
const EOF_GRACE: Duration = Duration::from_secs(2);
/// How long a killed process gets to be reported dead.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Per-chunk timeout while draining a dead run's PTY.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// Bound on database calls made by the actor.
const STORE_WAIT: Duration = Duration::from_secs(5);

struct Conn {
    tx: mpsc::Sender<SessionEvent>,
    /// Output offset this connection has acknowledged.
    acked: u64,
    serial: u64,
}

/// The actor's state.
pub(crate) struct Session {
    id: u64,
    user: UserInfo,
    workspace_dir: PathBuf,
    shared: Arc<Shared>,
    cmd_rx: mpsc::Receiver<Command>,
    conns: HashMap<String, Conn>,
    next_serial: u64,
    log: OutputLog,
    pending: BytesMut,
    last_flush: Instant,
    paused: bool,
    run: Option<LiveRun>,
    io: RunIo,
    last_run_id: Option<String>,
    last_ended: Option<RunEnded>,
    cols: u16,
    rows: u16,
    /// Since when the session has had no run (for idle removal).
    idle_since: Instant,
    /// Since when nobody is attached.
    detached_since: Option<Instant>,
    next_sample: Instant,
    max_tail: usize,
    max_pending: usize,
    max_unacked: u64,
}

async fn recv_chunk(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
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
        shared: Arc<Shared>,
        cmd_rx: mpsc::Receiver<Command>,
    ) -> Self {
        let now = Instant::now();
        let cap = shared.cfg.log_tail_bytes;
        Session {
            id,
            user,
            workspace_dir,
            shared,
            cmd_rx,
            conns: HashMap::new(),
            next_serial: 0,
            log: OutputLog::new(cap),
            pending: BytesMut::new(),
            last_flush: now,
            paused: false,
            run: None,
            io: RunIo {
                reader: None,
                exit: None,
            },
            last_run_id: None,
            last_ended: None,
            cols: 80,
            rows: 24,
            idle_since: now,
            detached_since: Some(now),
            next_sample: now,
            max_tail: 0,
            max_pending: 0,
            max_unacked: 0,
        }
    }

    /// The actor loop; returns when the session is removed or the server shuts down.
    pub async fn run(mut self) {
        let token = self.shared.token.clone();
        loop {
            let now = Instant::now();
            let read_enabled = self.io.reader.is_some() && !self.paused;
            let exit_pending = self.io.exit.is_some();
            let flush_at = (!self.pending.is_empty())
                .then(|| self.last_flush + self.shared.cfg.frame_interval);
            let wake_at = self.next_wake(now);
            tokio::select! {
                biased;
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
        let id = self.id;
        self.shared
            .sessions
            .remove_if(&self.user.id, |_, h| h.id == id);
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
                reply,
            } => {
                // 0 = not given: keep the last known size.
                if cols > 0 && rows > 0 {
                    self.cols = cols;
                    self.rows = rows;
                }
                let res = self.start_run(&conn_id, req_id, path, mode).await;
                let _ = reply.send(res);
            }
            Command::Input(bytes) => {
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
                    let _ = run.master.resize(portable_pty::PtySize {
                        rows: self.rows,
                        cols: self.cols,
                        pixel_width: 0,
                        pixel_height: 0,
                    });
                }
            }
            Command::Interrupt => {
                if let Some(run) = &self.run {
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
        let replay = self.log.replay(since_seq, self.shared.cfg.max_frame_bytes);
        let cap = self
            .shared
            .cfg
            .connection_buffer
            .max(replay.frames.len() + 16);
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
        let msg = ServerMsg::Attached {
            id: None,
            run_id: self
                .run
                .as_ref()
                .map(|r| r.run_id.clone())
                .or_else(|| self.last_run_id.clone()),
            running,
            phase: self.run.as_ref().map(|r| r.phase),
            replay_from: replay.from,
            next_seq: self.log.next_seq(),
            dropped_bytes: replay.dropped,
            last_ended: if running {
                None
            } else {
                self.last_ended.clone()
            },
        };
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
        let cfg = &self.shared.cfg;
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
        if self.pending.capacity() > 4 * self.shared.cfg.max_frame_bytes {
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
        run.output_bytes += data.len() as u64;
        let over = run.output_bytes > self.shared.cfg.output_limit_bytes;
        self.pending.extend_from_slice(data);
        self.max_pending = self.max_pending.max(self.pending.len());
        let cfg = &self.shared.cfg;
        if self.pending.len() >= cfg.max_frame_bytes
            || self.last_flush.elapsed() >= cfg.frame_interval
        {
            self.flush();
        }
        over
    }

    /// Strip the phase marker (hybrid), emit `phase`, buffer the rest.
    fn process_chunk(&mut self, chunk: Bytes) -> bool {
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        if run.exit.is_some() {
            run.last_data = Instant::now();
        }
        let Some(stripper) = run.stripper.as_mut() else {
            return self.push_output(&chunk);
        };
        let out = stripper.feed(&chunk);
        let mut over = self.push_output(&out.before);
        if let Some(after) = out.after_marker {
            self.flush();
            let mut run_id = String::new();
            if let Some(run) = self.run.as_mut() {
                run.stripper = None;
                run.phase = Phase::Repl;
                run.phase_started = Instant::now();
                run.warned_max_age = false;
                run_id = run.run_id.clone();
            }
            self.broadcast(None, |_| ServerMsg::Phase {
                run_id: run_id.clone(),
                phase: Phase::Repl,
            });
            over |= self.push_output(&after);
        }
        over
    }

    async fn on_chunk(&mut self, chunk: Option<Bytes>) {
        let Some(chunk) = chunk else {
            self.io.reader = None;
            self.release_held_marker();
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

    fn release_held_marker(&mut self) {
        let held = self
            .run
            .as_mut()
            .and_then(|r| r.stripper.as_mut())
            .map(|s| s.finish())
            .unwrap_or_default();
        self.push_output(&held);
    }

    async fn on_exit(&mut self, info: ExitInfo) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        run.exit = Some(info);
        run.last_data = Instant::now();
        run.sample();
        // No process of a run outlives it; the zombie still holds the group id.
        run.kill_tree();
        run.reap = None;
        run.writer = None;
        if self.io.reader.is_none() {
            self.finish_run().await;
        }
    }

    /// End the live run now: kill the tree (recording why), wait for the
    /// main process, drain what the PTY still holds, and finish.
    async fn end_run(&mut self, reason: Option<EndReason>) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.exit.is_none() {
            if run.kill_reason.is_none() {
                run.kill_reason = reason;
            }
            run.sample();
            run.kill_tree();
            if let Some(rx) = self.io.exit.take() {
                match timeout(KILL_WAIT, rx).await {
                    Ok(Ok(info)) => run.exit = Some(info),
                    _ => tracing::error!(run_id = %run.run_id, "killed run did not exit in time"),
                }
            }
        }
        run.kill_tree();
        run.reap = None;
        run.writer = None;
        // Every process is dead, so what is left is bounded by the PTY buffer:
        // read it regardless of flow control.
        while let Some(rx) = self.io.reader.as_mut() {
            match timeout(DRAIN_WAIT, rx.recv()).await {
                Ok(Some(chunk)) => {
                    self.process_chunk(chunk);
                }
                _ => self.io.reader = None,
            }
        }
        self.release_held_marker();
        self.finish_run().await;
    }

    /// Record and announce the ending of the run (its process is gone).
    async fn finish_run(&mut self) {
        self.flush();
        let Some(mut run) = self.run.take() else {
            return;
        };
        self.io = RunIo {
            reader: None,
            exit: None,
        };
        run.sample();
        let cfg = &self.shared.cfg;
        let exit = run.exit.clone().unwrap_or_default();
        let facts = EndFacts {
            kill_reason: run.kill_reason,
            exit_code: exit.code,
            signal: exit.signal,
            cpu_ms: run.cpu_ms.max(exit.cpu_ms),
            cpu_limit_ms: cfg.cpu_limit_ms(),
            peak_memory_bytes: run.peak_memory_bytes,
            memory_limit_bytes: cfg.limits.memory_bytes,
            oom_kills: run.oom_kills,
            phase: Some(run.phase),
            duration: run.started.elapsed(),
            output_bytes: run.output_bytes,
            output_limit_bytes: cfg.output_limit_bytes,
            max_age: run.max_age(cfg),
            detached_grace: cfg.detached_grace,
        };
        if let Some(cg) = run.cgroup.take() {
            cg.remove();
        }
        let reason = ending::classify(&facts);
        let ended = RunEnded {
            run_id: run.run_id.clone(),
            reason,
            exit_code: if reason == EndReason::Exited {
                exit.code
            } else {
                None
            },
            signal: exit.signal,
            cpu_ms: facts.cpu_ms,
            cpu_limit_ms: facts.cpu_limit_ms,
            peak_memory_bytes: facts.peak_memory_bytes,
            memory_limit_bytes: facts.memory_limit_bytes,
            duration_ms: facts.duration.as_millis() as u64,
            output_bytes: facts.output_bytes,
            message: ending::message(reason, &facts),
        };
        tracing::info!(user = %self.user.username, run_id = %ended.run_id,
            reason = reason.as_str(), exit_code = ?ended.exit_code, cpu_ms = ended.cpu_ms,
            duration_ms = ended.duration_ms, output_bytes = ended.output_bytes, "run ended");
        Self::record_finish(&self.shared, &ended).await;
        let stop = run.stop_request.take();
        drop(run); // releases the admission slot
        self.announce_end(ended, stop);
    }

    fn announce_end(&mut self, ended: RunEnded, stop: Option<(String, Option<u64>)>) {
        let requester = stop.as_ref().map(|(c, _)| c.clone());
        let req_id = stop.and_then(|(_, id)| id);
        self.broadcast(requester.as_deref(), |is_req| ServerMsg::RunEnded {
            id: if is_req { req_id } else { None },
            ended: ended.clone(),
        });
        self.last_run_id = Some(ended.run_id.clone());
        self.last_ended = Some(ended);
        self.idle_since = Instant::now();
    }

    async fn record_finish(shared: &Shared, ended: &RunEnded) {
        let Some(store) = &shared.store else {
            return;
        };
        let finish = RunFinish {
            ended_at_ms: crate::store::now_ms(),
            reason: ended.reason,
            exit_code: ended.exit_code,
            cpu_ms: ended.cpu_ms as i64,
            peak_memory_bytes: ended.peak_memory_bytes as i64,
            output_bytes: ended.output_bytes as i64,
        };
        match timeout(STORE_WAIT, store.finish_run(&ended.run_id, finish)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(run_id = %ended.run_id, error = %e, "recording run end failed")
            }
            Err(_) => tracing::error!(run_id = %ended.run_id, "recording run end timed out"),
        }
    }

    /// Admission, rate limit, replacing a live run, then spawning the new one.
    async fn start_run(
        &mut self,
        conn_id: &str,
        req_id: Option<u64>,
        path: String,
        mode: RunMode,
    ) -> Result<(), RunnerError> {
        let path = match mode {
            RunMode::Repl => String::new(),
            _ => launcher::validate_script(&self.workspace_dir, &path)?,
        };
        let shared = Arc::clone(&self.shared);
        let busy = || RunnerError::Busy {
            retry_after_ms: shared.cfg.busy_retry_after.as_millis() as u64,
        };
        // Check capacity before spending a rate-limit token on a run that cannot start.
        if self.run.is_none() && shared.slots.available_permits() == 0 {
            return Err(busy());
        }
        if let Err(not_until) = shared.rate.check_key(&self.user.id) {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            return Err(RunnerError::RateLimited {
                retry_after_ms: (wait.as_millis() as u64).max(1),
            });
        }
        let mut permit = None;
        let replaced = self.run.is_some();
        if let Some(run) = self.run.as_mut() {
            // The new run takes over the old run's slot.
            permit = run.permit.take();
            run.stop_request = Some((conn_id.to_string(), None));
            self.end_run(Some(EndReason::Stopped)).await;
        }
        let permit = match permit {
            Some(p) => p,
            None => Arc::clone(&shared.slots)
                .try_acquire_owned()
                .map_err(|_| busy())?,
        };
        self.flush();
        let run_id = uuid::Uuid::new_v4().to_string();
        let req = StartRequest {
            run_id: run_id.clone(),
            user_id: self.user.id,
            workspace_dir: self.workspace_dir.clone(),
            path: path.clone(),
            mode,
            cols: self.cols,
            rows: self.rows,
            permit,
        };
        let sh = Arc::clone(&shared);
        let started =
            tokio::task::spawn_blocking(move || run::start(Arc::clone(&sh.sandbox), &sh.cfg, req))
                .await
                .map_err(|e| RunnerError::Internal(format!("spawn task: {e}")))?;
        Self::record_start(&shared, self.user.id, &run_id, &path, mode).await;
        let start_seq = self.log.next_seq();
        let started_msg = |is_req: bool| ServerMsg::RunStarted {
            id: if is_req { req_id } else { None },
            run_id: run_id.clone(),
            path: path.clone(),
            mode,
            start_seq,
            replaced_previous: replaced,
        };
        match started {
            Ok((mut live, io)) => {
                let msg_for_req = started_msg(true);
                let msg_for_others = started_msg(false);
                if let Some(since) = self.detached_since {
                    live.detached_snapshot = Some((since.max(live.started), 0, 0));
                }
                tracing::info!(user = %self.user.username, run_id = %run_id, mode = mode.as_str(), path = %path, "run started");
                self.run = Some(live);
                self.io = io;
                self.next_sample = Instant::now() + SAMPLE_INTERVAL;
                self.broadcast(Some(conn_id), |is_req| {
                    if is_req {
                        msg_for_req.clone()
                    } else {
                        msg_for_others.clone()
                    }
                });
            }
            Err((err, permit)) => {
                drop(permit);
                tracing::error!(user = %self.user.username, run_id = %run_id, error = %err, "run failed to start");
                let msg_for_req = started_msg(true);
                let msg_for_others = started_msg(false);
                self.broadcast(Some(conn_id), |is_req| {
                    if is_req {
                        msg_for_req.clone()
                    } else {
                        msg_for_others.clone()
                    }
                });
                let facts = EndFacts {
                    cpu_limit_ms: shared.cfg.cpu_limit_ms(),
                    memory_limit_bytes: shared.cfg.limits.memory_bytes,
                    ..EndFacts::default()
                };
                let ended = RunEnded {
                    run_id: run_id.clone(),
                    reason: EndReason::StartFailed,
                    exit_code: None,
                    signal: None,
                    cpu_ms: 0,
                    cpu_limit_ms: facts.cpu_limit_ms,
                    peak_memory_bytes: 0,
                    memory_limit_bytes: facts.memory_limit_bytes,
                    duration_ms: 0,
                    output_bytes: 0,
                    message: ending::message(EndReason::StartFailed, &facts),
                };
                Self::record_finish(&self.shared, &ended).await;
                self.announce_end(ended, Some((conn_id.to_string(), req_id)));
            }
        }
        Ok(())
    }

    async fn record_start(shared: &Shared, user_id: i64, run_id: &str, path: &str, mode: RunMode) {
        let Some(store) = &shared.store else {
            return;
        };
        let new = NewRun {
            id: run_id.to_string(),
            user_id,
            path: path.to_string(),
            mode,
            started_at_ms: crate::store::now_ms(),
        };
        match timeout(STORE_WAIT, store.insert_run(new)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(run_id, error = %e, "recording run start failed"),
            Err(_) => tracing::error!(run_id, "recording run start timed out"),
        }
    }

    /// The earliest moment something time-based may need doing.
    fn next_wake(&self, now: Instant) -> Instant {
        let cfg = &self.shared.cfg;
        let Some(run) = &self.run else {
            let mut at = now + HOUSEKEEPING_IDLE;
            if self.conns.is_empty() {
                at = at.min(
                    self.idle_since.max(self.detached_since.unwrap_or(now)) + cfg.detached_grace,
                );
            }
            return at;
        };
        let mut at = (now + HOUSEKEEPING_RUNNING).min(self.next_sample);
        if run.exit.is_none() {
            let limit = run.max_age(cfg);
            let kill_at = run.phase_started + limit;
            at = at.min(kill_at);
            if !run.warned_max_age {
                at = at.min(kill_at - run::warn_lead(limit));
            }
            if let Some((since, _, _)) = run.detached_snapshot {
                at = at.min(since + cfg.detached_grace);
            } else if let Some(since) = self.detached_since {
                at = at.min(since + cfg.detached_grace);
            }
        } else if self.io.reader.is_some() && !self.paused {
            at = at.min(run.last_data + EOF_GRACE);
        }
        at
    }

    /// Timers: closed connections, usage sampling, CPU limit, max ages,
    /// abandonment, the EOF backstop, idle removal. Returns true to end the actor.
    async fn on_wake(&mut self) -> bool {
        let now = Instant::now();
        let closed: Vec<String> = self
            .conns
            .iter()
            .filter(|(_, c)| c.tx.is_closed())
            .map(|(id, _)| id.clone())
            .collect();
        self.drop_conns(closed);
        let cfg = self.shared.cfg.clone();
        let detached_since = self.detached_since;
        let Some(run) = self.run.as_mut() else {
            let idle_from = self.idle_since.max(detached_since.unwrap_or(now));
            return self.conns.is_empty() && now >= idle_from + cfg.detached_grace;
        };
        if run.exit.is_some() {
            if self.io.reader.is_some() && !self.paused && now >= run.last_data + EOF_GRACE {
                self.end_run(None).await;
            }
            return false;
        }
        if now >= self.next_sample {
            run.sample();
            self.next_sample = now + SAMPLE_INTERVAL;
            if run.cpu_ms >= cfg.cpu_limit_ms() {
                self.end_run(Some(EndReason::CpuLimit)).await;
                return false;
            }
        }
        let limit = run.max_age(&cfg);
        let age = now.saturating_duration_since(run.phase_started);
        if age >= limit {
            self.end_run(Some(EndReason::Timeout)).await;
            return false;
        }
        if !run.warned_max_age && age + run::warn_lead(limit) >= limit {
            run.warned_max_age = true;
            let stop_in = limit - age;
            let run_id = run.run_id.clone();
            let message = format!(
                "This run will be stopped in {}: it reached the time limit ({}).",
                ending::fmt_duration(stop_in),
                ending::fmt_duration(limit)
            );
            self.broadcast(None, |_| ServerMsg::Warning {
                run_id: run_id.clone(),
                reason: "max_age".into(),
                message: message.clone(),
                stop_in_ms: stop_in.as_millis() as u64,
            });
            return false;
        }
        if let Some(since) = detached_since {
            let (t0, cpu0, out0) =
                *run.detached_snapshot
                    .get_or_insert((since, run.cpu_ms, run.output_bytes));
            if now >= t0 + cfg.detached_grace {
                // A script that is still computing or printing is not abandoned;
                // a REPL, or a script blocked (e.g. in input()), is.
                let working =
                    run.phase == Phase::Script && (run.cpu_ms > cpu0 || run.output_bytes > out0);
                if working {
                    run.detached_snapshot = Some((now, run.cpu_ms, run.output_bytes));
                } else {
                    self.end_run(Some(EndReason::Abandoned)).await;
                }
            }
        }
        false
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
