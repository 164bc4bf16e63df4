//! The trash, under `meta_root/<key>/trash/`: one directory per deleted entry holding
//! `manifest.json` (original path, kind, size, entry count, deletion time) and `item` (the
//! file, link or whole directory tree, moved there by rename).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::fs::{self as rfs, Mode};
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

/// Moves `name` in `dir` into the trash with `manifest`; returns the new trash id.
/// The manifest is written first, so a crash never leaves an item without one.
pub(crate) fn put(
    trash: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &str,
    manifest: &Manifest,
    unique: u64,
) -> Result<String, Errno> {
    let id = format!("{:013}-{unique:x}", manifest.deleted_at_ms.max(0));
    rfs::mkdirat(trash, id.as_str(), Mode::from_raw_mode(0o700))?;
    let td = rfs::openat(trash, id.as_str(), sys::dir_flags(), Mode::empty())?;
    let json = serde_json::to_vec(manifest).map_err(|_| Errno::INVAL)?;
    let result = sys::write_small(td.as_fd(), MANIFEST, &json)
        .and_then(|()| sys::move_entry(dir, name, td.as_fd(), ITEM, true, None))
        .and_then(|()| rfs::fsync(&td))
        .and_then(|()| rfs::fsync(trash));
    if result.is_err() {
        let _ = sys::remove_tree(trash, &id);
    }
    result.map(|()| id)
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
