//! Submission snapshots: the submitted folder copied at the moment of
//! submission into a content-addressed, read-only tree
//! (`<grading dir>/snapshots/<sha256>`), so later edits change nothing and
//! the hash shown to the student names exactly what was graded. Blocking:
//! call on the blocking pool.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Most files in one submission.
pub const MAX_FILES: usize = 500;
/// Most bytes in one submission.
pub const MAX_BYTES: u64 = 10 << 20;

/// Why a folder could not be snapshotted.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The folder does not exist.
    #[error("there is no folder {0:?} in your workspace: copy the assignment into it first")]
    Missing(String),
    /// Over [`MAX_FILES`] or [`MAX_BYTES`].
    #[error("{0}")]
    TooLarge(String),
    /// The disk or the OS failed.
    #[error("snapshot: {0}")]
    Io(#[from] std::io::Error),
}

/// A finished snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// SHA-256 (hex) over every file's path, size and bytes, in path order.
    pub hash: String,
    /// Its tree.
    pub dir: PathBuf,
    /// Its files' paths, relative, in order.
    pub files: Vec<String>,
}

/// The regular files under `dir` with their bytes (relative paths,
/// sorted), read through descriptors opened relative to their directory
/// with `O_NOFOLLOW`: the copy runs as root while the student's live
/// session may be swapping names for symlinks, FIFOs or devices, so nothing
/// is opened by path and only what the opened descriptor shows to be a
/// regular file with one link is read, at most its size.
fn files_of(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, SnapshotError> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(std::io::Error::from)?;
    let mut out = Vec::new();
    let mut total = 0u64;
    walk(fd, String::new(), 0, &mut out, &mut total)?;
    out.sort();
    Ok(out)
}

fn too_large() -> SnapshotError {
    SnapshotError::TooLarge(format!(
        "a submission holds at most {MAX_FILES} files and {} MiB",
        MAX_BYTES >> 20
    ))
}

fn walk(
    dir: std::os::fd::OwnedFd,
    rel: String,
    depth: usize,
    out: &mut Vec<(String, Vec<u8>)>,
    total: &mut u64,
) -> Result<(), SnapshotError> {
    use rustix::fs::{Dir, FileType, Mode, OFlags};
    use std::io::Read;
    let io = |e: rustix::io::Errno| SnapshotError::Io(e.into());
    let mut d = Dir::new(dir).map_err(io)?;
    let open =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    while let Some(entry) = d.read() {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let Ok(text) = name.to_str() else { continue };
        let child = if rel.is_empty() {
            text.to_string()
        } else {
            format!("{rel}/{text}")
        };
        // A symlink fails here (ELOOP); a name gone meanwhile is skipped.
        let Ok(fd) = rustix::fs::openat(d.fd().map_err(io)?, name, open, Mode::empty()) else {
            continue;
        };
        let st = rustix::fs::fstat(&fd).map_err(io)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory if depth < 16 => walk(fd, child, depth + 1, out, total)?,
            FileType::RegularFile if st.st_nlink == 1 => {
                let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
                *total = total.saturating_add(size);
                if out.len() >= MAX_FILES || *total > MAX_BYTES {
                    return Err(too_large());
                }
                let mut data = Vec::with_capacity(size as usize);
                // At most the size it had: a file growing meanwhile is cut there.
                std::fs::File::from(fd).take(size).read_to_end(&mut data)?;
                out.push((child, data));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Snapshot `src` (the student's folder) into `root/<hash>`: copied into a
/// temporary tree, hashed, made read-only, then renamed into place (an
/// identical snapshot already there is kept and the copy dropped).
pub fn take(src: &Path, root: &Path, folder: &str) -> Result<Snapshot, SnapshotError> {
    let files = match files_of(src) {
        Ok(f) => f,
        Err(SnapshotError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR)
                || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            return Err(SnapshotError::Missing(folder.to_string()))
        }
        Err(e) => return Err(e),
    };
    fs::create_dir_all(root)?;
    let tmp = root.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| -> Result<Snapshot, SnapshotError> {
        fs::create_dir(&tmp)?;
        let mut hasher = Sha256::new();
        let mut names = Vec::with_capacity(files.len());
        for (rel, data) in &files {
            // Read once: what is hashed is exactly what is written.
            hasher.update(rel.as_bytes());
            hasher.update([0]);
            hasher.update((data.len() as u64).to_le_bytes());
            hasher.update(data);
            let dest = tmp.join(rel);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut f = fs::File::create(&dest)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o444))?;
            names.push(rel.clone());
        }
        let hash = hex::encode(hasher.finalize());
        seal(&tmp)?;
        let dir = root.join(&hash);
        if dir.exists() {
            unseal_and_remove(&tmp);
        } else if let Err(e) = fs::rename(&tmp, &dir) {
            // Another submit of the same files won the race.
            if !dir.exists() {
                return Err(e.into());
            }
            unseal_and_remove(&tmp);
        }
        Ok(Snapshot {
            hash,
            dir,
            files: names,
        })
    })();
    if result.is_err() {
        unseal_and_remove(&tmp);
    }
    result
}

/// Directories read-only (0555), bottom-up.
fn seal(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            seal(&entry.path())?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555))
}

fn unseal_and_remove(dir: &Path) {
    fn unseal(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    unseal(&e.path());
                }
            }
        }
    }
    unseal(dir);
    let _ = fs::remove_dir_all(dir);
}

/// The files of a stored snapshot (relative paths, sorted). Its trees are
/// the server's own and read-only, so a plain walk of names will do.
pub fn list(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path(), &child, out),
                Ok(t) if t.is_file() => out.push(child),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_snapshot_is_content_addressed_read_only_and_ignores_links() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("hw1");
        fs::create_dir_all(src.join("pkg")).unwrap();
        fs::write(src.join("solution.py"), "x = 1\n").unwrap();
        fs::write(src.join("pkg/util.py"), "y = 2\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link.py")).unwrap();
        fs::write(t.path().join("outside"), "secret").unwrap();
        fs::hard_link(t.path().join("outside"), src.join("hard.py")).unwrap();
        nix::unistd::mkfifo(
            &src.join("pipe.py"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc", src.join("etc")).unwrap();
        let root = t.path().join("snaps");
        let a = take(&src, &root, "hw1").unwrap();
        assert_eq!(a.files, vec!["pkg/util.py", "solution.py"]);
        assert_eq!(
            fs::read_to_string(a.dir.join("solution.py")).unwrap(),
            "x = 1\n"
        );
        assert_eq!(
            fs::metadata(&a.dir).unwrap().permissions().mode() & 0o777,
            0o555
        );
        // The same files: the same hash and tree; an edit: another.
        let b = take(&src, &root, "hw1").unwrap();
        assert_eq!((a.hash.clone(), a.dir.clone()), (b.hash, b.dir));
        fs::write(src.join("solution.py"), "x = 2\n").unwrap();
        let c = take(&src, &root, "hw1").unwrap();
        assert_ne!(a.hash, c.hash);
        assert_eq!(
            fs::read_to_string(a.dir.join("solution.py")).unwrap(),
            "x = 1\n"
        );
        // No temporary left behind.
        let left: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(left.is_empty());
        assert!(matches!(
            take(&t.path().join("nope"), &root, "nope"),
            Err(SnapshotError::Missing(_))
        ));
        // The submitted folder itself a symlink: not followed.
        std::os::unix::fs::symlink("/etc", t.path().join("linked")).unwrap();
        assert!(matches!(
            take(&t.path().join("linked"), &root, "linked"),
            Err(SnapshotError::Missing(_))
        ));
    }
}
