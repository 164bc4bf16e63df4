//! The trash, under `meta_root/<key>/trash/`: one directory per deleted entry holding
//! `manifest.json` (original path, kind, size, entry count, deletion time) and `item` (the
//! file, link or whole directory tree).
//!
//! # Sealing
//! A delete moves the entry into the trash by rename (atomic: it leaves the tree in one step),
//! but a sandboxed program may still hold what it had: its working directory inside a deleted
//! folder, a directory descriptor, or an open file. Each of those names the same inode after
//! the move, so without more it could keep writing into the trash (unbounded by the quota and
//! behind the manifest's back). [`put`] therefore *seals* the moved item before it counts:
//! - every directory is taken from the student's uid (chowned to the server's uid, mode 0700),
//!   top-down and before it is listed, so once a directory is listed nothing can be created,
//!   renamed or linked in it any more (runs execute as the per-student uid without
//!   capabilities, so DAC is the barrier); a held cwd or directory descriptor then gets
//!   `EACCES` for every lookup and create;
//! - every regular file is replaced by a copy (a fresh inode, see [`sys::copy_to_temp`]): a run's
//!   open descriptor keeps pointing at the old, now unlinked inode, whose writes reach nothing
//!   the server keeps (its space is freed when the run closes it);
//! - FIFOs and sockets are dropped; links stay (nothing can be written through a link).
//!
//! The manifest is then rewritten with the sealed item's real size and marked `sealed`. An
//! entry found unsealed (a crash mid-delete) is sealed again when the workspace is opened.
//! Restoring hands the tree back to the workspace owner (directories 0755).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::sys;
use crate::{EntryKind, TrashItem, Usage};

/// Name of the moved entry inside a trash directory.
pub(crate) const ITEM: &str = "item";
const MANIFEST: &str = "manifest.json";

/// What we remember about a deleted entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) original_path: String,
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    pub(crate) entries: u64,
    pub(crate) deleted_at_ms: i64,
    /// True once the item is out of reach of anything a run holds (see the module notes).
    #[serde(default)]
    pub(crate) sealed: bool,
}

impl Manifest {
    /// The usage this entry will add back when restored.
    pub(crate) fn usage(&self) -> Usage {
        Usage {
            bytes: self.size,
            entries: self.entries,
        }
    }

    /// The public view of this manifest.
    pub(crate) fn item(&self, id: &str, retention: Duration) -> TrashItem {
        let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        TrashItem {
            trash_id: id.to_owned(),
            original_path: self.original_path.clone(),
            kind: self.kind,
            size: self.size,
            deleted_at_ms: self.deleted_at_ms,
            expires_at_ms: self.deleted_at_ms.saturating_add(keep_ms),
        }
    }
}

/// True for strings shaped like the trash ids we generate (digits, `-`, lowercase hex).
pub(crate) fn is_trash_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_digit()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || (b'a'..=b'f').contains(&b))
}

/// Moves `name` in `dir` into the trash with `manifest` and seals it; returns the new trash id
/// and the final manifest (its size and entry count are those of the sealed item). The manifest
/// is written first, so a crash never leaves an item without one. When sealing fails the item
/// is moved back (to `name`, owned by `owner` again) and the error returned.
pub(crate) fn put(
    trash: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &str,
    manifest: &Manifest,
    unique: u64,
    owner: Option<(u32, u32)>,
) -> Result<(String, Manifest), Errno> {
    let keeper = keeper(trash)?;
    let id = format!("{:013}-{unique:x}", manifest.deleted_at_ms.max(0));
    rfs::mkdirat(trash, id.as_str(), Mode::from_raw_mode(0o700))?;
    let td = rfs::openat(trash, id.as_str(), sys::dir_flags(), Mode::empty())?;
    let json = serde_json::to_vec(manifest).map_err(|_| Errno::INVAL)?;
    let moved = sys::write_small(td.as_fd(), MANIFEST, &json)
        .and_then(|()| sys::move_entry(dir, name, td.as_fd(), ITEM, true, None));
    if let Err(e) = moved {
        let _ = sys::remove_tree(trash, &id);
        return Err(e);
    }
    let sealed = seal(td.as_fd(), ITEM, keeper, 0).and_then(|usage| {
        let m = Manifest {
            size: usage.bytes,
            entries: usage.entries,
            sealed: true,
            ..manifest.clone()
        };
        let json = serde_json::to_vec(&m).map_err(|_| Errno::INVAL)?;
        sys::write_small(td.as_fd(), MANIFEST, &json)?;
        rfs::fsync(&td)?;
        rfs::fsync(trash)?;
        Ok(m)
    });
    match sealed {
        Ok(m) => Ok((id, m)),
        Err(e) => {
            // Give it back rather than keep an unsealed item; if even that fails it stays in
            // the trash unsealed and is sealed on the next open.
            let back = sys::move_entry(td.as_fd(), ITEM, dir, name, true, None)
                .and_then(|()| unseal(dir, name, owner, 0));
            if back.is_ok() {
                let _ = sys::remove_tree(trash, &id);
            }
            Err(e)
        }
    }
}

