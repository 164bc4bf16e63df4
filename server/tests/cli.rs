//! The `campus` binary: first start, user management while a server runs on
//! the same data dir, and production-mode refusals.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_campus");

fn campus(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CAMPUS_DATA_DIR", data_dir)
        .env("CAMPUS_LOG", "warn")
        // Its own cgroup group: a server's start-up cleanup of stale runs
        // must not reach the runs of other servers on this host.
        .env(
            "CAMPUS_CGROUP_GROUP",
            format!("campus-test-{}", uuid::Uuid::new_v4().simple()),
        );
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server did not start listening");
}

/// Run `campus ARGS` with `input` on standard input.
fn with_stdin(data_dir: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    let mut child = campus(data_dir)
        .args(args)
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

fn user_add(data_dir: &std::path::Path, name: &str, role: &str, pw: &str) -> std::process::Output {
    let args = [
        "user",
        "add",
        "--username",
        name,
        "--role",
        role,
        "--password-stdin",
    ];
    with_stdin(data_dir, &args, &format!("{pw}\n"))
}

fn login(port: u16, user: &str, pw: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/auth/login"))
            .json(&serde_json::json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

#[test]
fn first_start_admin_and_user_commands_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = campus(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    // The admin password is printed once on first start.
    let mut password = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.to_string());
            break;
        }
    }
    let password = password.expect("admin password printed");
    wait_ready(port);
    assert_eq!(login(port, "admin", &password), 200);

    // CLI against the same SQLite data dir while the server runs.
    let out = user_add(dir.path(), "stud1", "student", "stud1-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(login(port, "stud1", "stud1-password"), 200);
    let dup = user_add(dir.path(), "stud1", "student", "whatever-pass");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let bad_role = user_add(dir.path(), "x", "wizard", "whatever-pass");
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role"));

    let list = campus(dir.path()).args(["user", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("admin") && text.contains("stud1"), "{text}");

    let dis = campus(dir.path())
        .args(["user", "disable", "stud1"])
        .output()
        .unwrap();
    assert!(dis.status.success());
    assert_eq!(login(port, "stud1", "stud1-password"), 401);
    let missing = campus(dir.path())
        .args(["user", "disable", "ghost"])
        .output()
        .unwrap();
    assert!(!missing.status.success());

    // Password change through the CLI, while serving.
    let pw = with_stdin(
        dir.path(),
        &["user", "passwd", "stud1", "--password-stdin"],
        "new-stud1-password\n",
    );
    assert!(
        pw.status.success(),
        "{}",
        String::from_utf8_lossy(&pw.stderr)
    );
    let en = campus(dir.path())
        .args(["user", "enable", "stud1"])
        .output()
        .unwrap();
    assert!(en.status.success());
    assert_eq!(login(port, "stud1", "stud1-password"), 401);
    assert_eq!(login(port, "stud1", "new-stud1-password"), 200);

    let mig = campus(dir.path()).arg("migrate").output().unwrap();
    assert!(mig.status.success());
    drop(server);

    // A second start does not create another admin nor print a password.
    let port2 = free_port();
    let mut child = campus(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port2}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    wait_ready(port2);
    assert_eq!(login(port2, "admin", &password), 200);
    drop(_server);
    let printed: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        !printed.iter().any(|l| l.contains("password:")),
        "{printed:?}"
    );
}

fn production(data_dir: &std::path::Path, secret: Option<&str>) -> std::process::Output {
    let mut c = campus(data_dir);
    c.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .env("CAMPUS_ENV", "production");
    if let Some(s) = secret {
        c.env("CAMPUS_JWT_SECRET", s);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Refusals are immediate; a server that starts is killed after a bound.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn production_refuses_weak_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (None, "CAMPUS_JWT_SECRET is required"),
        (Some("short-secret"), "too short"),
        (Some("changeme"), "well-known default"),
        (Some("your-256-bit-secret"), "well-known default"),
    ];
    for (secret, expect) in cases {
        let out = production(dir.path(), secret);
        assert!(!out.status.success(), "{secret:?} must be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{secret:?}: {err}");
    }
    // A strong secret but a data dir that does not exist / cannot be read.
    let missing = dir.path().join("does-not-exist");
    let out = production(&missing, Some("9f1c2e7a4b6d8e0f1a3c5e7b9d1f3a5c"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data directory"));
    // A strong secret and a usable data dir, but no public URL: the origin
    // check would have nothing to compare with.
    let out = production(dir.path(), Some("9f1c2e7a4b6d8e0f1a3c5e7b9d1f3a5c"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("CAMPUS_PUBLIC_URL is required in production"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unknown_campus_env_is_a_start_up_error() {
    // `prod` used to mean development silently, dropping every production check.
    let dir = tempfile::tempdir().unwrap();
    for bad in ["prod", "Production", "staging"] {
        let out = campus(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
            .env("CAMPUS_ENV", bad)
            .env("CAMPUS_JWT_SECRET", "9f1c2e7a4b6d8e0f1a3c5e7b9d1f3a5c")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} must be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("must be `development` or `production`") && err.contains(bad),
            "{bad:?}: {err}"
        );
    }
    // Nothing was started: no database, no secret file in the data dir.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn unknown_database_scheme_is_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = campus(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", "mysql://localhost/campus")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL scheme"));
}

#[test]
fn run_as_user_prints_the_ending_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = user_add(dir.path(), "runner", "student", "runner-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = String::from_utf8_lossy(&out.stdout).to_string();
    let id: i64 = created
        .rsplit("id ")
        .next()
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{created}"));
    let ws = dir.path().join("workspaces").join(id.to_string());
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("main.py"),
        "print('six times seven is', 6 * 7)\nraise SystemExit(4)\n",
    )
    .unwrap();
    let json = dir.path().join("ended.json");
    let out = campus(dir.path())
        .args(["run", "--as", "runner", "--mode", "script", "--json"])
        .arg(&json)
        .arg("main.py")
        .env("CAMPUS_SANDBOX_HELPER", BIN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("six times seven is 42"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let last = stderr.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["reason"], "exited");
    assert_eq!(v["exit_code"], 4);
    assert!(v["memory_limit_bytes"].as_u64().unwrap() > 0);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(file, v);
    let unknown = campus(dir.path())
        .args(["run", "--as", "ghost", "main.py"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user named"));
}

#[test]
fn run_writes_only_the_programs_output_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = user_add(dir.path(), "quiet", "student", "quiet-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = String::from_utf8_lossy(&out.stdout).to_string();
    let id: i64 = created
        .rsplit("id ")
        .next()
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{created}"));
    let ws = dir.path().join("workspaces").join(id.to_string());
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("main.py"),
        "print('first line')\nprint('second line')\n",
    )
    .unwrap();
    // `campus run … > out.txt`, with the log at its most talkative level.
    let stdout_file = dir.path().join("out.txt");
    let out = campus(dir.path())
        .args(["run", "--as", "quiet", "main.py"])
        .env("CAMPUS_LOG", "debug")
        .env("CAMPUS_SANDBOX_HELPER", BIN)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_file).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The PTY turns \n into \r\n, exactly as a terminal shows it.
    assert_eq!(
        std::fs::read_to_string(&stdout_file).unwrap(),
        "first line\r\nsecond line\r\n",
        "stderr: {stderr}"
    );
    // The log lines are there, on stderr, and the ending record is the last line.
    assert!(stderr.contains("run ended"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no colour codes when stderr is a file: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(v["reason"], "exited");
}

/// `campus course …` as an admin scripts term set-up: create with a
/// professor, a roster with a bad line applies nothing, a good one with
/// accounts prints their one-time passwords (which log in), publish with a
/// release time, and the listing shows it all.
#[test]
fn course_commands_set_up_a_term() {
    let dir = tempfile::tempdir().unwrap();
    assert!(user_add(dir.path(), "prof", "professor", "prof-password-1")
        .status
        .success());
    assert!(user_add(dir.path(), "ann", "student", "ann-password-1")
        .status
        .success());
    let run = |args: &[&str]| campus(dir.path()).args(args).output().unwrap();
    let out = run(&[
        "course",
        "create",
        "--slug",
        "cs101",
        "--title",
        "Intro",
        "--term",
        "2026 Fall",
        "--professor",
        "prof",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["course", "create", "--slug", "cs101", "--title", "Again"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run(&["course", "create", "--slug", "CS 101", "--title", "Bad"]);
    assert!(!out.status.success(), "slugs are checked");

    let bad = with_stdin(
        dir.path(),
        &["course", "import-roster", "cs101", "-"],
        "username,role\nann\nghost\nbob,dean\n",
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("line 3: ghost: invalid"), "{err}");
    assert!(err.contains("line 4: bob: invalid"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");

    let good = with_stdin(
        dir.path(),
        &["course", "import-roster", "cs101", "-", "--create-accounts"],
        "ann\nnewkid,ta\n",
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let passwords = String::from_utf8_lossy(&good.stdout).to_string();
    let line = passwords
        .lines()
        .find(|l| l.starts_with("newkid,"))
        .unwrap();
    let newkid_pw = line.trim_start_matches("newkid,").to_string();
    assert_eq!(newkid_pw.len(), 24);

    let out = run(&[
        "course",
        "publish",
        "cs101",
        "week1",
        "--release-at",
        "2030-01-02T10:00:00+01:00",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("released 2030-01-02T09:00:00+00:00"));
    let out = run(&[
        "course",
        "publish",
        "cs101",
        "week1",
        "--release-at",
        "next tuesday",
    ]);
    assert!(!out.status.success(), "times are RFC 3339");
    // One file inside the section: its own (later) release, then a draft.
    let out = run(&[
        "course",
        "publish",
        "cs101",
        "week1/test.py",
        "--release-at",
        "2030-01-03T10:00:00Z",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("cs101/week1/test.py: published, released 2030-01-03T10:00:00+00:00"));
    let out = run(&["course", "publish", "cs101", "week1/", "--unpublish"]);
    assert!(!out.status.success(), "a trailing slash names no file");
    let out = run(&["course", "publish", "cs101", "nope/test.py"]);
    assert!(!out.status.success(), "not a section");
    let out = run(&["course", "publish", "cs101", "week1/../x", "--unpublish"]);
    assert!(!out.status.success(), "not a material path");
    let out = run(&["course", "list"]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    let row = list.lines().find(|l| l.starts_with("cs101")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..3], ["cs101", "3", "1"], "{list}");

    // The created account logs in on a server over the same data dir.
    let port = free_port();
    let _server = Server(
        campus(dir.path())
            .arg("serve")
            .env("CAMPUS_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(port);
    assert_eq!(login(port, "newkid", &newkid_pw), 200);
}
