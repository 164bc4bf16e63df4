//! One simulated student: a single task with one WebSocket that, like a real
//! browser tab, does several things at once — autosave every ~5 s, a run cycle
//! every ~30 s (a hybrid run of a script that asks `input()`, which is
//! answered, then a burst of keystrokes into the REPL, then Ctrl-D), and for a
//! few students a CPU or memory hog that hits its limit, or a program whose
//! output they miss by disconnecting and reattaching with `since_seq`.
//!
//! Everything is event-driven from one `select!` loop, so a reply is timed
//! when it arrives, not when the student gets round to reading it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use campus_protocol::{ClientMsg, Encoding, ErrorCode, Phase, ServerMsg};
use campus_protocol::{ConnectionMsg, FileMsg, FileRequest, SessionMsg, SessionRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod runs;

use self::runs::{Run, RunKind, SETUP_FILES};
use super::{connect_error_code, Op, Recorder};
use crate::client::{Client, Event};

/// Autosave period.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// Run cycle period (hybrid run: input, REPL burst).
const CYCLE_EVERY: Duration = Duration::from_secs(30);
/// Period of a heavy student's hog.
const HEAVY_EVERY: Duration = Duration::from_secs(60);
/// Period of a reattaching student's disconnect.
const REATTACH_EVERY: Duration = Duration::from_secs(45);
/// Keystroke period while typing.
const KEY_EVERY: Duration = Duration::from_millis(200);
/// A request without a reply after this long is a `timeout` error.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// An echo (or replay) not seen after this long is a `timeout` error.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
/// Send an `ack` once this much output is unacknowledged (and on the housekeeping tick).
const ACK_BYTES: u64 = 8 * 1024;
/// Unexpected disconnects before a student gives up.
const MAX_RECONNECTS: u32 = 5;

/// What the student does besides the normal class activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Saves, runs, types.
    Normal,
    /// Also runs an endless loop every ~60 s (ends with `cpu_limit`, intended).
    CpuHog,
    /// Also allocates until killed every ~60 s (ends with `memory_limit`, intended).
    MemHog,
    /// Also runs a chatty program, disconnects while it prints, reattaches with `since_seq`.
    Reattacher,
}

/// Who the student is and when they act.
pub struct Spec {
    /// Index (for names and seeds).
    pub index: usize,
    /// Server base URL.
    pub url: String,
    /// Login token.
    pub token: String,
    /// Extra behaviour.
    pub role: Role,
    /// When to connect.
    pub start: Instant,
    /// When to stop.
    pub end: Instant,
    /// RNG seed (jitter).
    pub seed: u64,
}

/// A request waiting for its reply.
enum Pending {
    Setup { path: &'static str },
    SetupReread { path: &'static str },
    Save { t0: Instant, retried: bool },
    SaveReread { t0: Instant },
    Run,
    Attach,
}

struct Student {
    spec: Spec,
    rec: Arc<Recorder>,
    rng: StdRng,
    client: Option<Client>,
    reconnect_at: Option<Instant>,
    reconnects: u32,
    versions: HashMap<&'static str, Option<String>>,
    pending: HashMap<u64, (Pending, Instant)>,
    save_in_flight: bool,
    saves: u64,
    next_save: Instant,
    next_cycle: Instant,
    next_heavy: Instant,
    next_reattach: Instant,
    cycles: usize,
    run: Option<Run>,
    out_end: u64,
    acked: u64,
    /// Attach sent at, waiting for output up to `next_seq`.
    replay: Option<(Instant, Option<u64>)>,
}

/// Drive one student until `spec.end` (or `cancel`).
pub async fn run(spec: Spec, rec: Arc<Recorder>, cancel: CancellationToken) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let s = spec.start;
    // First occurrences: spread over one period, but within the first half of a
    // short test (the CI smoke run lasts 10 s and must still exercise every kind).
    let half = spec.end.saturating_duration_since(s) / 2;
    let mut jit = |period: Duration| s + period.min(half).mul_f64(rng.gen_range(0.05..1.0));
    let (next_save, next_cycle) = (jit(SAVE_EVERY), jit(CYCLE_EVERY));
    let (next_heavy, next_reattach) = (jit(HEAVY_EVERY / 2), jit(REATTACH_EVERY / 2));
    let mut st = Student {
        rng: StdRng::seed_from_u64(spec.seed ^ 0x5eed),
        reconnect_at: Some(spec.start),
        spec,
        rec,
        client: None,
        reconnects: 0,
        versions: HashMap::new(),
        pending: HashMap::new(),
        save_in_flight: false,
        saves: 0,
        next_save,
        next_cycle,
        next_heavy,
        next_reattach,
        cycles: 0,
        run: None,
        out_end: 0,
        acked: 0,
        replay: None,
    };
    st.main_loop(&cancel).await;
    st.finish().await;
}

impl Student {
    fn jitter(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.rng.gen_range(0.8..1.2))
    }

