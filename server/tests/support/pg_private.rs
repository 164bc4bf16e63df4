//! A private PostgreSQL instance for tests that stop and start the database
//! (outages). The shared cluster of `.ci/postgres.sh` is never touched: this
//! one lives in a temporary directory (`initdb`), listens on a free loopback
//! port with its socket in that directory, runs as the `postgres` OS user
//! (root cannot run PostgreSQL) through `runuser`, and is stopped and removed
//! on drop. Every wait is bounded (`pg_ctl -w -t`).
//!
//! Needs root and the server binaries under `/usr/lib/postgresql/*/bin`
//! (`.ci/postgres.sh` installs them). Missing either: with `CI=true` that is
//! a failure, otherwise a loud SKIPPING notice and `None`.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Seconds `pg_ctl` may wait for a start or stop.
const PG_CTL_WAIT_SECS: u32 = 60;
/// Attempts at finding a free port for the first start.
const PORT_ATTEMPTS: usize = 5;

/// A running (or stopped) private PostgreSQL.
pub struct PrivatePg {
    root: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
}

fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

fn skip(why: &str) -> Option<PrivatePg> {
    if in_ci() {
        panic!("a private PostgreSQL is required in CI (CI=true): {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n==================================================================\n\
         SKIPPING the private-PostgreSQL test: {why}\n\
         (Run as root after `.ci/postgres.sh`. With CI=true this is a failure.)\n\
         ==================================================================\n"
    );
    None
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivatePg {
    /// initdb and start a fresh instance; `None` (after a notice) when it cannot run here outside CI.
    pub async fn start() -> Option<PrivatePg> {
        if !nix::unistd::geteuid().is_root() {
            return skip(
                "not running as root (PostgreSQL is started as the postgres user through runuser)",
            );
        }
        let Some(bin) = find_bin() else {
            return skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
        };
        let Some(pg_user) = nix::unistd::User::from_name("postgres").ok().flatten() else {
            return skip("no `postgres` OS user");
        };
        let root = tempfile::Builder::new()
            .prefix("campus-pg-")
            .tempdir()
            .unwrap();
        std::os::unix::fs::chown(
            root.path(),
            Some(pg_user.uid.as_raw()),
            Some(pg_user.gid.as_raw()),
        )
        .unwrap();
        let password = format!("pw{:016x}", rand::random::<u64>());
        let pwfile = root.path().join("pwfile");
        std::fs::write(&pwfile, &password).unwrap();
        std::os::unix::fs::chown(
            &pwfile,
            Some(pg_user.uid.as_raw()),
            Some(pg_user.gid.as_raw()),
        )
        .unwrap();
        let mut pg = PrivatePg {
            root,
            bin,
            port: 0,
            password,
        };
        let data = pg.data_dir();
        pg.run_as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("initdb: {e}"));
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            pg.port = free_port();
            match pg.pg_ctl_start().await {
                Ok(()) => return Some(pg),
                // Most likely the port was taken between probing and binding.
                Err(e) => last = e,
            }
        }
        panic!(
            "private PostgreSQL did not start: {last}\n{}",
            pg.log_tail()
        );
    }

    /// URL of the `postgres` database as the `postgres` superuser, over TCP.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Fast shutdown: open sessions are terminated, as in a database restart.
    pub async fn stop(&self) {
        let data = self.data_dir();
        self.run_as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                &PG_CTL_WAIT_SECS.to_string(),
                "stop",
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_ctl stop: {e}\n{}", self.log_tail()));
    }

    /// Start again on the same port and data.
    pub async fn start_again(&self) {
        self.pg_ctl_start()
            .await
            .unwrap_or_else(|e| panic!("pg_ctl start: {e}\n{}", self.log_tail()));
    }

    async fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.root.path().join("postgres.log");
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off -c max_connections=40",
            self.port,
            self.root.path().display()
        );
        self.run_as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                &PG_CTL_WAIT_SECS.to_string(),
                "start",
            ],
        )
        .await
    }

    /// Run one of the server binaries as the postgres user, in the private directory.
    async fn run_as_postgres(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let out = tokio::process::Command::new("runuser")
            .arg("-u")
            .arg("postgres")
            .arg("--")
            .arg(&exe)
            .args(args)
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        // pg_ctl's own -t bounds the wait; this is the backstop.
        let out = tokio::time::timeout(Duration::from_secs(u64::from(PG_CTL_WAIT_SECS) + 30), out)
            .await
            .map_err(|_| format!("{tool} did not finish"))?
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.root.path().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn stop_now(path: &Path, bin: &Path) {
        let _ = std::process::Command::new("runuser")
            .arg("-u")
            .arg("postgres")
            .arg("--")
            .arg(bin.join("pg_ctl"))
            .args([
                "-D",
                path.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "30",
                "stop",
            ])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // Stopped already is fine (pg_ctl then just fails); the directory goes with `root`.
        Self::stop_now(&self.data_dir(), &self.bin);
    }
}
