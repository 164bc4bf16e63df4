//! The file service: the one path by which WebSocket and HTTP requests reach a
//! workspace. It authorizes (auditing refusals through the record writer),
//! applies the per-user file-operation limit, runs the blocking `workspace-fs`
//! call on the blocking pool, maps its errors to protocol codes, and tells the
//! user's other connections what changed (through the hub). It owns each of
//! those dependencies; handlers hand it a user and a request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use campus_protocol::FileMsg;
use campus_protocol::{
    ChangeKind, Encoding, EntryKind, ErrorCode, FileEntry, ServerMsg, TrashItem, UserInfo,
    VersionInfo,
};
use workspace_fs::{FsError, Workspace, Workspaces};

use crate::authz::{self, Action, Resource};
use crate::error::AppError;
use crate::hub::Hub;
use crate::ratelimit::{KeyedRateLimit, MINUTE};
use crate::records::Records;
use crate::store::{DynStore, NewAudit};

/// The workspaces of every user: the `workspace-fs` registry and the uid each
/// user's tree belongs to.
#[derive(Debug)]
pub struct UserWorkspaces {
    workspaces: Workspaces,
    /// Per-student uid base when the sandbox runs students as their own uid.
    uid_base: Option<u32>,
}

impl UserWorkspaces {
    /// The registry, with trees owned by `uid_base + user id` when given.
    pub fn new(workspaces: Workspaces, uid_base: Option<u32>) -> Self {
        UserWorkspaces {
            workspaces,
            uid_base,
        }
    }

    /// The workspace of `owner` (created on first use, owned by their sandbox uid). Blocking:
    /// a cold open scans the whole tree (async callers use [`FileService::workspace`]).
    pub fn open(&self, owner: i64) -> Result<Arc<Workspace>, AppError> {
        let uid = match self.uid_base {
            Some(base) => Some(crate::sandbox::student_uid(base, owner).ok_or_else(|| {
                AppError::internal(format!("no sandbox uid for user id {owner}"))
            })?),
            None => None,
        };
        self.workspaces
            .open(&owner.to_string(), uid.map(|u| (u, u)))
            .map_err(map_fs_error)
    }

    /// `owner`'s workspace if it is open; never blocks.
    pub fn get(&self, owner: i64) -> Option<Arc<Workspace>> {
        self.workspaces.get(&owner.to_string())
    }

    /// Close the workspaces nobody has used for `idle` and nobody holds (blocking: closes
    /// descriptors); returns how many. The next operation reopens them from disk.
    pub fn evict_idle(&self, idle: Duration) -> usize {
        self.workspaces.evict_idle(idle)
    }

    /// Purge expired trash of every open workspace (blocking); returns items removed.
    /// Workspaces not open are left closed: opening one purges its trash.
    pub fn purge_expired_trash(&self) -> u64 {
        let now = std::time::SystemTime::now();
        self.workspaces
            .cached()
            .iter()
            .map(|ws| match ws.purge_expired(now) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "trash purge failed");
                    0
                }
            })
            .sum()
    }

    /// Remove crash leftovers (temporary files) of the workspaces not open, until `deadline`
    /// (blocking).
    pub fn sweep_temporaries(
        &self,
        deadline: std::time::Instant,
    ) -> Result<workspace_fs::SweepReport, workspace_fs::FsError> {
        self.workspaces.sweep_temporaries(deadline)
    }

    /// How many workspaces are currently open.
    pub fn open_count(&self) -> usize {
        self.workspaces.cached_len()
    }

    /// Host path of `owner`'s visible tree (what the sandbox mounts).
    pub fn tree_path(&self, owner: i64) -> Result<PathBuf, AppError> {
        self.workspaces
            .tree_path(&owner.to_string())
            .map_err(map_fs_error)
    }
}

/// What the file service is built from.
#[derive(Debug)]
pub struct FileDeps {
    /// The workspaces (shared with the start-up sweep).
    pub workspaces: Arc<UserWorkspaces>,
    /// The database, behind its breaker (does a workspace's owner exist?).
    pub store: DynStore,
    /// Where refusals are audited.
    pub records: Records,
    /// Live connections (told about changes).
    pub hub: Arc<Hub>,
    /// File operations per user per minute (WebSocket and HTTP together).
    pub ops_per_min: u32,
}

