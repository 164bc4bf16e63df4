//! One user's workspace: reads (lock-free) and the structural operations (mkdir, rename, copy,
//! delete, trash, history). File writes live in `write.rs`.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use rustix::fs::{self as rfs, FileType, Mode, Stat};
use rustix::io::Errno;

use crate::error::map_errno;
use crate::path::{normalize_path, validate_entry_path, validate_path};
use crate::sys::{self, kind_of, size_of};
use crate::trash::{self, Manifest};
use crate::version::{mtime_ms, system_time_ms, version_of, MonoClock};
use crate::{history, Entry, EntryKind, FsError, Limits, TrashItem, Usage, VersionInfo};

/// One workspace: a visible tree plus private history and trash. Shared via `Arc`.
#[derive(Debug)]
pub struct Workspace {
    pub(crate) tree: OwnedFd,
    pub(crate) history: OwnedFd,
    pub(crate) trash: OwnedFd,
    pub(crate) owner: Option<(u32, u32)>,
    pub(crate) limits: Limits,
    /// The write lock; it also guards the incremental usage counters.
    pub(crate) state: Arc<Mutex<Counters>>,
    pub(crate) clock: MonoClock,
    /// The tag of the last [`Workspace::rescan_once`].
    pub(crate) last_rescan: Mutex<Option<String>>,
}

/// The usage counters kept under the write lock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    /// The visible tree (tracked per operation, recomputed by `rescan`).
    pub(crate) tree: Usage,
    /// The trash: the sum of its manifests (sealed items cannot grow behind our back).
    pub(crate) trash: Usage,
    /// A trash entry being restored: never purged to make room (for its own parents).
    pub(crate) pinned: Option<String>,
}

/// `a + b`, saturating.
pub(crate) fn plus(a: Usage, b: Usage) -> Usage {
    Usage {
        bytes: a.bytes.saturating_add(b.bytes),
        entries: a.entries.saturating_add(b.entries),
    }
}

/// `a - b`, saturating at zero.
pub(crate) fn minus(a: Usage, b: Usage) -> Usage {
    Usage {
        bytes: a.bytes.saturating_sub(b.bytes),
        entries: a.entries.saturating_sub(b.entries),
    }
}

/// Builds the public entry for `path` from a no-follow stat (`None` for FIFOs etc.).
pub(crate) fn entry_from_stat(path: String, st: &Stat) -> Option<Entry> {
    let kind = kind_of(st)?;
    let (version, mime, size) = match kind {
        EntryKind::File => (Some(version_of(st)), Some(mime_type(&path)), size_of(st)),
        EntryKind::Dir => (None, None, 0),
        EntryKind::Symlink => (None, None, size_of(st)),
    };
    Some(Entry {
        path,
        kind,
        size,
        mtime_ms: mtime_ms(st),
        version,
        mime,
    })
}

/// The MIME type of a file named `path`, guessed from its name: what listings, reads and
/// version reads all report (mime_guess says `text/plain` for Python; the IDE wants
/// `text/x-python`). `application/octet-stream` when the name says nothing.
pub fn mime_type(path: &str) -> String {
    if path.ends_with(".py") {
        return "text/x-python".to_owned();
    }
    mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_owned()
}

/// Refuses anything but a regular file at `path` for content operations.
pub(crate) fn require_file(path: &str, st: &Stat) -> Result<(), FsError> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Directory => Err(FsError::IsADirectory(path.to_owned())),
        FileType::Symlink => Err(symlink_error(path)),
        _ => Err(FsError::InvalidPath(format!("{path}: not a regular file"))),
    }
}

/// The error for an operation that would go through the symlink at `path`.
pub(crate) fn symlink_error(path: &str) -> FsError {
    FsError::InvalidPath(format!(
        "{path}: is a symbolic link (links inside a workspace are never followed)"
    ))
}

/// Current version of a stat if it is a file (for `Conflict` replies).
pub(crate) fn file_version(st: &Stat) -> Option<String> {
    (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile).then(|| version_of(st))
}

impl Workspace {
    pub(crate) fn new(
        tree: OwnedFd,
        history: OwnedFd,
        trash: OwnedFd,
        owner: Option<(u32, u32)>,
        limits: Limits,
        counters: Counters,
    ) -> Self {
        Workspace {
            tree,
            history,
            trash,
            owner,
            limits,
            state: Arc::new(Mutex::new(counters)),
            clock: MonoClock::default(),
            last_rescan: Mutex::new(None),
        }
    }

