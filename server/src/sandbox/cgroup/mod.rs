//! Run cgroups: where they live (v1 or v2, detected at runtime), how they are
//! created with limits, read, killed and removed.
//!
//! Layout: every run gets `<server's own cgroup>/<group>/run-<id>` (group is
//! `campus` by default). On v1 that directory exists once per controller
//! hierarchy (memory, pids, cpu, cpuacct, freezer); on v2 once. We use
//! cgroups-rs for hierarchy detection and read/write the interface files
//! directly, because we need per-controller parent paths, the v2 leaf move
//! and the oom_kill counters, which cgroups-rs 0.3 does not expose.

mod v1;
mod v2;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{CgroupStats, SandboxError, SandboxLimits};

/// How long `kill_all` keeps trying before giving up (bounded, never hangs the caller).
const KILL_DEADLINE: Duration = Duration::from_secs(5);
/// How long `remove` keeps retrying rmdir (EBUSY while the last tasks exit).
const RMDIR_DEADLINE: Duration = Duration::from_secs(3);
/// Pause between polls of cgroup.procs / freezer state.
const POLL: Duration = Duration::from_millis(5);
/// Most cgroups the orphan list keeps for a later retry (beyond that they are
/// only logged, and removed at the next start-up).
const MAX_ORPHANS: usize = 1024;
/// Most orphans one sweep retries (each retry may block for the deadlines above).
const SWEEP_BATCH: usize = 8;

/// The cgroup hierarchy the runs live in, resolved once at startup.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    /// cgroup v1 (or hybrid): one parent directory per controller.
    V1(v1::Parents),
    /// cgroup v2: one parent directory (`<own>/<group>`).
    V2(PathBuf),
}

impl Layout {
    /// Detect the hierarchy and create (if needed) the `<own>/<group>` parent(s).
    pub(crate) fn detect(group: &str) -> Result<Layout, SandboxError> {
        validate_name(group)?;
        if cgroups_rs::hierarchies::is_cgroup2_unified_mode() {
            Ok(Layout::V2(v2::prepare_parent(group)?))
        } else {
            Ok(Layout::V1(v1::prepare_parents(group)?))
        }
    }

    /// "v1" or "v2".
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Layout::V1(_) => "v1",
            Layout::V2(_) => "v2",
        }
    }

    /// Which controllers are usable, with the directory each one lives in.
    pub(crate) fn controllers(&self) -> Vec<(&'static str, Option<PathBuf>)> {
        match self {
            Layout::V1(p) => p.describe(),
            Layout::V2(dir) => v2::describe(dir),
        }
    }

    /// Create `run-<id>` with the limits applied.
    pub(crate) fn create_run(
        &self,
        run_id: &str,
        limits: &SandboxLimits,
    ) -> Result<RunCgroup, SandboxError> {
        validate_name(run_id)?;
        let name = format!("run-{run_id}");
        let kind = match self {
            Layout::V1(p) => Kind::V1(p.create_run(&name, limits)?),
            Layout::V2(dir) => Kind::V2(v2::create_run(dir, &name, limits)?),
        };
        Ok(RunCgroup::new(kind, limits.memory_bytes))
    }

    /// Kill and remove every leftover `run-*` cgroup; returns how many runs were removed.
    pub(crate) fn cleanup_stale(&self) -> usize {
        let mut names: Vec<String> = Vec::new();
        for parent in self.parent_dirs() {
            let Ok(entries) = fs::read_dir(&parent) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("run-") && e.path().is_dir() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let mut removed = 0;
        for name in names {
            let kind = match self {
                Layout::V1(p) => Kind::V1(p.load_run(&name)),
                Layout::V2(dir) => Kind::V2(dir.join(&name)),
            };
            let cg = RunCgroup::new(kind, 0);
            if cg.remove_inner() {
                removed += 1;
            }
        }
        removed
    }

    fn parent_dirs(&self) -> Vec<PathBuf> {
        match self {
            Layout::V1(p) => p.dirs(),
            Layout::V2(dir) => vec![dir.clone()],
        }
    }
}

/// Where one run's cgroup lives.
#[derive(Debug, Clone)]
enum Kind {
    V1(v1::RunDirs),
    V2(PathBuf),
}

