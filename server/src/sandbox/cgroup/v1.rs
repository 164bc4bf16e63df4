//! cgroup v1 (and hybrid hosts): one directory per controller hierarchy.
//!
//! Killing: v1 has no `cgroup.kill`, so we freeze the freezer cgroup (no
//! process can fork while frozen), SIGKILL every pid in cgroup.procs, thaw so
//! the signals are delivered, and repeat until the cgroup is empty.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cgroups_rs::hierarchies::V1;
use cgroups_rs::Controllers;

use super::{kill_pids, own_dir, own_path, read_keyed, read_pids, read_u64, write, POLL};
use crate::sandbox::{CgroupStats, SandboxError, SandboxLimits};

/// CFS period used for the CPU quota, µs.
const CFS_PERIOD_US: u64 = 100_000;

/// `<mount>/<own>/<group>` for each controller we use (None = not mounted).
#[derive(Debug, Clone, Default)]
pub(crate) struct Parents {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    freezer: Option<PathBuf>,
}

/// One run's directories, one per controller (cpu and cpuacct may be the same dir).
#[derive(Debug, Clone, Default)]
pub(crate) struct RunDirs {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    freezer: Option<PathBuf>,
}

/// Find each controller's mount and our own cgroup in it; create `<group>` there.
pub(crate) fn prepare_parents(group: &str) -> Result<Parents, SandboxError> {
    let hier = V1::new();
    let parent = |c: Controllers| -> Result<Option<PathBuf>, SandboxError> {
        let name = c.to_string();
        let Some(mount) = hier.get_mount_point(c) else {
            return Ok(None);
        };
        let dir = own_dir(&mount, &own_path(false, &name)).join(group);
        fs::create_dir_all(&dir)?;
        Ok(Some(dir))
    };
    let parents = Parents {
        memory: parent(Controllers::Mem)?,
        pids: parent(Controllers::Pids)?,
        cpu: parent(Controllers::Cpu)?,
        cpuacct: parent(Controllers::CpuAcct)?,
        freezer: parent(Controllers::Freezer)?,
    };
    if parents.memory.is_none() || parents.pids.is_none() {
        return Err(SandboxError::Incomplete(
            "cgroup v1: memory or pids controller not mounted".into(),
        ));
    }
    Ok(parents)
}

impl Parents {
    /// (controller, parent dir) for the report.
    pub(crate) fn describe(&self) -> Vec<(&'static str, Option<PathBuf>)> {
        vec![
            ("memory", self.memory.clone()),
            ("pids", self.pids.clone()),
            ("cpu", self.cpu.clone()),
            ("cpuacct", self.cpuacct.clone()),
            ("freezer", self.freezer.clone()),
        ]
    }

    /// Distinct parent directories.
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        dedup(
            [
                &self.memory,
                &self.pids,
                &self.cpu,
                &self.cpuacct,
                &self.freezer,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        )
    }

    /// Handle on an existing run (for cleanup).
    pub(crate) fn load_run(&self, name: &str) -> RunDirs {
        let j = |p: &Option<PathBuf>| p.as_ref().map(|p| p.join(name));
        RunDirs {
            memory: j(&self.memory),
            pids: j(&self.pids),
            cpu: j(&self.cpu),
            cpuacct: j(&self.cpuacct),
            freezer: j(&self.freezer),
        }
    }

