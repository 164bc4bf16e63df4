//! What a full disk looks like to the server: the one test, shared by the
//! file service (workspace writes) and the store (the database's own I/O).

/// ENOSPC (the filesystem is full) or EDQUOT (the server's disk quota is spent).
pub fn out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
