//! Atomic file writes: whole-buffer, streaming ([`PendingWrite`]) and version restores.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use rustix::fs::{self as rfs, AtFlags, Stat};
use rustix::io::Errno;

use crate::error::map_errno;
use crate::path::{normalize_path, validate_entry_path};
use crate::sys::{self, size_of};
use crate::version::version_of;
use crate::workspace::{entry_from_stat, file_version, plus, require_file, Counters};
use crate::{history, FsError, Precondition, Usage, Workspace, WriteOutcome};

/// A write being staged in a hidden temporary file next to its target.
#[derive(Debug)]
struct Staged {
    path: String,
    name: String,
    dir: OwnedFd,
    file: std::fs::File,
    /// Name of the temporary while it exists (None once committed or discarded).
    temp: Option<String>,
    pre: Precondition,
    written: u64,
    /// The length the caller announced up front (`Content-Length`), if any.
    declared: Option<u64>,
    /// Parent directories this write created, as (parent, name) in creation order: removed
    /// again (if still empty) when the write is discarded, so a write that never commits
    /// leaves nothing behind.
    created_dirs: Vec<(OwnedFd, String)>,
    /// The workspace's counters, to give back the entries of removed directories.
    counters: Arc<Mutex<Counters>>,
}

/// A streaming upload in progress. Chunks go to a hidden temporary file; [`Self::commit`]
/// re-checks the precondition and limits under the workspace lock and renames it into place.
///
/// Only an explicit `commit` with the byte count the caller saw (checked against the chunks
/// written and the declared length) changes the file. Every other ending, an error, a
/// cancelled task, a crash, drops it, and dropping it removes the temporary file.
#[derive(Debug)]
pub struct PendingWrite {
    ws: Arc<Workspace>,
    staged: Staged,
}

impl PendingWrite {
    /// Appends a chunk. Passing the per-file limit fails with `TooLarge` at once and removes
    /// the temporary file (every later call fails too).
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), FsError> {
        self.staged.push(&self.ws, chunk)
    }

    /// The body is complete with `total` bytes: makes the write visible atomically and
    /// durably and returns the new entry. Fails with `Incomplete` (and writes nothing) when
    /// `total` differs from the bytes written or from the length declared to `begin_write`.
    pub fn commit(self, total: u64) -> Result<WriteOutcome, FsError> {
        let PendingWrite { ws, staged } = self;
        let expected = staged.declared.unwrap_or(total);
        if total != staged.written || expected != total {
            return Err(FsError::Incomplete {
                expected,
                received: staged.written,
            });
        }
        staged.commit(&ws)
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.staged.written
    }

    /// The workspace path being written.
    pub fn path(&self) -> &str {
        &self.staged.path
    }
}

