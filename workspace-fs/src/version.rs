//! File versions and the per-workspace monotonic clock used to make them distinct.
//!
//! A version is the first 64 bits (16 hex chars) of SHA-256 over the file's
//! `(inode, size, mtime_ns, ctime_ns)` as read by a no-follow `stat`. It costs one `stat` per
//! file, so listing 500 files stays cheap, and it changes whenever the content changes:
//! - API writes create a new inode (temp file + rename) and stamp it with a per-workspace,
//!   strictly increasing mtime, so two quick API writes never share a version.
//! - A sandboxed program editing a file in place changes its mtime and ctime (ctime cannot be
//!   set from user space, so even `os.utime` tricks change the version).
//! - Renames, trash restores and history links change ctime, so a version may also change
//!   without a content change; this only ever causes a spurious, safe conflict.
//!
//! The residual gap: two in-place edits by a sandboxed program that keep the size and land
//! within one kernel timestamp tick could share a version. Kernels since 6.13 use fine-grained
//! timestamps once a `stat` has observed the file, which closes most of it; nothing is lost
//! either way because an overwrite always moves the previous content into history.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::Stat;
use sha2::{Digest, Sha256};

/// The version string of a file given its `lstat`/`fstat`.
pub(crate) fn version_of(st: &Stat) -> String {
    let mut h = Sha256::new();
    h.update(st.st_ino.to_le_bytes());
    h.update(st.st_size.to_le_bytes());
    h.update(st.st_mtime.to_le_bytes());
    h.update(i128::from(st.st_mtime_nsec).to_le_bytes());
    h.update(st.st_ctime.to_le_bytes());
    h.update(i128::from(st.st_ctime_nsec).to_le_bytes());
    hex::encode(&h.finalize()[..8])
}

/// True when `s` has the shape of a version string (16 lowercase hex digits).
pub(crate) fn is_version(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Modification time of a stat result in milliseconds since the epoch.
pub(crate) fn mtime_ms(st: &Stat) -> i64 {
    st.st_mtime.saturating_mul(1000) + i64::try_from(st.st_mtime_nsec).unwrap_or(0) / 1_000_000
}

/// Wall-clock nanoseconds since the epoch.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the epoch of a `SystemTime` (0 before the epoch).
pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A clock that never returns the same value twice and never goes backwards.
#[derive(Debug, Default)]
pub(crate) struct MonoClock {
    last: AtomicI64,
}

impl MonoClock {
    /// Current time in nanoseconds, strictly greater than every earlier result.
    pub(crate) fn next_ns(&self) -> i64 {
        let now = now_ns();
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                Some(now.max(l.saturating_add(1)))
            })
            .unwrap_or(now);
        now.max(prev.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_strictly_increasing_across_threads() {
        let c = std::sync::Arc::new(MonoClock::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).map(|_| c.next_ns()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate clock values");
    }

    #[test]
    fn version_shape() {
        assert!(is_version("0123456789abcdef"));
        assert!(!is_version("0123456789ABCDEF"));
        assert!(!is_version("../../etc/passwd"));
        assert!(!is_version(""));
    }
}