    /// Takes the write lock (a poisoned lock is still usable: counters are plain numbers).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Counters> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns a resolution failure into a precise error: which component is a link or a file.
    pub(crate) fn explain(&self, e: Errno, comps: &[&str], path: &str) -> FsError {
        if matches!(e, Errno::LOOP | Errno::NOTDIR | Errno::XDEV) {
            if let Ok(mut cur) = sys::open_dir(self.tree.as_fd(), &[]) {
                for (i, c) in comps.iter().enumerate() {
                    let prefix = comps[..=i].join("/");
                    match sys::lstat(cur.as_fd(), *c) {
                        Ok(Some(st)) => match FileType::from_raw_mode(st.st_mode) {
                            FileType::Symlink => return symlink_error(&prefix),
                            FileType::Directory => {
                                match rfs::openat(&cur, *c, sys::dir_flags(), Mode::empty()) {
                                    Ok(fd) => cur = fd,
                                    Err(_) => break,
                                }
                            }
                            _ => return FsError::NotADirectory(prefix),
                        },
                        _ => break,
                    }
                }
            }
        }
        map_errno(e, path)
    }

    /// Opens the directory `comps` (refusing links and non-directories with a clear error).
    pub(crate) fn open_dir(&self, comps: &[&str], path: &str) -> Result<OwnedFd, FsError> {
        sys::open_dir(self.tree.as_fd(), comps).map_err(|e| self.explain(e, comps, path))
    }

    /// Opens the parent directory of an entry path; returns it with the final name.
    pub(crate) fn parent<'p>(
        &self,
        comps: &[&'p str],
        path: &str,
    ) -> Result<(OwnedFd, &'p str), FsError> {
        let (name, parent) = comps
            .split_last()
            .ok_or_else(|| FsError::InvalidPath("empty path".into()))?;
        Ok((self.open_dir(parent, path)?, name))
    }

    /// Opens the directory `comps`, creating missing components (owned by the owner) after
    /// checking that they plus `extra` further entries fit the entry quota (making room in the
    /// trash if needed). Caller holds the write lock and passes its counters.
    pub(crate) fn ensure_dirs(
        &self,
        c: &mut Counters,
        comps: &[&str],
        path: &str,
        extra: u64,
    ) -> Result<OwnedFd, FsError> {
        self.ensure_dirs_tracked(c, comps, path, extra, None)
    }