    async fn main_loop(&mut self, cancel: &CancellationToken) {
        loop {
            let now = Instant::now();
            if now >= self.spec.end {
                return;
            }
            let wake = self.next_wake(now);
            let ev = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => None,
                ev = async {
                    match self.client.as_mut() {
                        Some(c) => c.next().await,
                        None => std::future::pending().await,
                    }
                } => Some(ev),
            };
            match ev {
                Some(Ok(ev)) => self.on_event(ev).await,
                Some(Err(e)) => self.lost(&e),
                None => {}
            }
            self.on_tick().await;
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut w = now + Duration::from_millis(250);
        let mut at = |t: Instant| w = w.min(t);
        at(self.spec.end);
        if let Some(t) = self.reconnect_at {
            at(t);
        }
        at(self.next_save);
        if let Some(r) = &self.run {
            if let Some(t) = r.drop_at {
                at(t);
            }
            if let Some(ty) = &r.typing {
                if ty.echo.is_none() && !ty.wait_prompt && !ty.done {
                    at(ty.next_key);
                }
            }
        } else {
            at(self.next_cycle);
        }
        w.max(now)
    }

    /// The connection failed under us (not a deliberate disconnect).
    fn lost(&mut self, e: &anyhow::Error) {
        self.client = None;
        let text = e.to_string();
        let code = match text.strip_prefix("closed with code ") {
            Some(c) => format!("closed_{c}"),
            None if text.contains("timed out") => "read_timeout".into(),
            None => "connection_lost".into(),
        };
        self.rec.error(Op::Connect, &code);
        self.pending.clear();
        self.save_in_flight = false;
        self.end_run_locally();
        self.reconnects += 1;
        if self.reconnects <= MAX_RECONNECTS {
            self.reconnect_at = Some(Instant::now() + Duration::from_secs(1));
        }
    }

    fn end_run_locally(&mut self) {
        if self.run.take().is_some() {
            self.rec.runs_live.fetch_sub(1, Ordering::Relaxed);
        }
        self.replay = None;
    }

    async fn send(&mut self, msg: ClientMsg) {
        let Some(c) = self.client.as_mut() else {
            return;
        };
        if let Err(e) = c.send(&msg).await {
            self.lost(&e);
        }
    }

    async fn request(&mut self, p: Pending, make: impl FnOnce(u64) -> ClientMsg) {
        let Some(c) = self.client.as_mut() else {
            return;
        };
        let id = c.id();
        self.pending.insert(id, (p, Instant::now()));
        self.send(make(id)).await;
    }