/// A run's share of the CPU when runs compete for it (no effect on an idle machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPriority {
    /// The default: starting programs and programs answering keystrokes.
    Interactive,
    /// A program that keeps a CPU busy: it yields to interactive ones.
    Background,
}

impl CpuPriority {
    /// v1 `cpu.shares` (default 1024).
    fn shares(self) -> u64 {
        match self {
            CpuPriority::Interactive => 1024,
            CpuPriority::Background => 64,
        }
    }

    /// v2 `cpu.weight` (default 100): the same ratio as the v1 shares.
    fn weight(self) -> u64 {
        (self.shares() * 100 / 1024).max(1)
    }
}

/// One run's cgroup (None when running without cgroups).
///
/// Dropping it without calling [`RunCgroup::remove`] still kills and removes
/// it (best effort), so no run can outlive its handle.
#[derive(Debug)]
pub struct RunCgroup {
    kind: Kind,
    memory_limit: u64,
    /// Sampled max of memory.current (v2 kernels without memory.peak).
    sampled_peak: AtomicU64,
    removed: AtomicBool,
    /// Where a cgroup that could not be removed goes for a later retry.
    orphans: Option<Arc<Orphans>>,
}

impl RunCgroup {
    fn new(kind: Kind, memory_limit: u64) -> Self {
        RunCgroup {
            kind,
            memory_limit,
            sampled_peak: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            orphans: None,
        }
    }

    /// Hand the cgroup to `orphans` if its removal ever fails.
    pub(crate) fn with_orphans(mut self, orphans: Arc<Orphans>) -> Self {
        self.orphans = Some(orphans);
        self
    }

    /// Forget the directories without removing them (ownership moves elsewhere).
    fn disarm(&self) {
        self.removed.store(true, Ordering::SeqCst);
    }

    /// Kill every process of the run (cgroup-wide, including setsid'd and
    /// daemonized children). Waits (bounded) until the cgroup is empty.
    pub fn kill_all(&self) {
        let done = match &self.kind {
            Kind::V1(d) => d.kill_all(KILL_DEADLINE),
            Kind::V2(dir) => v2::kill_all(dir, KILL_DEADLINE),
        };
        if !done {
            tracing::warn!(cgroup = ?self.paths(), "processes survived kill_all within the deadline");
        }
    }

    /// Kill every process of a tree that is not forking (a parked warm
    /// sandbox): on v1 without the freezer (see `v1::RunDirs::kill_parked`),
    /// on v2 `cgroup.kill` as always.
    pub fn kill_parked(&self) {
        let done = match &self.kind {
            Kind::V1(d) => d.kill_parked(KILL_DEADLINE),
            Kind::V2(dir) => v2::kill_all(dir, KILL_DEADLINE),
        };
        if !done {
            tracing::warn!(cgroup = ?self.paths(), "processes survived kill_parked within the deadline");
        }
    }

    /// Current usage (cpu, peak memory, OOM kills, pids).
    pub fn stats(&self) -> CgroupStats {
        match &self.kind {
            Kind::V1(d) => d.stats(),
            Kind::V2(dir) => {
                let mut s = v2::stats(dir);
                if s.peak_memory_bytes == 0 {
                    // No memory.peak (kernel < 5.19): keep the max of what we saw.
                    let cur = s.memory_bytes;
                    let prev = self.sampled_peak.fetch_max(cur, Ordering::Relaxed);
                    s.peak_memory_bytes = prev.max(cur);
                }
                s
            }
        }
    }

    /// Set the run's CPU priority (a no-op where the cpu controller is missing).
    pub fn set_priority(&self, priority: CpuPriority) -> Result<(), SandboxError> {
        let (file, value) = match &self.kind {
            Kind::V1(d) => match d.cpu_dir() {
                Some(dir) => (dir.join("cpu.shares"), priority.shares()),
                None => return Ok(()),
            },
            Kind::V2(dir) => (dir.join("cpu.weight"), priority.weight()),
        };
        if !file.exists() {
            return Ok(());
        }
        write(&file, &value.to_string()).map_err(SandboxError::Io)
    }

