//! What every session of a runner shares: settings, the executor (sandbox +
//! admission), the record writer, the run rate limit and the shutdown token.
//! The registry of sessions is not here: sessions never touch it.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::config::RunnerConfig;
use crate::execution::Executor;
use crate::ratelimit::KeyedRateLimit;
use crate::records::Records;

/// Shared by the runner and its sessions.
pub(crate) struct Context {
    pub cfg: RunnerConfig,
    /// The host's sandbox and its shared admission.
    pub executor: Arc<Executor>,
    /// Where run starts and ends are recorded (never awaited).
    pub records: Option<Records>,
    /// Runs per user per minute.
    pub rate: KeyedRateLimit<i64>,
    /// Cancelled on shutdown (a child of the server's token).
    pub token: CancellationToken,
    /// One permit per warm sandbox that may exist (see [`super::warm`]).
    pub warm: Arc<Semaphore>,
    /// Warm sandboxes being prepared at once (one per CPU): a class
    /// connecting at once must not fill the blocking pool that saves use.
    pub warm_preparing: Arc<Semaphore>,
}
