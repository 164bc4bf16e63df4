//! The record journal: an append-only file of JSON lines, one [`Record`] per
//! line, where the writer puts records it cannot hand to the database (during
//! an outage, or while a backlog drains), and from which it applies them in
//! order once the database is back.
//!
//! Files live in `<data dir>/journal/`, one per process (`<name>-<pid>-<rand>.journal`,
//! created on the first spill), each held under an exclusive `flock` while its
//! process lives. `<file>.offset` holds how far the records were applied
//! (written after each applied batch), so a restart resumes there. At start-up
//! the server replays every journal nobody holds (left by a crash, or by a
//! `campus run` whose database was down) before it repairs dangling runs.
//!
//! Every function here blocks (file I/O): callers run them on the blocking pool.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::store::Record;

/// File extension of journals.
pub const EXT: &str = "journal";

/// An open journal of this process (locked).
#[derive(Debug)]
pub struct JournalFile {
    path: PathBuf,
    file: Flock<File>,
    /// Bytes in the file.
    len: u64,
    /// Bytes whose records are applied.
    read_at: u64,
}

/// Records read from a journal.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// The records, in file order.
    pub records: Vec<Record>,
    /// File offset just after each record's line.
    pub ends: Vec<u64>,
    /// Offset after the last line consumed (unreadable lines included).
    pub end: u64,
    /// Lines that could not be decoded (logged and skipped).
    pub skipped: u64,
}

/// `<path>.offset`: how far `path`'s records are applied.
fn offset_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".offset");
    PathBuf::from(p)
}

/// Open `path` for reading and appending under an exclusive lock; `Ok(None)` if another
/// process holds it.
fn open_locked(path: &Path, create: bool) -> std::io::Result<Option<Flock<File>>> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(f) => Ok(Some(f)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(std::io::Error::from(errno)),
    }
}

/// The applied offset stored next to `path` (0 when there is none or it is unreadable).
fn read_offset(path: &Path) -> u64 {
    std::fs::read_to_string(offset_path(path))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Store the applied offset of `path` (atomically: a torn offset would replay or skip records).
fn write_offset(path: &Path, offset: u64) -> std::io::Result<()> {
    let target = offset_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, offset.to_string())?;
    std::fs::rename(&tmp, &target)
}

/// Read up to `max` records from `file` starting at byte `from`. A last line
/// without its newline (a write torn by a crash) is not consumed.
fn read_from(file: &File, from: u64, max: usize, path: &Path) -> std::io::Result<ReadBatch> {
    let mut f = file;
    f.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::new(f);
    let mut batch = ReadBatch {
        end: from,
        ..ReadBatch::default()
    };
    let mut line = Vec::new();
    while batch.records.len() < max {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        batch.end += n as u64;
        match serde_json::from_slice::<Record>(&line[..n - 1]) {
            Ok(r) => {
                batch.records.push(r);
                batch.ends.push(batch.end);
            }
            Err(e) => {
                batch.skipped += 1;
                tracing::error!(journal = %path.display(), offset = batch.end - n as u64, error = %e,
                    "unreadable line in the record journal skipped");
            }
        }
    }
    Ok(batch)
}

/// Encode records as journal lines.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 160);
    for r in records {
        // Serializing these plain structs cannot fail; skip defensively if it ever does.
        match serde_json::to_vec(r) {
            Ok(line) => {
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a record for the journal"),
        }
    }
    out
}

impl JournalFile {
    /// Create this process's journal in `dir` (created if missing).
    pub fn create(dir: &Path, name: &str) -> std::io::Result<JournalFile> {
        std::fs::create_dir_all(dir)?;
        let file_name = format!(
            "{name}-{}-{:08x}.{EXT}",
            std::process::id(),
            rand::random::<u32>()
        );
        let path = dir.join(file_name);
        let file = open_locked(&path, true)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "a fresh journal file is locked by another process",
            )
        })?;
        Ok(JournalFile {
            path,
            file,
            len: 0,
            read_at: 0,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes not yet applied.
    pub fn pending_bytes(&self) -> u64 {
        self.len - self.read_at
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append encoded lines and flush them to the device. On failure the file is
    /// cut back to its previous length, so no torn line stays behind.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut f: &File = &self.file;
        let written = f.write_all(bytes).and_then(|()| f.sync_data());
        if let Err(e) = written {
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!(journal = %self.path.display(), error = %cut, "cannot cut a failed append off the journal");
            }
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Up to `max` records after the applied offset.
    pub fn read_batch(&self, max: usize) -> std::io::Result<ReadBatch> {
        read_from(&self.file, self.read_at, max, &self.path)
    }

    /// Everything up to `offset` is applied: remember it, and empty the file once
    /// all of it is.
    pub fn applied_to(&mut self, offset: u64) -> std::io::Result<()> {
        self.read_at = offset.min(self.len);
        if self.read_at == self.len {
            self.file.set_len(0)?;
            self.len = 0;
            self.read_at = 0;
            match std::fs::remove_file(offset_path(&self.path)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            write_offset(&self.path, self.read_at)
        }
    }

    /// Give the journal up at shutdown: removed when empty, kept (for the next
    /// start-up to replay) otherwise.
    pub fn close(self) {
        if self.pending_bytes() == 0 {
            let _ = std::fs::remove_file(offset_path(&self.path));
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(journal = %self.path.display(), error = %e, "cannot remove the empty record journal");
            }
        } else {
            tracing::warn!(journal = %self.path.display(), pending_bytes = self.pending_bytes(),
                "run records left in the journal; the next start-up writes them to the database");
        }
    }
}

/// A journal left by another process, opened for replay (locked).
#[derive(Debug)]
pub struct Leftover {
    path: PathBuf,
    file: Flock<File>,
    read_at: u64,
}

impl Leftover {
    /// The journals in `dir` that no live process holds, oldest name first.
    pub fn find(dir: &Path) -> std::io::Result<Vec<Leftover>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == EXT))
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            if let Some(file) = open_locked(&path, false)? {
                let read_at = read_offset(&path);
                out.push(Leftover {
                    path,
                    file,
                    read_at,
                });
            }
        }
        Ok(out)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `max` records after the applied offset.
    pub fn read_batch(&self, max: usize) -> std::io::Result<ReadBatch> {
        read_from(&self.file, self.read_at, max, &self.path)
    }

    /// Everything up to `offset` is applied.
    pub fn applied_to(&mut self, offset: u64) -> std::io::Result<()> {
        self.read_at = offset;
        write_offset(&self.path, offset)
    }

    /// All of it is applied: remove the file and its offset.
    pub fn finish(self) -> std::io::Result<()> {
        let size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > self.read_at {
            tracing::warn!(journal = %self.path.display(), torn_bytes = size - self.read_at,
                "dropping the incomplete last line of a journal (a write cut by a crash)");
        }
        let _ = std::fs::remove_file(offset_path(&self.path));
        std::fs::remove_file(&self.path)
    }
}
