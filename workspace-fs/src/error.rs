//! The crate's error type and the mapping from OS errors to it.

use rustix::io::Errno;

/// Everything a workspace operation can fail with; each variant maps to one wire error code.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path is malformed, escapes the workspace, or goes through a symbolic link.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The path (or a version / trash id) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The precondition failed: the file changed since `base_version`, or it already exists.
    #[error("conflict (current version: {current_version:?})")]
    Conflict {
        /// Version of the entry currently at the path, if it is a file.
        current_version: Option<String>,
    },
    /// The file is larger than the per-file limit.
    #[error("file too large (limit {limit} bytes)")]
    TooLarge {
        /// The per-file limit in bytes.
        limit: u64,
    },
    /// The workspace byte or entry quota would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A path component that must be a directory is not one.
    #[error("not a directory: {0}")]
    NotADirectory(String),
    /// The operation needs a file but the path is a directory.
    #[error("is a directory: {0}")]
    IsADirectory(String),
    /// A streamed write ended short of (or past) its declared length, or with fewer bytes than
    /// the caller counted: nothing was written.
    #[error("incomplete upload: {received} of {expected} bytes arrived; nothing was written")]
    Incomplete {
        /// The length that was declared (or counted by the caller).
        expected: u64,
        /// The bytes actually written to the temporary file.
        received: u64,
    },
    /// Any other operating-system error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl FsError {
    /// The stable snake_case wire code for this error (`invalid_path`, `conflict`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            FsError::InvalidPath(_) => "invalid_path",
            FsError::NotFound(_) => "not_found",
            FsError::Conflict { .. } => "conflict",
            FsError::TooLarge { .. } => "too_large",
            FsError::QuotaExceeded(_) => "quota_exceeded",
            FsError::NotADirectory(_) => "not_a_directory",
            FsError::IsADirectory(_) => "is_a_directory",
            FsError::Incomplete { .. } => "incomplete",
            FsError::Io(_) => "io",
        }
    }
}

/// Maps an errno from an operation on `path` to the error a client should see.
pub(crate) fn map_errno(e: Errno, path: &str) -> FsError {
    match e {
        Errno::NOENT => FsError::NotFound(path.to_owned()),
        // openat2 with RESOLVE_NO_SYMLINKS and O_NOFOLLOW both report symlinks as ELOOP.
        Errno::LOOP => FsError::InvalidPath(format!(
            "{path}: goes through a symbolic link (links inside a workspace are never followed)"
        )),
        Errno::XDEV => FsError::InvalidPath(format!("{path}: escapes the workspace")),
        Errno::NOTDIR => FsError::NotADirectory(path.to_owned()),
        Errno::ISDIR => FsError::IsADirectory(path.to_owned()),
        Errno::NAMETOOLONG => FsError::InvalidPath(format!("{path}: name too long")),
        Errno::EXIST | Errno::NOTEMPTY => FsError::Conflict {
            current_version: None,
        },
        other => FsError::Io(other.into()),
    }
}
