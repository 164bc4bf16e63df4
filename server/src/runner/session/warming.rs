//! The session's warm sandbox (see [`super::super::warm`]): prepared while
//! someone is attached and no run is live, handed to the next run, dropped
//! when the last connection leaves and at shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::super::warm::{self, WarmSandbox};
use super::Session;
use crate::execution::TermSize;

/// After a warm sandbox failed to start, runs start cold for this long.
const WARM_RETRY: Duration = Duration::from_secs(10);

impl Session {
    /// Start preparing a warm sandbox if one is wanted and the host has room.
    pub(super) fn maybe_warm(&mut self) {
        let wanted = !self.conns.is_empty()
            && self.run.is_none()
            && self.warm.is_none()
            && self.warming.is_none()
            && Instant::now() >= self.warm_retry_at
            && !self.ctx.token.is_cancelled();
        if !wanted {
            return;
        }
        let Ok(permit) = Arc::clone(&self.ctx.warm).try_acquire_owned() else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        let ctx = Arc::clone(&self.ctx);
        let user_id = self.user.id;
        let dir = self.workspace_dir.clone();
        let size = TermSize {
            cols: self.cols,
            rows: self.rows,
        };
        // The actor polls `rx` (and awaits it when it ends); if it is gone
        // when the sandbox is ready, the sandbox is killed right here.
        tokio::spawn(async move {
            let Ok(_preparing) = Arc::clone(&ctx.warm_preparing).acquire_owned().await else {
                return;
            };
            if ctx.token.is_cancelled() || tx.is_closed() {
                return;
            }
            let prepared = tokio::task::spawn_blocking(move || {
                let sandbox = ctx.executor.sandbox();
                let res = warm::prepare(sandbox, &ctx.cfg, user_id, dir, size, permit);
                if let Err(Ok(unwanted)) = tx.send(res) {
                    unwanted.discard();
                }
            });
            if let Err(e) = prepared.await {
                tracing::error!(error = %e, "warm sandbox task failed");
            }
        });
        self.warming = Some(rx);
    }

    /// A warm sandbox is ready (or failed to start).
    pub(super) async fn on_warm(&mut self, res: Result<WarmSandbox, String>) {
        match res {
            Ok(w) if self.conns.is_empty() || self.warm.is_some() => Self::discard(w).await,
            Ok(w) => self.warm = Some(w),
            Err(e) => {
                tracing::warn!(user = %self.user.username, error = %e, "warm sandbox failed to start; runs start cold for a while");
                self.warm_retry_at = Instant::now() + WARM_RETRY;
            }
        }
    }

    /// Kill the warm sandbox, if there is one.
    pub(super) async fn discard_warm(&mut self) {
        if let Some(w) = self.warm.take() {
            Self::discard(w).await;
        }
    }

    /// At the end of the actor: the warm sandbox and one still being prepared.
    pub(super) async fn end_warm(&mut self) {
        self.discard_warm().await;
        if let Some(rx) = self.warming.take() {
            if let Ok(Ok(w)) = rx.await {
                Self::discard(w).await;
            }
        }
    }

    async fn discard(w: WarmSandbox) {
        if let Err(e) = tokio::task::spawn_blocking(move || w.discard()).await {
            tracing::error!(error = %e, "warm sandbox kill task failed");
        }
    }
}
