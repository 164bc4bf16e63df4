//! Thin wrappers over the `*at` system calls that never follow a symbolic link.
//!
//! Every path handed to these functions is either a single validated name relative to a
//! directory descriptor, or a validated relative path resolved with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`. Nothing here ever joins a string onto a host
//! path.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::path::{is_temp_name, TEMP_PREFIX};
use crate::{EntryKind, Usage};

/// Deepest directory nesting the walkers descend into (bounds open descriptors; sandboxed code
/// can build deeper trees than the API allows).
pub(crate) const MAX_WALK_DEPTH: usize = 128;

/// Set once `openat2` turned out to be unavailable (old kernel or seccomp); we then walk
/// component by component with `O_NOFOLLOW`, which is equally strict.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Flags for opening a directory we will read or create entries in.
pub(crate) fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
}

/// Converts a std I/O error into an errno (for uniform mapping later).
pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

/// Opens the directory `comps` beneath `root` without following any symlink; `[]` is `root`.
pub(crate) fn open_dir(root: BorrowedFd<'_>, comps: &[&str]) -> Result<OwnedFd, Errno> {
    if comps.is_empty() {
        return rfs::openat(root, ".", dir_flags(), Mode::empty());
    }
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let rel = comps.join("/");
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry.
        for _ in 0..16 {
            match rfs::openat2(root, rel.as_str(), dir_flags(), Mode::empty(), resolve) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                other => return other,
            }
        }
    }
    walk_dirs(root, comps)
}

/// Component-by-component fallback for [`open_dir`]: `O_NOFOLLOW` at every step.
pub(crate) fn walk_dirs(root: BorrowedFd<'_>, comps: &[&str]) -> Result<OwnedFd, Errno> {
    let mut cur = rfs::openat(root, ".", dir_flags(), Mode::empty())?;
    for c in comps {
        cur = rfs::openat(&cur, *c, dir_flags(), Mode::empty())?;
    }
    Ok(cur)
}

/// `lstat` of `name` in `dir`; `Ok(None)` when it does not exist.
pub(crate) fn lstat<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    name: P,
) -> Result<Option<Stat>, Errno> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The kind of a stat result, or `None` for FIFOs, sockets and device nodes.
pub(crate) fn kind_of(st: &Stat) -> Option<EntryKind> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Some(EntryKind::File),
        FileType::Directory => Some(EntryKind::Dir),
        FileType::Symlink => Some(EntryKind::Symlink),
        _ => None,
    }
}

/// Size of a stat result as u64 (negative sizes do not occur on Linux).
pub(crate) fn size_of(st: &Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

/// Opens a regular file for reading without following a final symlink and without blocking on
/// FIFOs; returns the descriptor and its `fstat`. Non-regular files give `EISDIR`/`EINVAL`.
pub(crate) fn open_regular(dir: BorrowedFd<'_>, name: &str) -> Result<(OwnedFd, Stat), Errno> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rfs::openat(dir, name, flags, Mode::empty())?;
    let st = rfs::fstat(&fd)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok((fd, st)),
        FileType::Directory => Err(Errno::ISDIR),
        _ => Err(Errno::INVAL),
    }
}

/// A fresh, unique temporary name (hidden from listings by its prefix).
pub(crate) fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{TEMP_PREFIX}{:x}-{n:x}-{nanos:x}", std::process::id())
}

/// Creates a new temporary file in `dir` (exclusive create, mode 0644, chowned to `owner`).
pub(crate) fn create_temp(
    dir: BorrowedFd<'_>,
    owner: Option<(u32, u32)>,
) -> Result<(OwnedFd, String), Errno> {
    loop {
        let name = temp_name();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rfs::openat(dir, name.as_str(), flags, Mode::from_raw_mode(0o644)) {
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
            Ok(fd) => {
                if let Err(e) = chown_fd(&fd, owner) {
                    let _ = rfs::unlinkat(dir, name.as_str(), AtFlags::empty());
                    return Err(e);
                }
                return Ok((fd, name));
            }
        }
    }
}

/// `fchown` to `owner` when one is configured.
pub(crate) fn chown_fd(fd: impl AsFd, owner: Option<(u32, u32)>) -> Result<(), Errno> {
    match owner {
        Some((u, g)) => rfs::fchown(fd, Some(rfs::Uid::from_raw(u)), Some(rfs::Gid::from_raw(g))),
        None => Ok(()),
    }
}

/// Sets the modification time (nanoseconds since the epoch), leaving atime alone.
pub(crate) fn set_mtime_ns(fd: impl AsFd, ns: i64) -> Result<(), Errno> {
    let times = rfs::Timestamps {
        last_access: rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: rfs::Timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000),
        },
    };
    rfs::futimens(fd, &times)
}

