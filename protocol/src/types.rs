//! Value types that appear inside messages.

use serde::{Deserialize, Serialize};

/// A user's role; decides what the authorization layer allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Edits and runs code in their own workspace.
    Student,
    /// Publishes course material; reads their students' work.
    Professor,
    /// Manages users and watches the system.
    Admin,
}

impl Role {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Professor => "professor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "student" => Ok(Role::Student),
            "professor" => Ok(Role::Professor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected student, professor or admin)"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public view of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UserInfo {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
}

/// Limits in force for this connection, announced in `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Limits {
    /// WebSocket messages a connection may send per minute.
    pub ws_messages_per_min: u32,
    /// File operations (WebSocket and HTTP together) per user per minute.
    pub file_ops_per_min: u32,
    /// Runs a user may start per minute.
    pub runs_per_min: u32,
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Workspace byte quota.
    pub workspace_quota_bytes: u64,
    /// Workspace entry quota (files and directories).
    pub workspace_max_entries: u64,
    /// Largest WebSocket message the server accepts, in bytes.
    pub max_ws_message_bytes: u64,
    /// Memory limit of one run, in bytes.
    pub run_memory_bytes: u64,
    /// CPU-time limit of one run, in seconds.
    pub run_cpu_secs: u64,
    /// Wall-clock limit of the script phase, in seconds.
    pub script_max_age_secs: u64,
    /// Wall-clock limit of the REPL phase, in seconds.
    pub repl_max_age_secs: u64,
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

/// How a run is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Run the script; the run ends when it ends.
    Script,
    /// Run the script, then an interactive REPL with the script's globals.
    Hybrid,
    /// A plain REPL with the workspace as the working directory.
    Repl,
}

impl RunMode {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Script => "script",
            RunMode::Hybrid => "hybrid",
            RunMode::Repl => "repl",
        }
    }
}

/// Which phase a hybrid run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The script is running.
    Script,
    /// The interactive REPL is running.
    Repl,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The program exited by itself with `exit_code`.
    Exited,
    /// The program was killed by a signal it did not expect (`signal`).
    Signaled,
    /// The user pressed Ctrl-C and the program ended of that SIGINT (`signal` 2).
    Interrupted,
    /// The user pressed Stop (or started another run).
    Stopped,
    /// The script or REPL phase passed its maximum age.
    Timeout,
    /// The CPU-time limit was reached.
    CpuLimit,
    /// The memory limit was reached (the cgroup's OOM counter rose).
    MemoryLimit,
    /// The program wrote more than the total output cap.
    OutputLimit,
    /// The workspace reached its quota (bytes or entries): either the kernel
    /// refused the program's writes (EDQUOT) and it failed, or the usage scan
    /// (where the filesystem enforces no quota) found it past the quota and
    /// stopped it.
    DiskQuota,
    /// An admin stopped the session.
    KilledByAdmin,
    /// The user's session was revoked while the program ran: logout (with no
    /// other device still connected), a password or role change, or the
    /// account was disabled.
    Revoked,
    /// Nobody was attached for longer than the reattach window.
    Abandoned,
    /// The server shut down.
    ServerShutdown,
    /// The sandbox could not be set up (details in the server log).
    StartFailed,
}

impl EndReason {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exited => "exited",
            EndReason::Signaled => "signaled",
            EndReason::Interrupted => "interrupted",
            EndReason::Stopped => "stopped",
            EndReason::Timeout => "timeout",
            EndReason::CpuLimit => "cpu_limit",
            EndReason::MemoryLimit => "memory_limit",
            EndReason::OutputLimit => "output_limit",
            EndReason::DiskQuota => "disk_quota",
            EndReason::KilledByAdmin => "killed_by_admin",
            EndReason::Revoked => "revoked",
            EndReason::Abandoned => "abandoned",
            EndReason::ServerShutdown => "server_shutdown",
            EndReason::StartFailed => "start_failed",
        }
    }
}

/// The full record of how a run ended (also what `campus run` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct RunEnded {
    /// Run id.
    pub run_id: String,
    /// Why it ended.
    pub reason: EndReason,
    /// Exit code, when the program exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal number, when the program died of a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// CPU time used, ms.
    pub cpu_ms: u64,
    /// CPU-time limit, ms.
    pub cpu_limit_ms: u64,
    /// Peak memory of the run's cgroup, bytes (0 when not measurable).
    pub peak_memory_bytes: u64,
    /// Memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// Wall-clock duration, ms.
    pub duration_ms: u64,
    /// Bytes of output produced.
    pub output_bytes: u64,
    /// A plain-words explanation for the student.
    pub message: String,
}