/// See the module docs.
#[derive(Debug)]
pub struct FileService {
    workspaces: Arc<UserWorkspaces>,
    store: DynStore,
    records: Records,
    hub: Arc<Hub>,
    ops: KeyedRateLimit<i64>,
}

impl FileService {
    /// The service over its dependencies.
    pub fn new(deps: FileDeps) -> Self {
        FileService {
            workspaces: deps.workspaces,
            store: deps.store,
            records: deps.records,
            hub: deps.hub,
            ops: KeyedRateLimit::keyed(deps.ops_per_min, MINUTE, "file operations"),
        }
    }

    /// The workspaces, for periodic passes (eviction, trash purge, the start-up sweep).
    pub fn workspaces(&self) -> &Arc<UserWorkspaces> {
        &self.workspaces
    }

    /// The workspace of `owner` (created on first use, owned by their sandbox uid). An open
    /// one is answered at once; a cold open (directories, a scan of the whole tree, the
    /// temporaries and trash swept) runs on the blocking pool, and only waits for another
    /// open of the same workspace.
    pub async fn workspace(&self, owner: i64) -> Result<Arc<Workspace>, AppError> {
        if let Some(ws) = self.workspaces.get(owner) {
            return Ok(ws);
        }
        let workspaces = Arc::clone(&self.workspaces);
        tokio::task::spawn_blocking(move || workspaces.open(owner))
            .await
            .map_err(AppError::internal)?
    }

    /// Host path of `owner`'s visible tree (what the sandbox mounts).
    pub fn tree_path(&self, owner: i64) -> Result<PathBuf, AppError> {
        self.workspaces.tree_path(owner)
    }

    /// Authorize `actor` to do `action` in `owner`'s workspace and count one file
    /// operation. A refusal is written to the audit log.
    pub async fn admit(
        &self,
        actor: &UserInfo,
        owner: i64,
        action: Action,
        what: &str,
        ip: Option<String>,
    ) -> Result<(), AppError> {
        if let Err(denied) = authz::authorize(actor, action, Resource::Workspace { owner }) {
            let audit = NewAudit {
                actor_id: Some(actor.id),
                actor: Some(actor.username.clone()),
                action: "files.forbidden".into(),
                target: Some(format!("workspace:{owner}")),
                detail: Some(what.chars().take(200).collect()),
                ip,
            };
            // Written in the background: a refusal never waits for the database.
            self.records.audit(audit);
            tracing::warn!(owner, what, "cross-user file access refused");
            return Err(denied.into());
        }
        self.ops.check_key(&actor.id)?;
        // Never create a workspace for a user that does not exist.
        if owner != actor.id && self.store.user_by_id(owner).await?.is_none() {
            return Err(AppError::new(ErrorCode::NotFound, "no such user"));
        }
        Ok(())
    }

    /// Count `n` more file operations of `user` (an operation whose cost grows
    /// with its size, e.g. a big listing page), or refuse with `rate_limited`.
    pub fn charge(&self, user: i64, n: u32) -> Result<(), AppError> {
        Ok(self.ops.check_key_n(&user, n)?)
    }

    /// Tell the owner's other connections about a change.
    pub fn notify(
        &self,
        owner: i64,
        by_connection: &str,
        path: &str,
        kind: ChangeKind,
        version: Option<String>,
        from: Option<String>,
    ) {
        let msg = ServerMsg::Files(FileMsg::FileChanged {
            path: path.to_string(),
            kind,
            version,
            from,
            by_connection: by_connection.to_string(),
        });
        self.hub.send_to_user(owner, Some(by_connection), &msg);
    }

    /// Housekeeping: forget limiter keys back at full quota.
    pub fn shrink(&self) {
        self.ops.shrink();
    }
}

