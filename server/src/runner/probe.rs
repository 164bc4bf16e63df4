//! The sandbox probe run: readiness that tells the truth.
//!
//! The feature probe ([`crate::sandbox::Sandbox::new`]) asks the kernel what
//! works; this one performs one real run through exactly the path a student's
//! run takes: a workspace inside the configured data dir (`workspaces/` +
//! [`PROBE_KEY`]), a session of a [`Runner`], `Sandbox::prepare` (cgroup,
//! chown to the probe uid), the real helper on a PTY, the namespaces, the uid
//! switch and the configured Python. The program reads a file the server wrote
//! into the workspace, writes an answer back, and reports what it sees from
//! inside: its uid, the network namespace (no interface but `lo` up, no route
//! but via `lo`; read from `/proc/net`, nothing is sent anywhere) and that a loopback port
//! the server listens on cannot be reached. Where the kernel enforces disk
//! quotas, the probe uid gets a tiny one ([`PROBE_QUOTA_BYTES`],
//! [`PROBE_QUOTA_ENTRIES`]) and the program checks that writing and creating
//! files past it fail with EDQUOT. The server then checks the
//! program's exit, its report, the answer file and its owner.
//!
//! The run is an ordinary interactive execution ([`crate::execution`], the
//! PTY case) started through a session, so the probe checks the same code
//! path as a student's run, including the execution layer.
//!
//! [`SandboxProbe`] keeps the last result for `/readyz`, `campus sandbox check`
//! and the start-up log, and re-runs it in the background when `/readyz` finds
//! it older than its maximum age, so a sandbox that breaks later is reported.
//! The probe has its own runner (no store, one slot): it records no run,
//! counts against no student's limits and never waits for a class's slots.
//!
//! [`probe_warm`] runs the same program on a warm sandbox instead (a second
//! runner that keeps one ready, see [`super::warm`]): `campus sandbox check`
//! runs both, so the path most runs take is checked as well as the cold one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campus_protocol::SessionMsg;
use campus_protocol::{EndReason, Role, RunEnded, RunMode, ServerMsg, UserInfo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Runner, RunnerConfig, SessionEvent};
use crate::sandbox::Sandbox;

/// Directory under the workspaces root used by the probe, followed by `-PID` so
/// a `campus sandbox check` next to a running server never shares it (never a
/// user id: those are numbers).
pub const PROBE_KEY: &str = "sandbox-probe";
/// The probe's "user": uid = sandbox uid base + 0, a uid no student gets.
const PROBE_USER_ID: i64 = 0;
/// Bound on one whole probe run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on a warm sandbox getting ready (within [`PROBE_TIMEOUT`]).
const WARM_READY_WAIT: Duration = Duration::from_secs(15);
/// The program the probe runs, inside the workspace.
const SCRIPT: &str = "campus-probe.py";
const NONCE_FILE: &str = "probe-nonce.txt";
const ANSWER_FILE: &str = "probe-answer.txt";
/// Connection id of the probe within its session.
const CONN_ID: &str = "probe";
/// Request id of the probe's `run`.
const REQ_ID: u64 = 1;
/// The probe uid's workspace quota where the kernel enforces quotas (the
/// program writes past it and must be refused).
pub const PROBE_QUOTA_BYTES: u64 = 1 << 20;
/// The probe uid's entry quota (the program creates more files and must be refused).
pub const PROBE_QUOTA_ENTRIES: u64 = 32;

/// One thing the probe checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeCheck {
    /// What was checked.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The result of one probe run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    /// True when the run worked and every check held.
    pub ok: bool,
    /// True when the run was fully isolated (false: the dev fallback, where
    /// only the run itself is checked).
    pub isolated: bool,
    /// One line: what passed, or the first thing that failed.
    pub summary: String,
    /// Every check, in order.
    pub checks: Vec<ProbeCheck>,
    /// The probe's workspace (inside the data dir).
    pub workspace: PathBuf,
    /// When the run started, ms since the epoch.
    pub checked_at_ms: i64,
    /// How long it took, ms.
    pub duration_ms: u64,
}

