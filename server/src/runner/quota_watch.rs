//! The workspace quota of a live run, from the runner's side.
//!
//! Where the kernel enforces it (user quotas on the workspaces' filesystem,
//! see `sandbox::quota`), the program's writes past the quota fail with
//! EDQUOT and nothing needs watching; when the run ends, one `Q_GETQUOTA`
//! tells whether the workspace was full, so a program that failed of it gets
//! the `disk_quota` ending instead of a bare exit code.
//!
//! Where it does not (development, or production with
//! `CAMPUS_ALLOW_NO_DISK_QUOTA=true`), the fallback is a usage scan of the
//! workspace tree, triggered by the session's periodic sample and run on the
//! blocking pool: a run whose tree is found over the byte or entry quota is
//! stopped with `disk_quota`. Its cost is bounded three ways: a scan stops as
//! soon as the tree is over the quota (it visits at most `max_entries + 1`
//! entries, however many a program made, and never follows a link); scans of
//! one run are spaced by at least [`SCAN_INTERVAL`] and by 100 times the
//! last scan's duration (at most 1 % of a CPU per run); and at most
//! [`MAX_CONCURRENT_SCANS`] run at once on the host (a run whose turn is
//! taken scans at a later sample). What it cannot do is stop a write in
//! flight: a fast writer overshoots by what it writes between two scans
//! (docs/security.md, "Storage").

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use tokio::time::Instant;

use crate::sandbox::{Sandbox, SandboxLimits};

/// Shortest time between two scans of one run.
pub(crate) const SCAN_INTERVAL: Duration = Duration::from_secs(2);
/// Scans spaced by this many times their own duration.
const SCAN_COST_FACTOR: u32 = 100;
/// Scans running at once on this host.
const MAX_CONCURRENT_SCANS: usize = 2;
/// Deeper folders are not walked; a tree nested deeper counts as over the quota.
const MAX_SCAN_DEPTH: usize = 128;

/// Scans in flight, host-wide.
static SCANS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The quota side of one live run.
pub(crate) struct QuotaWatch {
    kind: Kind,
}

enum Kind {
    /// No quota configured.
    Off,
    /// The kernel enforces the quota.
    Kernel { sandbox: Arc<Sandbox>, user_id: i64 },
    /// The fallback usage scan.
    Scan(Arc<Scanner>),
}

/// The fallback's state for one run.
struct Scanner {
    root: PathBuf,
    max_bytes: u64,
    max_entries: u64,
    state: Mutex<ScanState>,
}

struct ScanState {
    running: bool,
    next_at: Instant,
    over: Option<String>,
}

impl QuotaWatch {
    /// The watch of a run of `user_id` in `workspace_dir` with `limits`.
    pub(crate) fn new(
        sandbox: &Arc<Sandbox>,
        user_id: i64,
        workspace_dir: &Path,
        limits: &SandboxLimits,
    ) -> QuotaWatch {
        let kind = if limits.disk_bytes == 0 && limits.disk_entries == 0 {
            Kind::Off
        } else if sandbox.disk_quota_enforced() {
            Kind::Kernel {
                sandbox: Arc::clone(sandbox),
                user_id,
            }
        } else {
            Kind::Scan(Arc::new(Scanner {
                root: workspace_dir.to_path_buf(),
                max_bytes: limits.disk_bytes,
                max_entries: limits.disk_entries,
                state: Mutex::new(ScanState {
                    running: false,
                    next_at: Instant::now(),
                    over: None,
                }),
            }))
        };
        QuotaWatch { kind }
    }

    /// At each usage sample: true when the run must end because a scan found
    /// its workspace over the quota. Starts the next scan when one is due
    /// (never on the calling thread).
    pub(crate) fn poll(&self, now: Instant) -> bool {
        let Kind::Scan(scanner) = &self.kind else {
            return false;
        };
        {
            let mut st = scanner.lock();
            if st.over.is_some() {
                return true;
            }
            if st.running || now < st.next_at {
                return false;
            }
            if !take_scan_slot() {
                return false;
            }
            st.running = true;
        }
        let s = Arc::clone(scanner);
        // Bounded work (see the module notes); it finishes on its own.
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let found = scan(&s.root, s.max_bytes, s.max_entries);
            let took = started.elapsed();
            SCANS_RUNNING.fetch_sub(1, Ordering::AcqRel);
            let mut st = s.lock();
            st.running = false;
            st.next_at = Instant::now() + SCAN_INTERVAL.max(took * SCAN_COST_FACTOR);
            match found {
                Ok(f) => {
                    if let Some(why) = f.over {
                        tracing::warn!(workspace = %s.root.display(), bytes = f.bytes,
                            entries = f.entries, why = %why,
                            "a run's workspace is over its quota (no kernel quota): stopping the run");
                        st.over = Some(why);
                    }
                }
                Err(e) => {
                    tracing::warn!(workspace = %s.root.display(), error = %e, "workspace usage scan failed")
                }
            }
        });
        false
    }

    /// When the run is over: true when the kernel quota of the workspace is
    /// exhausted (its writes were failing), or the scan found it over.
    pub(crate) async fn full_at_end(&self) -> bool {
        match &self.kind {
            Kind::Off => false,
            Kind::Scan(s) => s.lock().over.is_some(),
            Kind::Kernel { sandbox, user_id } => {
                let (sandbox, user_id) = (Arc::clone(sandbox), *user_id);
                tokio::task::spawn_blocking(move || sandbox.disk_full(user_id))
                    .await
                    .unwrap_or(false)
            }
        }
    }
}

