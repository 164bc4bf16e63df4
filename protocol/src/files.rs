//! The files domain: operations on a user's workspace (list, read, write, rename,
//! copy, delete, versions, trash), their replies, the `file_changed` event, and
//! the value types they carry.

use serde::{Deserialize, Serialize};

/// A file operation a client asks for (counted against the per-user file-operation limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileRequest {
    /// List a directory (`path` empty = root); `recursive` lists the whole subtree.
    List {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Directory path relative to the workspace root.
        #[serde(default)]
        path: String,
        /// List every descendant, not only direct children.
        #[serde(default)]
        recursive: bool,
        /// Continue after this point: the `next_cursor` of the previous page (absent: first page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Most entries wanted in this page (default and maximum: 1000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Metadata of one entry.
    Stat {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Entry path.
        path: String,
    },
    /// Read a file's content and version.
    Read {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// File path.
        path: String,
    },
    /// Write a file atomically. Without `base_version` the file must not exist.
    Write {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// File path.
        path: String,
        /// The new content (see `encoding`).
        content: String,
        /// How `content` is encoded.
        #[serde(default)]
        encoding: Encoding,
        /// The version this edit is based on; a mismatch is a `conflict`.
        #[serde(default)]
        base_version: Option<String>,
    },
    /// Create a directory (and missing parents).
    Mkdir {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Directory path.
        path: String,
    },
    /// Rename or move an entry. Refused with `conflict` if `to` exists, unless `overwrite`.
    Rename {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Current path.
        from: String,
        /// New path.
        to: String,
        /// Replace an existing file at `to` (its content goes to history).
        #[serde(default)]
        overwrite: bool,
    },
    /// Copy a file or directory tree. Refused with `conflict` if `to` exists.
    Copy {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Source path.
        from: String,
        /// Destination path.
        to: String,
    },
    /// Move an entry (a file or a whole directory) to the trash.
    Delete {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Entry path.
        path: String,
    },
    /// List the kept earlier versions of a file, newest first.
    ListVersions {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// File path.
        path: String,
    },
    /// Read one earlier version's content (for a preview).
    ReadVersion {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// File path.
        path: String,
        /// Version id from `list_versions`.
        version: String,
    },
    /// Make an earlier version current again (the current content goes to history).
    RestoreVersion {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// File path.
        path: String,
        /// Version id from `list_versions`.
        version: String,
    },
    /// List the trash.
    TrashList {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Restore a trash item to its original path (or `to`).
    TrashRestore {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Item id from `trash_list`.
        trash_id: String,
        /// Restore to this path instead of the original one.
        #[serde(default)]
        to: Option<String>,
    },
}

impl FileRequest {
    /// The `type` of each file request message, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "list",
        "stat",
        "read",
        "write",
        "mkdir",
        "rename",
        "copy",
        "delete",
        "list_versions",
        "read_version",
        "restore_version",
        "trash_list",
        "trash_restore",
    ];

    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            FileRequest::List { id, .. }
            | FileRequest::Stat { id, .. }
            | FileRequest::Read { id, .. }
            | FileRequest::Write { id, .. }
            | FileRequest::Mkdir { id, .. }
            | FileRequest::Rename { id, .. }
            | FileRequest::Copy { id, .. }
            | FileRequest::Delete { id, .. }
            | FileRequest::ListVersions { id, .. }
            | FileRequest::ReadVersion { id, .. }
            | FileRequest::RestoreVersion { id, .. }
            | FileRequest::TrashList { id, .. }
            | FileRequest::TrashRestore { id, .. } => *id,
        }
    }

    /// True for the operations that only read.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            FileRequest::List { .. }
                | FileRequest::Stat { .. }
                | FileRequest::Read { .. }
                | FileRequest::ListVersions { .. }
                | FileRequest::ReadVersion { .. }
                | FileRequest::TrashList { .. }
        )
    }
}

/// A reply to a file request, or a change another connection (or a run) made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileMsg {
    /// Reply to `list`.
    Listing {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The listed directory.
        path: String,
        /// Entries of this page, in pre-order (a folder right before its contents, names
        /// sorted by their bytes).
        entries: Vec<FileEntry>,
        /// Set when the listing has more entries: send `list` again with this as `cursor`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    },
    /// Reply to `stat`, `mkdir`, `rename`, `copy` and `trash_restore`.
    Entry {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The entry (after the operation).
        entry: FileEntry,
    },
    /// Reply to `read` and `read_version`.
    File {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// File path.
        path: String,
        /// Version of this content.
        version: String,
        /// Size in bytes.
        size: u64,
        /// MIME type guess.
        mime: String,
        /// `utf8` when the bytes are valid UTF-8, else `base64`.
        encoding: Encoding,
        /// The content.
        content: String,
    },
    /// Reply to `write` and `restore_version`.
    Written {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// File path.
        path: String,
        /// The new version.
        version: String,
        /// Size in bytes.
        size: u64,
        /// True when the file did not exist before.
        created: bool,
    },
    /// Reply to `delete`.
    Deleted {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The deleted path.
        path: String,
        /// Id of the trash item that holds it.
        trash_id: String,
    },
    /// Reply to `list_versions`.
    Versions {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// File path.
        path: String,
        /// Kept earlier versions, newest first.
        versions: Vec<VersionInfo>,
    },
    /// Reply to `trash_list`.
    Trash {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Items, newest first.
        items: Vec<TrashItem>,
    },
    /// Another connection (or a run) changed a path of this user's workspace.
    FileChanged {
        /// The changed path.
        path: String,
        /// What happened.
        kind: ChangeKind,
        /// The new version, for files that exist after the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// The old path of a rename, or the source of a copy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The connection that made the change (`http` for the HTTP API).
        by_connection: String,
    },
}

impl FileMsg {
    /// The `type` of each file server message, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "listing",
        "entry",
        "file",
        "written",
        "deleted",
        "versions",
        "trash",
        "file_changed",
    ];
}

/// What kind of filesystem entry this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (listed, never followed).
    Symlink,
}

/// One entry of a listing or a `stat` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct FileEntry {
    /// Path relative to the workspace root, `/`-separated, no leading slash.
    pub path: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub mtime_ms: i64,
    /// Opaque version string (files only); changes whenever the content may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// MIME type guessed from the name (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
}

/// How `content` of a file message is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The content is the file's bytes as a UTF-8 string.
    #[default]
    Utf8,
    /// The content is standard base64 of the file's bytes.
    Base64,
}

/// One kept earlier version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VersionInfo {
    /// Id to pass to `restore_version` / `read_version`.
    pub version: String,
    /// Size in bytes.
    pub size: u64,
    /// When this content was replaced, ms since the epoch.
    pub saved_at_ms: i64,
}

/// One deleted entry in the trash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrashItem {
    /// Id to pass to `trash_restore`.
    pub trash_id: String,
    /// Where it was before deletion.
    pub original_path: String,
    /// File or directory.
    pub kind: EntryKind,
    /// Total bytes.
    pub size: u64,
    /// When it was deleted, ms since the epoch.
    pub deleted_at_ms: i64,
    /// After this it is purged, ms since the epoch.
    pub expires_at_ms: i64,
}

/// What happened to a path, in a `file_changed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Content written (created or updated).
    Written,
    /// Directory created.
    Created,
    /// Moved to the trash.
    Deleted,
    /// Renamed or moved; `from` holds the old path.
    Renamed,
    /// Copied from `from`.
    Copied,
    /// An earlier version or a trash item was restored.
    Restored,
}