impl ProbeReport {
    /// The checks as a table: name, ok/FAILED, detail, then the verdict.
    pub fn format(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let state = if c.ok { "ok" } else { "FAILED" };
            out.push_str(&format!("  {:<width$}  {state:<6}  {}\n", c.name, c.detail));
        }
        out.push_str(&format!(
            "probe run: {} ({})\n",
            if self.ok { "passed" } else { "FAILED" },
            self.summary
        ));
        out
    }

    fn from_checks(
        checks: Vec<ProbeCheck>,
        isolated: bool,
        workspace: PathBuf,
        started_ms: i64,
        took: Duration,
    ) -> ProbeReport {
        let ok = !checks.is_empty() && checks.iter().all(|c| c.ok);
        let summary = match checks.iter().find(|c| !c.ok) {
            Some(c) => format!("{}: {}", c.name, c.detail),
            None if isolated => format!(
                "a real sandboxed run in {} worked and is isolated",
                workspace.display()
            ),
            None => format!(
                "a real run in {} worked (dev fallback: not isolated)",
                workspace.display()
            ),
        };
        ProbeReport {
            ok,
            isolated,
            summary,
            checks,
            workspace,
            checked_at_ms: started_ms,
            duration_ms: took.as_millis() as u64,
        }
    }
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> ProbeCheck {
    ProbeCheck {
        name: name.to_string(),
        ok,
        detail: detail.into(),
    }
}

/// A loopback address to try from inside the run, for a server listening on `addr`.
pub fn loopback_of(addr: SocketAddr) -> Option<SocketAddr> {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_loopback() || v4.is_unspecified() => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        // Bound to one non-loopback address: nothing local to try.
        _ => return None,
    };
    Some(SocketAddr::new(ip, addr.port()))
}

/// What the probe needs to know about its host.
#[derive(Debug, Clone)]
pub struct ProbeSetup {
    /// The sandbox runs go through.
    pub sandbox: Arc<Sandbox>,
    /// Limits and Python of a student's run.
    pub runner: RunnerConfig,
    /// The configured workspaces root (`DATA_DIR/workspaces`).
    pub workspaces_root: PathBuf,
    /// A loopback address the server listens on (must be unreachable from a run).
    pub server_addr: Option<SocketAddr>,
}

/// The probe and its last result (shared by `/readyz` and the start-up code).
pub struct SandboxProbe {
    setup: ProbeSetup,
    runner: Arc<Runner>,
    last: Mutex<(Instant, ProbeReport)>,
    max_age: Option<Duration>,
    refreshing: AtomicBool,
    tracker: TaskTracker,
    token: CancellationToken,
}