    async fn connect(&mut self) {
        self.reconnect_at = None;
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            Client::connect(&self.spec.url, &self.spec.token),
        )
        .await;
        let client = match r {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.rec.error(Op::Connect, &connect_error_code(&e));
                return self.retry_connect();
            }
            Err(_) => {
                self.rec.error(Op::Connect, "timeout");
                return self.retry_connect();
            }
        };
        self.rec.ok(Op::Connect, t0.elapsed());
        self.client = Some(client);
        if self.versions.is_empty() {
            // As the IDE does after every connect: the session exists from
            // now on (and may get a sandbox ready for the first run).
            self.send(ClientMsg::Session(SessionRequest::Attach {
                id: None,
                since_seq: 0,
            }))
            .await;
            for (path, content) in SETUP_FILES {
                self.versions.insert(path, None);
                self.write(Pending::Setup { path }, path, content, None)
                    .await;
            }
            // main.py too: it may exist from an earlier run (a sweep reuses users);
            // autosave waits until we know its version.
            self.versions.insert("main.py", None);
            self.save_in_flight = true;
            let content = self.main_py();
            self.write(
                Pending::Setup { path: "main.py" },
                "main.py",
                &content,
                None,
            )
            .await;
        } else {
            // Back after a disconnect: catch up on the output we missed.
            self.replay = Some((Instant::now(), None));
            let since = self.out_end;
            self.request(Pending::Attach, |id| {
                ClientMsg::Session(SessionRequest::Attach {
                    id: Some(id),
                    since_seq: since,
                })
            })
            .await;
        }
    }

    fn retry_connect(&mut self) {
        self.reconnects += 1;
        if self.reconnects <= MAX_RECONNECTS {
            self.reconnect_at = Some(Instant::now() + Duration::from_secs(2));
        }
    }

    async fn write(&mut self, p: Pending, path: &'static str, content: &str, base: Option<String>) {
        let content = content.to_string();
        self.request(p, |id| {
            ClientMsg::Files(FileRequest::Write {
                id: Some(id),
                path: path.into(),
                content,
                encoding: Encoding::Utf8,
                base_version: base,
            })
        })
        .await;
    }

    /// The autosaved file: ~2 KB of Python that changes a little every save.
    fn main_py(&self) -> String {
        let mut s = format!("# student {} — autosave {}\n", self.spec.index, self.saves);
        for i in 0..40u64 {
            let v = if i == self.saves % 40 { self.saves } else { i };
            s.push_str(&format!(
                "value_{i:02} = {v} * 3 + 1  # a comment to make the line longer\n"
            ));
        }
        s
    }

    async fn save(&mut self, t0: Instant, retried: bool) {
        self.saves += 1;
        self.save_in_flight = true;
        if let Some(Some((_, _, during_save))) = self
            .run
            .as_mut()
            .and_then(|r| r.typing.as_mut())
            .map(|t| t.echo.as_mut())
        {
            *during_save = true;
        }
        let base = self.versions.get("main.py").cloned().flatten();
        let content = self.main_py();
        self.write(Pending::Save { t0, retried }, "main.py", &content, base)
            .await;
    }

    async fn read(&mut self, p: Pending, path: &'static str) {
        self.request(p, |id| {
            ClientMsg::Files(FileRequest::Read {
                id: Some(id),
                path: path.into(),
            })
        })
        .await;
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Output(seq, bytes) => self.on_output(seq, &bytes).await,
            Event::Msg(m) => self.on_msg(m).await,
        }
    }

    async fn on_output(&mut self, seq: u64, bytes: &[u8]) {
        let now = Instant::now();
        let end = seq + bytes.len() as u64;
        if end <= self.out_end {
            return; // nothing new (never expected: replay starts at since_seq)
        }
        let fresh = &bytes[(self.out_end.saturating_sub(seq) as usize).min(bytes.len())..];
        self.out_end = end;
        if let Some((t0, Some(target))) = self.replay {
            if end >= target {
                self.rec.ok(Op::Reattach, now - t0);
                self.replay = None;
            }
        }
        if let Some(run) = self.run.as_mut() {
            if !run.first_output {
                run.first_output = true;
                self.rec.ok(Op::RunFirstOutput, now - run.t0);
                if run.kind == RunKind::Ticker && self.spec.role == Role::Reattacher {
                    run.drop_at = Some(now + Duration::from_millis(self.rng.gen_range(700..1300)));
                }
            }
            let text = String::from_utf8_lossy(fresh);
            if let Some(ty) = run.typing.as_mut() {
                if let Some((ch, t, during_save)) = ty.echo {
                    if text.contains(ch) {
                        self.rec.ok(Op::Echo, now - t);
                        let bucket = if during_save {
                            "echo_with_save_in_flight"
                        } else {
                            "echo_without_save_in_flight"
                        };
                        self.rec.extra(bucket, now - t);
                        ty.echo = None;
                    }
                }
            }
            run.text.push_str(&text);
            if run.text.len() > 8192 {
                let cut = run.text.len() - 4096;
                let cut = (cut..run.text.len())
                    .find(|&i| run.text.is_char_boundary(i))
                    .unwrap_or(0);
                run.text.drain(..cut);
            }
        }
        if self.out_end - self.acked >= ACK_BYTES {
            self.ack().await;
        }
        self.advance_run(now).await;
    }

    async fn ack(&mut self) {
        if self.out_end > self.acked {
            self.acked = self.out_end;
            self.send(ClientMsg::Session(SessionRequest::Ack {
                seq: self.out_end,
            }))
            .await;
        }
    }

    async fn on_msg(&mut self, m: ServerMsg) {
        let id = crate::client::reply_id(&m);
        let pending = id.and_then(|id| self.pending.remove(&id));
        match (m, pending) {
            (ServerMsg::Files(FileMsg::Written { version, path, .. }), Some((p, _))) => {
                if let Some(k) = self.versions.keys().find(|k| **k == path).copied() {
                    self.versions.insert(k, Some(version));
                }
                match p {
                    Pending::Save { t0, .. } | Pending::SaveReread { t0 } => {
                        self.rec.ok(Op::Save, t0.elapsed());
                        self.save_in_flight = false;
                    }
                    Pending::Setup { path: "main.py" } => self.save_in_flight = false,
                    _ => {}
                }
            }
            (
                ServerMsg::Files(FileMsg::File { version, .. }),
                Some((Pending::SaveReread { t0 }, _)),
            ) => {
                self.versions.insert("main.py", Some(version));
                self.saves -= 1;
                self.save(t0, true).await;
            }
            (
                ServerMsg::Files(FileMsg::File { version, .. }),
                Some((Pending::SetupReread { path }, _)),
            ) => {
                let content = SETUP_FILES
                    .iter()
                    .find(|f| f.0 == path)
                    .map_or_else(|| self.main_py(), |f| f.1.to_string());
                self.write(Pending::Setup { path }, path, &content, Some(version))
                    .await;
            }
            (ServerMsg::Connection(ConnectionMsg::Error { code, .. }), Some((p, _))) => {
                self.on_refusal(p, code).await
            }
            (ServerMsg::Session(SessionMsg::RunStarted { .. }), _) => {}
            (
                ServerMsg::Session(SessionMsg::Attached {
                    dropped_bytes,
                    next_seq,
                    running,
                    last_ended,
                    ..
                }),
                Some((Pending::Attach, _)),
            ) => {
                if dropped_bytes > 0 {
                    self.rec.error(Op::Reattach, "replay_dropped");
                }
                if let Some((t0, _)) = self.replay {
                    if self.out_end >= next_seq {
                        self.rec.ok(Op::Reattach, t0.elapsed());
                        self.replay = None;
                    } else {
                        self.replay = Some((t0, Some(next_seq)));
                    }
                }
                if !running && self.run.is_some() {
                    match last_ended {
                        Some(e) => self.run_ended(&e),
                        None => self.end_run_locally(),
                    }
                }
            }
            (
                ServerMsg::Session(SessionMsg::Phase {
                    phase: Phase::Repl, ..
                }),
                _,
            ) => {
                if let Some(r) = self.run.as_mut() {
                    r.repl = true;
                }
                self.advance_run(Instant::now()).await;
            }
            (ServerMsg::Session(SessionMsg::RunEnded { ended, .. }), _) => self.run_ended(&ended),
            (ServerMsg::Connection(ConnectionMsg::Error { code, .. }), None) => {
                // Errors of id-less messages (input): charge them to what was going on.
                let op = if self.run.as_ref().is_some_and(|r| r.typing.is_some()) {
                    Op::Echo
                } else {
                    Op::Connect
                };
                self.rec.error(op, code.as_str());
            }
            (ServerMsg::Connection(ConnectionMsg::Shutdown { .. }), _) => {
                self.rec.error(Op::Connect, "server_shutdown")
            }
            _ => {}
        }
    }

    async fn on_refusal(&mut self, p: Pending, code: ErrorCode) {
        match p {
            Pending::Save { t0, retried: false } if code == ErrorCode::Conflict => {
                // Nobody else writes this file, so a conflict is unexpected; recover like the IDE.
                self.rec.error(Op::Save, "conflict");
                self.read(Pending::SaveReread { t0 }, "main.py").await;
            }
            Pending::Save { .. } | Pending::SaveReread { .. } => {
                self.rec.error(Op::Save, code.as_str());
                self.save_in_flight = false;
            }
            Pending::Setup { path } if code == ErrorCode::Conflict => {
                // Left over from an earlier run against the same server: take its version.
                self.read(Pending::SetupReread { path }, path).await;
            }
            Pending::Setup { path } | Pending::SetupReread { path } => {
                self.rec
                    .error(Op::Save, &format!("setup_{}", code.as_str()));
                if path == "main.py" {
                    self.save_in_flight = false;
                }
            }
            Pending::Run => {
                self.rec.error(Op::RunFirstOutput, code.as_str());
                self.end_run_locally();
            }
            Pending::Attach => {
                self.rec.error(Op::Reattach, code.as_str());
                self.replay = None;
            }
        }
    }

    /// Timers: reconnect, autosave, starting runs, run timers, acks.
    async fn on_tick(&mut self) {
        let now = Instant::now();
        if now >= self.spec.end {
            return;
        }
        if self.client.is_none() {
            if self.reconnect_at.is_some_and(|t| now >= t) {
                self.connect().await;
            }
            return;
        }
        self.expire(now);
        if now >= self.next_save {
            self.next_save = now + self.jitter(SAVE_EVERY);
            if !self.save_in_flight {
                self.save(now, false).await;
            }
        }
        let left = self.spec.end - now;
        if self.run.is_none() {
            let role = self.spec.role;
            if matches!(role, Role::CpuHog | Role::MemHog) && now >= self.next_heavy {
                let (kind, need) = if role == Role::CpuHog {
                    (RunKind::Cpu, 60)
                } else {
                    (RunKind::Mem, 5)
                };
                if left > Duration::from_secs(need) {
                    self.next_heavy = now + self.jitter(HEAVY_EVERY);
                    return self.start_run(kind, now).await;
                }
            }
            if role == Role::Reattacher
                && now >= self.next_reattach
                && left > Duration::from_secs(5)
            {
                self.next_reattach = now + self.jitter(REATTACH_EVERY);
                return self.start_run(RunKind::Ticker, now).await;
            }
            if now >= self.next_cycle && left > Duration::from_secs(5) {
                self.next_cycle = now + self.jitter(CYCLE_EVERY);
                return self.start_run(RunKind::Cycle, now).await;
            }
        } else {
            self.advance_run(now).await;
            self.run_timers(now).await;
        }
        self.ack().await;
    }

    /// Requests and replays that never got an answer.
    fn expire(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| now - *t > REPLY_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some((p, _)) = self.pending.remove(&id) {
                let op = match p {
                    Pending::Setup { .. }
                    | Pending::SetupReread { .. }
                    | Pending::Save { .. }
                    | Pending::SaveReread { .. } => {
                        self.save_in_flight = false;
                        Op::Save
                    }
                    Pending::Run => Op::RunFirstOutput,
                    Pending::Attach => Op::Reattach,
                };
                self.rec.error(op, "timeout");
            }
        }
        if let Some((t0, _)) = self.replay {
            if now - t0 > ECHO_TIMEOUT * 2 {
                self.rec.error(Op::Reattach, "timeout");
                self.replay = None;
            }
        }
    }

    /// End of the test: stop a live program (frees its sandbox slot) and close.
    async fn finish(&mut self) {
        if self.run.is_some() {
            if let Some(r) = self.run.as_mut() {
                r.stopping = true;
            }
            self.send(ClientMsg::Session(SessionRequest::Stop { id: None }))
                .await;
            self.end_run_locally();
        }
        if let Some(c) = self.client.take() {
            c.close().await;
        }
    }
}

