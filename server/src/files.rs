//! The file service: the one path by which WebSocket and HTTP requests reach a
//! workspace. It authorizes (auditing refusals), applies the per-user
//! file-operation limit, runs the blocking `workspace-fs` call on the blocking
//! pool, maps its errors to protocol codes, and tells the user's other
//! connections what changed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use campus_protocol::{
    ChangeKind, EntryKind, ErrorCode, FileEntry, ServerMsg, TrashItem, UserInfo, VersionInfo,
};
use workspace_fs::{FsError, Workspace, Workspaces};

use crate::authz::{self, Action, Resource};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::NewAudit;

/// Owns the workspace registry.
#[derive(Debug)]
pub struct FileService {
    workspaces: Workspaces,
    /// Per-student uid base when the sandbox runs students as their own uid.
    uid_base: Option<u32>,
}

impl FileService {
    /// Open the registry under the data dir.
    pub fn new(workspaces: Workspaces, uid_base: Option<u32>) -> Self {
        FileService {
            workspaces,
            uid_base,
        }
    }

    /// The workspace of `owner` (created on first use, owned by their sandbox uid).
    pub fn workspace(&self, owner: i64) -> Result<Arc<Workspace>, AppError> {
        let uid = self
            .uid_base
            .map(|b| b.saturating_add(u32::try_from(owner).unwrap_or(0)));
        self.workspaces
            .open(&owner.to_string(), uid.map(|u| (u, u)))
            .map_err(map_fs_error)
    }

    /// Close the workspaces nobody has used for `idle` and nobody holds (blocking: closes
    /// descriptors); returns how many. The next operation reopens them from disk.
    pub fn evict_idle(&self, idle: Duration) -> usize {
        self.workspaces.evict_idle(idle)
    }

    /// The workspaces currently open (used recently or in use), for periodic passes.
    pub fn open_workspaces(&self) -> Vec<Arc<Workspace>> {
        self.workspaces.cached()
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
        FsError::Io(e) if out_of_space(&e) => {
            AppError::insufficient_storage("nothing was saved (the file is unchanged)")
        }
        e @ FsError::Incomplete { .. } => AppError::new(ErrorCode::BadRequest, e.to_string()),
        other => AppError::internal(other),
    }
}

/// ENOSPC (the filesystem is full) or EDQUOT (the server's disk quota is spent).
pub fn out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Authorize `actor` to do `action` in `owner`'s workspace and count one file
/// operation. A refusal is written to the audit log.
pub async fn admit(
    state: &AppState,
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
        state.records.audit(audit);
        tracing::warn!(owner, what, "cross-user file access refused");
        return Err(denied.into());
    }
    state.file_ops.check(actor.id)?;
    // Never create a workspace for a user that does not exist.
    if owner != actor.id && state.store.user_by_id(owner).await?.is_none() {
        return Err(AppError::new(ErrorCode::NotFound, "no such user"));
    }
    Ok(())
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

/// Tell the owner's other connections about a change.
pub fn notify(
    state: &AppState,
    owner: i64,
    by_connection: &str,
    path: &str,
    kind: ChangeKind,
    version: Option<String>,
    from: Option<String>,
) {
    let msg = ServerMsg::FileChanged {
        path: path.to_string(),
        kind,
        version,
        from,
        by_connection: by_connection.to_string(),
    };
    state.hub.send_to_user(owner, Some(by_connection), &msg);
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