impl std::fmt::Debug for SandboxProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxProbe")
            .field("workspaces_root", &self.setup.workspaces_root)
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl SandboxProbe {
    /// Create the probe and perform the first run (inside a tokio runtime).
    /// `max_age` None: never re-run by [`SandboxProbe::refresh_if_stale`].
    pub async fn start(
        setup: ProbeSetup,
        max_age: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Arc<SandboxProbe> {
        let token = shutdown.child_token();
        let runner = probe_runner(&setup, Start::Cold, token.clone());
        let first = probe_once(&runner, &setup).await;
        Arc::new(SandboxProbe {
            setup,
            runner,
            last: Mutex::new((Instant::now(), first)),
            max_age,
            refreshing: AtomicBool::new(false),
            tracker: TaskTracker::new(),
            token,
        })
    }

    /// The last result.
    pub fn last(&self) -> ProbeReport {
        self.lock().1.clone()
    }

    /// How long ago the last result was taken.
    pub fn age(&self) -> Duration {
        self.lock().0.elapsed()
    }

    /// Run the probe now and keep the result.
    pub async fn refresh(&self) -> ProbeReport {
        let report = probe_once(&self.runner, &self.setup).await;
        let previous_ok = {
            let mut last = self.lock();
            let was = last.1.ok;
            *last = (Instant::now(), report.clone());
            was
        };
        if previous_ok && !report.ok {
            tracing::error!(summary = %report.summary, "!!! SANDBOX PROBE RUN FAILED: student runs do not work; /readyz reports not ready !!!");
        } else if !previous_ok && report.ok {
            tracing::info!(summary = %report.summary, "sandbox probe run passes again");
        }
        report
    }

    /// Start a background re-run when the last result is older than the
    /// maximum age (at most one at a time); the caller answers with the cached
    /// result meanwhile, so `/readyz` never waits for a run.
    pub fn refresh_if_stale(self: &Arc<Self>) {
        let Some(max_age) = self.max_age else { return };
        if self.age() < max_age || self.token.is_cancelled() {
            return;
        }
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        self.tracker.spawn(async move {
            tokio::select! {
                _ = me.token.cancelled() => {}
                _ = me.refresh() => {}
            }
            me.refreshing.store(false, Ordering::Release);
        });
    }

    /// Stop: end a probe run in flight and wait for it.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.runner.shutdown().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Instant, ProbeReport)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One probe run through `runner`; never fails, the report says what went wrong.
pub async fn probe_once(runner: &Arc<Runner>, setup: &ProbeSetup) -> ProbeReport {
    probe_in(runner, setup, Start::Cold).await
}

/// The probe program run on a warm sandbox: a runner that keeps one ready,
/// the run started only once it is parked, and a check that the run did take
/// it (a warm sandbox that cannot take a run falls back to a cold start,
/// which would otherwise hide the failure). Never fails, as [`probe_once`].
pub async fn probe_warm(setup: &ProbeSetup, shutdown: &CancellationToken) -> ProbeReport {
    let runner = probe_runner(setup, Start::Warm, shutdown.child_token());
    let report = probe_in(&runner, setup, Start::Warm).await;
    runner.shutdown().await;
    report
}

/// The probe's own runner: no store, no rate limit, the tiny disk quota, and
/// one slot (cold) or two with one warm sandbox (its preparation holds a slot).
fn probe_runner(setup: &ProbeSetup, start: Start, token: CancellationToken) -> Arc<Runner> {
    let (slots, warm) = match start {
        Start::Cold => (1, 0),
        Start::Warm => (2, 1),
    };
    let mut cfg = RunnerConfig {
        max_concurrent_runs: slots,
        runs_per_min: u32::MAX,
        warm_sandboxes: Some(warm),
        ..setup.runner.clone()
    };
    if setup.sandbox.disk_quota_enforced() {
        cfg.limits.disk_bytes = PROBE_QUOTA_BYTES;
        cfg.limits.disk_entries = PROBE_QUOTA_ENTRIES;
    }
    // Its start-up line must not read like the class's runner.
    let _span = tracing::info_span!("sandbox_probe").entered();
    Runner::new(cfg, Arc::clone(&setup.sandbox), None, token)
}

/// How the probe's run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Cold,
    Warm,
}

async fn probe_in(runner: &Arc<Runner>, setup: &ProbeSetup, start: Start) -> ProbeReport {
    let started_ms = crate::store::now_ms();
    let t0 = Instant::now();
    let isolated = setup.sandbox.isolated();
    let name = match start {
        Start::Cold => format!("{PROBE_KEY}-{}", std::process::id()),
        Start::Warm => format!("{PROBE_KEY}-warm-{}", std::process::id()),
    };
    let workspace = setup.workspaces_root.join(name);
    let checks = match run_checks(runner, setup, &workspace, start).await {
        Ok(checks) => checks,
        Err(c) => vec![c],
    };
    let ws = workspace.clone();
    // Leave nothing behind (the next probe starts from an empty directory anyway).
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(ws)).await;
    ProbeReport::from_checks(checks, isolated, workspace, started_ms, t0.elapsed())
}

/// The program's expectations, written into its source.
struct Expect {
    nonce: String,
    uid: Option<u32>,
    isolated: bool,
    /// (label, address) pairs the program must fail to connect to.
    targets: Vec<(String, SocketAddr)>,
    /// The kernel enforces disk quotas: writes past the probe's must fail.
    quota: bool,
}

