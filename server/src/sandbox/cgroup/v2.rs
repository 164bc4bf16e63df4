//! cgroup v2 (unified hierarchy).
//!
//! v2's "no internal processes" rule: a cgroup that hands controllers to its
//! children (cgroup.subtree_control) may not contain processes itself. If the
//! server's own cgroup (e.g. its systemd service with Delegate=yes) holds
//! processes, we move them into a leaf `<own>/campus-server` first, then
//! enable memory/pids/cpu for `<own>/<group>/run-*`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{kill_pids, own_dir, own_path, read_keyed, read_pids, read_u64, write, Kind, POLL};
use crate::sandbox::{CgroupStats, SandboxError, SandboxLimits};

/// The unified hierarchy's mount point.
const MOUNT: &str = cgroups_rs::hierarchies::UNIFIED_MOUNTPOINT;
/// Leaf the server's own processes move into.
const SERVER_LEAF: &str = "campus-server";
/// Controllers runs need (cpu is optional on hosts that lack it).
const WANTED: [&str; 3] = ["memory", "pids", "cpu"];
/// cpu.max period, µs.
const PERIOD_US: u64 = 100_000;

/// Prepare `<own>/<group>` with the controllers delegated to its children.
pub(crate) fn prepare_parent(group: &str) -> Result<PathBuf, SandboxError> {
    let mount = Path::new(MOUNT);
    let mut own = own_dir(mount, &own_path(true, ""));
    // A second Sandbox in the same process finds itself already in our leaf.
    if own.file_name().is_some_and(|n| n == SERVER_LEAF) {
        if let Some(parent) = own.parent() {
            own = parent.to_path_buf();
        }
    }
    if own != mount {
        let pids = read_pids(&own.join("cgroup.procs"));
        if !pids.is_empty() {
            let leaf = own.join(SERVER_LEAF);
            mkdir(&leaf)?;
            for pid in pids {
                // A pid that exited meanwhile is fine.
                let _ = write(&leaf.join("cgroup.procs"), &pid.to_string());
            }
        }
    }
    enable_controllers(&own)?;
    let parent = own.join(group);
    mkdir(&parent)?;
    enable_controllers(&parent)?;
    let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    for needed in ["memory", "pids"] {
        if !enabled.split_whitespace().any(|c| c == needed) {
            return Err(SandboxError::Incomplete(format!(
                "cgroup v2: cannot delegate the {needed} controller to {}",
                parent.display()
            )));
        }
    }
    Ok(parent)
}

/// Write `+ctrl` for each wanted controller available in `dir`.
fn enable_controllers(dir: &Path) -> Result<(), SandboxError> {
    let available = fs::read_to_string(dir.join("cgroup.controllers"))?;
    for c in WANTED {
        if available.split_whitespace().any(|a| a == c) {
            // Failure is reported by the caller's check of subtree_control.
            let _ = write(&dir.join("cgroup.subtree_control"), &format!("+{c}"));
        }
    }
    Ok(())
}

fn mkdir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Controllers delegated to runs, plus the kill/freeze files.
pub(crate) fn describe(dir: &Path) -> Vec<(&'static str, Option<PathBuf>)> {
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
    let mut out = Vec::new();
    for c in WANTED {
        out.push((c, has(c).then(|| dir.to_path_buf())));
    }
    // Core files every v2 cgroup has on recent kernels.
    let kill = dir.join("cgroup.kill").exists();
    out.push(("cgroup.kill", kill.then(|| dir.to_path_buf())));
    let freeze = dir.join("cgroup.freeze").exists();
    out.push(("freezer", freeze.then(|| dir.to_path_buf())));
    out
}

