//! Capability-safe per-user workspace file store for Campus.
//!
//! A synchronous library (callers in async code use `spawn_blocking`) that knows nothing about
//! users, HTTP or WebSockets. [`Workspaces`] is the registry: it holds one [`Workspace`] per key
//! (e.g. a user id) so quota counters and the write lock are shared by every connection of a
//! user. Each cached workspace keeps three directory descriptors open; the caller drops idle,
//! unreferenced ones with [`Workspaces::evict_idle`].
//!
//! # Opening
//! A cold open (creating the directories, scanning the tree, sweeping temporaries, sealing and
//! purging the trash) is per workspace: the registry's lock is held only to look a key up or
//! to mark it busy, never during the work, so one student's slow open never delays another's.
//! Concurrent opens of one key open it once: the first marks the key busy and builds it, the
//! others wait for that one and get the same instance ([`Workspaces::get`] answers a cached
//! workspace without ever waiting).
//!
//! # Safety model
//! Ambient authority is used only to open the two roots (`tree_root`, `meta_root`). Everything
//! below them goes through directory descriptors: `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` for parent directories (or a component-wise
//! `O_NOFOLLOW` walk where `openat2` is missing) and `*at` calls with `O_NOFOLLOW` /
//! `AT_SYMLINK_NOFOLLOW` for the final name. A symlink inside a tree (student code can make one)
//! is listed with kind [`EntryKind::Symlink`] but never followed: reading, writing, listing into,
//! copying from, or renaming onto it fails with [`FsError::InvalidPath`]; deleting or renaming
//! the link itself is allowed. Paths are checked by [`validate_path`].
//!
//! # Writes
//! Atomic: a temporary file `.campus-tmp-*` in the target directory (that prefix is reserved,
//! hidden from listings and usage, swept when a workspace is opened into the cache, and swept
//! in every closed workspace by [`Workspaces::sweep_temporaries`] at server start-up),
//! `fdatasync`, a strictly increasing mtime, then — under the per-workspace write lock — the
//! precondition check, the history save of the old content, the rename, and the usage update;
//! finally an `fsync` of the directory. Reads take no lock. Limits (`max_file_bytes`, quota
//! bytes and entries) are checked before anything is written when the length is known, and
//! always again under the lock at commit. Missing parent directories are created by writes,
//! renames, copies and restores (they count as entries). A streamed write ([`PendingWrite`])
//! commits only when told the body is complete, with a byte count that must match what was
//! written and the declared length; dropped instead, it removes its temporary file and the
//! (still empty) parent directories it made.
//!
//! # Durability
//! A successful write has done two device flushes: `fdatasync` of the new content before the
//! rename, and `fsync` of the directory after it. The history copy (made ahead of the lock, its
//! writes overlapping that `fdatasync`, and used only if the file still has the copied version)
//! is written out (`sync_file_range`, no flush of its own) and renamed into place: on a
//! journaling filesystem with ordered metadata (ext4, xfs) the directory fsync commits its
//! allocation and entry in the same or an earlier transaction and flushes its data, so a crash
//! shows either the old file, or the new file with the old one in history. (btrfs does not give
//! that ordering.) A delete flushes the trash entry before it returns.
//!
//! # Versions
//! See the [`version`] notes: a 16-hex-digit hash of `(inode, size, mtime_ns,
//! ctime_ns)`, one `stat` per file. Nothing the library does after acknowledging a write
//! touches that file's inode (saving it to history reads it, never links it), so an
//! acknowledged version survives a crash of the next save.
//!
//! # History and trash
//! Overwrites (unconditional or `Match`), `restore_version` and rename-with-overwrite first
//! save the previous content as a history version of that path (newest `history_keep` kept,
//! under `meta_root/<key>/history`). A saved version is a copy (a reflink where the filesystem
//! has them), never the replaced inode: a sandboxed program may hold that inode open, and must
//! not be able to rewrite history through it. A file rename carries its history to the new
//! path (a directory rename leaves the history of the files inside under their old paths).
//! `delete` moves files, links and whole (also non-empty) directories into
//! `meta_root/<key>/trash` and seals them there (see the `trash` module: directories taken
//! from the student's uid, files replaced by copies), so nothing a run still holds — its
//! working directory, a directory or file descriptor — can write into the trash. Restorable as
//! a unit until `trash_retention` passes and `purge_expired` runs (on every open into the
//! cache, and whenever the caller runs it). The trash counts against the quota together with
//! the tree; when the tree alone has room for a write, the oldest trash entries are purged to
//! make it (the trash never blocks a save). History does not count.
//!
//! # Usage
//! Tracked incrementally per operation after one scan on open; [`Workspace::rescan`]
//! recomputes it after sandboxed code changed the tree behind the API's back. FIFOs, sockets
//! and devices made by sandboxed code count as entries but are not listed; names that are not
//! UTF-8 (only sandboxed code can make them) are listed lossily and cannot be addressed.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod history;
mod listing;
mod path;
mod sys;
mod trash;
pub mod version;
mod workspace;
mod write;
mod writeback;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