/// Names in a directory (without `.`/`..` and without our temporaries), as raw bytes.
pub(crate) fn list_names(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    let mut d = rfs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." || is_temp_name(name) {
            continue;
        }
        out.push(name.to_vec());
    }
    Ok(out)
}

/// Removes our leftover temporaries (from a crash) in `dir`; returns how many.
pub(crate) fn remove_temps(dir: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut d = rfs::Dir::read_from(dir)?;
    let mut removed = 0;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let name = ent.file_name();
        if is_temp_name(name.to_bytes()) {
            // A temporary dir comes from an interrupted copy; a file from an interrupted write.
            removed += u64::from(remove_tree_c(dir, name, 0).is_ok());
        }
    }
    Ok(removed)
}

/// Removes our leftover temporaries in `dir` and every directory below it (never following
/// links); returns how many. Only safe while nothing can have a write in flight there.
pub(crate) fn sweep_temps(dir: BorrowedFd<'_>, depth: usize) -> Result<u64, Errno> {
    let mut removed = remove_temps(dir)?;
    if depth >= MAX_WALK_DEPTH {
        return Ok(removed);
    }
    for name in list_names(dir)? {
        let name = bytes_arg(&name);
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if let Ok(sub) = rfs::openat(dir, name, dir_flags(), Mode::empty()) {
                    removed += sweep_temps(sub.as_fd(), depth + 1)?;
                }
            }
            _ => {}
        }
    }
    Ok(removed)
}

/// Counts entries and file bytes in the directory `dir` (recursively, not following links).
/// With `clean_temps`, stale temporaries are deleted on the way (only safe while no instance of
/// the workspace exists that could have a write in flight: when the registry opens it).
pub(crate) fn count_dir(
    dir: BorrowedFd<'_>,
    depth: usize,
    clean_temps: bool,
) -> Result<Usage, Errno> {
    if clean_temps {
        remove_temps(dir)?;
    }
    let mut u = Usage::default();
    for name in list_names(dir)? {
        let name = bytes_arg(&name);
        let Ok(st) = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue; // vanished concurrently
        };
        u.entries += 1;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => u.bytes += size_of(&st),
            FileType::Directory if depth < MAX_WALK_DEPTH => {
                if let Ok(sub) = rfs::openat(dir, name, dir_flags(), Mode::empty()) {
                    let s = count_dir(sub.as_fd(), depth + 1, clean_temps)?;
                    u.entries += s.entries;
                    u.bytes += s.bytes;
                }
            }
            _ => {}
        }
    }
    Ok(u)
}

/// Usage of one entry (`name` in `dir`): itself plus, for a directory, everything below.
pub(crate) fn count_entry(dir: BorrowedFd<'_>, name: &str, st: &Stat) -> Result<Usage, Errno> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(Usage {
            bytes: size_of(st),
            entries: 1,
        }),
        FileType::Directory => {
            let sub = rfs::openat(dir, name, dir_flags(), Mode::empty())?;
            let mut u = count_dir(sub.as_fd(), 1, false)?;
            u.entries += 1;
            Ok(u)
        }
        _ => Ok(Usage {
            bytes: 0,
            entries: 1,
        }),
    }
}

/// Lets raw directory-entry bytes be used as a path argument.
pub(crate) fn bytes_arg(name: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(name)
}

/// Removes `name` in `dir` and, for a directory, everything below it (never following links).
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    remove_tree_c(dir, name, 0)
}

fn remove_tree_c<P: rustix::path::Arg + Copy>(
    dir: BorrowedFd<'_>,
    name: P,
    depth: usize,
) -> Result<(), Errno> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rfs::unlinkat(dir, name, AtFlags::empty());
    }
    if depth >= MAX_WALK_DEPTH {
        return Err(Errno::LOOP);
    }
    let sub = rfs::openat(dir, name, dir_flags(), Mode::empty())?;
    let mut d = rfs::Dir::read_from(&sub)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name();
        if n.to_bytes() == b"." || n.to_bytes() == b".." {
            continue;
        }
        remove_tree_c(sub.as_fd(), n, depth + 1)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Copies the regular file `src_name` to the new name `dst_name` (exclusive create, owned by
/// `owner`, data synced). Returns the number of bytes copied.
pub(crate) fn copy_file<P: rustix::path::Arg + Copy, Q: rustix::path::Arg + Copy>(
    src_dir: BorrowedFd<'_>,
    src_name: P,
    dst_dir: BorrowedFd<'_>,
    dst_name: Q,
    owner: Option<(u32, u32)>,
) -> Result<u64, Errno> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let src = rfs::openat(src_dir, src_name, flags, Mode::empty())?;
    let st = rfs::fstat(&src)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Errno::INVAL);
    }
    let wflags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dst = rfs::openat(dst_dir, dst_name, wflags, Mode::from_raw_mode(0o644))?;
    let result = (|| {
        chown_fd(&dst, owner)?;
        let mut r = std::fs::File::from(src);
        let mut w = std::fs::File::from(dst);
        let n = std::io::copy(&mut r, &mut w).map_err(|e| io_errno(&e))?;
        rfs::fdatasync(&w)?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = rfs::unlinkat(dst_dir, dst_name, AtFlags::empty());
    }
    result
}