/// mkdir `<parent>/<name>` and apply the limits.
pub(crate) fn create_run(
    parent: &Path,
    name: &str,
    limits: &SandboxLimits,
) -> Result<PathBuf, SandboxError> {
    let dir = parent.join(name);
    mkdir(&dir)?;
    // Dropping the guard on an error below removes the half-made cgroup.
    let guard = super::RunCgroup::new(Kind::V2(dir.clone()), limits.memory_bytes);
    write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
    let swap = dir.join("memory.swap.max");
    if swap.exists() {
        write(&swap, "0")?;
    }
    write(&dir.join("pids.max"), &limits.pids.to_string())?;
    let cpu_max = dir.join("cpu.max");
    if limits.cpu_quota > 0.0 && cpu_max.exists() {
        let quota = ((limits.cpu_quota * PERIOD_US as f64) as u64).max(1000);
        write(&cpu_max, &format!("{quota} {PERIOD_US}"))?;
    }
    guard.disarm();
    Ok(dir)
}

/// `cgroup.kill` when present, else freeze/SIGKILL/thaw; true when empty.
pub(crate) fn kill_all(dir: &Path, limit: Duration) -> bool {
    let procs = dir.join("cgroup.procs");
    let deadline = Instant::now() + limit;
    let kill_file = dir.join("cgroup.kill");
    let has_kill = kill_file.exists();
    loop {
        if read_pids(&procs).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if has_kill {
            let _ = write(&kill_file, "1");
        } else {
            let frozen = freeze(dir, true).is_ok();
            kill_pids(&read_pids(&procs));
            if frozen {
                let _ = freeze(dir, false);
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Write cgroup.freeze.
pub(crate) fn freeze(dir: &Path, frozen: bool) -> io::Result<()> {
    write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
}

/// cpu.stat usage_usec, memory.peak, memory.events oom_kill, pids.current.
pub(crate) fn stats(dir: &Path) -> CgroupStats {
    CgroupStats {
        cpu_ms: read_keyed(&dir.join("cpu.stat"), "usage_usec").unwrap_or(0) / 1000,
        peak_memory_bytes: read_u64(&dir.join("memory.peak")).unwrap_or(0),
        memory_bytes: read_u64(&dir.join("memory.current")).unwrap_or(0),
        oom_kills: read_keyed(&dir.join("memory.events"), "oom_kill").unwrap_or(0),
        pids: read_u64(&dir.join("pids.current")).unwrap_or(0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// The v2 kill paths on a real cgroup2 hierarchy: hybrid hosts mount one
    /// (without controllers) at /sys/fs/cgroup/unified, v2 hosts at /sys/fs/cgroup.
    fn cgroup2_root() -> PathBuf {
        let unified = Path::new("/sys/fs/cgroup/unified");
        if unified.join("cgroup.procs").exists() {
            unified.to_path_buf()
        } else {
            PathBuf::from(MOUNT)
        }
    }

    fn kills_everything(use_kill_file: bool) {
        let dir = cgroup2_root().join(format!(
            "campus-v2-unit-{}-{use_kill_file}",
            std::process::id()
        ));
        fs::create_dir(&dir).unwrap();
        let mut children: Vec<std::process::Child> = (0..3)
            .map(|_| {
                std::process::Command::new("/bin/sleep")
                    .arg("300")
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in &children {
            write(&dir.join("cgroup.procs"), &c.id().to_string()).unwrap();
        }
        assert_eq!(read_pids(&dir.join("cgroup.procs")).len(), 3);
        let done = if use_kill_file {
            kill_all(&dir, Duration::from_secs(5))
        } else {
            // The freeze/SIGKILL/thaw path used when cgroup.kill is missing.
            let frozen = freeze(&dir, true).is_ok();
            kill_pids(&read_pids(&dir.join("cgroup.procs")));
            if frozen {
                freeze(&dir, false).unwrap();
            }
            kill_all(&dir, Duration::from_secs(5))
        };
        assert!(done);
        for c in &mut children {
            assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
        }
        assert!(stats(&dir).cpu_ms < 1000);
        fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn cgroup_kill_empties_a_v2_cgroup() {
        kills_everything(true);
    }

    #[test]
    fn freeze_and_sigkill_empties_a_v2_cgroup() {
        kills_everything(false);
    }
}