pub use error::FsError;
pub use listing::{ListPage, ENTRY_JSON_OVERHEAD, MAX_PAGE_BYTES, MAX_PAGE_ENTRIES};
pub use path::{
    normalize_path, validate_path, MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, TEMP_PREFIX,
};
pub use workspace::{mime_type, Workspace};
pub use write::PendingWrite;

use error::map_errno;

/// Per-workspace limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file accepted through the API (`TooLarge` beyond).
    pub max_file_bytes: u64,
    /// Total bytes of regular files in a tree (`QuotaExceeded` beyond).
    pub quota_bytes: u64,
    /// Total files, directories and links in a tree (`QuotaExceeded` beyond).
    pub max_entries: u64,
    /// Previous versions kept per file.
    pub history_keep: usize,
    /// How long deleted entries stay restorable.
    pub trash_retention: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 10 * 1024 * 1024,
            quota_bytes: 150 * 1024 * 1024,
            max_entries: 5000,
            history_keep: 20,
            trash_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What a write requires of the current file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// The path must not exist (else `Conflict`).
    CreateOnly,
    /// The path must be a file whose current version is this one (else `Conflict`).
    Match(String),
    /// Unconditional; an existing file's content goes to history first.
    Overwrite,
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (listed, never followed).
    Symlink,
}

/// One entry of a workspace tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Workspace-relative path (`""` for the root).
    pub path: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (files; link target length for links; 0 for directories).
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime_ms: i64,
    /// Version of a file (`None` for directories and links).
    pub version: Option<String>,
    /// MIME type guessed from the name (files only).
    pub mime: Option<String>,
}

/// Result of a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The file as written (with its new version).
    pub entry: Entry,
    /// True if the file did not exist before.
    pub created: bool,
}

/// One saved history version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version string the file had.
    pub version: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was replaced, milliseconds since the Unix epoch.
    pub saved_at_ms: i64,
}

/// One entry in the trash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashItem {
    /// Opaque id used to restore it.
    pub trash_id: String,
    /// Where it was before deletion.
    pub original_path: String,
    /// What it was.
    pub kind: EntryKind,
    /// Total bytes of files in it.
    pub size: u64,
    /// When it was deleted, milliseconds since the Unix epoch.
    pub deleted_at_ms: i64,
    /// When `purge_expired` may remove it, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// Space used by a workspace tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes of regular files.
    pub bytes: u64,
    /// Number of files, directories and links (the root not counted).
    pub entries: u64,
}

/// What [`Workspaces::sweep_temporaries`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Workspaces swept.
    pub workspaces: u64,
    /// Temporaries removed.
    pub removed: u64,
    /// Workspaces skipped because they were open (their open swept them).
    pub skipped_open: u64,
    /// False when the deadline stopped the sweep early (the rest are swept when opened).
    pub complete: bool,
}

/// Registry of workspaces under two roots; caches one `Arc<Workspace>` per key until
/// [`Workspaces::evict_idle`] drops it.
#[derive(Debug)]
pub struct Workspaces {
    tree_root: PathBuf,
    tree_fd: OwnedFd,
    meta_fd: OwnedFd,
    limits: Limits,
    cache: Mutex<HashMap<String, Slot>>,
}