    /// The memory limit this cgroup was created with, bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    /// The `cgroup.procs` files a process writes its pid into to join the run.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.paths()
            .into_iter()
            .map(|p| p.join("cgroup.procs"))
            .collect()
    }

    /// The run's cgroup directories (one per v1 hierarchy, one on v2).
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::V1(d) => d.dirs(),
            Kind::V2(dir) => vec![dir.clone()],
        }
    }

    /// Kill everything, then remove the cgroup directories (bounded retries).
    pub fn remove(self) {
        self.remove_inner();
    }

    /// [`RunCgroup::remove`] through a shared handle (blocking); later
    /// calls, and the drop, do nothing. True when every directory is gone.
    pub fn remove_now(&self) -> bool {
        self.remove_inner()
    }

    /// Returns true when every directory is gone.
    fn remove_inner(&self) -> bool {
        if self.removed.swap(true, Ordering::SeqCst) {
            return true;
        }
        self.kill_all();
        let deadline = Instant::now() + RMDIR_DEADLINE;
        let mut ok = true;
        for dir in self.paths() {
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= deadline => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove run cgroup");
                        ok = false;
                        break;
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        }
        if !ok {
            if let Some(orphans) = &self.orphans {
                orphans.push(self.kind.clone());
            }
        }
        ok
    }
}

/// Run cgroups whose removal failed (a directory stayed busy past the
/// deadline); the runner's reaper retries them, so none lingers until the
/// next start-up.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    list: Mutex<Vec<Kind>>,
}

/// What one [`Orphans::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrphanSweep {
    /// Cgroups removed by this sweep.
    pub removed: usize,
    /// Cgroups still waiting for a retry.
    pub remaining: usize,
}

impl Orphans {
    fn push(&self, kind: Kind) {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() < MAX_ORPHANS {
            list.push(kind);
        } else {
            tracing::warn!(cgroup = ?kind, "orphan list full; left for the next start-up");
        }
    }

    /// How many cgroups wait for a retry.
    pub(crate) fn len(&self) -> usize {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Retry (blocking, bounded) the removal of up to [`SWEEP_BATCH`] orphans;
    /// those that still fail go back on the list.
    pub(crate) fn sweep(self: &Arc<Self>) -> OrphanSweep {
        let batch: Vec<Kind> = {
            let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
            let n = list.len().min(SWEEP_BATCH);
            list.drain(..n).collect()
        };
        let removed = batch
            .into_iter()
            .filter(|kind| {
                RunCgroup::new(kind.clone(), 0)
                    .with_orphans(self.clone())
                    .remove_inner()
            })
            .count();
        OrphanSweep {
            removed,
            remaining: self.len(),
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.remove_inner();
    }
}

/// Cgroup and run names become path components: allow only a safe alphabet.
fn validate_name(name: &str) -> Result<(), SandboxError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid cgroup name {name:?}"),
        )))
    }
}

/// Read a file holding one integer (or "max").
fn read_u64(path: &Path) -> Option<u64> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Read `key value` lines (memory.events, cpu.stat, memory.oom_control) and return `key`'s value.
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    let s = fs::read_to_string(path).ok()?;
    s.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

/// Pids listed in a cgroup.procs file.
fn read_pids(procs: &Path) -> Vec<i32> {
    fs::read_to_string(procs)
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Write a value to a cgroup interface file.
fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// SIGKILL every pid listed (ESRCH is fine: it already exited).
fn kill_pids(pids: &[i32]) {
    for &pid in pids {
        if pid > 0 {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

/// The server's own cgroup path for `controller` ("" = v2 line) from /proc/self/cgroup.
fn own_path(v2: bool, controller: &str) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let matches = if v2 {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        if matches {
            return path.trim_start_matches('/').to_string();
        }
    }
    String::new()
}

/// `<mount>/<own>` if it exists (it may not when a container shows host paths), else `<mount>`.
fn own_dir(mount: &Path, own: &str) -> PathBuf {
    let dir = mount.join(own);
    if !own.is_empty() && dir.is_dir() {
        dir
    } else {
        mount.to_path_buf()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("abc-DEF_09").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("../etc").is_err());
        assert!(validate_name("a/b").is_err());
    }

    #[test]
    fn keyed_files_parse() {
        let dir = std::env::temp_dir().join(format!("campus-keyed-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("memory.oom_control");
        fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(read_keyed(&f, "oom_kill"), Some(3));
        assert_eq!(read_keyed(&f, "missing"), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
