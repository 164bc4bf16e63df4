//! Shared fixture: a registry on a fresh temporary directory and one open workspace.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use workspace_fs::{FsError, Limits, Workspace, Workspaces};

/// A registry in a temp dir plus the workspace "alice".
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub reg: Workspaces,
    pub ws: Arc<Workspace>,
}

impl Fixture {
    /// Host path of alice's tree.
    pub fn tree(&self) -> PathBuf {
        self.reg.tree_path("alice").unwrap()
    }

    /// Host path of the meta root.
    pub fn meta(&self) -> PathBuf {
        self.dir.path().join("meta")
    }

    /// Opens a fresh registry on the same roots (as a restarted server would).
    pub fn reopen(&self) -> Workspaces {
        Workspaces::new(
            self.dir.path().join("tree"),
            self.meta(),
            self.reg.limits().clone(),
        )
        .unwrap()
    }
}

/// Fixture with the given limits.
pub fn fixture_with(limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let reg = Workspaces::new(dir.path().join("tree"), dir.path().join("meta"), limits).unwrap();
    let ws = reg.open("alice", None).unwrap();
    Fixture { dir, reg, ws }
}

/// Fixture with default limits.
pub fn fixture() -> Fixture {
    fixture_with(Limits::default())
}

/// All names (including hidden ones) directly in a host directory, sorted.
pub fn raw_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts that `r` is an `InvalidPath` error.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(r: Result<T, FsError>) {
    match r {
        Err(FsError::InvalidPath(_)) => {}
        other => panic!("expected InvalidPath, got {other:?}"),
    }
}

/// Asserts that `r` is refused because of a symlink or traversal (InvalidPath or NotFound).
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(r: Result<T, FsError>) {
    match r {
        Err(FsError::InvalidPath(_)) | Err(FsError::NotFound(_)) => {}
        other => panic!("expected InvalidPath/NotFound, got {other:?}"),
    }
}
