//! The `campus` binary started the way the README starts it: from a working
//! directory, with the default relative data dir `./campus-data` (or another
//! relative one), SQLite and no other configuration. Every subcommand must
//! resolve it once at start; before that, every run failed with
//! `campus sandbox-exec: open ./campus-data/workspaces/N: No such file or
//! directory` (exit 125) because the helper runs with `/` as its cwd.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use campus_protocol::{ClientMsg, Encoding, EndReason, RunEnded, RunMode, ServerMsg};
use campus_protocol::{FileMsg, FileRequest, SessionMsg, SessionRequest};
use support::server::{connect_url, WsClient};

const BIN: &str = env!("CARGO_BIN_EXE_campus");

/// `campus` with a clean environment, started in `cwd`, with no data dir
/// configured (the default `./campus-data`) and its own cgroup group.
fn campus(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .current_dir(cwd)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CAMPUS_LOG", "warn")
        .env(
            "CAMPUS_CGROUP_GROUP",
            format!("campus-test-{}", uuid::Uuid::new_v4().simple()),
        );
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run to completion with `input` on stdin, killed after a bound.
fn finish(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `campus user add` from `cwd` (extra args, e.g. a relative `--data-dir`); returns the id.
fn user_add(cwd: &Path, extra: &[&str], name: &str, pw: &str) -> i64 {
    let mut cmd = campus(cwd);
    cmd.arg("user")
        .args(extra)
        .args(["add", "--username", name, "--role", "student"])
        .arg("--password-stdin");
    let out = finish(cmd, &format!("{pw}\n"));
    assert!(out.status.success(), "{}", text(&out));
    let created = String::from_utf8_lossy(&out.stdout).to_string();
    created
        .rsplit("id ")
        .next()
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{created}"))
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `campus serve` in `cwd` on a free port; returns the server, its port and the admin password.
fn serve(cwd: &Path, envs: &[(&str, &str)]) -> (Server, u16, String) {
    let port = free_port();
    let mut cmd = campus(cwd);
    cmd.arg("serve")
        .env("CAMPUS_LISTEN", format!("127.0.0.1:{port}"))
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(p) = line.trim().strip_prefix("password: ") {
                let _ = tx.send(p.to_string());
            }
        }
    });
    let password = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the admin password is printed on first start");
    (server, port, password)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// GET /readyz until it answers (any status); returns (status, body).
async fn readyz(port: u16) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            let status = r.status().as_u16();
            return (status, r.json().await.unwrap());
        }
        assert!(Instant::now() < deadline, "server never answered /readyz");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login(port: u16, user: &str, pw: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login of {user}");
    let v: serde_json::Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

async fn put(c: &mut WsClient, path: &str, code: &str) {
    let (p, content) = (path.to_string(), code.to_string());
    let m = c
        .request(move |id| {
            ClientMsg::Files(FileRequest::Write {
                id,
                path: p,
                content,
                encoding: Encoding::Utf8,
                base_version: None,
            })
        })
        .await;
    assert!(
        matches!(m, ServerMsg::Files(FileMsg::Written { .. })),
        "{m:?}"
    );
}

async fn run_to_end(c: &mut WsClient, path: &str) -> RunEnded {
    c.send(&ClientMsg::Session(SessionRequest::Run {
        id: Some(9),
        path: path.into(),
        mode: RunMode::Script,
        cols: Some(80),
        rows: Some(24),
        course: None,
    }))
    .await;
    match c
        .wait_for("run_ended", |m| {
            matches!(m, ServerMsg::Session(SessionMsg::RunEnded { .. }))
        })
        .await
    {
        ServerMsg::Session(SessionMsg::RunEnded { ended, .. }) => ended,
        _ => unreachable!(),
    }
}

#[test]
fn serve_with_the_default_relative_data_dir_runs_programs() {
    let cwd = tempfile::tempdir().unwrap();
    let (server, port, admin_pw) = serve(cwd.path(), &[]);
    // The data dir is ./campus-data of the cwd, as the README says.
    assert!(cwd.path().join("campus-data/campus.db").is_file());
    // The CLI, also from that cwd with the default data dir, while serving.
    user_add(cwd.path(), &[], "ann", "ann-password");
    rt().block_on(async {
        let _ = readyz(port).await;
        login(port, "admin", &admin_pw).await;
        let token = login(port, "ann", "ann-password").await;
        let mut c = connect_url(&format!("ws://127.0.0.1:{port}/ws"), &token).await;
        put(
            &mut c,
            "main.py",
            "import os\nprint('hello from', os.getcwd(), 6 * 7)\n",
        )
        .await;
        let e = run_to_end(&mut c, "main.py").await;
        let out = String::from_utf8_lossy(&c.output_bytes()).to_string();
        assert_eq!(e.reason, EndReason::Exited, "{e:?}\n{out}");
        assert_eq!(e.exit_code, Some(0), "{e:?}\n{out}");
        assert!(out.contains("hello from /home/student 42"), "{out}");

        // Readiness says so because its probe ran there too.
        let (status, body) = readyz(port).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(body["sandbox"]["probe"]["ok"], true, "{body:#}");
        let ws_root = cwd.path().join("campus-data/workspaces");
        let summary = body["sandbox"]["probe"]["summary"].as_str().unwrap();
        assert!(
            summary.contains(&ws_root.display().to_string()),
            "{summary}"
        );
    });
    drop(server);
}

#[test]
fn run_as_with_a_relative_data_dir() {
    let top = tempfile::tempdir().unwrap();
    let cwd = top.path().join("course");
    std::fs::create_dir(&cwd).unwrap();
    // A relative data dir that is not the default, with `..` in it.
    let args = ["--data-dir", "../data"];
    let id = user_add(&cwd, &args, "bob", "bob-password");
    let ws = top.path().join("data/workspaces").join(id.to_string());
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("main.py"), "print('bob says', sum(range(10)))\n").unwrap();
    let mut cmd = campus(&cwd);
    cmd.args(["run", "--as", "bob", "--json", "ended.json", "main.py"])
        .args(args);
    let out = finish(cmd, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bob says 45"), "{}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // `--json` is resolved against the cwd too.
    let ended: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("ended.json")).unwrap()).unwrap();
    assert_eq!(ended["exit_code"], 0);
}

