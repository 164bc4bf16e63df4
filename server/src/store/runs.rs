//! The runs aggregate: the history of every sandboxed run (start, end, usage,
//! liveness marks). Server code records through the record writer
//! ([`crate::records`]); start-up repairs runs a crash left open.

use async_trait::async_trait;
use campus_protocol::{EndReason, RunMode};
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// A run being started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRun {
    /// Run id (uuid string).
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Script path ("" for repl).
    pub path: String,
    /// Mode.
    pub mode: RunMode,
    /// Start time, ms since the epoch.
    pub started_at_ms: i64,
}

/// How a run finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFinish {
    /// End time, ms since the epoch.
    pub ended_at_ms: i64,
    /// Why.
    pub reason: EndReason,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// CPU time used.
    pub cpu_ms: i64,
    /// Peak memory.
    pub peak_memory_bytes: i64,
    /// Output produced.
    pub output_bytes: i64,
}

/// A stored run record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Run id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Script path.
    pub path: String,
    /// Mode name.
    pub mode: String,
    /// Start time.
    pub started_at_ms: i64,
    /// End time, when finished.
    pub ended_at_ms: Option<i64>,
    /// End reason name, when finished.
    pub reason: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// CPU ms.
    pub cpu_ms: Option<i64>,
    /// Peak memory bytes.
    pub peak_memory_bytes: Option<i64>,
    /// Output bytes.
    pub output_bytes: Option<i64>,
    /// Last time the run was seen alive (start, liveness marks, end).
    pub last_seen_ms: Option<i64>,
}

/// Operations on run history.
#[async_trait]
pub trait Runs: Send + Sync {
    /// Record that a run started.
    async fn insert_run(&self, run: NewRun) -> StoreResult<()>;
    /// Record how a run finished; `NotFound` if no such run.
    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> StoreResult<()>;
    /// A user's most recent runs, newest first.
    async fn recent_runs(&self, user_id: i64, limit: i64) -> StoreResult<Vec<RunRecord>>;
    /// Close the runs still open after a crash: each ends with `server_shutdown`
    /// at the last time it was seen alive (`last_seen_ms`; its start if never
    /// marked), not at the time of the repair. Returns how many.
    async fn close_dangling_runs(&self) -> StoreResult<u64>;
}
