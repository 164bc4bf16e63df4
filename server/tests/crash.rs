//! A run cannot outlive a crashed server: the real `campus serve` binary is
//! started with its own data dir and cgroup group, a student's program that
//! ignores SIGHUP/SIGTERM and leaves a setsid'd, double-forked daemon is
//! started over the WebSocket, the server is killed with SIGKILL, and every
//! process of the run must be gone within seconds — with full isolation
//! (server as root) and in the dev fallback (server as an ordinary user).

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use campus_protocol::{ClientMsg, Encoding, RunMode, ServerMsg};
use campus_protocol::{FileMsg, FileRequest, SessionMsg, SessionRequest};
use campus_server::sandbox::{kill_descendants, RunSpec, Sandbox, SandboxConfig, SandboxLimits};
use support::process::*;
use support::server::WsClient;
use tokio::time::Instant;

/// The program: ignores hang-up, termination and Ctrl-C, starts a daemon in
/// its own session (which ignores them too), reports both pids, then waits.
const STUBBORN: &str = r#"import os, signal, time
for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()
daemon = os.read(r, 32).decode()
print('READY', os.getpid(), daemon, flush=True)
while True:
    time.sleep(1)
"#;

/// Save `code` as main.py and run it; returns once the program printed READY.
async fn start_stubborn_run(c: &mut WsClient) {
    let m = c
        .request(|id| {
            ClientMsg::Files(FileRequest::Write {
                id,
                path: "main.py".into(),
                content: STUBBORN.into(),
                encoding: Encoding::Utf8,
                base_version: None,
            })
        })
        .await;
    assert!(
        matches!(m, ServerMsg::Files(FileMsg::Written { .. })),
        "{m:?}"
    );
    let m = c
        .request(|id| {
            ClientMsg::Session(SessionRequest::Run {
                id,
                path: "main.py".into(),
                mode: RunMode::Script,
                cols: Some(80),
                rows: Some(24),
                course: None,
            })
        })
        .await;
    assert!(
        matches!(m, ServerMsg::Session(SessionMsg::RunStarted { .. })),
        "{m:?}"
    );
    let deadline = Instant::now() + support::server::wait_limit();
    while !String::from_utf8_lossy(&c.output_bytes()).contains("READY") {
        assert!(
            Instant::now() < deadline,
            "no READY; output {:?}",
            String::from_utf8_lossy(&c.output_bytes())
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), c.wait_for("anything", |_| true))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dies_with_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let group = format!("campus-crash-{}", std::process::id());
    let _cleanup = GroupCleanup(group.clone());
    let base = unique_base();
    let id = add_student(
        &mut campus(dir.path(), &group, base),
        "stud",
        "stud-password-1",
    );
    let uid = base + u32::try_from(id).unwrap();
    let port = free_port();
    let mut server = Server(
        campus(dir.path(), &group, base)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port).await;
    let token = login(port, "stud", "stud-password-1").await;
    let mut c = connect(port, &token).await;
    start_stubborn_run(&mut c).await;
    assert!(
        processes_of(uid).len() >= 2,
        "program and daemon run as {uid}"
    );

    // The tokio blocking-pool thread that spawned the helper exits after 10 s
    // idle; a parent-*thread* death signal would kill the run then. It must live on.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(
        processes_of(uid).len() >= 2,
        "the run died while its server lives"
    );

    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert_all_gone(uid, "isolated run").await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_fallback_run_dies_with_a_killed_server() {
    // Without root the sandbox falls back to rlimits only (development): the
    // program runs as the server's own uid, so "no process of that uid is
    // left" means nothing of the run survived.
    let server_uid = unique_base() + 15;
    let dir = tempfile::tempdir().unwrap();
    chown(dir.path(), Some(server_uid), Some(server_uid)).unwrap();
    let group = format!("campus-crash-fb-{}", std::process::id());
    let as_user = |c: &mut Command| {
        c.uid(server_uid).gid(server_uid);
    };
    let mut add = campus(dir.path(), &group, unique_base());
    as_user(&mut add);
    add_student(&mut add, "fstud", "fstud-password-1");
    let port = free_port();
    let mut cmd = campus(dir.path(), &group, unique_base());
    as_user(&mut cmd);
    let mut server = Server(
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port).await;
    let token = login(port, "fstud", "fstud-password-1").await;
    let mut c = connect(port, &token).await;
    start_stubborn_run(&mut c).await;
    // Server, helper, program, daemon.
    assert!(processes_of(server_uid).len() >= 4, "the run is up");

    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert_all_gone(server_uid, "fallback run").await;
    drop(c);
}