#[test]
fn user_commands_and_migrate_resolve_the_relative_data_dir() {
    let top = tempfile::tempdir().unwrap();
    let a = top.path().join("a");
    let b = top.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let out = campus(&a)
        .args(["migrate", "--data-dir", "shared"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    assert!(a.join("shared/campus.db").is_file());
    user_add(&a, &["--data-dir", "./shared"], "cy", "cy-password");
    // The same database from another cwd through another relative spelling.
    let out = campus(&b)
        .args(["user", "--data-dir", "../a/shared", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cy"),
        "{}",
        text(&out)
    );
    // A relative SQLite path in DATABASE_URL is the cwd's file as well.
    let out = campus(&b)
        .arg("migrate")
        .env("DATABASE_URL", "sqlite:own.db")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(b.join("own.db").is_file());
}

#[test]
fn sandbox_check_probes_a_real_run_in_the_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let out = campus(cwd.path())
        .args(["sandbox", "check"])
        // This host's kernel enforces no disk quotas (tests/disk_quota.rs covers that line).
        .env("CAMPUS_ALLOW_NO_DISK_QUOTA", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let root = cwd.path().join("campus-data/workspaces");
    assert!(stdout.contains(&root.display().to_string()), "{stdout}");
    // The cold probe run, then the same program on a warm sandbox.
    assert_eq!(stdout.matches("probe run: passed").count(), 2, "{stdout}");
    for check in [
        "workspace",
        "uid",
        "network",
        "probe port",
        "answer file",
        "warm start",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(check) && l.contains(" ok ")),
            "{check} not ok in:\n{stdout}"
        );
    }
    assert!(stdout.contains("sandbox check: ready"), "{stdout}");
    // The probe's workspace is gone afterwards.
    let left: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn sandbox_check_says_when_warm_sandboxes_are_off() {
    let cwd = tempfile::tempdir().unwrap();
    let out = campus(cwd.path())
        .args(["sandbox", "check"])
        .env("CAMPUS_ALLOW_NO_DISK_QUOTA", "true")
        .env("CAMPUS_WARM_SANDBOXES", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout.matches("probe run: passed").count(), 1, "{stdout}");
    assert!(
        stdout.contains("warm probe run: not run (warm sandboxes are off"),
        "{stdout}"
    );
}

#[test]
fn sandbox_check_fails_with_a_broken_helper() {
    let cwd = tempfile::tempdir().unwrap();
    let out = campus(cwd.path())
        .args(["sandbox", "check"])
        .env("CAMPUS_SANDBOX_HELPER", "/bin/false")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout.contains("probe run: FAILED"), "{stdout}");
    assert!(
        stdout.contains("warm probe run: not run (the cold probe run failed)"),
        "{stdout}"
    );
    assert!(stdout.contains("sandbox check: NOT READY"), "{stdout}");
}

#[test]
fn python_must_be_an_absolute_path_inside_the_sandbox() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["serve"][..],
        &["run", "--as", "x", "main.py"],
        &["sandbox", "check"],
    ] {
        let mut cmd = campus(cwd.path());
        cmd.args(args)
            .env("CAMPUS_PYTHON", "python3")
            .env("CAMPUS_LISTEN", format!("127.0.0.1:{}", free_port()));
        let out = finish(cmd, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("CAMPUS_PYTHON must be an absolute path"),
            "{args:?}: {}",
            text(&out)
        );
    }
    // Nothing was created by the refused starts.
    assert!(!cwd.path().join("campus-data").exists());
}

#[test]
fn production_refuses_to_start_when_the_probe_run_fails() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("campus-data")).unwrap();
    let mut cmd = campus(cwd.path());
    cmd.arg("serve")
        .env("CAMPUS_ENV", "production")
        .env("CAMPUS_JWT_SECRET", "9f1c2e7a4b6d8e0f1a3c5e7b9d1f3a5c")
        .env("CAMPUS_PUBLIC_URL", "https://ide.campus.test")
        .env("CAMPUS_LISTEN", format!("127.0.0.1:{}", free_port()))
        // Isolation is complete here; only the run itself cannot work.
        .env("CAMPUS_PYTHON", "/nonexistent/python3")
        // (This host's kernel enforces no disk quotas: waive that refusal to reach the probe.)
        .env("CAMPUS_ALLOW_NO_DISK_QUOTA", "true");
    let out = finish(cmd, "");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the sandbox probe run failed"),
        "{}",
        text(&out)
    );
    assert!(err.contains("/nonexistent/python3"), "{}", text(&out));
}