/// The uid and gid the server runs as (the owner of the private meta tree).
fn keeper(trash: BorrowedFd<'_>) -> Result<(u32, u32), Errno> {
    let st = rfs::fstat(trash)?;
    Ok((st.st_uid, st.st_gid))
}

/// Copies whose writes are in flight before [`seal`] waits for them: the writes of many small
/// files overlap, and at most this many descriptors are held.
const WRITE_BATCH: usize = 64;

/// Seals `name` in `dir` (see the module notes); returns the usage of what was kept. The
/// copies' data has reached the device when it returns; the caller's directory fsync makes
/// them durable.
fn seal(dir: BorrowedFd<'_>, name: &str, keeper: (u32, u32), depth: usize) -> Result<Usage, Errno> {
    let mut in_flight = Vec::new();
    let usage = seal_c(
        dir,
        sys::bytes_arg(name.as_bytes()),
        keeper,
        depth,
        &mut in_flight,
    )?;
    wait_written(&mut in_flight)?;
    Ok(usage)
}

/// Waits until the copies in `in_flight` are written out, and closes them.
fn wait_written(in_flight: &mut Vec<OwnedFd>) -> Result<(), Errno> {
    for fd in in_flight.drain(..) {
        crate::writeback::write_out(fd.as_fd())?;
    }
    Ok(())
}

fn seal_c(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    keeper: (u32, u32),
    depth: usize,
    in_flight: &mut Vec<OwnedFd>,
) -> Result<Usage, Errno> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let (uid, gid) = keeper;
    let ids = (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)));
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            if depth >= sys::MAX_WALK_DEPTH {
                return Err(Errno::LOOP);
            }
            // The parent is sealed already (or is ours), so `name` cannot be swapped for a
            // link between the stat and this open; O_NOFOLLOW refuses one anyway.
            let fd = rfs::openat(dir, name, sys::dir_flags(), Mode::empty())?;
            // Lock first, list after: whatever a run created before this point is listed
            // below, and nothing can be created once the mode is ours.
            rfs::fchown(&fd, ids.0, ids.1)?;
            rfs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
            sys::remove_temps(fd.as_fd())?;
            let mut usage = Usage {
                bytes: 0,
                entries: 1,
            };
            for child in sys::list_names(fd.as_fd())? {
                let u = seal_c(
                    fd.as_fd(),
                    sys::bytes_arg(&child),
                    keeper,
                    depth + 1,
                    in_flight,
                )?;
                usage.bytes += u.bytes;
                usage.entries += u.entries;
            }
            Ok(usage)
        }
        FileType::RegularFile => {
            let flags = OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | OFlags::NONBLOCK
                | OFlags::NOCTTY;
            let src = rfs::openat(dir, name, flags, Mode::empty())?;
            let (tmp, size, copy) = sys::copy_to_temp(src.as_fd(), dir, Some(st.st_mode))?;
            in_flight.push(copy);
            if in_flight.len() >= WRITE_BATCH {
                wait_written(in_flight)?;
            }
            // Replace the original by its copy: a descriptor a run still holds now refers to
            // an unlinked inode.
            if let Err(e) = rfs::renameat(dir, tmp.as_str(), dir, name) {
                let _ = rfs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
                return Err(e);
            }
            Ok(Usage {
                bytes: size,
                entries: 1,
            })
        }
        FileType::Symlink => {
            rfs::chownat(dir, name, ids.0, ids.1, AtFlags::SYMLINK_NOFOLLOW)?;
            Ok(Usage {
                bytes: 0,
                entries: 1,
            })
        }
        // FIFOs, sockets, devices made by sandboxed code: nothing to keep or restore.
        _ => {
            rfs::unlinkat(dir, name, AtFlags::empty())?;
            Ok(Usage::default())
        }
    }
}

/// Hands a restored tree back to the workspace: owned by `owner` (when set), directories 0755.
pub(crate) fn unseal(
    dir: BorrowedFd<'_>,
    name: &str,
    owner: Option<(u32, u32)>,
    depth: usize,
) -> Result<(), Errno> {
    unseal_c(dir, sys::bytes_arg(name.as_bytes()), owner, depth)
}