fn fallback_sandbox(uid_base: u32) -> Sandbox {
    let sb = Sandbox::new(SandboxConfig {
        helper_exe: PathBuf::from(BIN),
        production: false,
        uid_base,
        cgroup_group: "campus-test-crash".into(),
        force_fallback: true,
    })
    .unwrap();
    assert!(!sb.isolated());
    sb
}

fn python_spec(name: &str, user_id: i64, workspace: &Path, code: &str) -> RunSpec {
    RunSpec {
        run_id: format!("{name}-{}", std::process::id()),
        user_id,
        workspace_dir: workspace.to_path_buf(),
        read_only_mounts: vec![],
        workspace_read_only: false,
        scratch_dir: None,
        cwd: None,
        result_channel: false,
        result_duplex: false,
        argv: vec!["/usr/bin/python3".into(), "-c".into(), code.into()],
        env: vec![("PYTHONUNBUFFERED".into(), "1".into())],
        limits: SandboxLimits::default(),
    }
}

/// Read the child's stdout until a line starts with READY (bounded by the run's own sleep).
fn wait_ready_line(child: &mut Child) {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let line = lines.next().expect("the program printed a line").unwrap();
    assert!(line.starts_with("READY"), "{line}");
    // Keep the pipe open (the program may write more) without blocking us.
    std::thread::spawn(move || for _ in lines {});
}

#[test]
fn a_helper_whose_server_is_already_gone_never_starts_the_program() {
    // The race: the server dies before the helper opens its watch. The helper
    // is then re-parented, so its parent is no longer the pid it was given;
    // a wrong --server-pid is the same case, made deterministic.
    let sb = fallback_sandbox(unique_base() + 64);
    let ws = tempfile::tempdir().unwrap();
    let spec = python_spec("gone", 1, ws.path(), "open('ran', 'w').write('yes')");
    let prepared = sb.prepare(&spec).unwrap();
    let cmd = prepared.command;
    let mut args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_owned()).collect();
    let i = args.iter().position(|a| a == "--server-pid").unwrap();
    args[i + 1] = "1".into();
    let out = Command::new(cmd.get_program())
        .args(&args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is gone, or is not our parent"), "{err}");
    assert!(!ws.path().join("ran").exists(), "the program ran");
}

const DAEMON_THEN: &str = r#"import os, signal, sys, time
for s in (signal.SIGHUP, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()
print('READY', flush=True)
if sys.argv[1] == 'wait':
    while True:
        time.sleep(1)
"#;

#[test]
fn a_dev_fallback_program_leaves_no_daemon_behind() {
    let base = unique_base() + 80;
    let sb = fallback_sandbox(base);
    let ws = tempfile::tempdir().unwrap();
    let mut spec = python_spec("fb-end", 2, ws.path(), DAEMON_THEN);
    spec.argv.push("exit".into());
    let mut prepared = sb.prepare(&spec).unwrap();
    let mut child = prepared
        .command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Not `output()`: a surviving daemon would hold the pipe open forever.
    wait_ready_line(&mut child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the helper did not end"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    // The helper killed what the program left before it exited itself.
    let left = processes_of(base + 2);
    for p in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(left.is_empty(), "survived the program's end: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_dev_fallback_run_takes_its_whole_tree() {
    // What the runner does to stop a fallback run: the helper's tree, then the helper.
    let base = unique_base() + 96;
    let sb = fallback_sandbox(base);
    let ws = tempfile::tempdir().unwrap();
    let mut spec = python_spec("fb-kill", 3, ws.path(), DAEMON_THEN);
    spec.argv.push("wait".into());
    let mut prepared = sb.prepare(&spec).unwrap();
    let mut child = prepared
        .command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready_line(&mut child);
    assert!(processes_of(base + 3).len() >= 2, "program and daemon");
    let helper = i32::try_from(child.id()).unwrap();
    assert!(kill_descendants(helper, Duration::from_secs(5), false));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_all_gone(base + 3, "killed fallback run").await;
}