    /// [`Self::ensure_dirs`], also recording each directory it created as (parent, name), in
    /// creation order, so that a write that never commits can take them away again.
    pub(crate) fn ensure_dirs_tracked(
        &self,
        c: &mut Counters,
        comps: &[&str],
        path: &str,
        extra: u64,
        mut track: Option<&mut Vec<(OwnedFd, String)>>,
    ) -> Result<OwnedFd, FsError> {
        let mut cur = sys::open_dir(self.tree.as_fd(), &[]).map_err(|e| map_errno(e, path))?;
        let mut i = 0;
        while i < comps.len() {
            match rfs::openat(&cur, comps[i], sys::dir_flags(), Mode::empty()) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT) => break,
                Err(e) => return Err(self.explain(e, &comps[..=i], path)),
            }
            i += 1;
        }
        let missing = (comps.len() - i) as u64;
        if missing > 0 {
            let add = Usage {
                bytes: 0,
                entries: missing + extra,
            };
            self.make_room(c, c.tree, add)?;
        }
        while i < comps.len() {
            let created = match rfs::mkdirat(&cur, comps[i], Mode::from_raw_mode(0o755)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(map_errno(e, path)),
            };
            let fd = rfs::openat(&cur, comps[i], sys::dir_flags(), Mode::empty())
                .map_err(|e| self.explain(e, &comps[..=i], path))?;
            if created {
                sys::chown_fd(&fd, self.owner).map_err(|e| map_errno(e, path))?;
                rfs::fsync(&cur).map_err(|e| map_errno(e, path))?;
                c.tree.entries += 1;
            }
            let parent = std::mem::replace(&mut cur, fd);
            if let (true, Some(t)) = (created, track.as_deref_mut()) {
                t.push((parent, comps[i].to_owned()));
            }
            i += 1;
        }
        Ok(cur)
    }

    /// Checks that adding `add` to the tree usage `tree` (what the caller computed under the
    /// lock) keeps the workspace within its quota with the trash counted too. The trash never
    /// blocks a save: when the tree alone has room, the oldest trash entries are purged (oldest
    /// first, only as many as needed) to make it. Caller holds the write lock.
    pub(crate) fn make_room(
        &self,
        c: &mut Counters,
        tree: Usage,
        add: Usage,
    ) -> Result<(), FsError> {
        self.check_quota(&tree, add)?;
        let fits = |trash: Usage| {
            let total = plus(plus(tree, trash), add);
            total.bytes <= self.limits.quota_bytes && total.entries <= self.limits.max_entries
        };
        if fits(c.trash) {
            return Ok(());
        }
        let items = trash::list(self.trash.as_fd()).map_err(|e| map_errno(e, "trash"))?;
        for (id, m) in items.iter().rev() {
            if c.pinned.as_deref() == Some(id.as_str()) {
                continue;
            }
            trash::remove(self.trash.as_fd(), id).map_err(|e| map_errno(e, "trash"))?;
            c.trash = minus(c.trash, m.usage());
            if fits(c.trash) {
                return Ok(());
            }
        }
        // Everything purgeable is gone: what is left of the count was never in a manifest
        // (or is the pinned entry, which is already out of the count while it is restored).
        c.trash = Usage::default();
        Ok(())
    }

    /// Checks that adding `add` keeps the tree within its quota (the trash not counted: used
    /// for early checks, and where the trash can be purged to make room).
    pub(crate) fn check_quota(&self, usage: &Usage, add: Usage) -> Result<(), FsError> {
        if usage.bytes.saturating_add(add.bytes) > self.limits.quota_bytes {
            return Err(FsError::QuotaExceeded(format!(
                "workspace is limited to {} bytes",
                self.limits.quota_bytes
            )));
        }
        if usage.entries.saturating_add(add.entries) > self.limits.max_entries {
            return Err(FsError::QuotaExceeded(format!(
                "at most {} files and directories per workspace",
                self.limits.max_entries
            )));
        }
        Ok(())
    }

    /// Entry for `name` in `dir` at `path`, or `NotFound`.
    pub(crate) fn stat_in(
        &self,
        dir: BorrowedFd<'_>,
        name: &str,
        path: &str,
    ) -> Result<Entry, FsError> {
        let st = sys::lstat(dir, name)
            .map_err(|e| map_errno(e, path))?
            .ok_or_else(|| FsError::NotFound(path.to_owned()))?;
        entry_from_stat(path.to_owned(), &st).ok_or_else(|| FsError::NotFound(path.to_owned()))
    }

    /// Lists `dir` (`""` = root), optionally recursively, sorted by path. Links are listed but
    /// not entered; listing a path that is a link fails with `InvalidPath`.
    pub fn list(&self, dir: &str, recursive: bool) -> Result<Vec<Entry>, FsError> {
        let dir: &str = &normalize_path(dir);
        let comps = validate_path(dir)?;
        let fd = self.open_dir(&comps, dir)?;
        let mut out = Vec::new();
        list_into(fd.as_fd(), dir, recursive, 0, &mut out).map_err(|e| map_errno(e, dir))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Metadata of one entry (`""` = the root directory).
    pub fn stat(&self, path: &str) -> Result<Entry, FsError> {
        let path: &str = &normalize_path(path);
        let comps = validate_path(path)?;
        if comps.is_empty() {
            let st = rfs::fstat(&self.tree).map_err(|e| map_errno(e, path))?;
            return entry_from_stat(String::new(), &st)
                .ok_or_else(|| FsError::NotFound(String::new()));
        }
        let (dir, name) = self.parent(&comps, path)?;
        self.stat_in(dir.as_fd(), name, path)
    }

    /// Opens a file for streaming; the entry describes exactly the opened inode.
    pub fn open_read(&self, path: &str) -> Result<(std::fs::File, Entry), FsError> {
        let path: &str = &normalize_path(path);
        let comps = validate_entry_path(path)?;
        let (dir, name) = self.parent(&comps, path)?;
        match sys::lstat(dir.as_fd(), name).map_err(|e| map_errno(e, path))? {
            None => return Err(FsError::NotFound(path.to_owned())),
            Some(st) => require_file(path, &st)?,
        }
        let (fd, st) = sys::open_regular(dir.as_fd(), name).map_err(|e| match e {
            Errno::INVAL => FsError::InvalidPath(format!("{path}: not a regular file")),
            e => self.explain(e, &comps, path),
        })?;
        let entry =
            entry_from_stat(path.to_owned(), &st).ok_or_else(|| FsError::NotFound(path.into()))?;
        Ok((std::fs::File::from(fd), entry))
    }

    /// Reads a whole file (up to `max_file_bytes`; larger files need [`Self::open_read`]).
    pub fn read(&self, path: &str) -> Result<(Vec<u8>, Entry), FsError> {
        let (file, entry) = self.open_read(path)?;
        let limit = self.limits.max_file_bytes;
        if entry.size > limit {
            return Err(FsError::TooLarge { limit });
        }
        let mut buf = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
        file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(FsError::TooLarge { limit });
        }
        Ok((buf, entry))
    }

    /// Creates a directory and any missing parents; an existing directory is fine.
    pub fn mkdir(&self, path: &str) -> Result<Entry, FsError> {
        let path: &str = &normalize_path(path);
        let comps = validate_entry_path(path)?;
        let mut c = self.lock();
        let (name, parent) = comps
            .split_last()
            .ok_or_else(|| FsError::InvalidPath(path.into()))?;
        let pfd = self.ensure_dirs(&mut c, parent, path, 1)?;
        if let Some(st) = sys::lstat(pfd.as_fd(), *name).map_err(|e| map_errno(e, path))? {
            return match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    entry_from_stat(path.into(), &st).ok_or_else(|| FsError::NotFound(path.into()))
                }
                FileType::Symlink => Err(symlink_error(path)),
                _ => Err(FsError::Conflict {
                    current_version: file_version(&st),
                }),
            };
        }
        let fd = self.ensure_dirs(&mut c, &comps, path, 0)?;
        drop(c);
        let st = rfs::fstat(&fd).map_err(|e| map_errno(e, path))?;
        entry_from_stat(path.into(), &st).ok_or_else(|| FsError::NotFound(path.into()))
    }

    /// Renames/moves an entry. An existing target is a `Conflict` unless `overwrite`, and only
    /// a file may be overwritten by a file (its old content goes to the target's history).
    /// Links may be renamed themselves but never renamed onto.
    pub fn rename(&self, from: &str, to: &str, overwrite: bool) -> Result<Entry, FsError> {
        let from: &str = &normalize_path(from);
        let to: &str = &normalize_path(to);
        let fc = validate_entry_path(from)?;
        let tc = validate_entry_path(to)?;
        if tc.len() > fc.len() && tc[..fc.len()] == fc[..] {
            return Err(FsError::InvalidPath(format!(
                "cannot move {from} into itself"
            )));
        }
        let mut c = self.lock();
        let (sdir, sname) = self.parent(&fc, from)?;
        let sst = sys::lstat(sdir.as_fd(), sname)
            .map_err(|e| map_errno(e, from))?
            .ok_or_else(|| FsError::NotFound(from.to_owned()))?;
        if fc == tc {
            drop(c);
            return self.stat(to);
        }
        let (tname, tparent) = tc
            .split_last()
            .ok_or_else(|| FsError::InvalidPath(to.into()))?;
        let tdir = self.ensure_dirs(&mut c, tparent, to, 0)?;
        match sys::lstat(tdir.as_fd(), *tname).map_err(|e| map_errno(e, to))? {
            None => {
                rfs::renameat_with(&sdir, sname, &tdir, *tname, rfs::RenameFlags::NOREPLACE)
                    .map_err(|e| map_errno(e, to))?;
            }
            Some(tst) => {
                let tkind = FileType::from_raw_mode(tst.st_mode);
                if tkind == FileType::Symlink {
                    return Err(symlink_error(to));
                }
                let both_files = tkind == FileType::RegularFile
                    && FileType::from_raw_mode(sst.st_mode) == FileType::RegularFile;
                if !overwrite || !both_files {
                    return Err(FsError::Conflict {
                        current_version: file_version(&tst),
                    });
                }
                history::save(
                    self.history.as_fd(),
                    to,
                    tdir.as_fd(),
                    tname,
                    &tst,
                    self.clock.next_ns(),
                    self.limits.history_keep,
                    None,
                )
                .map_err(|e| map_errno(e, to))?;
                rfs::renameat(&sdir, sname, &tdir, *tname).map_err(|e| map_errno(e, to))?;
                c.tree = minus(
                    c.tree,
                    Usage {
                        bytes: size_of(&tst),
                        entries: 1,
                    },
                );
            }
        }
        if FileType::from_raw_mode(sst.st_mode) == FileType::RegularFile {
            // The rename already happened; carrying history along is best effort (the old
            // versions stay listable under the old path if it fails).
            let _ = history::move_path(self.history.as_fd(), from, to, self.limits.history_keep);
        }
        drop(c);
        rfs::fsync(&sdir).map_err(|e| map_errno(e, from))?;
        rfs::fsync(&tdir).map_err(|e| map_errno(e, to))?;
        self.stat_in(tdir.as_fd(), tname, to)
    }

    /// Copies a file or a whole directory tree to a new path (`Conflict` if it exists). The
    /// quota is checked for the whole copy before anything is created; a tree is built under a
    /// hidden temporary name and renamed into place.
    pub fn copy(&self, from: &str, to: &str) -> Result<Entry, FsError> {
        let from: &str = &normalize_path(from);
        let to: &str = &normalize_path(to);
        let fc = validate_entry_path(from)?;
        let tc = validate_entry_path(to)?;
        if tc.len() > fc.len() && tc[..fc.len()] == fc[..] {
            return Err(FsError::InvalidPath(format!(
                "cannot copy {from} into itself"
            )));
        }
        let mut c = self.lock();
        let (sdir, sname) = self.parent(&fc, from)?;
        let sst = sys::lstat(sdir.as_fd(), sname)
            .map_err(|e| map_errno(e, from))?
            .ok_or_else(|| FsError::NotFound(from.to_owned()))?;
        match kind_of(&sst) {
            Some(EntryKind::Symlink) => return Err(symlink_error(from)),
            None => {
                return Err(FsError::InvalidPath(format!(
                    "{from}: not a regular file or directory"
                )))
            }
            _ => {}
        }
        let need = sys::count_entry(sdir.as_fd(), sname, &sst).map_err(|e| map_errno(e, from))?;
        if FileType::from_raw_mode(sst.st_mode) == FileType::RegularFile
            && need.bytes > self.limits.max_file_bytes
        {
            return Err(FsError::TooLarge {
                limit: self.limits.max_file_bytes,
            });
        }
        let (tname, tparent) = tc
            .split_last()
            .ok_or_else(|| FsError::InvalidPath(to.into()))?;
        // Check the whole copy (plus missing parents, which ensure_dirs checks) up front.
        self.check_quota(&c.tree, need)?;
        let tdir = self.ensure_dirs(&mut c, tparent, to, need.entries)?;
        if let Some(tst) = sys::lstat(tdir.as_fd(), *tname).map_err(|e| map_errno(e, to))? {
            return Err(FsError::Conflict {
                current_version: file_version(&tst),
            });
        }
        let tree = c.tree;
        self.make_room(&mut c, tree, need)?;
        let tmp = sys::temp_name();
        let result = sys::copy_tree(
            sdir.as_fd(),
            sname,
            tdir.as_fd(),
            tmp.as_str(),
            self.owner,
            0,
        )
        .and_then(|()| {
            if FileType::from_raw_mode(sst.st_mode) == FileType::RegularFile {
                let f = rfs::openat(
                    &tdir,
                    tmp.as_str(),
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                sys::set_mtime_ns(&f, self.clock.next_ns())?;
            }
            rfs::renameat_with(
                &tdir,
                tmp.as_str(),
                &tdir,
                *tname,
                rfs::RenameFlags::NOREPLACE,
            )
        });
        if let Err(e) = result {
            let _ = sys::remove_tree(tdir.as_fd(), &tmp);
            return Err(map_errno(e, to));
        }
        c.tree = plus(c.tree, need);
        drop(c);
        rfs::fsync(&tdir).map_err(|e| map_errno(e, to))?;
        self.stat_in(tdir.as_fd(), tname, to)
    }

    /// Moves a file, link or whole directory (empty or not) to the trash and seals it there
    /// (see the `trash` module notes): afterwards nothing a run holds can write into it.
    pub fn delete(&self, path: &str) -> Result<TrashItem, FsError> {
        let path: &str = &normalize_path(path);
        let comps = validate_entry_path(path)?;
        let mut c = self.lock();
        let (dir, name) = self.parent(&comps, path)?;
        let st = sys::lstat(dir.as_fd(), name)
            .map_err(|e| map_errno(e, path))?
            .ok_or_else(|| FsError::NotFound(path.to_owned()))?;
        let kind = kind_of(&st)
            .ok_or_else(|| FsError::InvalidPath(format!("{path}: not a file or directory")))?;
        let count = sys::count_entry(dir.as_fd(), name, &st).map_err(|e| map_errno(e, path))?;
        let manifest = Manifest {
            original_path: path.to_owned(),
            kind,
            size: count.bytes,
            entries: count.entries,
            deleted_at_ms: system_time_ms(SystemTime::now()),
            sealed: false,
        };
        let unique = u64::try_from(self.clock.next_ns()).unwrap_or(0);
        let (id, sealed) = trash::put(
            self.trash.as_fd(),
            dir.as_fd(),
            name,
            &manifest,
            unique,
            self.owner,
        )
        .map_err(|e| map_errno(e, path))?;
        // What left the tree is what was counted; what the trash holds is what was sealed
        // (a run may have added to the folder in between).
        c.tree = minus(c.tree, count);
        c.trash = plus(c.trash, sealed.usage());
        drop(c);
        rfs::fsync(&dir).map_err(|e| map_errno(e, path))?;
        Ok(sealed.item(&id, self.limits.trash_retention))
    }

    /// Saved versions of a file, newest first (empty if none).
    pub fn list_versions(&self, path: &str) -> Result<Vec<VersionInfo>, FsError> {
        let path: &str = &normalize_path(path);
        validate_entry_path(path)?;
        history::list(self.history.as_fd(), path).map_err(|e| map_errno(e, path))
    }

    /// The content of a saved version.
    pub fn read_version(&self, path: &str, version: &str) -> Result<Vec<u8>, FsError> {
        let (file, _) = self.open_version(path, version)?;
        let mut buf = Vec::new();
        file.take(self.limits.max_file_bytes.saturating_add(1))
            .read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Opens a saved version for streaming; returns the file and its size.
    pub fn open_version(&self, path: &str, version: &str) -> Result<(std::fs::File, u64), FsError> {
        let path: &str = &normalize_path(path);
        validate_entry_path(path)?;
        if !crate::version::is_version(version) {
            return Err(FsError::NotFound(format!("{path}@{version}")));
        }
        let (fd, st) = history::open_version(self.history.as_fd(), path, version)
            .map_err(|e| map_errno(e, &format!("{path}@{version}")))?;
        Ok((std::fs::File::from(fd), size_of(&st)))
    }

    /// Entries in the trash, newest first.
    pub fn trash_list(&self) -> Result<Vec<TrashItem>, FsError> {
        let items = trash::list(self.trash.as_fd()).map_err(|e| map_errno(e, "trash"))?;
        Ok(items
            .iter()
            .map(|(id, m)| m.item(id, self.limits.trash_retention))
            .collect())
    }

    /// Puts a trash entry back at its original path (or `to`); `Conflict` if that exists.
    /// The restored tree is owned by the workspace owner again.
    pub fn trash_restore(&self, trash_id: &str, to: Option<&str>) -> Result<Entry, FsError> {
        if !trash::is_trash_id(trash_id) {
            return Err(FsError::NotFound(format!("trash entry {trash_id}")));
        }
        let mut c = self.lock();
        let (td, m) = trash::open(self.trash.as_fd(), trash_id)
            .map_err(|e| map_errno(e, &format!("trash entry {trash_id}")))?;
        let target = normalize_path(to.unwrap_or(&m.original_path)).into_owned();
        let tc = validate_entry_path(&target)?;
        let (tname, tparent) = tc
            .split_last()
            .ok_or_else(|| FsError::InvalidPath(target.clone()))?;
        self.check_quota(&c.tree, m.usage())?;
        // The item moves from the trash to the tree: while room is made for it (new parent
        // directories), it must neither count twice nor be purged itself.
        c.trash = minus(c.trash, m.usage());
        c.pinned = Some(trash_id.to_owned());
        let moved = self.restore_locked(&mut c, &td, &m, &target, tname, tparent);
        c.pinned = None;
        match moved {
            Ok(tdir) => {
                c.tree = plus(c.tree, m.usage());
                drop(c);
                rfs::fsync(&tdir).map_err(|e| map_errno(e, &target))?;
                // The item is back; a leftover manifest dir is harmless and purged later.
                let _ = sys::remove_tree(self.trash.as_fd(), trash_id);
                self.stat_in(tdir.as_fd(), tname, &target)
            }
            Err(e) => {
                c.trash = plus(c.trash, m.usage());
                Err(e)
            }
        }
    }

    /// The locked part of [`Self::trash_restore`]: parents, the move, the hand-back.
    fn restore_locked(
        &self,
        c: &mut Counters,
        td: &OwnedFd,
        m: &Manifest,
        target: &str,
        tname: &str,
        tparent: &[&str],
    ) -> Result<OwnedFd, FsError> {
        let tdir = self.ensure_dirs(c, tparent, target, m.entries)?;
        if let Some(tst) = sys::lstat(tdir.as_fd(), tname).map_err(|e| map_errno(e, target))? {
            return Err(FsError::Conflict {
                current_version: file_version(&tst),
            });
        }
        self.make_room(c, c.tree, m.usage())?;
        sys::move_entry(
            td.as_fd(),
            trash::ITEM,
            tdir.as_fd(),
            tname,
            true,
            self.owner,
        )
        .map_err(|e| map_errno(e, target))?;
        // The item is back in the tree: from here on a failure must not report the restore as
        // failed. Best effort: what is left server-owned is handed to the student's uid by the
        // ownership pass before their next run anyway.
        let _ = trash::unseal(tdir.as_fd(), tname, self.owner, 0);
        Ok(tdir)
    }

    /// Removes trash entries deleted at least `trash_retention` before `now`; returns how many.
    pub fn purge_expired(&self, now: SystemTime) -> Result<u64, FsError> {
        let keep_ms = i64::try_from(self.limits.trash_retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = system_time_ms(now).saturating_sub(keep_ms);
        let mut c = self.lock();
        let purged = trash::purge(self.trash.as_fd(), cutoff).map_err(|e| map_errno(e, "trash"))?;
        if purged > 0 {
            c.trash = trash::usage(self.trash.as_fd()).map_err(|e| map_errno(e, "trash"))?;
        }
        Ok(purged)
    }

    /// Current (incrementally tracked) usage of the tree.
    pub fn usage(&self) -> Usage {
        self.lock().tree
    }

    /// Space held by the trash (it counts against the quota together with the tree).
    pub fn trash_usage(&self) -> Usage {
        self.lock().trash
    }

    /// Recomputes usage by walking the tree (after sandboxed code changed it directly).
    pub fn rescan(&self) -> Result<Usage, FsError> {
        let mut c = self.lock();
        let fresh = sys::count_dir(self.tree.as_fd(), 0, false).map_err(|e| map_errno(e, ""))?;
        c.tree = fresh;
        Ok(fresh)
    }

    /// Like [`Workspace::rescan`], but only once per `tag` (e.g. a run id seen
    /// by several connections): returns `None` when `tag` was the last one done.
    pub fn rescan_once(&self, tag: &str) -> Result<Option<Usage>, FsError> {
        {
            let mut last = self.last_rescan.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_deref() == Some(tag) {
                return Ok(None);
            }
            *last = Some(tag.to_string());
        }
        self.rescan().map(Some)
    }

    /// The limits of this workspace.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Appends the entries of `dir` (at workspace path `prefix`) to `out`, descending into real
/// directories (never links) when `recursive`.
fn list_into(
    dir: BorrowedFd<'_>,
    prefix: &str,
    recursive: bool,
    depth: usize,
    out: &mut Vec<Entry>,
) -> Result<(), Errno> {
    for raw in sys::list_names(dir)? {
        let name = String::from_utf8_lossy(&raw).into_owned();
        let Some(st) = sys::lstat(dir, sys::bytes_arg(&raw))? else {
            continue; // vanished since readdir
        };
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if let Some(e) = entry_from_stat(path.clone(), &st) {
            out.push(e);
        }
        if recursive && is_dir && depth < sys::MAX_WALK_DEPTH {
            if let Ok(sub) = rfs::openat(dir, sys::bytes_arg(&raw), sys::dir_flags(), Mode::empty())
            {
                list_into(sub.as_fd(), &path, recursive, depth + 1, out)?;
            }
        }
    }
    Ok(())
}
