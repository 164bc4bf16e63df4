//! The startup probe: which isolation features really work on this host.
//! cgroups are tested by creating (and removing) a throw-away run cgroup;
//! namespaces, pivot_root, the uid switch etc. by running the real helper
//! once with `sandbox-exec --probe`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::cgroup::Layout;
use super::{SandboxConfig, SandboxLimits, SandboxReport};

/// The helper probe must finish within this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinguishes probe cgroups of several Sandboxes in one process.
static PROBE_SEQ: AtomicU32 = AtomicU32::new(0);

/// Report plus the cgroup layout when cgroups work.
pub(super) struct Probe {
    pub report: SandboxReport,
    pub layout: Option<Layout>,
}

/// Features that must work for the production sandbox.
fn required(name: &str) -> bool {
    !name.contains("optional")
}

/// Probe everything once.
pub(super) fn probe(config: &SandboxConfig) -> Probe {
    let mut features: Vec<(String, bool, String)> = Vec::new();
    let root = nix::unistd::Uid::effective().is_root();
    features.push((
        "running as root".into(),
        root,
        "needed for namespaces, cgroups and per-student uids".into(),
    ));
    let layout = probe_cgroups(config, &mut features);
    let born_in_cgroup = features.iter().any(|(n, ok, _)| n == PLACEMENT && *ok);
    let mut dynmods = favordynmods(&std::fs::read_to_string("/proc/mounts").unwrap_or_default());
    if born_in_cgroup && !dynmods.1 {
        // Only a move waits for the grace period, and runs here are not moved.
        dynmods.1 = true;
        dynmods.2 = "off, and not needed: runs are born in their cgroup (no move)".into();
    }
    features.push(dynmods);
    probe_helper(config, &mut features);
    features.push(landlock());
    let complete = features.iter().all(|(n, ok, _)| *ok || !required(n));
    Probe {
        report: SandboxReport {
            complete,
            features,
            disk_quota: None,
        },
        layout: if complete { layout } else { None },
    }
}

fn probe_cgroups(
    config: &SandboxConfig,
    features: &mut Vec<(String, bool, String)>,
) -> Option<Layout> {
    let layout = match Layout::detect(&config.cgroup_group) {
        Ok(l) => l,
        Err(e) => {
            features.push(("cgroup".into(), false, e.to_string()));
            return None;
        }
    };
    features.push((
        "cgroup".into(),
        true,
        format!(
            "{} ({})",
            layout.version(),
            if layout.version() == "v1" {
                "v1/hybrid hierarchy"
            } else {
                "unified hierarchy"
            }
        ),
    ));
    for (ctrl, dir) in layout.controllers() {
        // cpuacct only feeds statistics on v1.
        let name = if ctrl == "cpuacct" {
            "cgroup cpuacct (optional: cpu_ms)".to_string()
        } else if ctrl == "cgroup.kill" {
            "cgroup.kill (optional: else freezer)".to_string()
        } else {
            format!("cgroup {ctrl}")
        };
        let detail = dir.map_or("not available".to_string(), |d| d.display().to_string());
        features.push((name, !detail.starts_with("not"), detail));
    }
    let id = format!(
        "probe-{}-{}",
        std::process::id(),
        PROBE_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let limits = SandboxLimits::default();
    let created = layout.create_run(&id, &limits);
    let ok = created.is_ok();
    let mut placement = None;
    let detail = match created {
        Ok(cg) => {
            let dir = cg.paths()[0].clone();
            if layout.version() == "v2" {
                placement = Some(super::clone3::probe(&dir));
            }
            cg.remove();
            format!("created and removed {}", dir.display())
        }
        Err(e) => e.to_string(),
    };
    features.push(("cgroup run with limits".into(), ok, detail));
    features.push(match placement {
        Some(Ok(())) => (
            PLACEMENT.into(),
            true,
            "clone3(CLONE_INTO_CGROUP): a run's processes are born in its cgroup, none is moved"
                .into(),
        ),
        Some(Err(e)) => (
            PLACEMENT.into(),
            false,
            format!("{e}; the helper moves itself into the run's cgroup instead"),
        ),
        None => (
            PLACEMENT.into(),
            false,
            "cgroup v1: the helper moves itself into the run's cgroups (clone3 \
             CLONE_INTO_CGROUP needs cgroup v2)"
                .into(),
        ),
    });
    ok.then_some(layout)
}

/// The feature line of the clone3(CLONE_INTO_CGROUP) check.
const PLACEMENT: &str = "cgroup placement at fork (optional: no move at run start)";

/// Run `helper sandbox-exec --probe` and collect its `name<TAB>ok<TAB>detail` lines.
fn probe_helper(config: &SandboxConfig, features: &mut Vec<(String, bool, String)>) {
    let dir = std::env::temp_dir().join(format!(
        "campus-probe-{}-{}",
        std::process::id(),
        PROBE_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        features.push((
            "sandbox helper".into(),
            false,
            format!("{}: {e}", dir.display()),
        ));
        return;
    }
    // A loopback port of ours the sandbox must not reach (nothing off the machine is tried).
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l));
    let mut cmd = Command::new(super::helper_program(&config.helper_exe));
    // An absolute path keeps std on posix_spawn (no fork of the server).
    cmd.arg("sandbox-exec")
        .arg("--probe")
        .args(["--uid", &config.uid_base.to_string()])
        .args(["--gid", &config.uid_base.to_string()])
        .arg("--workspace")
        .arg(&dir)
        .env_clear()
        .current_dir("/");
    if let Some(addr) = listener.as_ref().ok().and_then(|l| l.local_addr().ok()) {
        cmd.arg("--probe-connect").arg(addr.to_string());
    }
    let out = run_bounded(&mut cmd);
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(l) = &listener {
        if let Ok((_, peer)) = l.accept() {
            features.push((
                "loopback unreachable".into(),
                false,
                format!("a connection from {peer} reached the prober's port"),
            ));
        }
    }
    let (stdout, stderr) = match out {
        Ok(o) => o,
        Err(e) => {
            features.push((
                "sandbox helper".into(),
                false,
                format!("{}: {e}", config.helper_exe.display()),
            ));
            return;
        }
    };
    let mut seen = 0;
    for line in stdout.lines() {
        let mut parts = line.splitn(3, '\t');
        if let (Some(name), Some(state), Some(detail)) = (parts.next(), parts.next(), parts.next())
        {
            seen += 1;
            features.push((name.to_string(), state == "ok", detail.to_string()));
        }
    }
    if seen < 6 {
        // The chain failed before reporting from inside: say why.
        let why = stderr.lines().last().unwrap_or("no output").to_string();
        features.push(("sandbox inside checks".into(), false, why));
    }
}

