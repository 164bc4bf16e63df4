//! Messages the server sends (`ServerMsg`) as tagged JSON text frames. Terminal
//! output travels separately as binary frames (see [`crate::frames`]).

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::types::{
    ChangeKind, Encoding, FileEntry, Limits, Phase, RunEnded, RunMode, TrashItem, UserInfo,
    VersionInfo,
};

/// A message from server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message on every connection.
    Hello {
        /// Protocol version ([`crate::PROTOCOL_VERSION`]).
        protocol: u32,
        /// This connection's id (appears in `file_changed.by_connection`).
        connection_id: String,
        /// Who is connected.
        user: UserInfo,
        /// Limits in force.
        limits: Limits,
    },
    /// Reply to `ping`.
    Pong {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// A refusal or failure of the request `id` (or of the connection if absent).
    Error {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// For `rate_limited` and `busy`: wait this long before retrying.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// For `conflict`: the version the target has now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current_version: Option<String>,
        /// For `internal`: an id to quote to the operator (matches the server log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
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
    /// A run started (reply to `run`, and broadcast to every attached connection).
    RunStarted {
        /// Echoed request id (only on the reply to the requesting connection).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Run id.
        run_id: String,
        /// Script path (empty for `repl`).
        path: String,
        /// Mode.
        mode: RunMode,
        /// Output offset at which this run's output starts.
        start_seq: u64,
        /// True when a live run was stopped to start this one.
        replaced_previous: bool,
    },
    /// A hybrid run moved from the script to the REPL.
    Phase {
        /// Run id.
        run_id: String,
        /// The new phase.
        phase: Phase,
        /// Set when the script ended by raising: the exception's class name
        /// (`ZeroDivisionError`, `KeyboardInterrupt`, `SystemExit`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script_error: Option<String>,
    },
    /// The run will be stopped soon unless something changes.
    Warning {
        /// Run id.
        run_id: String,
        /// Machine-readable reason (`max_age`, `abandoned`).
        reason: String,
        /// Human-readable explanation.
        message: String,
        /// The run will be stopped in this many ms.
        stop_in_ms: u64,
    },
    /// A run ended.
    RunEnded {
        /// Echoed request id (of `stop`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Why, and how close it came to each limit.
        #[serde(flatten)]
        ended: RunEnded,
    },
    /// Reply to `attach`: output from `replay_from` is replayed next (binary frames), then live.
    Attached {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The live or last run, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// True while a program is running.
        running: bool,
        /// Mode of the live run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<RunMode>,
        /// Script path of the live run (empty for `repl`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Current phase of the live run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
        /// The live hybrid run's script raised this exception (as in `phase`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script_error: Option<String>,
        /// First offset that will be replayed.
        replay_from: u64,
        /// Offset after the last byte produced so far (replay ends there).
        next_seq: u64,
        /// Bytes the client asked for that are no longer kept.
        dropped_bytes: u64,
        /// How the last run ended, when nothing is running (boxed: it is the
        /// largest field, and every `ServerMsg` is as large as its largest variant).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_ended: Option<Box<RunEnded>>,
    },
    /// The server is shutting down; reconnect after `reconnect_after_ms`.
    Shutdown {
        /// Human-readable explanation.
        message: String,
        /// Suggested reconnect delay.
        reconnect_after_ms: u64,
    },
}

impl ServerMsg {
    /// Build an error reply.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            id,
            code,
            message: message.into(),
            retry_after_ms: None,
            current_version: None,
            request_id: None,
        }
    }
}
