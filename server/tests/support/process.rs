//! The real `campus` binary as a child process, for tests that kill it
//! (SIGKILL) or restart it on the same data dir: its command line, users
//! added with the README's `campus user add`, waiting for it to listen, and
//! the processes and cgroups a killed server must not leave behind.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::server::WsClient;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_campus");

/// How long a killed server's processes may take to disappear.
pub const GONE_WITHIN: Duration = Duration::from_secs(10);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A campus command with a clean environment on `data_dir`.
pub fn campus(data_dir: &Path, group: &str, uid_base: u32) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CAMPUS_DATA_DIR", data_dir)
        .env("CAMPUS_CGROUP_GROUP", group)
        .env("CAMPUS_SANDBOX_UID_BASE", uid_base.to_string())
        .env("CAMPUS_LOG", "warn")
        .current_dir(data_dir);
    c
}

/// `campus user add` as the README shows it; returns the new user's id.
pub fn add_student(cmd: &mut Command, name: &str, password: &str) -> i64 {
    add_user(cmd, name, password, "student")
}

/// `campus user add` with `role`; returns the new user's id.
pub fn add_user(cmd: &mut Command, name: &str, password: &str, role: &str) -> i64 {
    let mut child = cmd
        .args(["user", "add", "--username", name, "--role", role])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.rsplit("id ")
        .next()
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no id in {text:?}"))
}

/// The server process; killed (SIGKILL) and reaped on drop if still running.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn login(port: u16, user: &str, password: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

pub async fn connect(port: u16, token: &str) -> WsClient {
    super::server::connect_to(&format!("ws://127.0.0.1:{port}/ws"), token).await
}

/// Pids of the processes whose real uid is `uid`.
pub fn processes_of(uid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        // A zombie is already dead; only its parent's reaping is left.
        let zombie = status.lines().any(|l| l.starts_with("State:\tZ"));
        if real == Some(uid) && !zombie {
            found.push(pid);
        }
    }
    found
}

/// Wait (bounded) until no process runs as `uid`; on failure kill them so the
/// host stays clean, then fail.
pub async fn assert_all_gone(uid: u32, what: &str) {
    let start = Instant::now();
    let deadline = start + GONE_WITHIN;
    loop {
        let left = processes_of(uid);
        if left.is_empty() {
            eprintln!(
                "{what}: every process gone {:?} after the kill",
                start.elapsed()
            );
            return;
        }
        if Instant::now() >= deadline {
            let cmdlines: Vec<String> = left
                .iter()
                .map(|p| {
                    let raw = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    format!("{p}: {}", String::from_utf8_lossy(&raw).replace('\0', " "))
                })
                .collect();
            for p in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            panic!("{what}: processes of uid {uid} survived the server's SIGKILL: {cmdlines:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Remove the (now empty) cgroup directories named `group` and their `run-*`
/// children, wherever the hierarchies put them.
pub fn remove_cgroup_group(group: &str) {
    fn walk(dir: &Path, group: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !p.is_dir() || p.is_symlink() {
                continue;
            }
            if e.file_name() == group {
                out.push(p);
            } else if depth > 0 {
                walk(&p, group, depth - 1, out);
            }
        }
    }
    let mut dirs = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), group, 6, &mut dirs);
    for d in dirs {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&d);
    }
}

/// Removes the test's cgroup group when the test ends, passed or not.
pub struct GroupCleanup(pub String);

impl Drop for GroupCleanup {
    fn drop(&mut self) {
        remove_cgroup_group(&self.0);
    }
}

/// Ids that no other test server on this host uses at the same time.
pub fn unique_base() -> u32 {
    400_000 + (std::process::id() % 5_000) * 16
}

/// Run `cmd` with `input` on its standard input; its output.
pub fn output_with_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
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
    child.wait_with_output().unwrap()
}
