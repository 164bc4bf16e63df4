//! Messages the client sends (`ClientMsg`), as tagged JSON text frames:
//! `{"type":"read","id":7,"path":"main.py"}`. `id` is optional and echoed in
//! the reply so a client can match replies to requests.

use serde::{Deserialize, Serialize};

use crate::types::{Encoding, RunMode};

/// A message from client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Application-level ping; answered with `pong`.
    Ping {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
    },
    /// List a directory (`path` empty = root); `recursive` lists the whole subtree.
    /// Replies come in pages: a `listing` with `next_cursor` has more.
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
    /// Start a run of `path` (ignored for `repl`). A live run is stopped first.
    Run {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Script path relative to the workspace.
        #[serde(default)]
        path: String,
        /// Script, hybrid (script then REPL) or REPL.
        mode: RunMode,
        /// Initial terminal size.
        #[serde(default)]
        cols: Option<u16>,
        /// Initial terminal size.
        #[serde(default)]
        rows: Option<u16>,
    },
    /// Bytes typed into the terminal (UTF-8 text, as xterm.js produces it).
    Input {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
        /// The typed text.
        data: String,
    },
    /// The terminal was resized.
    Resize {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Ctrl-C: SIGINT to the program's foreground process group.
    Interrupt {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Stop the run: kill its whole process tree.
    Stop {
        /// Request id, echoed on errors only.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Attach to the user's session, replaying output from byte offset `since_seq`.
    Attach {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// The output offset the client already has (0 = everything kept).
        #[serde(default)]
        since_seq: u64,
    },
    /// Flow control: the client has consumed output up to byte offset `seq`.
    Ack {
        /// Output offset consumed.
        seq: u64,
    },
}

impl ClientMsg {
    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            ClientMsg::Ping { id }
            | ClientMsg::List { id, .. }
            | ClientMsg::Stat { id, .. }
            | ClientMsg::Read { id, .. }
            | ClientMsg::Write { id, .. }
            | ClientMsg::Mkdir { id, .. }
            | ClientMsg::Rename { id, .. }
            | ClientMsg::Copy { id, .. }
            | ClientMsg::Delete { id, .. }
            | ClientMsg::ListVersions { id, .. }
            | ClientMsg::ReadVersion { id, .. }
            | ClientMsg::RestoreVersion { id, .. }
            | ClientMsg::TrashList { id }
            | ClientMsg::TrashRestore { id, .. }
            | ClientMsg::Run { id, .. }
            | ClientMsg::Input { id, .. }
            | ClientMsg::Resize { id, .. }
            | ClientMsg::Interrupt { id }
            | ClientMsg::Stop { id }
            | ClientMsg::Attach { id, .. } => *id,
            ClientMsg::Ack { .. } => None,
        }
    }

    /// True for the messages that count against the per-user file-operation limit.
    pub fn is_file_op(&self) -> bool {
        matches!(
            self,
            ClientMsg::List { .. }
                | ClientMsg::Stat { .. }
                | ClientMsg::Read { .. }
                | ClientMsg::Write { .. }
                | ClientMsg::Mkdir { .. }
                | ClientMsg::Rename { .. }
                | ClientMsg::Copy { .. }
                | ClientMsg::Delete { .. }
                | ClientMsg::ListVersions { .. }
                | ClientMsg::ReadVersion { .. }
                | ClientMsg::RestoreVersion { .. }
                | ClientMsg::TrashList { .. }
                | ClientMsg::TrashRestore { .. }
        )
    }
}

/// Pull the `id` out of a message that failed to parse as a `ClientMsg`, so the
/// `bad_request` error can still be matched by the client.
pub fn salvage_id(raw: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()?
        .get("id")?
        .as_u64()
}
