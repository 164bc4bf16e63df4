//! Start and own a `campus serve` process for a benchmark.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A `campus serve` child process on a temporary data dir; killed on drop.
pub struct ServerProcess {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The data dir.
    pub data_dir: tempfile::TempDir,
    /// The binary.
    pub bin: PathBuf,
    /// The cgroup parent group name the server's runs live under.
    cgroup_group: Option<String>,
}

/// The release `campus` binary next to this benchmark's own executable, or `CAMPUS_BIN`.
pub fn campus_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("CAMPUS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().context("no parent dir")?;
    for cand in [dir.join("campus"), dir.join("../campus")] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    bail!("campus binary not found next to {}; build it with `cargo build --release -p campus-server` or set CAMPUS_BIN", me.display())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl ServerProcess {
    /// Start a server with extra environment variables; waits until /readyz answers.
    pub async fn start(env: &[(&str, String)]) -> anyhow::Result<ServerProcess> {
        let bin = campus_bin()?;
        let data_dir = tempfile::tempdir()?;
        let port = free_port()?;
        let group = env
            .iter()
            .find(|(k, _)| *k == "CAMPUS_CGROUP_GROUP")
            .map_or_else(|| format!("campus-bench-{port}"), |(_, v)| v.clone());
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .env("CAMPUS_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAMPUS_DATA_DIR", data_dir.path())
            .env("CAMPUS_LOG", "warn")
            .env("CAMPUS_CGROUP_GROUP", &group)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let me = ServerProcess {
            child,
            url,
            data_dir,
            bin,
            cgroup_group: Some(group),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", me.url)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("server did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(me)
    }

    /// Server process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Create users through the CLI (same data dir), all with `password`.
    pub fn add_users(&self, names: &[String], password: &str) -> anyhow::Result<()> {
        add_users_parallel(&self.bin, self.data_dir.path(), names, password, 4)
    }
}

/// Create users through `campus user add` against a data dir.
pub fn add_users(
    bin: &Path,
    data_dir: &Path,
    names: &[String],
    password: &str,
) -> anyhow::Result<()> {
    for name in names {
        let mut child = Command::new(bin)
            .args([
                "user",
                "add",
                "--username",
                name,
                "--role",
                "student",
                "--password-stdin",
            ])
            .env("CAMPUS_DATA_DIR", data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(format!("{password}\n").as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("user add {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGTERM first so the server cleans up its sandboxes, then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The server leaves its (now empty) cgroup parent behind; remove ours.
        if let Some(group) = &self.cgroup_group {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                if let Ok(ctrls) = std::fs::read_dir(root) {
                    for c in ctrls.flatten() {
                        let _ = std::fs::remove_dir(c.path().join(group));
                    }
                }
                let _ = std::fs::remove_dir(Path::new(root).join(group));
            }
        }
    }
}

/// Resident set size and open fds of a process (Linux /proc).
pub fn proc_sample(pid: u32) -> Option<(u64, usize, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((rss_kb * 1024, fds, ticks))
}

/// Create users through `campus user add`, `parallel` processes at a time
/// (each one pays an argon2 hash, so one at a time is slow for hundreds).
pub fn add_users_parallel(
    bin: &Path,
    data_dir: &Path,
    names: &[String],
    password: &str,
    parallel: usize,
) -> anyhow::Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error: std::sync::Mutex<Option<anyhow::Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, 64) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(name) = names.get(i) else { break };
                if let Err(e) = add_users(bin, data_dir, std::slice::from_ref(name), password) {
                    if let Ok(mut g) = first_error.lock() {
                        g.get_or_insert(e);
                    }
                    break;
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Raise this process's soft open-files limit to its hard limit and return the
/// new soft limit. Children (the `campus serve` we start) inherit it.
pub fn raise_nofile_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}