/// Roles for `n` students: `heavy_pct` % hogs (alternating memory and CPU,
/// memory first), `reattach_pct` % reattachers, spread over the class.
pub fn roles(n: usize, heavy_pct: f64, reattach_pct: f64) -> Vec<Role> {
    let mut r = vec![Role::Normal; n];
    let count = |pct: f64| {
        if pct <= 0.0 || n == 0 {
            0
        } else {
            ((n as f64 * pct / 100.0).round() as usize).clamp(1, n)
        }
    };
    for k in 0..count(heavy_pct) {
        let i = (k * n / count(heavy_pct) + 1) % n;
        r[i] = if k % 2 == 0 {
            Role::MemHog
        } else {
            Role::CpuHog
        };
    }
    let re = count(reattach_pct);
    for k in 0..re {
        let mut i = (k * n / re + 3) % n;
        while r[i] != Role::Normal && r.contains(&Role::Normal) {
            i = (i + 1) % n;
        }
        r[i] = Role::Reattacher;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_spread_and_counted() {
        let r = roles(300, 2.0, 3.0);
        assert_eq!(r.iter().filter(|x| **x == Role::MemHog).count(), 3);
        assert_eq!(r.iter().filter(|x| **x == Role::CpuHog).count(), 3);
        assert_eq!(r.iter().filter(|x| **x == Role::Reattacher).count(), 9);
        let small = roles(20, 2.0, 3.0);
        assert_eq!(small.iter().filter(|x| **x == Role::MemHog).count(), 1);
        assert_eq!(small.iter().filter(|x| **x == Role::Reattacher).count(), 1);
        assert!(roles(10, 0.0, 0.0).iter().all(|x| *x == Role::Normal));
    }
}