async fn run_checks(
    runner: &Arc<Runner>,
    setup: &ProbeSetup,
    workspace: &Path,
    start: Start,
) -> Result<Vec<ProbeCheck>, ProbeCheck> {
    let sandbox = &setup.sandbox;
    let isolated = sandbox.isolated();
    let root = nix::unistd::Uid::effective().is_root();
    let uid = if root {
        Some(
            sandbox
                .student_uid(PROBE_USER_ID)
                .map_err(|e| check("probe uid", false, e.to_string()))?,
        )
    } else {
        None
    };
    // Our own loopback listener: the run must not reach it (checked from both sides).
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| check("probe listener", false, format!("bind 127.0.0.1:0: {e}")))?;
    let own = listener
        .local_addr()
        .map_err(|e| check("probe listener", false, e.to_string()))?;
    let mut targets = vec![("probe port".to_string(), own)];
    if let Some(a) = setup.server_addr {
        targets.push(("server port".to_string(), a));
    }
    let expect = Expect {
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        uid,
        isolated,
        targets,
        quota: isolated && sandbox.disk_quota_enforced(),
    };
    let source = program(&expect);
    let (dir, nonce) = (workspace.to_path_buf(), expect.nonce.clone());
    tokio::task::spawn_blocking(move || prepare_workspace(&dir, &source, &nonce))
        .await
        .map_err(|e| check("workspace", false, e.to_string()))?
        .map_err(|e| {
            check(
                "workspace",
                false,
                format!("cannot prepare {}: {e}", workspace.display()),
            )
        })?;

    let (ended, output, warm) =
        match tokio::time::timeout(PROBE_TIMEOUT, one_run(runner, workspace, start)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(check("run", false, e)),
            Err(_) => {
                if let Some(h) = runner.handle(PROBE_USER_ID) {
                    let _ = h.stop(CONN_ID, None).await;
                }
                return Err(check(
                    "run",
                    false,
                    format!("no ending within {} s", PROBE_TIMEOUT.as_secs()),
                ));
            }
        };
    let text = String::from_utf8_lossy(&output).replace('\r', "");
    let mut checks = Vec::new();
    if start == Start::Warm {
        checks.push(check(
            "warm start",
            warm,
            if warm {
                "the run took the parked warm sandbox"
            } else {
                "the warm sandbox could not take the run: it started cold (see the server log)"
            },
        ));
    }
    checks.push(run_check(&ended, &text));
    checks.extend(reported_checks(&expect, &text));
    let (dir, want) = (
        workspace.to_path_buf(),
        format!("{}:answered", expect.nonce),
    );
    let answer = tokio::task::spawn_blocking(move || answer_check(&dir, &want, uid))
        .await
        .unwrap_or_else(|e| check("answer file", false, e.to_string()));
    checks.push(answer);
    if isolated {
        // The program's connect failed; make sure nothing arrived either.
        let reached = match listener.accept() {
            Ok((_, peer)) => Some(format!("a connection from {peer} arrived")),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => Some(format!("accept: {e}")),
        };
        checks.push(match reached {
            None => check(
                "probe port unreached",
                true,
                format!("nothing arrived at {own}"),
            ),
            Some(d) => check("probe port unreached", false, d),
        });
    }
    Ok(checks)
}

/// An empty probe workspace with the program and the nonce file (mode 0700 as
/// workspace-fs creates a student's; `prepare` chowns it to the probe uid).
fn prepare_workspace(dir: &Path, source: &str, nonce: &str) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    std::fs::write(dir.join(SCRIPT), source)?;
    std::fs::write(dir.join(NONCE_FILE), nonce)
}