fn unseal_c(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    owner: Option<(u32, u32)>,
    depth: usize,
) -> Result<(), Errno> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let ids = owner.map(|(u, g)| (Some(rfs::Uid::from_raw(u)), Some(rfs::Gid::from_raw(g))));
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            if depth >= sys::MAX_WALK_DEPTH {
                return Err(Errno::LOOP);
            }
            let fd = rfs::openat(dir, name, sys::dir_flags(), Mode::empty())?;
            for child in sys::list_names(fd.as_fd())? {
                unseal_c(fd.as_fd(), sys::bytes_arg(&child), owner, depth + 1)?;
            }
            if let Some((u, g)) = ids {
                rfs::fchown(&fd, u, g)?;
            }
            rfs::fchmod(&fd, Mode::from_raw_mode(0o755))
        }
        _ => match ids {
            Some((u, g)) => rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
            None => Ok(()),
        },
    }
}

/// Seals entry `id` again if a crash interrupted its delete; returns its (updated) manifest.
pub(crate) fn reseal(trash: BorrowedFd<'_>, id: &str) -> Result<Manifest, Errno> {
    let (td, m) = open(trash, id)?;
    if m.sealed {
        return Ok(m);
    }
    let usage = seal(td.as_fd(), ITEM, keeper(trash)?, 0)?;
    let m = Manifest {
        size: usage.bytes,
        entries: usage.entries,
        sealed: true,
        ..m
    };
    let json = serde_json::to_vec(&m).map_err(|_| Errno::INVAL)?;
    sys::write_small(td.as_fd(), MANIFEST, &json)?;
    rfs::fsync(&td)?;
    Ok(m)
}

/// Removes leftover temporaries anywhere in the trash; returns how many.
pub(crate) fn sweep_temps(trash: BorrowedFd<'_>) -> Result<u64, Errno> {
    sys::sweep_temps(trash, 0)
}

/// Removes entry `id` for good (eviction to make room, or an expired purge).
pub(crate) fn remove(trash: BorrowedFd<'_>, id: &str) -> Result<(), Errno> {
    sys::remove_tree(trash, id)
}

/// Opens trash entry `id`: its directory and manifest. Entries whose item is gone are `NOENT`.
pub(crate) fn open(trash: BorrowedFd<'_>, id: &str) -> Result<(OwnedFd, Manifest), Errno> {
    let td = rfs::openat(trash, id, sys::dir_flags(), Mode::empty())?;
    let raw = sys::read_small(td.as_fd(), MANIFEST, 64 * 1024)?;
    let m: Manifest = serde_json::from_slice(&raw).map_err(|_| Errno::NOENT)?;
    if sys::lstat(td.as_fd(), ITEM)?.is_none() {
        return Err(Errno::NOENT);
    }
    Ok((td, m))
}

/// All trash entries (newest first) with their ids; unreadable leftovers are skipped.
pub(crate) fn list(trash: BorrowedFd<'_>) -> Result<Vec<(String, Manifest)>, Errno> {
    let mut out = Vec::new();
    for name in sys::list_names(trash)? {
        let Ok(id) = String::from_utf8(name) else {
            continue;
        };
        if !is_trash_id(&id) {
            continue;
        }
        match open(trash, &id) {
            Ok((_, m)) => out.push((id, m)),
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| {
        b.1.deleted_at_ms
            .cmp(&a.1.deleted_at_ms)
            .then(b.0.cmp(&a.0))
    });
    Ok(out)
}

/// Total usage of the trash: the sum of its manifests.
pub(crate) fn usage(trash: BorrowedFd<'_>) -> Result<Usage, Errno> {
    Ok(list(trash)?
        .iter()
        .fold(Usage::default(), |acc, (_, m)| Usage {
            bytes: acc.bytes.saturating_add(m.size),
            entries: acc.entries.saturating_add(m.entries),
        }))
}

/// Deletes trash entries older than `cutoff_ms` (and half-written ones); returns how many
/// complete entries were purged.
pub(crate) fn purge(trash: BorrowedFd<'_>, cutoff_ms: i64) -> Result<u64, Errno> {
    let mut purged = 0;
    for name in sys::list_names(trash)? {
        let Ok(id) = String::from_utf8(name) else {
            continue;
        };
        if !is_trash_id(&id) {
            continue;
        }
        let expired = match open(trash, &id) {
            Ok((_, m)) => {
                let old = m.deleted_at_ms <= cutoff_ms;
                purged += u64::from(old);
                old
            }
            // Manifest without item (crash mid-delete): drop it once it is old enough.
            Err(Errno::NOENT) => id
                .split('-')
                .next()
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| t <= cutoff_ms),
            Err(e) => return Err(e),
        };
        if expired {
            sys::remove_tree(trash, &id)?;
        }
    }
    Ok(purged)
}