/// Spawn, wait at most PROBE_TIMEOUT, return (stdout, stderr).
fn run_bounded(cmd: &mut Command) -> std::io::Result<(String, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "sandbox probe timed out",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    Ok((out, err))
}

/// Landlock ABI version, if the kernel offers it (informational: not used yet).
fn landlock() -> (String, bool, String) {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the documented version query: NULL attr, size 0.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    let name = "landlock (optional, not used)".to_string();
    if v > 0 {
        (name, true, format!("ABI v{v}"))
    } else {
        (name, false, std::io::Error::last_os_error().to_string())
    }
}

/// Whether a cgroup hierarchy is mounted with `favordynmods`. Without it the
/// first move of a task into a cgroup waits for an RCU grace period (the
/// global threadgroup lock), which is most of a run's start-up cost
/// (docs/performance.md, "The cgroup move").
fn favordynmods(mounts: &str) -> (String, bool, String) {
    let on = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        matches!(f.get(2), Some(&"cgroup") | Some(&"cgroup2"))
            && f.get(3)
                .is_some_and(|o| o.split(',').any(|o| o == "favordynmods"))
    });
    let detail = if on {
        "on: moving a run into its cgroup does not wait for an RCU grace period"
    } else {
        "not in the cgroup mount options: a run's move into its cgroup may wait for an RCU \
         grace period (~7 ms measured); see deploy/README.md"
    };
    (
        "cgroup favordynmods (optional: faster run start)".into(),
        on,
        detail.into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn favordynmods_is_read_from_cgroup_mounts_only() {
        let off = "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
                   cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n\
                   tmpfs /favordynmods tmpfs rw,favordynmods 0 0\n";
        assert!(!favordynmods(off).1);
        let v2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nsdelegate,favordynmods 0 0\n";
        assert!(favordynmods(v2).1);
        let v1 = "cgroup /sys/fs/cgroup/pids cgroup rw,relatime,favordynmods,pids 0 0\n";
        assert!(favordynmods(v1).1);
        assert!(!favordynmods("").1);
    }
}