/// Attach, run the program in script mode (for a warm start, once the warm
/// sandbox is parked), collect its output until its `run_ended`; also whether
/// the run started warm.
async fn one_run(
    runner: &Arc<Runner>,
    workspace: &Path,
    start: Start,
) -> Result<(RunEnded, Vec<u8>, bool), String> {
    let user = UserInfo {
        id: PROBE_USER_ID,
        username: PROBE_KEY.into(),
        role: Role::Student,
    };
    let mut att = runner
        .attach(&user, workspace.to_path_buf(), CONN_ID, u64::MAX)
        .await
        .map_err(|e| format!("attach: {e}"))?;
    if start == Start::Warm {
        let ready = async {
            while !att.handle.info().await.is_ok_and(|i| i.warm_ready) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(WARM_READY_WAIT, ready)
            .await
            .map_err(|_| {
                format!(
                    "no warm sandbox was ready within {} s of the attach",
                    WARM_READY_WAIT.as_secs()
                )
            })?;
    }
    att.handle
        .run(
            CONN_ID,
            Some(REQ_ID),
            SCRIPT.into(),
            RunMode::Script,
            120,
            40,
        )
        .await
        .map_err(|e| format!("start: {e}"))?;
    let mut output = Vec::new();
    let mut ours: Option<String> = None;
    loop {
        match att.events.recv().await {
            Some(SessionEvent::Output { seq, bytes }) => {
                // Bounded: a runaway program is ended by its output cap.
                if output.len() < 64 * 1024 {
                    output.extend_from_slice(&bytes);
                }
                let _ = att.handle.ack(CONN_ID, seq + bytes.len() as u64).await;
            }
            Some(SessionEvent::Msg(ServerMsg::Session(SessionMsg::RunStarted {
                id: Some(REQ_ID),
                run_id,
                ..
            }))) => ours = Some(run_id),
            Some(SessionEvent::Msg(ServerMsg::Session(SessionMsg::RunEnded { ended, .. })))
                if ours.as_deref() == Some(ended.run_id.as_str()) =>
            {
                let warm = att.handle.info().await.is_ok_and(|i| i.run_warm);
                return Ok((ended, output, warm));
            }
            Some(SessionEvent::Msg(_)) => {}
            None => return Err("the probe's session ended".into()),
        }
    }
}

/// The last non-empty output lines (what a student would have seen).
fn tail(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("campus-probe\t"))
        .collect();
    kept[kept.len().saturating_sub(lines)..].join(" | ")
}

fn run_check(ended: &RunEnded, text: &str) -> ProbeCheck {
    let ok = ended.reason == EndReason::Exited && ended.exit_code == Some(0);
    let mut detail = match (ended.reason, ended.exit_code) {
        (EndReason::Exited, Some(code)) => {
            format!("exit code {code} after {} ms", ended.duration_ms)
        }
        _ => ended.message.clone(),
    };
    if !ok {
        let t = tail(text, 3);
        if !t.is_empty() {
            detail.push_str(": ");
            detail.push_str(&t);
        }
    }
    check("run", ok, detail)
}

/// The program's own `campus-probe<TAB>name<TAB>ok|fail<TAB>detail` lines,
/// and a failed check for each one it should have printed and did not.
fn reported_checks(expect: &Expect, text: &str) -> Vec<ProbeCheck> {
    let mut out: Vec<ProbeCheck> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, '\t');
        if let (Some("campus-probe"), Some(name), Some(state), Some(detail)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            if name == "done" {
                continue;
            }
            out.push(check(name, state == "ok", detail));
        }
    }
    let mut wanted = vec!["workspace".to_string()];
    if expect.uid.is_some() {
        wanted.push("uid".into());
    }
    if expect.isolated {
        wanted.push("network".into());
        wanted.extend(expect.targets.iter().map(|(label, _)| label.clone()));
    }
    if expect.quota {
        wanted.push("disk quota".into());
        wanted.push("inode quota".into());
    }
    for name in wanted {
        if !out.iter().any(|c| c.name == name) {
            out.push(check(&name, false, "not reported by the probe program"));
        }
    }
    let done = format!("campus-probe\tdone\tok\t{}", expect.nonce);
    if !text.lines().any(|l| l == done) {
        out.push(check(
            "program finished",
            false,
            "the probe program did not reach its end",
        ));
    }
    out
}