/// Map a workspace-fs error to the protocol.
pub fn map_fs_error(e: FsError) -> AppError {
    match e {
        FsError::InvalidPath(m) => AppError::new(ErrorCode::InvalidPath, m),
        FsError::NotFound(p) => AppError::new(ErrorCode::NotFound, format!("{p} does not exist")),
        FsError::Conflict { current_version } => {
            let mut err = AppError::new(
                ErrorCode::Conflict,
                "the file changed since you opened it (or already exists); nothing was overwritten",
            );
            err.current_version = current_version;
            err
        }
        FsError::TooLarge { limit } => AppError::new(
            ErrorCode::TooLarge,
            format!(
                "the file is larger than the limit of {} MiB",
                limit / (1024 * 1024)
            ),
        ),
        FsError::QuotaExceeded(m) => AppError::new(ErrorCode::QuotaExceeded, m),
        FsError::NotADirectory(p) => {
            AppError::new(ErrorCode::BadRequest, format!("{p} is not a folder"))
        }
        FsError::IsADirectory(p) => {
            AppError::new(ErrorCode::BadRequest, format!("{p} is a folder"))
        }
        FsError::Io(e) if crate::disk::out_of_space(&e) => {
            AppError::insufficient_storage("nothing was saved (the file is unchanged)")
        }
        e @ FsError::Incomplete { .. } => AppError::new(ErrorCode::BadRequest, e.to_string()),
        other => AppError::internal(other),
    }
}

/// Entries of a listing page that count as one more file operation.
pub const LISTING_ENTRIES_PER_OP: usize = 250;

/// File operations a listing page costs beyond the one `admit` counted: one per
/// [`LISTING_ENTRIES_PER_OP`] entries (a full page of 1000: 4 more), so paging through a
/// huge tree spends the rate limit by its size.
pub fn listing_cost(entries: usize) -> u32 {
    u32::try_from(entries / LISTING_ENTRIES_PER_OP).unwrap_or(u32::MAX)
}

/// Run a blocking workspace operation on the blocking pool.
pub async fn blocking<T, F>(ws: Arc<Workspace>, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&Workspace) -> Result<T, FsError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&ws))
        .await
        .map_err(AppError::internal)?
        .map_err(map_fs_error)
}

/// Decode `content` per its declared encoding.
pub fn decode_content(content: String, encoding: Encoding) -> Result<Vec<u8>, AppError> {
    match encoding {
        Encoding::Utf8 => Ok(content.into_bytes()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(content.as_bytes())
            .map_err(|e| {
                AppError::new(
                    ErrorCode::BadRequest,
                    format!("content is not valid base64: {e}"),
                )
            }),
    }
}

/// The wire form of a file's bytes: UTF-8 text as is, anything else as base64.
pub fn encode_content(bytes: Vec<u8>) -> (Encoding, String) {
    match String::from_utf8(bytes) {
        Ok(s) => (Encoding::Utf8, s),
        Err(e) => (
            Encoding::Base64,
            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
        ),
    }
}

/// Wire form of an entry.
pub fn entry(e: workspace_fs::Entry) -> FileEntry {
    FileEntry {
        path: e.path,
        kind: kind(e.kind),
        size: e.size,
        mtime_ms: e.mtime_ms,
        version: e.version,
        mime: e.mime,
    }
}

/// Wire form of an entry kind.
pub fn kind(k: workspace_fs::EntryKind) -> EntryKind {
    match k {
        workspace_fs::EntryKind::File => EntryKind::File,
        workspace_fs::EntryKind::Dir => EntryKind::Dir,
        workspace_fs::EntryKind::Symlink => EntryKind::Symlink,
    }
}

/// Wire form of a trash item.
pub fn trash_item(t: workspace_fs::TrashItem) -> TrashItem {
    TrashItem {
        trash_id: t.trash_id,
        original_path: t.original_path,
        kind: kind(t.kind),
        size: t.size,
        deleted_at_ms: t.deleted_at_ms,
        expires_at_ms: t.expires_at_ms,
    }
}

/// Wire form of a version.
pub fn version(v: workspace_fs::VersionInfo) -> VersionInfo {
    VersionInfo {
        version: v.version,
        size: v.size,
        saved_at_ms: v.saved_at_ms,
    }
}