impl Scanner {
    fn lock(&self) -> std::sync::MutexGuard<'_, ScanState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One of the host's scan slots, if one is free.
fn take_scan_slot() -> bool {
    SCANS_RUNNING
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_CONCURRENT_SCANS).then_some(n + 1)
        })
        .is_ok()
}

/// What a scan found (counts stop growing once the tree is over).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Bytes of regular files: the larger of each file's size and its
    /// allocated space (so neither sparse files nor preallocation hide).
    pub bytes: u64,
    /// Files, directories, links and other entries below the root.
    pub entries: u64,
    /// Why the tree is over the quota, if it is.
    pub over: Option<String>,
}

/// Walk the tree at `root` (never following a link) until it is found over
/// `max_bytes` or `max_entries` (0: no limit) or fully counted.
pub(crate) fn scan(root: &Path, max_bytes: u64, max_entries: u64) -> io::Result<Found> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(root, flags, Mode::empty())?;
    let mut t = Tally {
        found: Found::default(),
        max_bytes,
        max_entries,
    };
    walk(Dir::new(fd)?, 0, &mut t)?;
    Ok(t.found)
}

struct Tally {
    found: Found,
    max_bytes: u64,
    max_entries: u64,
}

impl Tally {
    /// Sets `over` when a limit is passed; true once over.
    fn check(&mut self) -> bool {
        if self.found.over.is_none() {
            if self.max_entries > 0 && self.found.entries > self.max_entries {
                self.found.over = Some(format!("more than {} files and folders", self.max_entries));
            } else if self.max_bytes > 0 && self.found.bytes > self.max_bytes {
                self.found.over = Some(format!("more than {} bytes", self.max_bytes));
            }
        }
        self.found.over.is_some()
    }
}

fn walk(mut dir: Dir, depth: usize, t: &mut Tally) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        t.found.entries += 1;
        if t.check() {
            return Ok(());
        }
        let st = match rustix::fs::statat(dir.fd()?, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue, // removed meanwhile
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let allocated = u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512);
                t.found.bytes = t.found.bytes.saturating_add(size.max(allocated));
            }
            FileType::Directory if depth + 1 >= MAX_SCAN_DEPTH => {
                t.found.over = Some(format!("folders nested deeper than {MAX_SCAN_DEPTH}"));
                return Ok(());
            }
            FileType::Directory => {
                // Gone or swapped for a link since the stat: nothing to count there.
                if let Ok(sub) = rustix::fs::openat(dir.fd()?, name, flags, Mode::empty()) {
                    walk(Dir::new(sub)?, depth + 1, t)?;
                }
            }
            _ => {}
        }
        if t.check() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_counts_files_dirs_and_links_and_stops_when_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("a/b")).unwrap();
        std::fs::write(p.join("a/b/one"), vec![1u8; 3000]).unwrap();
        std::fs::write(p.join("two"), vec![2u8; 100]).unwrap();
        std::os::unix::fs::symlink("/etc", p.join("link")).unwrap();
        // A sparse file counts by its size; its target is never followed.
        let f = std::fs::File::create(p.join("sparse")).unwrap();
        f.set_len(1 << 20).unwrap();
        let all = scan(p, 0, 0).unwrap();
        assert_eq!(all.entries, 6, "{all:?}");
        assert!(all.bytes >= 3100 + (1 << 20), "{all:?}");
        assert_eq!(all.over, None);
        let over = scan(p, 0, 5).unwrap();
        assert_eq!(over.entries, 6);
        assert!(over.over.unwrap().contains("more than 5 files"));
        let over = scan(p, 1 << 20, 0).unwrap();
        assert!(over.over.unwrap().contains("bytes"));
        assert!(scan(p, 2 << 20, 100).unwrap().over.is_none());
    }

    #[test]
    fn the_scan_visits_at_most_one_entry_past_the_limit() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::write(d.path().join(format!("f{i}")), b"").unwrap();
        }
        let f = scan(d.path(), 0, 50).unwrap();
        assert_eq!(f.entries, 51);
        assert!(f.over.is_some());
    }

    #[test]
    fn a_tree_nested_too_deep_counts_as_over() {
        let d = tempfile::tempdir().unwrap();
        let mut p = d.path().to_path_buf();
        for _ in 0..MAX_SCAN_DEPTH + 1 {
            p.push("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        let f = scan(d.path(), 0, 0).unwrap();
        assert!(f.over.unwrap().contains("deeper"), "");
        let mut q = d.path().join("e");
        for _ in 0..10 {
            q.push("e");
        }
        std::fs::create_dir_all(&q).unwrap();
        std::fs::remove_dir_all(d.path().join("d")).unwrap();
        assert_eq!(scan(d.path(), 0, 0).unwrap().over, None);
    }
}