/// The answer the program wrote: the right content, owned by the probe uid.
fn answer_check(dir: &Path, want: &str, uid: Option<u32>) -> ProbeCheck {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(ANSWER_FILE);
    let content = match std::fs::read_to_string(&path) {
        Ok(c) => c,
        Err(e) => return check("answer file", false, format!("{}: {e}", path.display())),
    };
    if content != want {
        return check(
            "answer file",
            false,
            format!("{} holds {content:?}, not the answer", path.display()),
        );
    }
    if let Some(uid) = uid {
        match std::fs::metadata(&path) {
            Ok(m) if m.uid() == uid => {}
            Ok(m) => {
                return check(
                    "answer file",
                    false,
                    format!("{} is owned by uid {}, not {uid}", path.display(), m.uid()),
                )
            }
            Err(e) => return check("answer file", false, e.to_string()),
        }
    }
    check(
        "answer file",
        true,
        format!("{} written by the run", path.display()),
    )
}

/// Python literal for a string (only hex nonces, labels and addresses go in).
fn py_str(s: &str) -> String {
    format!("{:?}", s)
}

/// The probe program (Python, run in script mode like a student's file).
fn program(e: &Expect) -> String {
    let uid = e.uid.map_or("None".to_string(), |u| u.to_string());
    let targets: Vec<String> = e
        .targets
        .iter()
        .map(|(label, a)| {
            format!(
                "({}, {}, {})",
                py_str(label),
                py_str(&a.ip().to_string()),
                a.port()
            )
        })
        .collect();
    format!(
        r#"import fcntl, os, socket, struct

NONCE = {nonce}
EXPECT_UID = {uid}
ISOLATED = {isolated}
TARGETS = [{targets}]
QUOTA = {quota}
QUOTA_BYTES = {quota_bytes}
QUOTA_ENTRIES = {quota_entries}

def report(name, ok, detail):
    print("campus-probe\t%s\t%s\t%s" % (name, "ok" if ok else "fail", detail), flush=True)

try:
    with open("{nonce_file}") as f:
        got = f.read().strip()
    with open("{answer_file}", "w") as f:
        f.write(got + ":answered")
    report("workspace", got == NONCE, "read the server's file in %s and wrote the answer" % os.getcwd())
except OSError as e:
    report("workspace", False, "%s: %s" % (os.getcwd(), e))

if EXPECT_UID is not None:
    ids = (os.getuid(), os.geteuid(), os.getgid())
    report("uid", ids == (EXPECT_UID,) * 3, "uid/euid/gid %d/%d/%d (expected %d)" % (ids + (EXPECT_UID,)))

def routes():
    # Usable routes only: RTF_UP (0x1) set and RTF_REJECT (0x200) not (a fresh
    # namespace has IPv6 "unreachable" entries on lo), and not via lo (the
    # run's loopback is up; it reaches this namespace only).
    found = []
    for path, skip, field in (("/proc/net/route", 1, 3), ("/proc/net/ipv6_route", 0, 8)):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[skip:]
        except FileNotFoundError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > field:
                flags = int(cols[field], 16)
                dev = cols[-1] if path.endswith("ipv6_route") else cols[0]
                if flags & 0x1 and not flags & 0x200 and dev != "lo":
                    found.append(dev)
    return found

if ISOLATED:
    try:
        with open("/proc/net/dev") as f:
            names = [l.split(":", 1)[0].strip() for l in f.read().splitlines()[2:] if ":" in l]
        up = []
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for n in names:
                req = struct.pack("16sH22x", n.encode(), 0)
                flags = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
                if flags & 0x1 and n != "lo":
                    up.append(n)
        finally:
            s.close()
        r = routes()
        report("network", not up and not r,
               "interfaces %s; up besides lo: %s; routes: %s"
               % (",".join(names) or "none", ",".join(up) or "none", ",".join(r) or "none"))
    except OSError as e:
        report("network", False, "cannot inspect the network namespace: %s" % e)
    for label, host, port in TARGETS:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((host, port))
            report(label, False, "connected to %s port %d" % (host, port))
        except OSError as e:
            report(label, True, "%s port %d unreachable (%s)" % (host, port, e.strerror or e))
        finally:
            s.close()

if QUOTA:
    # Past the probe uid's tiny quota, the kernel must refuse (EDQUOT = 122).
    big = "probe-quota.bin"
    try:
        with open(big, "wb") as f:
            for _ in range(4 * QUOTA_BYTES // 65536):
                f.write(bytes(65536))
        report("disk quota", False, "wrote %d bytes past the %d-byte quota" % (4 * QUOTA_BYTES, QUOTA_BYTES))
    except OSError as e:
        report("disk quota", e.errno == 122, "a write past the %d-byte quota failed: %s" % (QUOTA_BYTES, e))
    finally:
        try:
            os.unlink(big)
        except OSError:
            pass
    made = []
    try:
        for i in range(4 * QUOTA_ENTRIES):
            name = "probe-quota-%d" % i
            open(name, "w").close()
            made.append(name)
        report("inode quota", False, "created %d files past the %d-entry quota" % (len(made), QUOTA_ENTRIES))
    except OSError as e:
        report("inode quota", e.errno == 122, "file %d past the %d-entry quota failed: %s" % (len(made) + 1, QUOTA_ENTRIES, e))
    for name in made:
        os.unlink(name)

print("campus-probe\tdone\tok\t" + NONCE, flush=True)
"#,
        nonce = py_str(&e.nonce),
        isolated = if e.isolated { "True" } else { "False" },
        targets = targets.join(", "),
        quota = if e.quota { "True" } else { "False" },
        quota_bytes = PROBE_QUOTA_BYTES,
        quota_entries = PROBE_QUOTA_ENTRIES,
        nonce_file = NONCE_FILE,
        answer_file = ANSWER_FILE,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn expect() -> Expect {
        Expect {
            nonce: "abc".into(),
            uid: Some(200_000),
            isolated: true,
            targets: vec![("probe port".into(), "127.0.0.1:9".parse().unwrap())],
            quota: true,
        }
    }

    #[test]
    fn missing_reports_fail_the_probe() {
        let e = expect();
        let text = "campus-probe\tworkspace\tok\tfine\n";
        let checks = reported_checks(&e, text);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "uid",
                "network",
                "probe port",
                "disk quota",
                "inode quota",
                "program finished"
            ],
            "{checks:?}"
        );
        let all = "campus-probe\tworkspace\tok\tw\ncampus-probe\tuid\tok\tu\n\
                   campus-probe\tnetwork\tok\tn\ncampus-probe\tprobe port\tok\tp\n\
                   campus-probe\tdisk quota\tok\tq\ncampus-probe\tinode quota\tok\ti\n\
                   campus-probe\tdone\tok\tabc\n";
        assert!(reported_checks(&e, all).iter().all(|c| c.ok));
        let bad = all.replace("network\tok", "network\tfail");
        let report = ProbeReport::from_checks(
            reported_checks(&e, &bad),
            true,
            PathBuf::from("/d"),
            0,
            Duration::ZERO,
        );
        assert!(!report.ok);
        assert!(
            report.summary.starts_with("network: n"),
            "{}",
            report.summary
        );
    }

    #[test]
    fn loopback_targets() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(loopback_of(a("0.0.0.0:80")), Some(a("127.0.0.1:80")));
        assert_eq!(loopback_of(a("127.0.0.1:81")), Some(a("127.0.0.1:81")));
        assert_eq!(loopback_of(a("[::]:82")), Some(a("[::1]:82")));
        assert_eq!(loopback_of(a("10.1.2.3:83")), None);
    }

    #[test]
    fn the_program_is_valid_python() {
        let src = program(&expect());
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(src.as_bytes())?;
                c.wait()
            })
            .unwrap();
        assert!(out.success(), "{src}");
    }
}