impl Staged {
    fn push(&mut self, ws: &Workspace, chunk: &[u8]) -> Result<(), FsError> {
        if self.temp.is_none() {
            return Err(FsError::Io(std::io::Error::other(
                "write was already aborted",
            )));
        }
        let limit = ws.limits.max_file_bytes;
        if self.written.saturating_add(chunk.len() as u64) > limit {
            self.discard();
            return Err(FsError::TooLarge { limit });
        }
        if let Err(e) = self.file.write_all(chunk) {
            self.discard();
            return Err(FsError::Io(e));
        }
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn commit(mut self, ws: &Workspace) -> Result<WriteOutcome, FsError> {
        let path = self.path.clone();
        let em = |e: Errno| map_errno(e, &path);
        let temp = self
            .temp
            .clone()
            .ok_or_else(|| FsError::Io(std::io::Error::other("write was already aborted")))?;
        // The history copy of what is there now, made before the lock: its data is written
        // out while the new content is synced below, instead of afterwards under the lock.
        let early = (self.pre != Precondition::CreateOnly)
            .then(|| history::prepare(ws.history.as_fd(), &path, self.dir.as_fd(), &self.name))
            .flatten();
        rfs::fdatasync(&self.file).map_err(em)?;
        // A strictly increasing mtime keeps two quick writes from ever sharing a version.
        sys::set_mtime_ns(&self.file, ws.clock.next_ns()).map_err(em)?;
        let created = {
            let mut c = ws.lock();
            let cur = sys::lstat(self.dir.as_fd(), self.name.as_str()).map_err(em)?;
            check_target(&path, cur.as_ref(), &self.pre)?;
            let old = cur.as_ref().map(size_of).unwrap_or(0);
            let base = Usage {
                bytes: c.tree.bytes.saturating_sub(old),
                entries: c.tree.entries,
            };
            let add = Usage {
                bytes: self.written,
                entries: u64::from(cur.is_none()),
            };
            ws.make_room(&mut c, base, add)?;
            match &cur {
                Some(st) => {
                    // Old content first goes to history (durably), then the swap.
                    history::save(
                        ws.history.as_fd(),
                        &path,
                        self.dir.as_fd(),
                        &self.name,
                        st,
                        ws.clock.next_ns(),
                        ws.limits.history_keep,
                        early,
                    )
                    .map_err(em)?;
                    rfs::renameat(&self.dir, temp.as_str(), &self.dir, self.name.as_str())
                        .map_err(em)?;
                }
                None => {
                    // NOREPLACE: a file created meanwhile by sandboxed code is not clobbered.
                    rfs::renameat_with(
                        &self.dir,
                        temp.as_str(),
                        &self.dir,
                        self.name.as_str(),
                        rfs::RenameFlags::NOREPLACE,
                    )
                    .map_err(em)?;
                }
            }
            self.temp = None;
            self.created_dirs.clear();
            c.tree = plus(base, add);
            cur.is_none()
        };
        rfs::fsync(&self.dir).map_err(em)?;
        let st = rfs::fstat(&self.file).map_err(em)?;
        let entry = entry_from_stat(path.clone(), &st).ok_or(FsError::NotFound(path))?;
        Ok(WriteOutcome { entry, created })
    }

    /// Removes the temporary file, if still present, and the directories made for it.
    fn discard(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = rfs::unlinkat(&self.dir, t.as_str(), AtFlags::empty());
            if self.created_dirs.is_empty() {
                return;
            }
            // Under the write lock, like the creation of every temporary: no other write is
            // between finding one of these directories and creating its temporary in it (one
            // past that point keeps the directory, which is then not empty).
            let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            remove_created(&mut c, &mut self.created_dirs);
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Removes the directories a write created (deepest first) while they are empty, giving back
/// their entries. Caller holds the write lock and passes its counters.
fn remove_created(c: &mut Counters, dirs: &mut Vec<(OwnedFd, String)>) {
    while let Some((parent, name)) = dirs.pop() {
        if rfs::unlinkat(&parent, name.as_str(), AtFlags::REMOVEDIR).is_err() {
            dirs.clear();
            return;
        }
        c.tree.entries = c.tree.entries.saturating_sub(1);
    }
}

/// Checks the current entry at a write target against the precondition.
fn check_target(path: &str, cur: Option<&Stat>, pre: &Precondition) -> Result<(), FsError> {
    if let Some(st) = cur {
        require_file(path, st)?;
    }
    match (pre, cur) {
        (Precondition::CreateOnly, Some(st)) => Err(FsError::Conflict {
            current_version: file_version(st),
        }),
        (Precondition::Match(_), None) => Err(FsError::Conflict {
            current_version: None,
        }),
        (Precondition::Match(v), Some(st)) if version_of(st) != *v => Err(FsError::Conflict {
            current_version: Some(version_of(st)),
        }),
        _ => Ok(()),
    }
}

impl Workspace {
    /// Checks limits and the precondition up front (nothing is created when they fail), makes
    /// missing parent directories, and opens the temporary file.
    fn stage(
        &self,
        path: &str,
        pre: Precondition,
        declared_len: Option<u64>,
    ) -> Result<Staged, FsError> {
        let path: &str = &normalize_path(path);
        let comps = validate_entry_path(path)?;
        let limit = self.limits.max_file_bytes;
        if declared_len.is_some_and(|n| n > limit) {
            return Err(FsError::TooLarge { limit });
        }
        let declared = declared_len.unwrap_or(0);
        let (name, parent) = comps
            .split_last()
            .ok_or_else(|| FsError::InvalidPath(path.into()))?;
        let mut created_dirs = Vec::new();
        let (dir, mut c) = match sys::open_dir(self.tree.as_fd(), parent) {
            Ok(dir) => {
                let cur = sys::lstat(dir.as_fd(), *name).map_err(|e| map_errno(e, path))?;
                if let Err(e) = check_target(path, cur.as_ref(), &pre) {
                    // This early check runs without the lock, and a concurrent rename can
                    // be seen before the kernel stamps its ctime: report the version
                    // another writer's commit settled on, read again under the lock.
                    let _settled = self.lock();
                    let now = sys::lstat(dir.as_fd(), *name).map_err(|e| map_errno(e, path))?;
                    check_target(path, now.as_ref(), &pre)?;
                    return Err(e);
                }
                let old = cur.as_ref().map(size_of).unwrap_or(0);
                let c = self.lock();
                let base = Usage {
                    bytes: c.tree.bytes.saturating_sub(old),
                    entries: c.tree.entries,
                };
                let add = Usage {
                    bytes: declared,
                    entries: u64::from(cur.is_none()),
                };
                self.check_quota(&base, add)?;
                (dir, c)
            }
            Err(Errno::NOENT) => {
                check_target(path, None, &pre)?;
                let mut c = self.lock();
                let add = Usage {
                    bytes: declared,
                    entries: 1,
                };
                self.check_quota(&c.tree, add)?;
                let made = self
                    .ensure_dirs_tracked(&mut c, parent, path, 1, Some(&mut created_dirs))
                    .and_then(|dir| self.check_quota(&c.tree, add).map(|()| dir));
                match made {
                    Ok(dir) => (dir, c),
                    Err(e) => {
                        remove_created(&mut c, &mut created_dirs);
                        return Err(e);
                    }
                }
            }
            Err(e) => return Err(self.explain(e, parent, path)),
        };
        // Still under the lock: a discarded write taking away directories it made (also under
        // the lock) can never remove one between our finding it and our temporary landing in
        // it.
        let (fd, temp) = match sys::create_temp(dir.as_fd(), self.owner) {
            Ok(t) => t,
            Err(e) => {
                remove_created(&mut c, &mut created_dirs);
                return Err(map_errno(e, path));
            }
        };
        drop(c);
        Ok(Staged {
            path: path.to_owned(),
            name: (*name).to_owned(),
            dir,
            file: std::fs::File::from(fd),
            temp: Some(temp),
            pre,
            written: 0,
            declared: declared_len,
            created_dirs,
            counters: Arc::clone(&self.state),
        })
    }

    /// Writes a whole file atomically under `pre`; the previous content goes to history.
    pub fn write(
        &self,
        path: &str,
        bytes: &[u8],
        pre: Precondition,
    ) -> Result<WriteOutcome, FsError> {
        let mut staged = self.stage(path, pre, Some(bytes.len() as u64))?;
        staged.push(self, bytes)?;
        staged.commit(self)
    }

    /// Starts a streaming write (HTTP PUT). A `declared_len` over the limit is `TooLarge`
    /// before anything is created; so are a failing precondition and an exhausted quota.
    pub fn begin_write(
        self: &Arc<Self>,
        path: &str,
        pre: Precondition,
        declared_len: Option<u64>,
    ) -> Result<PendingWrite, FsError> {
        let staged = self.stage(path, pre, declared_len)?;
        Ok(PendingWrite {
            ws: Arc::clone(self),
            staged,
        })
    }

    /// Makes a saved version current again; the current content goes to history first.
    pub fn restore_version(&self, path: &str, version: &str) -> Result<WriteOutcome, FsError> {
        let (mut src, size) = self.open_version(path, version)?;
        let mut staged = self.stage(path, Precondition::Overwrite, Some(size))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            staged.push(self, &buf[..n])?;
        }
        staged.commit(self)
    }
}
