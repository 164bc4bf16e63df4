//! Paged listings: a recursive `list` of a tree a program made (150,000 files) must not
//! become one 22 MB reply and a second of CPU, so a listing returns at most a page of
//! entries and bytes, and a cursor to continue from.
//!
//! Order: depth-first pre-order, each folder's names sorted by their bytes (a folder comes
//! right before its contents). The cursor is the path of the page's last entry; resuming
//! skips, folder by folder, the names sorted before the cursor's component at that level,
//! so a page costs the folders on the cursor's path plus the entries it returns — never
//! the whole tree. Entries created or removed between pages are seen or not depending on
//! which side of the cursor they fall; nothing is returned twice.

use std::cmp::Ordering;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{self as rfs, FileType, Mode};
use rustix::io::Errno;

use crate::error::map_errno;
use crate::path::{normalize_path, validate_path};
use crate::sys;
use crate::workspace::entry_from_stat;
use crate::{Entry, FsError, Workspace};

/// Most entries in one page (and the default).
pub const MAX_PAGE_ENTRIES: usize = 1000;
/// Most bytes one page's entries may take as JSON (estimated), 512 KiB.
pub const MAX_PAGE_BYTES: usize = 512 * 1024;
/// Longest cursor accepted: the deepest path a listing can return (128 levels of 255 bytes).
const MAX_CURSOR_BYTES: usize = (sys::MAX_WALK_DEPTH + 1) * 256;
/// What one entry costs in a JSON reply besides its path (kind, size, mtime, version, mime
/// and the field names): an upper estimate, so pages stay under [`MAX_PAGE_BYTES`].
pub const ENTRY_JSON_OVERHEAD: usize = 192;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Entries in listing order (see the module notes).
    pub entries: Vec<Entry>,
    /// Set when there is more: pass it as the next request's cursor.
    pub next_cursor: Option<String>,
}

impl ListPage {
    /// Estimated JSON size of the page's entries.
    pub fn approx_bytes(&self) -> usize {
        self.entries.iter().map(entry_cost).sum()
    }
}

fn entry_cost(e: &Entry) -> usize {
    e.path.len() + ENTRY_JSON_OVERHEAD
}

/// Where a page stops.
struct Page {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    out: Vec<Entry>,
    /// Set when an entry did not fit: the page is complete and there is more.
    full: bool,
}

impl Page {
    /// Adds `e`, or marks the page full (leaving `e` for the next page).
    fn push(&mut self, e: Entry) -> bool {
        let cost = entry_cost(&e);
        // A page always holds at least one entry, however long its path.
        if !self.out.is_empty()
            && (self.out.len() >= self.max_entries || self.bytes + cost > self.max_bytes)
        {
            self.full = true;
            return false;
        }
        self.bytes += cost;
        self.out.push(e);
        true
    }
}

impl Workspace {
    /// One page of the listing of `dir` (`""` = root), optionally recursive, continuing
    /// after `cursor` (a previous page's `next_cursor`; `None` = from the start). At most
    /// `max_entries` (capped at [`MAX_PAGE_ENTRIES`]) entries and about [`MAX_PAGE_BYTES`]
    /// of JSON. Links are listed but not entered. A cursor outside `dir` is `InvalidPath`.
    pub fn list_page(
        &self,
        dir: &str,
        recursive: bool,
        cursor: Option<&str>,
        max_entries: usize,
    ) -> Result<ListPage, FsError> {
        let dir: &str = &normalize_path(dir);
        let comps = validate_path(dir)?;
        // The cursor is a path this listing returned, taken as it is: a name a program
        // made (not NFC, with characters the API refuses) may end a page, and the cursor is
        // only compared with names, never opened.
        let after: Option<Vec<&str>> = match cursor {
            None => None,
            Some(c) => {
                let cc: Vec<&str> = c.split('/').collect();
                if c.len() > MAX_CURSOR_BYTES
                    || cc.len() <= comps.len()
                    || cc[..comps.len()] != comps[..]
                    || (!recursive && cc.len() != comps.len() + 1)
                {
                    return Err(FsError::InvalidPath(format!(
                        "the cursor does not belong to a listing of {dir:?}; start again without one"
                    )));
                }
                Some(cc[comps.len()..].to_vec())
            }
        };
        let fd = self.open_dir(&comps, dir)?;
        let mut page = Page {
            max_entries: max_entries.clamp(1, MAX_PAGE_ENTRIES),
            max_bytes: MAX_PAGE_BYTES,
            bytes: 0,
            out: Vec::new(),
            full: false,
        };
        walk(fd.as_fd(), dir, recursive, 0, after.as_deref(), &mut page)
            .map_err(|e| map_errno(e, dir))?;
        let next_cursor = if page.full {
            page.out.last().map(|e| e.path.clone())
        } else {
            None
        };
        Ok(ListPage {
            entries: page.out,
            next_cursor,
        })
    }
}

/// Lists `dir` into `page` in pre-order, skipping what sorts before `after` (the cursor's
/// components below `dir`). Stops as soon as the page is full.
fn walk(
    dir: BorrowedFd<'_>,
    prefix: &str,
    recursive: bool,
    depth: usize,
    mut after: Option<&[&str]>,
    page: &mut Page,
) -> Result<(), Errno> {
    let mut names: Vec<(String, Vec<u8>)> = sys::list_names(dir)?
        .into_iter()
        .map(|raw| (String::from_utf8_lossy(&raw).into_owned(), raw))
        .collect();
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // Skip straight to the cursor's component at this level (binary search, no lstat).
    let start = match after.and_then(|a| a.first()) {
        Some(first) => names.partition_point(|(n, _)| n.as_bytes() < first.as_bytes()),
        None => 0,
    };
    for (name, raw) in &names[start..] {
        // Below the cursor's own entry: its descendants after the cursor, not itself.
        let (emit, below) = match after {
            Some([first, rest @ ..])
                if name.as_bytes().cmp(first.as_bytes()) == Ordering::Equal =>
            {
                (false, Some(rest))
            }
            _ => (true, None),
        };
        after = None;
        let Some(st) = sys::lstat(dir, sys::bytes_arg(raw))? else {
            continue; // vanished since readdir
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if emit {
            if let Some(e) = entry_from_stat(path.clone(), &st) {
                if !page.push(e) {
                    return Ok(());
                }
            }
        }
        if recursive && is_dir && depth < sys::MAX_WALK_DEPTH {
            let below = below.filter(|r| !r.is_empty());
            if let Ok(sub) = rfs::openat(dir, sys::bytes_arg(raw), sys::dir_flags(), Mode::empty())
            {
                walk(sub.as_fd(), &path, recursive, depth + 1, below, page)?;
                if page.full {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