/// What the registry knows about one key.
#[derive(Debug)]
enum Slot {
    /// Open: the one instance, handed out by `open` until evicted.
    Open(Cached),
    /// One thread is opening it (or sweeping its temporaries); others wait on the gate.
    Busy(Arc<Gate>),
}

/// A cached workspace and when `open` last handed it out.
#[derive(Debug)]
struct Cached {
    ws: Arc<Workspace>,
    last_used: Instant,
}

/// Released once the thread that marked a key busy is done with it.
#[derive(Debug, Default)]
struct Gate {
    released: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        while !*released {
            released = self.cv.wait(released).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn release(&self) {
        *self.released.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// A key marked busy by this thread. Dropped without [`Busy::finish`] (an error, a panic) it
/// forgets the key, so the next open starts afresh; either way it releases the waiters.
struct Busy<'a> {
    reg: &'a Workspaces,
    key: String,
    gate: Arc<Gate>,
}

impl Busy<'_> {
    /// Replace the busy mark by the opened workspace, then release the waiters.
    fn finish(self, ws: Arc<Workspace>) {
        let mut cache = self.reg.lock_cache();
        cache.insert(
            self.key.clone(),
            Slot::Open(Cached {
                ws,
                last_used: Instant::now(),
            }),
        );
        // `Drop` sees the mark gone and only releases the gate.
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        {
            let mut cache = self.reg.lock_cache();
            if matches!(cache.get(&self.key), Some(Slot::Busy(g)) if Arc::ptr_eq(g, &self.gate)) {
                cache.remove(&self.key);
            }
        }
        self.gate.release();
    }
}

/// What a look-up under the cache lock found.
enum Lookup<'a> {
    /// The open instance.
    Open(Arc<Workspace>),
    /// Someone else is busy with the key: wait, then look again.
    Wait(Arc<Gate>),
    /// The key is now marked busy by us.
    Mine(Busy<'a>),
}

/// True for keys usable as a directory name: 1–64 of `[A-Za-z0-9_.-]`, not starting with `.`.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn check_key(key: &str) -> Result<(), FsError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(FsError::InvalidPath(format!(
            "invalid workspace key {key:?}"
        )))
    }
}

/// Opens (creating with `mode` if missing) the directory `name` under `parent`.
fn open_or_create_dir(parent: &OwnedFd, name: &str, mode: u32) -> Result<OwnedFd, FsError> {
    match rfs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(map_errno(e, name)),
    }
    rfs::openat(parent, name, sys::dir_flags(), Mode::empty()).map_err(|e| map_errno(e, name))
}

