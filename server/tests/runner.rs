//! Runner integration tests: real PTYs, real python3, the configured sandbox.

#![allow(clippy::unwrap_used)]

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use campus_protocol::SessionMsg;
use campus_protocol::{EndReason, Phase, Role, RunEnded, RunMode, ServerMsg, UserInfo};
use campus_server::runner::{Attachment, Runner, RunnerConfig, RunnerError, SessionEvent};
use campus_server::sandbox::{Sandbox, SandboxConfig};
use tempfile::TempDir;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

struct Env {
    runner: Arc<Runner>,
    /// Full isolation (cgroups, namespaces; helper processes stay around the program).
    isolated: bool,
    dir: TempDir,
    _token: CancellationToken,
}

fn test_config() -> RunnerConfig {
    RunnerConfig {
        max_concurrent_runs: 64,
        runs_per_min: 1000,
        ..RunnerConfig::default()
    }
}

fn setup(cfg: RunnerConfig) -> Env {
    let sandbox = Sandbox::new(SandboxConfig {
        helper_exe: PathBuf::from(env!("CARGO_BIN_EXE_campus")),
        production: false,
        uid_base: 200_000,
        cgroup_group: format!("campus-runner-test-{}", std::process::id()),
        ..SandboxConfig::default()
    })
    .unwrap();
    let isolated = sandbox.isolated();
    let token = CancellationToken::new();
    let runner = Runner::new(cfg, Arc::new(sandbox), None, token.clone());
    Env {
        runner,
        isolated,
        dir: tempfile::tempdir().unwrap(),
        _token: token,
    }
}

fn user(id: i64) -> UserInfo {
    UserInfo {
        id,
        username: format!("student{id}"),
        role: Role::Student,
    }
}

impl Env {
    /// The user's workspace (world-writable so a per-student sandbox uid can use it).
    fn workspace(&self, id: i64) -> PathBuf {
        let ws = self.dir.path().join(format!("ws{id}"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o777)).unwrap();
        ws
    }

    fn write(&self, id: i64, name: &str, code: &str) {
        let p = self.workspace(id).join(name);
        std::fs::write(&p, code).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }

    async fn attach(&self, id: i64, conn: &str, since: u64) -> Client {
        let att = self
            .runner
            .attach(&user(id), self.workspace(id), conn, since)
            .await
            .unwrap();
        Client::new(att)
    }
}

/// A test connection: checks that output is contiguous and acknowledges it.
struct Client {
    att: Attachment,
    base: u64,
    out: Vec<u8>,
    msgs: Vec<ServerMsg>,
    ack: bool,
    closed: bool,
}

impl Client {
    fn new(att: Attachment) -> Client {
        let ServerMsg::Session(SessionMsg::Attached { replay_from, .. }) = &att.attached else {
            panic!("expected attached, got {:?}", att.attached)
        };
        Client {
            base: *replay_from,
            att,
            out: Vec::new(),
            msgs: Vec::new(),
            ack: true,
            closed: false,
        }
    }

    fn next_seq(&self) -> u64 {
        self.base + self.out.len() as u64
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    async fn run(&self, path: &str, mode: RunMode) -> Result<(), RunnerError> {
        self.att
            .handle
            .run(&self.att.conn_id, Some(7), path.to_string(), mode, 80, 24)
            .await
    }

    async fn input(&self, s: &str) {
        self.att
            .handle
            .input(Bytes::copy_from_slice(s.as_bytes()))
            .await
            .unwrap();
    }

    /// Handle one event; false on deadline or closed channel.
    async fn pump(&mut self, deadline: Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.att.events.recv()).await {
            Err(_) => false,
            Ok(None) => {
                self.closed = true;
                false
            }
            Ok(Some(SessionEvent::Output { seq, bytes })) => {
                assert_eq!(seq, self.next_seq(), "output must be contiguous");
                self.out.extend_from_slice(&bytes);
                if self.ack {
                    let seq = self.next_seq();
                    let _ = self.att.handle.ack(&self.att.conn_id, seq).await;
                }
                true
            }
            Ok(Some(SessionEvent::Msg(m))) => {
                self.msgs.push(m);
                true
            }
        }
    }

    async fn until(&mut self, what: &str, pred: impl Fn(&Client) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self) {
            if !self.pump(deadline).await && !pred(self) {
                let text = self.text();
                let tail = &text[text.len().saturating_sub(2000)..];
                panic!(
                    "waiting for {what}: closed={} msgs={:?} output tail={tail:?}",
                    self.closed, self.msgs
                );
            }
        }
    }

    /// Wait until `needle` appears in the output after byte `from`.
    async fn text_after(&mut self, from: usize, needle: &str) {
        self.until(needle, |c| {
            c.out.len() > from && String::from_utf8_lossy(&c.out[from..]).contains(needle)
        })
        .await;
    }

    async fn ended(&mut self) -> RunEnded {
        self.until("run_ended", |c| {
            c.msgs
                .iter()
                .any(|m| matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. })))
        })
        .await;
        let pos = self
            .msgs
            .iter()
            .position(|m| matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. })))
            .unwrap();
        match self.msgs.remove(pos) {
            ServerMsg::Session(SessionMsg::RunEnded { ended, .. }) => ended,
            _ => unreachable!(),
        }
    }

    /// `script_error` of the `phase {repl}` message (None if it has none or came not yet).
    fn phase_script_error(&self) -> Option<String> {
        self.msgs.iter().find_map(|m| match m {
            ServerMsg::Session(SessionMsg::Phase {
                phase: Phase::Repl,
                script_error,
                ..
            }) => script_error.clone(),
            _ => None,
        })
    }

    fn has_phase_repl(&self) -> bool {
        self.msgs.iter().any(|m| {
            matches!(
                m,
                ServerMsg::Session(SessionMsg::Phase {
                    phase: Phase::Repl,
                    ..
                })
            )
        })
    }
}

