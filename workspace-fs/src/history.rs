//! Per-file version history, kept under `meta_root/<key>/history/` (outside the visible tree).
//!
//! Layout: one directory per workspace path, named by the first 128 bits of SHA-256 of the path
//! (so any valid path maps to a fixed-length, traversal-free name), holding a `.path` note and
//! one entry per saved version named `<saved_at_ns, 20 digits>-<version>`. Sorting names sorts
//! by save time.
//!
//! A saved version is a copy (a reflink where the filesystem shares extents), never a hard
//! link of the replaced inode: a sandboxed program may still hold a descriptor of the file
//! being replaced and keep writing through it, and a link would let it rewrite history. The
//! copy is a fresh inode in the private meta tree that no descriptor outside the server has
//! ever referred to. Reading the replaced file also leaves its ctime alone (a link would bump
//! it), so a save interrupted by a crash cannot change the version of the file it was about
//! to replace.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, Mode, RenameFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::sys;
use crate::version::version_of;
use crate::VersionInfo;

/// Name of the history directory for a workspace path.
fn dir_name(path: &str) -> String {
    hex::encode(&Sha256::digest(path.as_bytes())[..16])
}

/// Opens the history directory of `path`, creating it when `create`; `None` if absent.
fn open(root: BorrowedFd<'_>, path: &str, create: bool) -> Result<Option<OwnedFd>, Errno> {
    let name = dir_name(path);
    match rfs::openat(root, name.as_str(), sys::dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) if create => {
            match rfs::mkdirat(root, name.as_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            let fd = rfs::openat(root, name.as_str(), sys::dir_flags(), Mode::empty())?;
            sys::write_small(fd.as_fd(), ".path", path.as_bytes())?;
            rfs::fsync(root)?;
            Ok(Some(fd))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Saved entries of a history directory, oldest first, as `(name, saved_at_ns, version)`.
fn entries(dir: BorrowedFd<'_>) -> Result<Vec<(String, i64, String)>, Errno> {
    let mut out: Vec<(String, i64, String)> = sys::list_names(dir)?
        .into_iter()
        .filter_map(|n| String::from_utf8(n).ok())
        .filter_map(|n| {
            let (ts, v) = n.split_once('-')?;
            let ts = ts.parse::<i64>().ok()?;
            let v = v.to_owned();
            Some((n, ts, v))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A history copy of a file made before a save takes the write lock: its data is written out
/// while the save's new content is being synced, not afterwards under the lock. Used by
/// [`save`] only if the file is still the one copied; dropped unused, it removes itself.
pub(crate) struct Early {
    hd: OwnedFd,
    tmp: Option<String>,
    copy: OwnedFd,
    st: Stat,
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some(t) = self.tmp.take() {
            let _ = rfs::unlinkat(&self.hd, t.as_str(), AtFlags::empty());
        }
    }
}

/// True when two stats are of the same inode at the same version.
fn same_version(a: &Stat, b: &Stat) -> bool {
    a.st_ino == b.st_ino && version_of(a) == version_of(b)
}

/// Copies the file `name` in `dir` ahead of a save of `path` (no lock held). `None` when there
/// is no regular file to copy or it changed while it was copied; errors are left to the save
/// under the lock, which copies again.
pub(crate) fn prepare(
    root: BorrowedFd<'_>,
    path: &str,
    dir: BorrowedFd<'_>,
    name: &str,
) -> Option<Early> {
    let (src, st) = sys::open_regular(dir, name).ok()?;
    let hd = open(root, path, true).ok()??;
    let (tmp, _, copy) = sys::copy_to_temp(src.as_fd(), hd.as_fd(), None).ok()?;
    let early = Early {
        hd,
        tmp: Some(tmp),
        copy,
        st,
    };
    let after = rfs::fstat(&src).ok()?;
    same_version(&early.st, &after).then_some(early)
}

/// Saves the file `name` in `dir` (whose stat is `st`) as a history version of `path`, makes
/// the copy's data durable, then drops versions beyond `keep`. `early` is used when it is a
/// copy of exactly this version.
#[allow(clippy::too_many_arguments)]
pub(crate) fn save(
    root: BorrowedFd<'_>,
    path: &str,
    dir: BorrowedFd<'_>,
    name: &str,
    st: &Stat,
    saved_at_ns: i64,
    keep: usize,
    early: Option<Early>,
) -> Result<(), Errno> {
    if let Some(mut e) = early.filter(|e| same_version(&e.st, st)) {
        // Usually written already: its writes overlapped the new content's fdatasync.
        crate::writeback::write_out(e.copy.as_fd())?;
        let entry = format!("{saved_at_ns:020}-{}", version_of(st));
        if let Some(tmp) = e.tmp.take() {
            let moved = rfs::renameat_with(
                &e.hd,
                tmp.as_str(),
                &e.hd,
                entry.as_str(),
                RenameFlags::NOREPLACE,
            );
            if let Err(err) = moved {
                let _ = rfs::unlinkat(&e.hd, tmp.as_str(), AtFlags::empty());
                return Err(err);
            }
        }
        return prune(e.hd.as_fd(), keep);
    }
    let Some(hd) = open(root, path, true)? else {
        return Err(Errno::NOENT);
    };
    let (src, now) = sys::open_regular(dir, name)?;
    // Sandboxed code may have swapped the file since `st` was taken (it does not take our
    // lock): label the copy with the version of what was actually copied.
    let label = if now.st_ino == st.st_ino {
        version_of(st)
    } else {
        version_of(&now)
    };
    let entry = format!("{saved_at_ns:020}-{label}");
    let (tmp, _, copy) = sys::copy_to_temp(src.as_fd(), hd.as_fd(), None)?;
    let placed = crate::writeback::write_out(copy.as_fd()).and_then(|()| {
        rfs::renameat_with(
            &hd,
            tmp.as_str(),
            &hd,
            entry.as_str(),
            RenameFlags::NOREPLACE,
        )
    });
    if let Err(e) = placed {
        let _ = rfs::unlinkat(&hd, tmp.as_str(), AtFlags::empty());
        return Err(e);
    }
    // No fsync of the history dir here: the caller's rename is followed by an fsync of the
    // target directory, and on a journaling filesystem with ordered metadata (ext4, xfs) that
    // commit includes this earlier rename, so a crash never shows the new file without the
    // saved one. This saves one journal commit per overwrite.
    prune(hd.as_fd(), keep)
}

/// Removes the oldest versions so that at most `keep` remain.
fn prune(hd: BorrowedFd<'_>, keep: usize) -> Result<(), Errno> {
    let all = entries(hd)?;
    let excess = all.len().saturating_sub(keep);
    for (name, _, _) in all.into_iter().take(excess) {
        rfs::unlinkat(hd, name.as_str(), AtFlags::empty())?;
    }
    Ok(())
}

/// The saved versions of `path`, newest first.
pub(crate) fn list(root: BorrowedFd<'_>, path: &str) -> Result<Vec<VersionInfo>, Errno> {
    let Some(hd) = open(root, path, false)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, ts, version) in entries(hd.as_fd())?.into_iter().rev() {
        if let Some(st) = sys::lstat(hd.as_fd(), &name)? {
            out.push(VersionInfo {
                version,
                size: sys::size_of(&st),
                saved_at_ms: ts / 1_000_000,
            });
        }
    }
    Ok(out)
}

/// Opens the saved `version` of `path` for reading.
pub(crate) fn open_version(
    root: BorrowedFd<'_>,
    path: &str,
    version: &str,
) -> Result<(OwnedFd, Stat), Errno> {
    let hd = open(root, path, false)?.ok_or(Errno::NOENT)?;
    let (name, _, _) = entries(hd.as_fd())?
        .into_iter()
        .rev()
        .find(|(_, _, v)| v == version)
        .ok_or(Errno::NOENT)?;
    sys::open_regular(hd.as_fd(), &name)
}

/// Moves the history of `from` to `to` (after a file rename), merging with what `to` has.
pub(crate) fn move_path(
    root: BorrowedFd<'_>,
    from: &str,
    to: &str,
    keep: usize,
) -> Result<(), Errno> {
    let Some(src) = open(root, from, false)? else {
        return Ok(());
    };
    let dst = open(root, to, true)?.ok_or(Errno::NOENT)?;
    for (name, _, _) in entries(src.as_fd())? {
        match rfs::renameat_with(
            &src,
            name.as_str(),
            &dst,
            name.as_str(),
            rfs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
    }
    rfs::fsync(&dst)?;
    prune(dst.as_fd(), keep)?;
    sys::remove_tree(root, &dir_name(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A save interrupted right after the history copy (a crash before the rename) must leave
    /// the file exactly as acknowledged: same version, so the client's next save with it is
    /// accepted. A hard link would bump the inode's ctime and change the version.
    #[test]
    fn saving_a_version_leaves_the_current_file_and_its_version_alone() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("tree")).unwrap();
        std::fs::create_dir(d.path().join("hist")).unwrap();
        std::fs::write(d.path().join("tree/f.txt"), b"acknowledged").unwrap();
        let tree = rfs::open(d.path().join("tree"), sys::dir_flags(), Mode::empty()).unwrap();
        let hist = rfs::open(d.path().join("hist"), sys::dir_flags(), Mode::empty()).unwrap();
        let before = sys::lstat(tree.as_fd(), "f.txt").unwrap().unwrap();
        save(
            hist.as_fd(),
            "f.txt",
            tree.as_fd(),
            "f.txt",
            &before,
            1,
            5,
            None,
        )
        .unwrap();
        // The same through a copy made ahead of the lock.
        let early = prepare(hist.as_fd(), "f.txt", tree.as_fd(), "f.txt");
        assert!(early.is_some());
        save(
            hist.as_fd(),
            "f.txt",
            tree.as_fd(),
            "f.txt",
            &before,
            2,
            5,
            early,
        )
        .unwrap();
        let after = sys::lstat(tree.as_fd(), "f.txt").unwrap().unwrap();
        assert_eq!(version_of(&before), version_of(&after));
        // (A link would also show here, even within one coarse ctime tick.)
        assert_eq!(after.st_nlink, 1);
        let saved = list(hist.as_fd(), "f.txt").unwrap();
        assert_eq!(saved.len(), 2);
        assert!(saved
            .iter()
            .all(|v| v.version == version_of(&before) && v.size == 12));
        // An early copy of a version that changed since is not used (and leaves nothing).
        let early = prepare(hist.as_fd(), "f.txt", tree.as_fd(), "f.txt");
        std::fs::write(d.path().join("tree/f.txt"), b"edited in place").unwrap();
        let edited = sys::lstat(tree.as_fd(), "f.txt").unwrap().unwrap();
        save(
            hist.as_fd(),
            "f.txt",
            tree.as_fd(),
            "f.txt",
            &edited,
            3,
            5,
            early,
        )
        .unwrap();
        let newest = &list(hist.as_fd(), "f.txt").unwrap()[0];
        assert_eq!(
            (newest.version.as_str(), newest.size),
            (version_of(&edited).as_str(), 15)
        );
        let hd = std::fs::read_dir(d.path().join("hist"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(std::fs::read_dir(hd.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".campus-tmp-")));
    }
}