/// Copies a file, symlink (as a link, never followed) or whole directory tree to a new name.
/// FIFOs, sockets and devices inside a tree are skipped.
pub(crate) fn copy_tree<P: rustix::path::Arg + Copy, Q: rustix::path::Arg + Copy>(
    src_dir: BorrowedFd<'_>,
    src_name: P,
    dst_dir: BorrowedFd<'_>,
    dst_name: Q,
    owner: Option<(u32, u32)>,
    depth: usize,
) -> Result<(), Errno> {
    let st = rfs::statat(src_dir, src_name, AtFlags::SYMLINK_NOFOLLOW)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => copy_file(src_dir, src_name, dst_dir, dst_name, owner).map(drop),
        FileType::Symlink => {
            let target = rfs::readlinkat(src_dir, src_name, Vec::new())?;
            rfs::symlinkat(target.as_c_str(), dst_dir, dst_name)?;
            if let Some((u, g)) = owner {
                rfs::chownat(
                    dst_dir,
                    dst_name,
                    Some(rfs::Uid::from_raw(u)),
                    Some(rfs::Gid::from_raw(g)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            Ok(())
        }
        FileType::Directory => {
            if depth >= MAX_WALK_DEPTH {
                return Err(Errno::LOOP);
            }
            rfs::mkdirat(dst_dir, dst_name, Mode::from_raw_mode(0o755))?;
            let dst = rfs::openat(dst_dir, dst_name, dir_flags(), Mode::empty())?;
            chown_fd(&dst, owner)?;
            let src = rfs::openat(src_dir, src_name, dir_flags(), Mode::empty())?;
            for name in list_names(src.as_fd())? {
                let n = bytes_arg(&name);
                copy_tree(src.as_fd(), n, dst.as_fd(), n, owner, depth + 1)?;
            }
            rfs::fsync(&dst)
        }
        _ => Ok(()),
    }
}

/// Copies the open regular file `src` into a new temporary file in `dir`, a fresh inode that
/// only this process has ever opened, so no descriptor held elsewhere (by a sandboxed program)
/// can change the result: a reflink (`FICLONE`, shared copy-on-write extents on btrfs/xfs)
/// where the filesystem has it, else a byte copy (`copy_file_range`). Its data is being written
/// out when this returns: the caller waits for that with [`crate::writeback::write_out`] on the
/// returned descriptor, and the copy is durable once the caller then `fsync`s a directory on
/// the same filesystem, which every caller does next. With `mode`, the copy gets exactly those
/// permission bits (else 0600). Returns the temporary's name, the size and the open copy; the
/// caller renames it into place (a crash leaves only a temporary, which the sweeps remove).
pub(crate) fn copy_to_temp(
    src: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    mode: Option<u32>,
) -> Result<(String, u64, OwnedFd), Errno> {
    let tmp = temp_name();
    let wflags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let create_mode = mode.map_or(0o600, |m| m & 0o777);
    let dst = rfs::openat(dir, tmp.as_str(), wflags, Mode::from_raw_mode(create_mode))?;
    let result = (|| {
        if let Some(m) = mode {
            // The create mode is filtered by the umask; the copy keeps the exact bits.
            rfs::fchmod(&dst, Mode::from_raw_mode(m & 0o777))?;
        }
        if rfs::ioctl_ficlone(&dst, src).is_err() {
            // EOPNOTSUPP (ext4, tmpfs), EXDEV, EINVAL (unaligned tail on some filesystems):
            // all mean "copy the bytes".
            copy_bytes(src, dst.as_fd())?;
        }
        crate::writeback::start(dst.as_fd());
        Ok(size_of(&rfs::fstat(&dst)?))
    })();
    match result {
        Ok(size) => Ok((tmp, size, dst)),
        Err(e) => {
            let _ = rfs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
            Err(e)
        }
    }
}

/// Copies all bytes of `src` (from offset 0, whatever its file position) to the empty `dst`.
fn copy_bytes(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), Errno> {
    const CHUNK: usize = 1 << 20;
    let (mut off_in, mut off_out) = (0u64, 0u64);
    loop {
        match rfs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), CHUNK) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            // Not supported between these files (old kernels, some filesystems): read/write.
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) if off_out == 0 => {
                return copy_bytes_rw(src, dst)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Plain `pread`/`write` copy, the fallback of [`copy_bytes`].
fn copy_bytes_rw(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    loop {
        let n = match rustix::io::pread(src, &mut buf, off) {
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        let mut done = 0;
        while done < n {
            match rustix::io::write(dst, &buf[done..n]) {
                Ok(w) => done += w,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        off += n as u64;
    }
}

/// Moves an entry between directories. With `no_replace` an existing target is `EEXIST`.
/// Across filesystems (tree and meta on different mounts) it falls back to copy + remove.
pub(crate) fn move_entry(
    src_dir: BorrowedFd<'_>,
    src_name: &str,
    dst_dir: BorrowedFd<'_>,
    dst_name: &str,
    no_replace: bool,
    owner: Option<(u32, u32)>,
) -> Result<(), Errno> {
    let flags = if no_replace {
        RenameFlags::NOREPLACE
    } else {
        RenameFlags::empty()
    };
    match rfs::renameat_with(src_dir, src_name, dst_dir, dst_name, flags) {
        Err(Errno::XDEV) => {
            if !no_replace {
                match remove_tree(dst_dir, dst_name) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e),
                }
            }
            copy_tree(src_dir, src_name, dst_dir, dst_name, owner, 0)?;
            remove_tree(src_dir, src_name)
        }
        other => other,
    }
}

/// Writes a small file atomically (temp + fsync + rename) in a private meta directory.
pub(crate) fn write_small(dir: BorrowedFd<'_>, name: &str, data: &[u8]) -> Result<(), Errno> {
    let (fd, tmp) = create_temp(dir, None)?;
    let result = (|| {
        let mut f = std::fs::File::from(fd);
        f.write_all(data).map_err(|e| io_errno(&e))?;
        rfs::fdatasync(&f)?;
        rfs::renameat(dir, tmp.as_str(), dir, name)
    })();
    if result.is_err() {
        let _ = rfs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    }
    result
}

/// Reads a small file (at most `max` bytes) from a private meta directory.
pub(crate) fn read_small(dir: BorrowedFd<'_>, name: &str, max: u64) -> Result<Vec<u8>, Errno> {
    let (fd, _) = open_regular(dir, name)?;
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(max)
        .read_to_end(&mut buf)
        .map_err(|e| io_errno(&e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Resolver = fn(BorrowedFd<'_>, &[&str]) -> Result<OwnedFd, Errno>;

    /// The openat2 path and the component-walk fallback refuse links the same way.
    #[test]
    fn both_resolvers_refuse_symlinks_anywhere() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("real/sub")).unwrap();
        std::os::unix::fs::symlink("real", d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("real/etc")).unwrap();
        let root = rfs::open(d.path(), dir_flags(), Mode::empty()).unwrap();
        let resolvers: [Resolver; 2] = [open_dir, walk_dirs];
        for resolve in resolvers {
            assert!(resolve(root.as_fd(), &["real", "sub"]).is_ok());
            assert!(resolve(root.as_fd(), &[]).is_ok());
            for bad in [
                &["link"][..],
                &["link", "sub"],
                &["real", "etc"],
                &["real", "etc", "ssh"],
            ] {
                let e = resolve(root.as_fd(), bad).unwrap_err();
                assert!(matches!(e, Errno::LOOP | Errno::NOTDIR), "{bad:?}: {e:?}");
            }
            assert_eq!(resolve(root.as_fd(), &["nope"]).unwrap_err(), Errno::NOENT);
        }
    }

    #[test]
    fn copy_tree_never_follows_links_and_remove_tree_removes_only_links() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"k").unwrap();
        std::fs::create_dir_all(d.path().join("src/inner")).unwrap();
        std::fs::write(d.path().join("src/inner/f"), b"data").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("src/out")).unwrap();
        let root = rfs::open(d.path(), dir_flags(), Mode::empty()).unwrap();
        copy_tree(root.as_fd(), "src", root.as_fd(), "dst", None, 0).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("dst/inner/f")).unwrap(),
            b"data"
        );
        let link = std::fs::symlink_metadata(d.path().join("dst/out")).unwrap();
        assert!(link.file_type().is_symlink());
        remove_tree(root.as_fd(), "dst").unwrap();
        remove_tree(root.as_fd(), "src").unwrap();
        assert_eq!(std::fs::read(outside.path().join("keep")).unwrap(), b"k");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