/// Poll a predicate with a deadline (no sleeps as synchronisation).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_and_exit_code() {
    let env = setup(test_config());
    env.write(
        1,
        "main.py",
        "print('hello', 6*7)\nimport sys\nsys.exit(3)\n",
    );
    let mut c = env.attach(1, "c1", 0).await;
    c.run("main.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    assert!(c.text().contains("hello 42\r\n"), "{:?}", c.text());
    assert_eq!(ended.reason, EndReason::Exited);
    assert_eq!(ended.exit_code, Some(3));
    assert!(
        ended
            .message
            .starts_with("Ended with an error (exit code 3) after "),
        "{}",
        ended.message
    );
    assert_eq!(ended.output_bytes, c.out.len() as u64);
    assert_eq!(ended.memory_limit_bytes, 128 << 20);
    assert_eq!(ended.cpu_limit_ms, 30_000);
    match &c.msgs[0] {
        ServerMsg::Session(SessionMsg::RunStarted {
            id,
            mode,
            start_seq,
            replaced_previous,
            ..
        }) => {
            assert_eq!(*id, Some(7));
            assert_eq!(*mode, RunMode::Script);
            assert_eq!(*start_seq, 0);
            assert!(!replaced_previous);
        }
        other => panic!("expected run_started first, got {other:?}"),
    }
    // Bad paths are refused before anything starts.
    assert!(matches!(
        c.run("nope.py", RunMode::Script).await,
        Err(RunnerError::NotFound(_))
    ));
    assert!(matches!(
        c.run("../ws2/x.py", RunMode::Script).await,
        Err(RunnerError::InvalidPath(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_is_answered() {
    let env = setup(test_config());
    env.write(
        1,
        "ask.py",
        "name = input('name? ')\nprint('hi', name.upper())\n",
    );
    let mut c = env.attach(1, "c1", 0).await;
    c.run("ask.py", RunMode::Script).await.unwrap();
    c.text_after(0, "name? ").await;
    c.input("bob\r").await;
    let ended = c.ended().await;
    assert!(c.text().contains("hi BOB"), "{:?}", c.text());
    assert_eq!(
        (ended.reason, ended.exit_code),
        (EndReason::Exited, Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_repl_sees_script_globals_and_input_works_in_both_phases() {
    let env = setup(test_config());
    env.write(
        1,
        "main.py",
        "def f(x):\n    return x * 2\nname = input('name? ')\nprint('hello', name)\n",
    );
    let mut c = env.attach(1, "c1", 0).await;
    c.run("main.py", RunMode::Hybrid).await.unwrap();
    c.text_after(0, "name? ").await;
    assert!(!c.has_phase_repl());
    c.input("ann\r").await;
    c.until("phase repl", Client::has_phase_repl).await;
    c.text_after(0, ">>> ").await;
    assert!(c.text().contains("hello ann"));
    let mark = c.out.len();
    c.input("f(2)\r").await;
    c.text_after(mark, "4\r\n>>> ").await;
    let mark = c.out.len();
    c.input("answer = input('again? ')\r").await;
    c.text_after(mark, "again? ").await;
    c.input("yes\r").await;
    c.input("print(answer * 2)\r").await;
    c.text_after(mark, "yesyes").await;
    assert_eq!(c.phase_script_error(), None, "the script did not raise");
    c.input("exit()\r").await;
    let ended = c.ended().await;
    assert_eq!(
        (ended.reason, ended.exit_code),
        (EndReason::Exited, Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repl_has_a_banner_tab_completion_and_history_in_both_modes() {
    let env = setup(test_config());
    env.write(1, "a.py", "scores = [1, 2]\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("", RunMode::Repl).await.unwrap();
    c.text_after(0, ">>> ").await;
    assert!(c.text().contains("Type \"help\""), "{:?}", c.text());
    let mark = c.out.len();
    // rlcompleter is imported lazily, at this first Tab.
    c.input("pri\t").await;
    c.text_after(mark, "print(").await;
    c.input("'repl-' + 'history')\r").await;
    c.text_after(mark, "repl-history").await;
    c.input("exit()\r").await;
    assert_eq!(c.ended().await.exit_code, Some(0));
    let history = env.workspace(1).join(".python_history");
    eventually("history written", || {
        let h = history.clone();
        async move { std::fs::read_to_string(h).is_ok_and(|t| t.contains("repl-")) }
    })
    .await;

    let mark = c.out.len();
    c.run("a.py", RunMode::Hybrid).await.unwrap();
    c.until("phase repl", Client::has_phase_repl).await;
    c.text_after(mark, ">>> ").await;
    let mark = c.out.len();
    // The script's names complete; the launcher's own names do not exist.
    c.input("sco\t").await;
    c.text_after(mark, "scores").await;
    c.input("\r_campus_readline\r").await;
    c.text_after(mark, "NameError").await;
    c.input("exit()\r").await;
    assert_eq!(c.ended().await.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_exception_still_reaches_the_repl() {
    let env = setup(test_config());
    env.write(1, "bad.py", "x = 41\nraise ValueError('boom')\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("bad.py", RunMode::Hybrid).await.unwrap();
    c.until("phase repl", Client::has_phase_repl).await;
    c.text_after(0, ">>> ").await;
    let text = c.text();
    assert!(
        text.contains("Traceback (most recent call last)"),
        "{text:?}"
    );
    assert!(text.contains("File \"bad.py\", line 2"), "{text:?}");
    assert!(text.contains("ValueError: boom"), "{text:?}");
    assert!(
        !text.contains("_campus_hybrid"),
        "launcher frames are hidden: {text:?}"
    );
    assert_eq!(c.phase_script_error().as_deref(), Some("ValueError"));
    // A connection attaching now learns it too.
    let late = env.attach(1, "c2", u64::MAX).await;
    let ServerMsg::Session(SessionMsg::Attached {
        script_error,
        mode,
        path,
        ..
    }) = &late.att.attached
    else {
        unreachable!()
    };
    assert_eq!(script_error.as_deref(), Some("ValueError"));
    assert_eq!(
        (*mode, path.as_deref()),
        (Some(RunMode::Hybrid), Some("bad.py"))
    );
    drop(late);
    let mark = c.out.len();
    c.input("x + 1\r").await;
    c.text_after(mark, "42").await;
    assert!(c.att.handle.stop(&c.att.conn_id, Some(9)).await.unwrap());
    let ended = c.ended().await;
    assert_eq!(ended.reason, EndReason::Stopped);
    assert!(
        ended.message.starts_with("Stopped by you"),
        "{}",
        ended.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_and_ctrl_c_in_a_hybrid_script_are_named_in_the_phase() {
    let env = setup(test_config());
    env.write(1, "syntax.py", "x = (\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("syntax.py", RunMode::Hybrid).await.unwrap();
    c.until("phase repl", Client::has_phase_repl).await;
    assert_eq!(c.phase_script_error().as_deref(), Some("SyntaxError"));
    c.att.handle.stop(&c.att.conn_id, None).await.unwrap();
    c.ended().await;

    env.write(
        1,
        "spin.py",
        "print('SP' + 'IN', flush=True)\nwhile True:\n    pass\n",
    );
    let mut c = env.attach(1, "c2", u64::MAX).await;
    c.run("spin.py", RunMode::Hybrid).await.unwrap();
    c.text_after(0, "SPIN").await;
    c.att.handle.interrupt().await.unwrap();
    c.until("phase repl", Client::has_phase_repl).await;
    assert_eq!(c.phase_script_error().as_deref(), Some("KeyboardInterrupt"));
    c.att.handle.stop(&c.att.conn_id, None).await.unwrap();
    assert_eq!(c.ended().await.reason, EndReason::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_a_script_as_interrupted_but_a_self_sent_sigint_is_a_signal() {
    let env = setup(test_config());
    env.write(
        1,
        "spin.py",
        "print('SP' + 'IN', flush=True)\nwhile True:\n    pass\n",
    );
    // The `interrupt` message (the browser's Ctrl-C) ...
    let mut c = env.attach(1, "c1", 0).await;
    c.run("spin.py", RunMode::Script).await.unwrap();
    c.text_after(0, "SPIN").await;
    c.att.handle.interrupt().await.unwrap();
    let ended = c.ended().await;
    assert_eq!(ended.reason, EndReason::Interrupted, "{ended:?}");
    assert_eq!(ended.signal, Some(2));
    assert!(
        ended.message.starts_with("Interrupted (Ctrl-C) after "),
        "{}",
        ended.message
    );
    assert!(c.text().contains("KeyboardInterrupt"), "{:?}", c.text());
    // ... and a typed Ctrl-C (what `campus run` forwards from a raw terminal).
    let mark = c.out.len();
    c.run("spin.py", RunMode::Script).await.unwrap();
    c.text_after(mark, "SPIN").await;
    c.input("\x03").await;
    assert_eq!(c.ended().await.reason, EndReason::Interrupted);
    // A program that sends itself SIGINT was not interrupted by its user.
    env.write(
        1,
        "self.py",
        "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n",
    );
    c.run("self.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    assert_eq!(
        (ended.reason, ended.signal),
        (EndReason::Signaled, Some(2)),
        "{ended:?}"
    );
    assert!(ended.message.contains("SIGINT"), "{}", ended.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_interrupts_a_loop_and_the_repl_survives() {
    let env = setup(test_config());
    let mut c = env.attach(1, "c1", 0).await;
    c.run("", RunMode::Repl).await.unwrap();
    c.text_after(0, ">>> ").await;
    let mark = c.out.len();
    c.input("exec(\"print('SP'+'IN')\\nwhile True: pass\")\r")
        .await;
    c.text_after(mark, "SPIN\r\n").await;
    c.att.handle.interrupt().await.unwrap();
    c.text_after(mark, "KeyboardInterrupt").await;
    c.text_after(mark, ">>> ").await;
    let mark = c.out.len();
    c.input("print(6*7)\r").await;
    c.text_after(mark, "42\r\n").await;
    let info = env.runner.session_info(1).await.unwrap();
    assert!(info.running);
    assert_eq!(info.phase, Some(Phase::Repl));
    c.att.handle.stop(&c.att.conn_id, None).await.unwrap();
    assert_eq!(c.ended().await.reason, EndReason::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_warns_then_times_out_per_phase() {
    let env = setup(RunnerConfig {
        script_max_age: Duration::from_secs(2),
        repl_max_age: Duration::from_secs(3),
        ..test_config()
    });
    env.write(
        1,
        "sleep.py",
        "import time\nprint('sleeping')\ntime.sleep(60)\n",
    );
    let mut c = env.attach(1, "c1", 0).await;
    c.run("sleep.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    assert_eq!(ended.reason, EndReason::Timeout);
    assert!(
        ended.message.contains("time limit (2.0 s)"),
        "{}",
        ended.message
    );
    let warning = c
        .msgs
        .iter()
        .find_map(|m| match m {
            ServerMsg::Session(SessionMsg::Warning {
                reason, stop_in_ms, ..
            }) => Some((reason.clone(), *stop_in_ms)),
            _ => None,
        })
        .expect("a warning before the timeout");
    assert_eq!(warning.0, "max_age");
    assert!(warning.1 > 0 && warning.1 <= 2000);

    // The REPL clock starts at the phase change and has its own limit.
    env.write(1, "quick.py", "print('done')\n");
    c.msgs.clear();
    c.run("quick.py", RunMode::Hybrid).await.unwrap();
    c.until("phase repl", Client::has_phase_repl).await;
    let ended = c.ended().await;
    assert_eq!(ended.reason, EndReason::Timeout);
    assert!(ended.message.contains("prompt"), "{}", ended.message);
    assert!(ended.message.contains("3.0 s"), "{}", ended.message);
    let phase_at = c
        .msgs
        .iter()
        .position(|m| matches!(m, ServerMsg::Session(SessionMsg::Phase { .. })));
    let warn_at = c
        .msgs
        .iter()
        .position(|m| matches!(m, ServerMsg::Session(SessionMsg::Warning { .. })));
    assert!(phase_at.unwrap() < warn_at.expect("warning in the REPL phase"));
}

/// Attack: a hybrid script prints Campus's old private phase marker in every
/// way it can reach the terminal (print, the raw stdout, fds 1 and 2, a
/// child process) and tries to hand the phase channel to a child, then keeps
/// running. The phase must stay `script`, so the script's max age (3 s) ends
/// it, not the REPL's (300 s). The phase report travels only on the
/// launcher's result channel; printed bytes are ordinary output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_printing_the_phase_marker_stays_in_the_script_phase() {
    let env = setup(RunnerConfig {
        script_max_age: Duration::from_secs(3),
        repl_max_age: Duration::from_secs(300),
        ..test_config()
    });
    env.write(
        1,
        "spoof.py",
        r#"import os, subprocess, sys, time
m = "\x1b]7771;campus;phase=repl\x07"
m2 = "\x1b]7771;campus;phase=repl;raised=Fake\x07"
print(m, flush=True)
sys.__stdout__.write(m2)
sys.__stdout__.flush()
os.write(1, m.encode())
os.write(2, m.encode())
subprocess.run([sys.executable, "-c", "import os; os.write(1, b'\x1b]7771;campus;phase=repl\x07')"])
child = "import os\ntry:\n    os.write(3, b'repl\\n')\n    print('child-wrote')\nexcept OSError as e:\n    print('child-refused', e.errno)\n"
subprocess.run([sys.executable, "-c", child], close_fds=False)
print("still-script", flush=True)
while True:
    time.sleep(0.05)
"#,
    );
    let mut c = env.attach(1, "c1", 0).await;
    c.run("spoof.py", RunMode::Hybrid).await.unwrap();
    c.text_after(0, "still-script").await;
    let ended = c.ended().await;
    let text = c.text();
    assert!(
        !c.has_phase_repl(),
        "printed bytes switched the phase: {:?}",
        c.msgs
    );
    assert_eq!(ended.reason, EndReason::Timeout, "{ended:?}");
    assert!(
        ended.message.contains("time limit (3.0 s)") && !ended.message.contains("prompt"),
        "the script's max age applies: {}",
        ended.message
    );
    assert!((3000..60_000).contains(&ended.duration_ms), "{ended:?}");
    // The marker bytes reached the terminal as ordinary output, and the
    // child could not write to the phase channel (EBADF).
    assert!(text.contains("]7771;campus;phase=repl"), "{text:?}");
    assert!(text.contains("child-refused 9"), "{text:?}");
    assert!(!text.contains("child-wrote"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_spin_ends_with_cpu_limit() {
    let mut cfg = test_config();
    cfg.limits.cpu_secs = 1;
    let env = setup(cfg);
    env.write(1, "spin.py", "while True:\n    pass\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("spin.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    assert_eq!(ended.reason, EndReason::CpuLimit, "{ended:?}");
    // SIGXCPU comes from tick-sampled CPU time; the cgroup's exact count can be
    // tens of ms lower on a loaded VM (seen: 895 ms at a 1 s limit).
    assert!(ended.cpu_ms >= 500, "{ended:?}");
    assert!(ended.message.contains("CPU time"), "{}", ended.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_a_million_lines_arrives_in_order_with_bounded_buffers() {
    let cfg = test_config();
    let (high, frame, tail) = (
        cfg.high_water_bytes,
        cfg.max_frame_bytes,
        cfg.log_tail_bytes,
    );
    let env = setup(cfg);
    env.write(1, "flood.py", "for i in range(1000000):\n    print(i)\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("flood.py", RunMode::Script).await.unwrap();
    // A client that stops reading (and acking): the session must pause the
    // PTY near the high-water mark instead of buffering the flood.
    let runner = env.runner.clone();
    eventually("flow control to pause the PTY", || {
        let runner = runner.clone();
        async move {
            runner
                .session_info(1)
                .await
                .is_some_and(|i| i.buffers.paused)
        }
    })
    .await;
    let paused = env.runner.session_info(1).await.unwrap();
    assert!(paused.running);
    assert!(paused.buffers.unacked_bytes >= high, "{:?}", paused.buffers);
    assert!(paused.next_seq < 2 * high + 2 * frame as u64, "{paused:?}");
    // Now read and ack everything; sample the buffers as it goes.
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut events = 0u64;
    while !c
        .msgs
        .iter()
        .any(|m| matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. })))
    {
        assert!(c.pump(deadline).await, "flood stalled");
        events += 1;
        if events.is_multiple_of(50) {
            if let Some(info) = env.runner.session_info(1).await {
                samples.push(info.buffers);
            }
        }
    }
    let ended = c.ended().await;
    assert_eq!(
        (ended.reason, ended.exit_code),
        (EndReason::Exited, Some(0))
    );
    let text = c.text();
    let mut expected = 0u64;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        assert_eq!(line, expected.to_string(), "line {expected}");
        expected += 1;
    }
    assert_eq!(expected, 1_000_000);
    assert_eq!(ended.output_bytes, c.out.len() as u64);
    let info = env.runner.session_info(1).await.unwrap();
    let read_buf = 16 << 10;
    let b = &info.buffers;
    assert!(b.max_tail_bytes <= tail, "{b:?}");
    assert!(b.max_pending_bytes <= frame + read_buf, "{b:?}");
    assert!(
        b.max_unacked_bytes <= high + (frame + read_buf) as u64,
        "unacked output must stay near the high-water mark: {b:?}"
    );
    for s in samples {
        assert!(
            s.tail_bytes <= tail && s.pending_bytes <= frame + read_buf,
            "{s:?}"
        );
    }
}

/// The run's CPU priority file (v1 `cpu.shares` or v2 `cpu.weight`) and its value.
fn cpu_priority_knob(run_id: &str) -> Option<(PathBuf, u64)> {
    fn walk(dir: &std::path::Path, name: &str, depth: u32) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if !e.file_type().ok()?.is_dir() {
                continue;
            }
            if e.file_name() == name {
                for f in ["cpu.shares", "cpu.weight"] {
                    if p.join(f).exists() {
                        return Some(p.join(f));
                    }
                }
            } else if depth > 0 {
                if let Some(found) = walk(&p, name, depth - 1) {
                    return Some(found);
                }
            }
        }
        None
    }
    let file = walk(
        std::path::Path::new("/sys/fs/cgroup"),
        &format!("run-{run_id}"),
        5,
    )?;
    let value = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
    Some((file, value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_run_yields_the_cpu_and_gets_it_back_when_it_waits() {
    let env = setup(test_config());
    env.write(
        1,
        "spin.py",
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 3: pass\ninput('quiet? ')\n",
    );
    let mut c = env.attach(1, "c1", 0).await;
    c.run("spin.py", RunMode::Script).await.unwrap();
    let runner = env.runner.clone();
    let info = |r: Arc<Runner>| async move { r.session_info(1).await.unwrap() };
    eventually("demoted while spinning", || {
        let r = runner.clone();
        async move { info(r).await.background }
    })
    .await;
    let run_id = info(runner.clone()).await.run_id.unwrap();
    let isolated = env.isolated;
    if isolated {
        let (file, value) = cpu_priority_knob(&run_id).expect("the run's cgroup has a cpu knob");
        let low = if file.ends_with("cpu.shares") { 64 } else { 6 };
        assert_eq!(value, low, "{}", file.display());
    }
    c.text_after(0, "quiet? ").await;
    eventually("interactive again while waiting", || {
        let r = runner.clone();
        async move { !info(r).await.background }
    })
    .await;
    if isolated {
        let (file, value) = cpu_priority_knob(&run_id).unwrap();
        let normal = if file.ends_with("cpu.shares") {
            1024
        } else {
            100
        };
        assert_eq!(value, normal, "{}", file.display());
    }
    c.input("\r").await;
    assert_eq!(c.ended().await.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cap_ends_with_output_limit() {
    let env = setup(RunnerConfig {
        output_limit_bytes: 100_000,
        ..test_config()
    });
    env.write(1, "loud.py", "while True:\n    print('x' * 100)\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("loud.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    assert_eq!(ended.reason, EndReason::OutputLimit);
    assert!(ended.output_bytes > 100_000, "{ended:?}");
    assert!(ended.message.contains("output"), "{}", ended.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_replays_exactly_the_missed_bytes_and_the_program_keeps_running() {
    let env = setup(test_config());
    env.write(
        1,
        "count.py",
        "import time\nfor i in range(60):\n    print('line', i)\n    time.sleep(0.01)\nx = input('more? ')\nprint('got', x)\n",
    );
    let mut a = env.attach(1, "tab-a", 0).await;
    let mut watcher = env.attach(1, "tab-b", 0).await;
    a.run("count.py", RunMode::Script).await.unwrap();
    a.text_after(0, "line 5\r\n").await;
    let have = a.next_seq();
    let got_a = a.out.clone();
    drop(a); // connection lost mid-run
    watcher.text_after(0, "more? ").await;
    let info = env.runner.session_info(1).await.unwrap();
    assert!(info.running, "the program survives the disconnect");
    assert_eq!(info.attached, 1);

    let b = env
        .runner
        .attach(&user(1), env.workspace(1), "tab-a", have)
        .await
        .unwrap();
    let ServerMsg::Session(SessionMsg::Attached {
        running,
        replay_from,
        dropped_bytes,
        next_seq,
        ..
    }) = b.attached.clone()
    else {
        panic!()
    };
    assert!(running);
    assert_eq!((replay_from, dropped_bytes), (have, 0));
    let mut b = Client::new(b);
    b.until("replay", |c| c.next_seq() >= next_seq).await;
    let mut all = got_a;
    all.extend_from_slice(&b.out);
    assert_eq!(
        all, watcher.out,
        "missed output replayed exactly once, in order"
    );
    let text = String::from_utf8_lossy(&all).into_owned();
    for i in 0..60 {
        assert_eq!(
            text.matches(&format!("line {i}\r\n")).count(),
            1,
            "line {i}"
        );
    }
    b.input("yes\r").await;
    let ended = b.ended().await;
    assert!(b.text().contains("got yes"));
    assert_eq!(ended.reason, EndReason::Exited);
    assert_eq!(watcher.ended().await.run_id, ended.run_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_older_than_the_tail_reports_dropped_bytes() {
    let cfg = test_config();
    let tail = cfg.log_tail_bytes as u64;
    let env = setup(cfg);
    env.write(
        1,
        "big.py",
        "for i in range(100000):\n    print('%07d' % i)\n",
    );
    let c = env.attach(1, "c1", 0).await;
    c.run("big.py", RunMode::Script).await.unwrap();
    drop(c); // nobody attached: the session keeps reading into its bounded tail
    let runner = env.runner.clone();
    eventually("the run to end", || {
        let runner = runner.clone();
        async move {
            runner
                .session_info(1)
                .await
                .is_some_and(|i| i.last_ended.is_some() && !i.running)
        }
    })
    .await;
    let info = env.runner.session_info(1).await.unwrap();
    assert_eq!(info.last_ended.as_ref().unwrap().reason, EndReason::Exited);
    assert!(info.buffers.max_tail_bytes as u64 <= tail);
    let total = info.next_seq;
    assert_eq!(total, 100_000 * 9);
    let mut c = env.attach(1, "c2", 0).await;
    let ServerMsg::Session(SessionMsg::Attached {
        replay_from,
        dropped_bytes,
        running,
        last_ended,
        ..
    }) = c.att.attached.clone()
    else {
        panic!()
    };
    assert!(!running);
    assert_eq!(last_ended.unwrap().reason, EndReason::Exited);
    assert_eq!(dropped_bytes, total - tail);
    assert_eq!(replay_from, total - tail);
    c.until("replay", |c| c.next_seq() == total).await;
    assert_eq!(c.out.len() as u64, tail);
    assert!(c.text().ends_with("0099999\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_replaces_the_first() {
    let env = setup(test_config());
    env.write(1, "wait.py", "input('waiting ')\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("wait.py", RunMode::Script).await.unwrap();
    c.text_after(0, "waiting ").await;
    let first = match &c.msgs[0] {
        ServerMsg::Session(SessionMsg::RunStarted { run_id, .. }) => run_id.clone(),
        other => panic!("{other:?}"),
    };
    c.run("wait.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    assert_eq!(ended.run_id, first);
    assert_eq!(ended.reason, EndReason::Stopped);
    c.until("second run_started", |c| {
        c.msgs.iter().any(|m| {
            matches!(m, ServerMsg::Session(SessionMsg::RunStarted { replaced_previous: true, run_id, .. }) if *run_id != first)
        })
    })
    .await;
    assert_eq!(env.runner.active_runs(), 1);
    c.att.handle.stop(&c.att.conn_id, None).await.unwrap();
    c.ended().await;
    assert_eq!(env.runner.active_runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_rate_limited_per_user() {
    let env = setup(RunnerConfig {
        runs_per_min: 2,
        ..test_config()
    });
    env.write(1, "a.py", "pass\n");
    env.write(2, "a.py", "pass\n");
    let c = env.attach(1, "c1", 0).await;
    c.run("a.py", RunMode::Script).await.unwrap();
    c.run("a.py", RunMode::Script).await.unwrap();
    match c.run("a.py", RunMode::Script).await {
        Err(e @ RunnerError::RateLimited { retry_after_ms }) => {
            assert!(retry_after_ms > 0 && retry_after_ms <= 60_000);
            assert_eq!(e.code(), campus_protocol::ErrorCode::RateLimited);
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // Another user is not affected.
    let d = env.attach(2, "d1", 0).await;
    d.run("a.py", RunMode::Script).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_is_bounded_and_says_busy() {
    let env = setup(RunnerConfig {
        max_concurrent_runs: 1,
        ..test_config()
    });
    env.write(1, "wait.py", "input('waiting ')\n");
    env.write(2, "hi.py", "print('hi')\n");
    let mut a = env.attach(1, "a", 0).await;
    a.run("wait.py", RunMode::Script).await.unwrap();
    a.text_after(0, "waiting ").await;
    let mut b = env.attach(2, "b", 0).await;
    match b.run("hi.py", RunMode::Script).await {
        Err(e @ RunnerError::Busy { retry_after_ms }) => {
            assert!(retry_after_ms > 0);
            assert_eq!(e.code(), campus_protocol::ErrorCode::Busy);
        }
        other => panic!("expected busy, got {other:?}"),
    }
    // Replacing one's own run reuses the slot.
    a.run("wait.py", RunMode::Script).await.unwrap();
    assert_eq!(env.runner.active_runs(), 1);
    a.att.handle.stop(&a.att.conn_id, None).await.unwrap();
    assert_eq!(env.runner.active_runs(), 0);
    b.run("hi.py", RunMode::Script).await.unwrap();
    assert_eq!(b.ended().await.reason, EndReason::Exited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_students_run_at_once() {
    let env = setup(test_config());
    for id in 1..=20 {
        env.write(
            id,
            "main.py",
            &format!("import time\ntime.sleep(0.2)\nprint('student', {id} * 1000)\n"),
        );
    }
    let env = Arc::new(env);
    let mut tasks = Vec::new();
    for id in 1..=20i64 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = env.attach(id, "c", 0).await;
            c.run("main.py", RunMode::Script).await.unwrap();
            let ended = c.ended().await;
            assert_eq!(
                (ended.reason, ended.exit_code),
                (EndReason::Exited, Some(0))
            );
            assert!(
                c.text().contains(&format!("student {}\r\n", id * 1000)),
                "{}",
                c.text()
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(env.runner.active_runs(), 0);
    assert_eq!(env.runner.session_count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_idle_runs_are_abandoned_but_busy_scripts_are_not() {
    let env = setup(RunnerConfig {
        detached_grace: Duration::from_secs(1),
        ..test_config()
    });
    env.write(1, "wait.py", "input('waiting ')\n");
    env.write(
        2,
        "work.py",
        "import time\nfor i in range(30):\n    print(i)\n    time.sleep(0.1)\n",
    );
    let mut a = env.attach(1, "a", 0).await;
    a.run("wait.py", RunMode::Script).await.unwrap();
    a.text_after(0, "waiting ").await;
    let b = env.attach(2, "b", 0).await;
    b.run("work.py", RunMode::Script).await.unwrap();
    drop(a);
    drop(b);
    for (id, want) in [(1, EndReason::Abandoned), (2, EndReason::Exited)] {
        let runner = env.runner.clone();
        let seen = Arc::new(std::sync::Mutex::new(None));
        eventually("the run to end", || {
            let (runner, seen) = (runner.clone(), seen.clone());
            async move {
                let ended = runner.session_info(id).await.and_then(|i| i.last_ended);
                let done = ended.is_some();
                *seen.lock().unwrap() = ended;
                done
            }
        })
        .await;
        let ended = seen.lock().unwrap().clone().unwrap();
        assert_eq!(ended.reason, want, "{ended:?}");
        if want == EndReason::Abandoned {
            assert!(
                ended.message.contains("nobody was connected"),
                "{}",
                ended.message
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_runs_with_server_shutdown() {
    let env = setup(test_config());
    env.write(1, "sleep.py", "import time\nprint('up')\ntime.sleep(60)\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("sleep.py", RunMode::Script).await.unwrap();
    c.text_after(0, "up").await;
    env.runner.shutdown().await;
    let ended = c.ended().await;
    assert_eq!(ended.reason, EndReason::ServerShutdown);
    assert_eq!(env.runner.active_runs(), 0);
    c.until("channel closed", |c| c.closed).await;
    assert!(matches!(
        env.runner
            .attach(&user(1), env.workspace(1), "late", 0)
            .await,
        Err(RunnerError::Busy { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_interpreter_is_a_clear_start_failure() {
    let env = setup(RunnerConfig {
        python: PathBuf::from("/nonexistent/python3"),
        ..test_config()
    });
    env.write(1, "main.py", "print('never')\n");
    let mut c = env.attach(1, "c1", 0).await;
    c.run("main.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    // The stub sandbox fails to spawn; a re-exec helper fails to exec (127).
    match (ended.reason, ended.exit_code) {
        (EndReason::StartFailed, None) => assert!(ended.message.contains("could not be started")),
        (EndReason::Exited, Some(127)) => {}
        other => panic!("unexpected ending {other:?}: {ended:?}"),
    }
    assert_eq!(env.runner.active_runs(), 0);
}

/// True while any process on the host has exactly this command line.
fn process_with_cmdline_exists(cmdline: &[u8]) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == cmdline))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_child_process_outlives_its_run() {
    let env = setup(test_config());
    let tag = format!(
        "{}.{}",
        3000 + std::process::id() % 1000,
        std::process::id()
    );
    // The child is python itself: the sandbox has no coreutils (docs/security.md).
    let sleeper = "import time; time.sleep(600)";
    let cmdline = format!("python3\0-c\0{sleeper}\0{tag}\0").into_bytes();
    env.write(
        1,
        "bg.py",
        &format!("import subprocess, sys\nsubprocess.Popen(['python3', '-c', '{sleeper}', '{tag}'])\nprint('spawned')\nif sys.argv[-1:] != ['exit']:\n    input('wait ')\n"),
    );
    env.write(
        1,
        "bg_exit.py",
        &format!("import subprocess\nsubprocess.Popen(['python3', '-c', '{sleeper}', '{tag}'])\nprint('spawned')\n"),
    );
    let mut c = env.attach(1, "c1", 0).await;
    // Stopped while a background child runs.
    c.run("bg.py", RunMode::Script).await.unwrap();
    c.text_after(0, "wait ").await;
    eventually("the background child to be visible in /proc", || async {
        process_with_cmdline_exists(&cmdline)
    })
    .await;
    c.att.handle.stop(&c.att.conn_id, None).await.unwrap();
    assert_eq!(c.ended().await.reason, EndReason::Stopped);
    eventually("the stopped run's child to be gone", || async {
        !process_with_cmdline_exists(&cmdline)
    })
    .await;
    // Exits by itself, leaving a background child behind.
    let mark = c.out.len();
    c.run("bg_exit.py", RunMode::Script).await.unwrap();
    c.text_after(mark, "spawned").await;
    assert_eq!(c.ended().await.reason, EndReason::Exited);
    eventually("the exited run's child to be gone", || async {
        !process_with_cmdline_exists(&cmdline)
    })
    .await;
}

/// The `/proc/<pid>/fd` link targets of every host process whose command line
/// contains `needle` (the run's helper processes: their argv names the workspace).
fn fd_targets_of_processes_with(needle: &str) -> Vec<(u32, Vec<(i32, String)>)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains(needle) {
            continue;
        }
        let Ok(dir) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let fds = dir
            .flatten()
            .filter_map(|f| {
                let fd = f.file_name().to_string_lossy().parse::<i32>().ok()?;
                let target = std::fs::read_link(f.path()).ok()?;
                Some((fd, target.to_string_lossy().into_owned()))
            })
            .collect();
        found.push((pid, fds));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_inherits_no_server_descriptors() {
    // Cold, then with the run handed to a warm sandbox.
    for warm in [0, 1] {
        inherits_no_server_descriptors(warm).await;
    }
}

async fn inherits_no_server_descriptors(warm: usize) {
    let env = setup(warm_config(warm));
    // A descriptor the server forgot to mark close-on-exec, plus another run's
    // live PTY master: neither may reach the helper or the program.
    let (leak_r, leak_w) = nix::unistd::pipe().unwrap();
    let leaked = std::fs::read_link(format!("/proc/self/fd/{}", leak_r.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(leaked.starts_with("pipe:["), "{leaked}");
    env.write(1, "hold.py", "input('holding ')\n");
    let mut other = env.attach(1, "c1", 0).await;
    if warm > 0 {
        // Its run takes the warm sandbox (and gives the permit back).
        eventually("a warm sandbox", || warm_ready(&other)).await;
    }
    other.run("hold.py", RunMode::Script).await.unwrap();
    other.text_after(0, "holding ").await;
    env.write(
        2,
        "fds.py",
        "import os\n\
         for fd in sorted(int(f) for f in os.listdir('/proc/self/fd')):\n\
         \x20   try:\n\
         \x20       print('FD', fd, os.readlink('/proc/self/fd/%d' % fd))\n\
         \x20   except OSError:\n\
         \x20       print('FD', fd, 'closed')\n\
         input('done? ')\n",
    );
    let mut c = env.attach(2, "c2", 0).await;
    if warm > 0 {
        // User 1's run holds no warm sandbox: user 2 gets the only one.
        eventually("a warm sandbox", || warm_ready(&c)).await;
    }
    c.run("fds.py", RunMode::Script).await.unwrap();
    c.text_after(0, "done? ").await;
    let text = c.text();
    let fds: Vec<(i32, &str)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.trim_end().strip_prefix("FD ")?;
            let (fd, target) = rest.split_once(' ')?;
            Some((fd.parse().ok()?, target))
        })
        .collect();
    let numbers: Vec<i32> = fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(&numbers[..3], &[0, 1, 2], "{text}");
    // Anything above 2 can only be listdir's own (already closed) directory handle.
    assert!(
        fds.iter().all(|(fd, t)| *fd <= 2 || *t == "closed"),
        "the program inherited descriptors: {text}"
    );
    // The helper processes (still alive around the program when isolated) hold
    // only the terminal, their own pipes and — the top helper only — the pidfd
    // it opened on the server to die with it.
    let ws = env.workspace(2).to_string_lossy().into_owned();
    let helpers = fd_targets_of_processes_with(&ws);
    assert!(!helpers.is_empty() || !env.isolated, "no helper found");
    let found = !helpers.is_empty();
    let mut watchers = 0;
    for (pid, fds) in helpers {
        for (fd, target) in fds {
            if target == "anon_inode:[pidfd]" {
                let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
                let of = info
                    .lines()
                    .find_map(|l| l.strip_prefix("Pid:"))
                    .map(str::trim);
                assert_eq!(of, Some(std::process::id().to_string().as_str()), "{info}");
                watchers += 1;
                continue;
            }
            let ok = (target.starts_with("/dev/pts/") && target != "/dev/pts/ptmx")
                || (fd > 2 && target.starts_with("pipe:[") && target != leaked);
            assert!(ok, "process {pid} holds fd {fd} -> {target}");
        }
    }
    assert!(
        !found || watchers == 1,
        "the top helper, and only it, watches the server: {watchers}"
    );
    c.input("\r").await;
    assert_eq!(c.ended().await.reason, EndReason::Exited);
    other.input("\r").await;
    assert_eq!(other.ended().await.reason, EndReason::Exited);
    drop((leak_r, leak_w));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_sees_the_terminal_size_and_resizes() {
    let env = setup(test_config());
    env.write(
        1,
        "size.py",
        // The handler only sets a flag that a short sleep loop checks:
        // a handler run from inside input() can miss a signal that lands
        // between readline printing its prompt and entering select().
        "import os, signal, time\n\
         got = []\n\
         signal.signal(signal.SIGWINCH, lambda *a: got.append(1))\n\
         print('SIZE', *os.get_terminal_size(), flush=True)\n\
         print('ready ', flush=True)\n\
         for _ in range(1200):\n\
         \x20   if got:\n\
         \x20       print('WINCH', *os.get_terminal_size(), flush=True)\n\
         \x20       break\n\
         \x20   time.sleep(0.05)\n",
    );
    let mut c = env.attach(1, "c1", 0).await;
    c.run("size.py", RunMode::Script).await.unwrap();
    c.text_after(0, "ready ").await;
    assert!(c.text().contains("SIZE 80 24"), "{:?}", c.text());
    let mark = c.out.len();
    c.att.handle.resize(120, 40).await.unwrap();
    c.text_after(mark, "WINCH 120 40").await;
    let ended = c.ended().await;
    assert_eq!(
        (ended.reason, ended.exit_code),
        (EndReason::Exited, Some(0))
    );
}

/// What the coming admin view uses: every session's snapshot, and ending a
/// user's run as `killed_by_admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_view_lists_sessions_and_kills_a_run() {
    let env = setup(test_config());
    env.write(31, "wait.py", "input('waiting ')\n");
    let mut a = env.attach(31, "a", 0).await;
    let _b = env.attach(32, "b", 0).await;
    a.run("wait.py", RunMode::Script).await.unwrap();
    a.text_after(0, "waiting ").await;
    let sessions = env.runner.sessions().await;
    let ids: Vec<(i64, bool)> = sessions.iter().map(|s| (s.user_id, s.running)).collect();
    assert_eq!(ids, vec![(31, true), (32, false)]);
    assert_eq!(sessions[0].path.as_deref(), Some("wait.py"));
    assert!(env.runner.kill_by_admin(31, None).await.unwrap());
    let ended = a.ended().await;
    assert_eq!(ended.reason, EndReason::KilledByAdmin, "{ended:?}");
    assert!(ended.message.contains("administrator"), "{}", ended.message);
    assert!(
        !env.runner.kill_by_admin(31, None).await.unwrap(),
        "nothing is running any more"
    );
    assert!(
        !env.runner.kill_by_admin(99, None).await.unwrap(),
        "no session at all"
    );
    assert_eq!(env.runner.active_runs(), 0);
}

// ---- Warm sandboxes (issue 14): a warm start is indistinguishable from a cold one.

/// A program that prints its own state as one JSON line between markers:
/// what a fresh process has (modules loaded before its first import, globals,
/// argv, path, cwd, environment, descriptors, threads, rlimits, signal
/// handlers, uid, umask, loader, CPU time so far).
const INSPECT: &str = r#"import sys
_modules = sorted(sys.modules)
import json, os, resource, signal, threading, time
_fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
_state = {
    "modules": _modules,
    "globals": sorted(k for k in globals() if not k.startswith("_") or k.startswith("__")),
    "file": globals().get("__file__", "missing"),
    "loader": type(globals().get("__loader__")).__name__,
    "cached": repr(globals().get("__cached__", "missing")),
    "spec": repr(__spec__),
    "argv": sys.argv,
    "orig_argv_tail": sys.orig_argv[1:2] + sys.orig_argv[-1:],
    "path0": sys.path[0],
    "path": sys.path[1:],
    "cwd": os.getcwd(),
    "env": dict(sorted(os.environ.items())),
    "fds": _fds[:-1] if len(_fds) > 3 else _fds,
    "threads": threading.active_count(),
    "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in sorted(dir(resource)) if n.startswith("RLIMIT_")},
    "signals": {s.name: str(signal.getsignal(s)) for s in sorted(signal.Signals, key=int) if s not in (signal.SIGKILL, signal.SIGSTOP)},
    "uid": [os.getuid(), os.geteuid(), os.getgid()],
    "umask": os.umask(0o022),
    "pid": os.getpid(),
    "cpu_under_bound": time.process_time() < CPU_BOUND,
    "stdin_tty": os.isatty(0),
}
print("<<STATE" + json.dumps(_state) + "STATE>>")
"#;

/// INSPECT with its CPU bound: half a second of CPU before the program's
/// first line (an interpreter's start-up takes ~20 ms here). Under software
/// emulation (the cgroup v2 VM sets `CAMPUS_TEST_EMULATED`) the guest counts
/// the time its vCPU is descheduled on the host as the process's CPU, 10-50x
/// more: there the bound is 10 s (it still catches a warm interpreter that
/// spins while parked).
fn inspect_program() -> String {
    let bound = if std::env::var_os("CAMPUS_TEST_EMULATED").is_some() {
        "10.0"
    } else {
        "0.5"
    };
    INSPECT.replace("CPU_BOUND", bound)
}

/// The JSON between `<<STATE` and `STATE>>` after byte `from`.
fn state_after(c: &Client, from: usize) -> serde_json::Value {
    let text = String::from_utf8_lossy(&c.out[from..]).into_owned();
    let start = text.find("<<STATE").expect("state printed") + 7;
    let end = text[start..].find("STATE>>").expect("state ends") + start;
    // The terminal may wrap nothing, but it turns \n into \r\n: one line, no wrap.
    serde_json::from_str(&text[start..end]).unwrap_or_else(|e| panic!("{e}: {}", &text[start..end]))
}

async fn warm_ready(c: &Client) -> bool {
    c.att.handle.info().await.is_ok_and(|i| i.warm_ready)
}

fn warm_config(n: usize) -> RunnerConfig {
    RunnerConfig {
        warm_sandboxes: Some(n),
        ..test_config()
    }
}

/// Run INSPECT in `mode` on a cold runner and on a warm one; both states.
async fn inspect_cold_and_warm(
    mode: RunMode,
) -> (serde_json::Value, serde_json::Value, RunEnded, RunEnded) {
    let cold_env = setup(warm_config(0));
    let warm_env = setup(warm_config(4));
    let mut out = Vec::new();
    for env in [&cold_env, &warm_env] {
        env.write(1, "inspect.py", &inspect_program());
        let mut c = env.attach(1, "c1", 0).await;
        let warm = env.runner.config().warm_sandboxes != Some(0);
        if warm {
            eventually("a warm sandbox", || warm_ready(&c)).await;
        } else {
            // Give a (wrongly) warming session every chance to show up.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!warm_ready(&c).await, "warm_sandboxes 0 keeps none");
        }
        c.run("inspect.py", mode).await.unwrap();
        c.text_after(0, "STATE>>").await;
        let state = state_after(&c, 0);
        if mode == RunMode::Hybrid {
            c.until("the REPL", |c| c.has_phase_repl()).await;
            c.input("exit()\n").await;
        }
        let ended = c.ended().await;
        out.push((state, ended));
    }
    let (warm, warm_end) = out.pop().unwrap();
    let (cold, cold_end) = out.pop().unwrap();
    (cold, warm, cold_end, warm_end)
}

/// Everything but the pid (each process has its own) must be equal.
fn assert_same_state(mut cold: serde_json::Value, mut warm: serde_json::Value) {
    for v in [&mut cold, &mut warm] {
        v.as_object_mut().unwrap().remove("pid");
    }
    if cold != warm {
        let (c, w) = (cold.as_object().unwrap(), warm.as_object().unwrap());
        let diff: Vec<String> = c
            .iter()
            .filter(|(k, v)| w.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: cold {v} warm {}",
                    w.get(k).cloned().unwrap_or_default()
                )
            })
            .collect();
        panic!("warm differs from cold:\n{}", diff.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_script_run_sees_exactly_what_a_cold_one_sees() {
    let (cold, warm, cold_end, warm_end) = inspect_cold_and_warm(RunMode::Script).await;
    assert_eq!(cold["argv"], serde_json::json!(["inspect.py"]));
    assert_eq!(cold["fds"], serde_json::json!([0, 1, 2]));
    assert_eq!(cold["threads"], serde_json::json!(1));
    assert_same_state(cold, warm);
    assert_eq!(cold_end.reason, EndReason::Exited);
    assert_eq!(warm_end.reason, cold_end.reason);
    assert_eq!(warm_end.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_hybrid_run_sees_exactly_what_a_cold_one_sees() {
    let (mut cold, mut warm, cold_end, warm_end) = inspect_cold_and_warm(RunMode::Hybrid).await;
    // Known difference (docs/architecture.md): the interpreter's own argv.
    for s in [&mut cold, &mut warm] {
        s.as_object_mut().unwrap().remove("orig_argv_tail");
    }
    assert_same_state(cold, warm);
    assert_eq!(warm_end.reason, cold_end.reason);
    assert_eq!(warm_end.exit_code, cold_end.exit_code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_repl_sees_exactly_what_a_cold_one_sees() {
    let mut states = Vec::new();
    for n in [0, 4] {
        let env = setup(warm_config(n));
        env.write(1, "inspect.py", &inspect_program());
        let mut c = env.attach(1, "c1", 0).await;
        if n > 0 {
            eventually("a warm sandbox", || warm_ready(&c)).await;
        }
        c.run("", RunMode::Repl).await.unwrap();
        c.text_after(0, ">>> ").await;
        let mark = c.out.len();
        // The REPL's own state first (nothing imported by the test yet).
        c.input("exec(open('inspect.py').read())\n").await;
        c.text_after(mark, "STATE>>").await;
        let mut s = state_after(&c, mark);
        // Known difference (docs/architecture.md): the interpreter's own argv.
        s.as_object_mut().unwrap().remove("orig_argv_tail");
        states.push(s);
        c.input("exit()\n").await;
        assert_eq!(c.ended().await.reason, EndReason::Exited);
    }
    let warm = states.pop().unwrap();
    let cold = states.pop().unwrap();
    assert_eq!(cold["argv"], serde_json::json!([""]));
    assert!(
        cold["env"].get("PYTHONINSPECT").is_none(),
        "{}",
        cold["env"]
    );
    assert_same_state(cold, warm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_runs_end_like_cold_ones_and_count_only_the_programs_cpu() {
    let env = setup(warm_config(4));
    env.write(1, "boom.py", "def f():\n    1/0\nf()\n");
    env.write(1, "bad.py", "x = (\n");
    env.write(
        1,
        "code.py",
        "import sys\nprint('bye', file=sys.stderr)\nsys.exit(4)\n",
    );
    env.write(
        1,
        "spin.py",
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\nprint('spun')\n",
    );
    env.write(1, "kbd.py", "raise KeyboardInterrupt\n");
    env.write(
        1,
        "cpu.py",
        "import time\nprint('CPU=%d' % (time.process_time() * 1000))\n",
    );
    let mut c = env.attach(1, "c1", 0).await;
    async fn run(c: &mut Client, path: &str) -> (String, RunEnded) {
        eventually("a warm sandbox", || warm_ready(c)).await;
        let mark = c.out.len();
        c.run(path, RunMode::Script).await.unwrap();
        let ended = c.ended().await;
        (String::from_utf8_lossy(&c.out[mark..]).into_owned(), ended)
    }
    let (text, ended) = run(&mut c, "boom.py").await;
    assert_eq!(ended.exit_code, Some(1), "{text}");
    // The traceback names the student's file and lines only: no launcher frame.
    assert!(
        text.contains("Traceback (most recent call last):"),
        "{text}"
    );
    assert!(
        text.contains("File \"/home/student/boom.py\", line 3, in <module>")
            || text.contains("boom.py\", line 3, in <module>"),
        "{text}"
    );
    assert!(!text.contains("<string>"), "{text}");
    assert!(
        text.contains("ZeroDivisionError: division by zero"),
        "{text}"
    );
    let (text, ended) = run(&mut c, "bad.py").await;
    assert_eq!(ended.exit_code, Some(1), "{text}");
    assert!(text.contains("SyntaxError"), "{text}");
    assert!(
        !text.contains("<string>") && !text.contains("Traceback"),
        "{text}"
    );
    let (text, ended) = run(&mut c, "code.py").await;
    assert_eq!(ended.exit_code, Some(4), "{text}");
    assert!(text.contains("bye"), "{text}");
    let (text, ended) = run(&mut c, "kbd.py").await;
    // Like `python3 kbd.py`: the traceback, then death by SIGINT.
    assert!(text.contains("KeyboardInterrupt"), "{text}");
    assert_eq!(ended.signal, Some(2), "{ended:?}");
    let (text, ended) = run(&mut c, "spin.py").await;
    assert!(text.contains("spun"), "{text}");
    // The program's 0.6 s of CPU is counted …
    assert!(ended.cpu_ms >= 550, "{ended:?}");
    // … but not the interpreter's start-up before Run: a trivial script is
    // charged less warm than cold (both pay the tree's teardown; only the
    // cold one pays the start-up). Medians of three.
    let mut warm_ms = Vec::new();
    for _ in 0..3 {
        warm_ms.push(run(&mut c, "cpu.py").await.1.cpu_ms);
    }
    let cold_env = setup(warm_config(0));
    cold_env.write(1, "cpu.py", "print('ok')\n");
    let mut cold = cold_env.attach(1, "c1", 0).await;
    let mut cold_ms = Vec::new();
    for _ in 0..3 {
        cold.run("cpu.py", RunMode::Script).await.unwrap();
        cold_ms.push(cold.ended().await.cpu_ms);
    }
    warm_ms.sort_unstable();
    cold_ms.sort_unstable();
    eprintln!("charged CPU, trivial script: warm {warm_ms:?} ms, cold {cold_ms:?} ms");
    assert!(
        warm_ms[1] < cold_ms[1],
        "warm {warm_ms:?} ms, cold {cold_ms:?} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_run_sees_what_was_saved_after_it_was_prepared() {
    let env = setup(warm_config(4));
    env.write(1, "first.py", "print('first')\n");
    let mut c = env.attach(1, "c1", 0).await;
    eventually("a warm sandbox", || warm_ready(&c)).await;
    // Saved (by the server, as root, not world-writable) after the sandbox got ready.
    let p = env.workspace(1).join("late.py");
    std::fs::write(&p, "open('late.txt', 'w').write('x')\nopen('late.py', 'a').write('# more\\n')\nprint('late ran')\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir(env.workspace(1).join("newdir")).unwrap();
    c.run("late.py", RunMode::Script).await.unwrap();
    let ended = c.ended().await;
    assert!(c.text().contains("late ran"), "{}", c.text());
    assert_eq!(ended.exit_code, Some(0), "{}", c.text());
    assert!(std::fs::read_to_string(&p).unwrap().ends_with("# more\n"));
}

/// Host processes of warm sandboxes under `dir` (the helper's argv names the
/// workspace and carries the launcher's code).
fn warm_launchers(dir: &std::path::Path) -> usize {
    let needle = dir.to_string_lossy().into_owned().into_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                c.windows(12).any(|w| w == b"_campus_warm")
                    && c.windows(needle.len()).any(|w| w == needle.as_slice())
            })
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_sandboxes_are_bounded_and_go_away_with_the_ide() {
    let env = setup(warm_config(2));
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push(env.attach(id, "c1", 0).await);
    }
    eventually("two warm sandboxes", || async {
        let mut n = 0;
        for c in &clients {
            n += usize::from(warm_ready(c).await);
        }
        n == 2
    })
    .await;
    // The third session waits for a permit: it stays cold and still runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ready = Vec::new();
    for c in &clients {
        ready.push(warm_ready(c).await);
    }
    assert_eq!(ready.iter().filter(|r| **r).count(), 2, "{ready:?}");
    let cold = ready.iter().position(|r| !r).unwrap();
    let id = cold as i64 + 1;
    env.write(id, "m.py", "print('cold ok')\n");
    clients[cold].run("m.py", RunMode::Script).await.unwrap();
    clients[cold].text_after(0, "cold ok").await;
    // Closing the IDEs drops their warm sandboxes.
    if env.isolated {
        assert!(warm_launchers(env.dir.path()) >= 2);
    }
    for c in clients.drain(..) {
        drop(c);
    }
    eventually("the warm sandboxes to be gone", || async {
        warm_launchers(env.dir.path()) == 0
    })
    .await;
}