    /// mkdir the run in every hierarchy and apply the limits.
    pub(crate) fn create_run(
        &self,
        name: &str,
        limits: &SandboxLimits,
    ) -> Result<RunDirs, SandboxError> {
        let run = self.load_run(name);
        for dir in run.dirs() {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        // From here on, dropping `guard` removes what we created if a limit fails.
        let guard = super::RunCgroup::new(super::Kind::V1(run.clone()), limits.memory_bytes);
        if let Some(mem) = &run.memory {
            let limit = limits.memory_bytes.to_string();
            write(&mem.join("memory.limit_in_bytes"), &limit)?;
            // memsw (memory+swap) = memory: no swap. Absent when swap accounting is off.
            let memsw = mem.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &limit)?;
            }
            let _ = write(&mem.join("memory.swappiness"), "0");
        }
        if let Some(pids) = &run.pids {
            write(&pids.join("pids.max"), &limits.pids.to_string())?;
        }
        if let Some(cpu) = &run.cpu {
            if limits.cpu_quota > 0.0 {
                let quota = ((limits.cpu_quota * CFS_PERIOD_US as f64) as u64).max(1000);
                write(&cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        guard.disarm();
        Ok(run)
    }
}

impl RunDirs {
    /// The cpu controller's directory, if mounted.
    pub(crate) fn cpu_dir(&self) -> Option<&PathBuf> {
        self.cpu.as_ref()
    }

    /// Distinct directories.
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        dedup(
            [
                &self.memory,
                &self.pids,
                &self.cpu,
                &self.cpuacct,
                &self.freezer,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        )
    }

    /// The directory whose cgroup.procs we read to find the run's processes.
    fn procs_dir(&self) -> Option<&PathBuf> {
        self.freezer
            .as_ref()
            .or(self.pids.as_ref())
            .or(self.memory.as_ref())
    }

    /// Freeze/thaw via the freezer controller.
    pub(crate) fn freeze(&self, frozen: bool) -> io::Result<()> {
        let Some(fr) = &self.freezer else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "freezer controller not mounted",
            ));
        };
        write(
            &fr.join("freezer.state"),
            if frozen { "FROZEN" } else { "THAWED" },
        )
    }

    /// Freeze, SIGKILL all, thaw; repeat until empty. Returns true when empty.
    pub(crate) fn kill_all(&self, limit: Duration) -> bool {
        self.kill_loop(limit, true)
    }

    /// Kill every process without the freezer, for a tree that cannot be
    /// forking (a parked warm sandbox): nothing is ever left frozen, even if
    /// the server dies halfway (a frozen process cannot die).
    pub(crate) fn kill_parked(&self, limit: Duration) -> bool {
        self.kill_loop(limit, false)
    }

    fn kill_loop(&self, limit: Duration, freeze: bool) -> bool {
        let Some(procs_dir) = self.procs_dir() else {
            return true;
        };
        let procs = procs_dir.join("cgroup.procs");
        let deadline = Instant::now() + limit;
        loop {
            let pids = read_pids(&procs);
            if pids.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let requested = freeze && self.freeze(true).is_ok();
            if requested && !self.wait_frozen(deadline) {
                tracing::debug!("run cgroup not frozen in time; killing what it holds");
            }
            // Re-read while frozen: nothing can fork between this read and the kill.
            kill_pids(&read_pids(&procs));
            if requested {
                // Thaw whether or not FROZEN was reached: a process left in a
                // freezing cgroup never dies of its SIGKILL (found under 300
                // students on a saturated machine: runs stuck in the
                // refrigerator after `wait_frozen` ran out of time).
                let _ = self.freeze(false);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait (bounded) until freezer.state says FROZEN.
    fn wait_frozen(&self, deadline: Instant) -> bool {
        let Some(fr) = &self.freezer else {
            return false;
        };
        let state = fr.join("freezer.state");
        loop {
            match fs::read_to_string(&state) {
                Ok(s) if s.trim() == "FROZEN" => return true,
                Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => return false,
            }
        }
    }

    /// cpuacct.usage, memory.max_usage_in_bytes, oom_kill counter, pids.current.
    pub(crate) fn stats(&self) -> CgroupStats {
        let file = |d: &Option<PathBuf>, f: &str| d.as_ref().map(|d| d.join(f));
        let num = |p: Option<PathBuf>| p.and_then(|p| read_u64(&p)).unwrap_or(0);
        CgroupStats {
            cpu_ms: num(file(&self.cpuacct, "cpuacct.usage")) / 1_000_000,
            peak_memory_bytes: num(file(&self.memory, "memory.max_usage_in_bytes")),
            memory_bytes: num(file(&self.memory, "memory.usage_in_bytes")),
            oom_kills: file(&self.memory, "memory.oom_control")
                .and_then(|p| read_keyed(&p, "oom_kill"))
                .unwrap_or(0),
            pids: num(file(&self.pids, "pids.current")),
        }
    }
}

fn dedup(it: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in it {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}