impl Workspaces {
    /// Creates the two roots if needed (meta root mode 0700) and opens them.
    pub fn new(tree_root: PathBuf, meta_root: PathBuf, limits: Limits) -> Result<Self, FsError> {
        std::fs::create_dir_all(&tree_root)?;
        std::fs::create_dir_all(&meta_root)?;
        std::fs::set_permissions(&meta_root, std::fs::Permissions::from_mode(0o700))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let open = |p: &PathBuf| {
            rfs::open(p.as_path(), flags, Mode::empty())
                .map_err(|e| FsError::Io(std::io::Error::from(e)))
        };
        Ok(Workspaces {
            tree_fd: open(&tree_root)?,
            meta_fd: open(&meta_root)?,
            tree_root,
            limits,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The workspace for `key`, created on first use: tree dir (mode 0700, chowned to `owner`)
    /// and meta dir (mode 0700). The first open (also the first after an eviction) sweeps
    /// leftover temporaries, scans usage and purges expired trash; later opens return the
    /// cached instance (its `owner` is the one given first). Blocking, and it may wait for
    /// another thread's open of the same key (see "Opening" in the crate docs); it never waits
    /// for another key.
    pub fn open(&self, key: &str, owner: Option<(u32, u32)>) -> Result<Arc<Workspace>, FsError> {
        check_key(key)?;
        let busy = loop {
            match self.lookup(key) {
                Lookup::Open(ws) => return Ok(ws),
                Lookup::Wait(gate) => gate.wait(),
                Lookup::Mine(busy) => break busy,
            }
        };
        // No other instance of this workspace (with a write in flight) can exist while the key
        // is busy, which the temp sweep in `count_dir` relies on.
        let ws = Arc::new(self.build(key, owner)?);
        busy.finish(Arc::clone(&ws));
        // Best effort: the trash is private and a failed purge is retried by the next open or
        // periodic pass, so it must not fail the open; the library has no logger to report it
        // to. (It takes only this workspace's lock.)
        let _ = ws.purge_expired(SystemTime::now());
        Ok(ws)
    }

    /// The cached workspace for `key`, if it is open (counts as use, like `open`). Never waits
    /// for an open in progress, so async callers can try it before going to a blocking thread.
    pub fn get(&self, key: &str) -> Option<Arc<Workspace>> {
        match self.lock_cache().get_mut(key) {
            Some(Slot::Open(c)) => {
                c.last_used = Instant::now();
                Some(Arc::clone(&c.ws))
            }
            _ => None,
        }
    }

    /// Look `key` up, marking it busy for us when nobody has it.
    fn lookup(&self, key: &str) -> Lookup<'_> {
        let mut cache = self.lock_cache();
        match cache.get_mut(key) {
            Some(Slot::Open(c)) => {
                c.last_used = Instant::now();
                Lookup::Open(Arc::clone(&c.ws))
            }
            Some(Slot::Busy(gate)) => Lookup::Wait(Arc::clone(gate)),
            None => {
                let gate = Arc::new(Gate::default());
                cache.insert(key.to_owned(), Slot::Busy(Arc::clone(&gate)));
                Lookup::Mine(Busy {
                    reg: self,
                    key: key.to_owned(),
                    gate,
                })
            }
        }
    }

    /// Opens (creating if needed) the directories of `key`, sweeps leftover temporaries,
    /// seals trash entries a crash left unsealed, and counts tree and trash usage.
    fn build(&self, key: &str, owner: Option<(u32, u32)>) -> Result<Workspace, FsError> {
        let tree = open_or_create_dir(&self.tree_fd, key, 0o700)?;
        sys::chown_fd(&tree, owner).map_err(|e| map_errno(e, key))?;
        let meta = open_or_create_dir(&self.meta_fd, key, 0o700)?;
        rfs::fchmod(&meta, Mode::from_raw_mode(0o700)).map_err(|e| map_errno(e, key))?;
        let history = open_or_create_dir(&meta, "history", 0o700)?;
        let trash = open_or_create_dir(&meta, "trash", 0o700)?;
        let em = |e| map_errno(e, key);
        let usage = sys::count_dir(tree.as_fd(), 0, true).map_err(em)?;
        sys::sweep_temps(history.as_fd(), 0).map_err(em)?;
        trash::sweep_temps(trash.as_fd()).map_err(em)?;
        for (id, m) in trash::list(trash.as_fd()).map_err(em)? {
            if !m.sealed {
                trash::reseal(trash.as_fd(), &id).map_err(em)?;
            }
        }
        let counters = workspace::Counters {
            tree: usage,
            trash: trash::usage(trash.as_fd()).map_err(em)?,
            pinned: None,
        };
        Ok(Workspace::new(
            tree,
            history,
            trash,
            owner,
            self.limits.clone(),
            counters,
        ))
    }

    /// Removes the temporaries (`.campus-tmp-*`) a crash left in the trees, histories and
    /// trashes of workspaces that are not open, until `deadline`. Meant for server start-up,
    /// so the files of students who do not come back are cleaned too (an open sweeps its own
    /// workspace anyway). Each workspace is marked busy while it is swept, so it cannot be
    /// opened, and no write can start in it, while its temporaries are removed (an open of it
    /// waits; opens of others do not); open workspaces, and those being opened, are skipped
    /// (their open swept them and they may have writes in flight). Blocking.
    pub fn sweep_temporaries(&self, deadline: Instant) -> Result<SweepReport, FsError> {
        let mut report = SweepReport {
            complete: true,
            ..SweepReport::default()
        };
        let keys = sys::list_names(self.tree_fd.as_fd()).map_err(|e| map_errno(e, "workspaces"))?;
        for key in keys {
            let Ok(key) = String::from_utf8(key) else {
                continue;
            };
            if !valid_key(&key) {
                continue;
            }
            if Instant::now() >= deadline {
                report.complete = false;
                break;
            }
            let _busy = match self.lookup(&key) {
                Lookup::Mine(busy) => busy,
                Lookup::Open(_) | Lookup::Wait(_) => {
                    report.skipped_open += 1;
                    continue;
                }
            };
            report.removed += self.sweep_one(&key).map_err(|e| map_errno(e, &key))?;
            report.workspaces += 1;
        }
        Ok(report)
    }

    /// Sweeps one closed workspace (the caller has marked it busy).
    fn sweep_one(&self, key: &str) -> Result<u64, Errno> {
        let mut removed = 0;
        match rfs::openat(&self.tree_fd, key, sys::dir_flags(), Mode::empty()) {
            Ok(tree) => removed += sys::sweep_temps(tree.as_fd(), 0)?,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
            Err(e) => return Err(e),
        }
        let meta = match rfs::openat(&self.meta_fd, key, sys::dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(removed),
            Err(e) => return Err(e),
        };
        removed += sys::remove_temps(meta.as_fd())?;
        for sub in ["history", "trash"] {
            match rfs::openat(&meta, sub, sys::dir_flags(), Mode::empty()) {
                Ok(fd) => removed += sys::sweep_temps(fd.as_fd(), 0)?,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Drops cached workspaces not handed out by `open` for at least `idle` and not held by
    /// anyone else; returns how many (each closes its three directory descriptors).
    ///
    /// The "held by nobody" check and the removal happen under the cache lock, and new
    /// references are only made under that lock (or by cloning a held one), so an evicted
    /// instance is unreachable: two live `Workspace`s for one key (with separate write locks
    /// and usage counters) never exist. A later `open` builds a fresh one from disk. Keys
    /// being opened are left alone.
    pub fn evict_idle(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let evicted: Vec<Slot> = {
            let mut cache = self.lock_cache();
            let keys: Vec<String> = cache
                .iter()
                .filter(|(_, slot)| match slot {
                    Slot::Open(c) => {
                        now.saturating_duration_since(c.last_used) >= idle
                            && Arc::strong_count(&c.ws) == 1
                    }
                    Slot::Busy(_) => false,
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| cache.remove(k)).collect()
        };
        let n = evicted.len();
        // The descriptors close here, after the lock is released.
        drop(evicted);
        n
    }

    /// Number of workspaces currently cached (open).
    pub fn cached_len(&self) -> usize {
        self.lock_cache()
            .values()
            .filter(|slot| matches!(slot, Slot::Open(_)))
            .count()
    }

    /// Number of workspaces being opened (or swept) right now.
    pub fn opening_len(&self) -> usize {
        self.lock_cache()
            .values()
            .filter(|slot| matches!(slot, Slot::Busy(_)))
            .count()
    }

    /// The workspaces currently cached, for periodic work such as trash purges. Does not
    /// count as use; holding the returned `Arc`s only delays their eviction.
    pub fn cached(&self) -> Vec<Arc<Workspace>> {
        self.lock_cache()
            .values()
            .filter_map(|slot| match slot {
                Slot::Open(c) => Some(Arc::clone(&c.ws)),
                Slot::Busy(_) => None,
            })
            .collect()
    }

    /// The cache, still usable if a holder panicked (entries are only inserted whole).
    fn lock_cache(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Host path of the student-visible tree of `key` (for the sandbox to mount).
    pub fn tree_path(&self, key: &str) -> Result<PathBuf, FsError> {
        check_key(key)?;
        Ok(self.tree_root.join(key))
    }

    /// The limits every workspace of this registry uses.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key("42"));
        assert!(valid_key("user_7-a.b"));
        for k in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "a b",
            &"k".repeat(65),
        ] {
            assert!(!valid_key(k), "{k:?}");
        }
    }

    #[test]
    fn registry_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Workspaces>();
        assert_send_sync::<Workspace>();
        assert_send_sync::<PendingWrite>();
    }
}
