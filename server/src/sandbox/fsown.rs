//! Give the student's uid ownership of their workspace before a run, so the
//! program can write there. The walk never follows a symlink: every directory
//! is opened relative to its parent's fd with O_NOFOLLOW and entries are
//! chowned with AT_SYMLINK_NOFOLLOW, so a program swapping a directory for a
//! symlink (from a concurrent run) cannot redirect a root-owned chown.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Deepest directory level we descend into.
const MAX_DEPTH: usize = 64;

/// chown the tree at `root` (never following symlinks; hard-linked files are skipped).
pub(super) fn chown_tree(root: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let fd = open_dir(libc::AT_FDCWD, &c)?;
    // SAFETY: fd is a directory we own.
    if unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    walk(&fd, uid, gid, 0)
}

fn open_dir(at: libc::c_int, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid C string; the flags refuse symlinks and non-directories.
    let fd = unsafe {
        libc::openat(
            at,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn walk(dir: &OwnedFd, uid: u32, gid: u32, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for name in list(dir)? {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid dirfd, C string and out-pointer.
        let r = unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r != 0 {
            continue; // vanished meanwhile
        }
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFREG && st.st_nlink > 1 {
            // A hard link may point at a file outside the workspace: leave it alone.
            continue;
        }
        if st.st_uid != uid || st.st_gid != gid {
            // SAFETY: as above; AT_SYMLINK_NOFOLLOW chowns a symlink itself, never its target.
            unsafe {
                libc::fchownat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    uid,
                    gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
        }
        if kind == libc::S_IFDIR {
            // Fails (ELOOP/ENOTDIR) if it was swapped for a symlink since fstatat: skip it.
            if let Ok(sub) = open_dir(dir.as_raw_fd(), &name) {
                walk(&sub, uid, gid, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Entry names of a directory (without . and ..).
fn list(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // fdopendir takes ownership of its fd: give it a duplicate.
    // SAFETY: dup of a valid fd.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup is a directory fd we own; closedir below releases it.
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        // SAFETY: fdopendir failed, so we still own dup.
        unsafe { libc::close(dup) };
        return Err(io::Error::last_os_error());
    }
    let mut names = Vec::new();
    loop {
        // SAFETY: d is a valid DIR*; the entry is copied before the next call.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(name.to_owned());
        }
    }
    // SAFETY: d is valid and not used afterwards.
    unsafe { libc::closedir(d) };
    Ok(names)
}
