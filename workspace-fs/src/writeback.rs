//! `sync_file_range(2)`, which neither rustix nor nix wraps: write a file's dirty data out and
//! wait for it, without the journal commit and device cache flush of `fdatasync`.
//!
//! Used for copies whose durability comes from a directory `fsync` the caller does right after
//! (the save's own): on a journaling filesystem with ordered metadata (ext4, xfs) that commit
//! carries the copy's block allocation and size, written out here before it, and its cache
//! flush makes the written data durable too. One flush per save instead of two.

// The one call below has no safe wrapper; see the SAFETY note.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

/// Writes out all dirty pages of `fd` and waits until they reached the device (not its cache).
/// Where the call is unavailable (`ENOSYS` under some seccomp filters, `ESPIPE`, `EINVAL` on
/// odd files) it falls back to `fdatasync`, which is stronger.
pub(crate) fn write_out(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    sync_range(fd, flags).or_else(|e| match e {
        Errno::NOSYS | Errno::SPIPE | Errno::INVAL => rustix::fs::fdatasync(fd),
        e => Err(e),
    })
}

/// Starts writing out the dirty pages of `fd` without waiting, so that the writes of many
/// files overlap; [`write_out`] later waits for them. Best effort: a failure here only means
/// that `write_out` does all the work.
pub(crate) fn start(fd: BorrowedFd<'_>) {
    let _ = sync_range(fd, libc::SYNC_FILE_RANGE_WRITE);
}

fn sync_range(fd: BorrowedFd<'_>, flags: libc::c_uint) -> Result<(), Errno> {
    loop {
        // SAFETY: a plain system call on a descriptor that `fd` keeps open for its duration;
        // no memory is passed. Offset 0 with length 0 means "to the end of the file".
        let r = unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, 0, flags) };
        if r == 0 {
            return Ok(());
        }
        match Errno::from_io_error(&std::io::Error::last_os_error()) {
            Some(Errno::INTR) => continue,
            Some(e) => return Err(e),
            None => return Err(Errno::IO),
        }
    }
}
