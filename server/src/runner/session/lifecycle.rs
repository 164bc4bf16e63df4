//! The run lifecycle of a session: starting (admission, rate limit,
//! replacement), ending (kill, drain, classify, record, announce) and the
//! timers that enforce limits and the culling rules.

use std::sync::Arc;

use campus_protocol::SessionMsg;
use campus_protocol::{EndReason, Phase, RunEnded, RunMode, ServerMsg};
use tokio::time::{timeout, Instant};

use super::super::context::Context;
use super::super::launcher;
use super::super::priority::PriorityPolicy;
use super::super::run::{self, MountedScript, RunIo, StartRequest};
use super::super::RunnerError;
use super::{
    Session, DRAIN_WAIT, EOF_GRACE, HOUSEKEEPING_IDLE, HOUSEKEEPING_RUNNING, KILL_WAIT,
    SAMPLE_INTERVAL,
};
use crate::execution::ending::{self, EndFacts};
use crate::execution::proc::ExitInfo;
use crate::execution::TermSize;
use crate::store::{NewRun, RunFinish};

impl Session {
    pub(super) async fn on_exit(&mut self, info: ExitInfo) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        run.exit = Some(info);
        run.last_data = Instant::now();
        run.sample().await;
        // No process of a run outlives it; the zombie still holds the group id.
        run.kill_and_reap().await;
        if self.io.reader.is_none() {
            self.finish_run().await;
        }
    }

    /// End the live run now: kill the tree (recording why), wait for the
    /// main process, drain what the PTY still holds, and finish.
    pub(super) async fn end_run(&mut self, reason: Option<EndReason>) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.exit.is_none() {
            if run.kill_reason.is_none() {
                run.kill_reason = reason;
            }
            run.sample().await;
            run.kill_tree().await;
            if let Some(rx) = self.io.exit.take() {
                match timeout(KILL_WAIT, rx).await {
                    Ok(Ok(info)) => run.exit = Some(info),
                    _ => tracing::error!(run_id = %run.run_id, "killed run did not exit in time"),
                }
            }
        }
        run.kill_and_reap().await;
        // Every process is dead, so what is left is bounded by the PTY buffer:
        // read it regardless of flow control.
        while let Some(rx) = self.io.reader.as_mut() {
            match timeout(DRAIN_WAIT, rx.recv()).await {
                Ok(Some(chunk)) => {
                    self.process_chunk(chunk);
                }
                _ => self.io.reader = None,
            }
        }
        self.finish_run().await;
    }

    /// Record and announce the ending of the run (its process is gone).
    pub(super) async fn finish_run(&mut self) {
        self.flush();
        let Some(mut run) = self.run.take() else {
            return;
        };
        self.io = RunIo {
            reader: None,
            exit: None,
        };
        run.sample().await;
        let disk_full = run.quota.full_at_end().await;
        let cfg = &self.ctx.cfg;
        let exit = run.exit.clone().unwrap_or_default();
        let facts = EndFacts {
            kill_reason: run.kill_reason,
            exit_code: exit.code,
            signal: exit.signal,
            interrupted: run.interrupted,
            cpu_ms: run
                .cpu_ms
                .max(exit.cpu_ms.saturating_sub(run.process.cpu_base_ms())),
            cpu_limit_ms: cfg.cpu_limit_ms(),
            peak_memory_bytes: run.peak_memory_bytes,
            memory_limit_bytes: cfg.limits.memory_bytes,
            oom_kills: run.oom_kills,
            phase: Some(run.phase),
            duration: run.started.elapsed(),
            output_bytes: run.output_bytes,
            output_limit_bytes: cfg.output_limit_bytes,
            max_age: run.max_age(cfg),
            detached_grace: cfg.detached_grace,
            disk_full,
            disk_quota_bytes: cfg.limits.disk_bytes,
            disk_quota_entries: cfg.limits.disk_entries,
        };
        // Killing and rmdir retry with short sleeps: keep them off the
        // async workers (they serve every other connection meanwhile).
        let process = run.process.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || process.remove_cgroup()).await {
            tracing::warn!(error = %e, "cgroup removal task failed");
        }
        let ended = ending::ended(run.run_id.clone(), &facts);
        let reason = ended.reason;
        tracing::info!(user = %self.user.username, run_id = %ended.run_id,
            reason = reason.as_str(), exit_code = ?ended.exit_code, cpu_ms = ended.cpu_ms,
            duration_ms = ended.duration_ms, output_bytes = ended.output_bytes, "run ended");
        Self::record_finish(&self.ctx, &ended);
        let stop = run.stop_request.take();
        drop(run); // releases the admission slot
        self.announce_end(ended, stop);
    }

    pub(super) fn announce_end(&mut self, ended: RunEnded, stop: Option<(String, Option<u64>)>) {
        let requester = stop.as_ref().map(|(c, _)| c.clone());
        let req_id = stop.and_then(|(_, id)| id);
        self.broadcast(requester.as_deref(), |is_req| {
            ServerMsg::Session(SessionMsg::RunEnded {
                id: if is_req { req_id } else { None },
                ended: ended.clone(),
            })
        });
        self.last_run_id = Some(ended.run_id.clone());
        self.last_ended = Some(ended);
        self.idle_since = Instant::now();
        // The next run's sandbox gets ready now, at low priority.
        self.maybe_warm();
    }

    /// Hand the run's end to the record writer (never waits for the database).
    pub(super) fn record_finish(ctx: &Context, ended: &RunEnded) {
        let Some(records) = &ctx.records else {
            return;
        };
        let finish = RunFinish {
            ended_at_ms: crate::store::now_ms(),
            reason: ended.reason,
            exit_code: ended.exit_code,
            cpu_ms: ended.cpu_ms as i64,
            peak_memory_bytes: ended.peak_memory_bytes as i64,
            output_bytes: ended.output_bytes as i64,
        };
        records.run_finished(&ended.run_id, finish);
        if let Some(m) = records.metrics() {
            m.run_ended(ended.reason, ended.duration_ms);
        }
    }

    /// Admission, rate limit, replacing a live run, then spawning the new one.
    pub(super) async fn start_run(
        &mut self,
        conn_id: &str,
        req_id: Option<u64>,
        path: String,
        mode: RunMode,
        mounted: Option<Box<MountedScript>>,
    ) -> Result<(), RunnerError> {
        let read_only = mounted
            .as_ref()
            .map(|m| m.mounts.clone())
            .unwrap_or_default();
        let path = match (mode, mounted) {
            (RunMode::Repl, _) => String::new(),
            (_, None) => {
                // It stats the script: on the blocking pool.
                let dir = self.workspace_dir.clone();
                tokio::task::spawn_blocking(move || launcher::validate_script(&dir, &path))
                    .await
                    .map_err(|e| RunnerError::Internal(format!("validate task: {e}")))??
            }
            (_, Some(m)) => {
                let MountedScript {
                    script,
                    host_root,
                    path,
                    ..
                } = *m;
                tokio::task::spawn_blocking(move || launcher::validate_script(&host_root, &path))
                    .await
                    .map_err(|e| RunnerError::Internal(format!("validate task: {e}")))??;
                script
            }
        };
        let ctx = Arc::clone(&self.ctx);
        let admission = ctx.executor.admission();
        let busy = || RunnerError::Busy {
            retry_after_ms: ctx.cfg.busy_retry_after.as_millis() as u64,
        };
        // Check capacity before spending a rate-limit token on a run that cannot start.
        if self.run.is_none() && admission.available() == 0 {
            return Err(busy());
        }
        if let Err(refused) = ctx.rate.check_key(&self.user.id) {
            return Err(RunnerError::RateLimited {
                retry_after_ms: crate::retry::retry_ms(refused.wait),
            });
        }
        let mut slot = None;
        let replaced = self.run.is_some();
        if let Some(run) = self.run.as_mut() {
            // The new run takes over the old run's slot.
            slot = run.slot.take();
            run.stop_request = Some((conn_id.to_string(), None));
            self.end_run(Some(EndReason::Stopped)).await;
        }
        let slot = match slot {
            Some(s) => s,
            None => admission.try_interactive().map_err(|_| busy())?,
        };
        self.flush();
        let run_id = uuid::Uuid::new_v4().to_string();
        let req = StartRequest {
            run_id: run_id.clone(),
            user_id: self.user.id,
            workspace_dir: self.workspace_dir.clone(),
            path: path.clone(),
            mode,
            size: TermSize {
                cols: self.cols,
                rows: self.rows,
            },
            read_only,
        };
        let c = Arc::clone(&ctx);
        // A warm sandbox was made without these trees: keep it for the next
        // workspace run, start this one cold.
        let warm = if req.read_only.is_empty() {
            self.warm.take()
        } else {
            None
        };
        let user = self.user.username.clone();
        let started = tokio::task::spawn_blocking(move || {
            if let Some(w) = warm {
                let size = req.size;
                match w.dispatch(c.executor.sandbox(), &c.cfg, mode, req.path.clone(), size) {
                    Ok(started) => return Ok(started),
                    Err(e) => tracing::warn!(user = %user, error = %e, "warm sandbox unusable; starting cold"),
                }
            }
            run::start(c.executor.sandbox(), &c.cfg, req)
        })
        .await
        .map_err(|e| RunnerError::Internal(format!("spawn task: {e}")))?;
        let (run_id, warm_start) = match &started {
            Ok((live, _)) => (live.run_id.clone(), live.run_id != run_id),
            Err(_) => (run_id, false),
        };
        Self::record_start(&ctx, self.user.id, &run_id, &path, mode);
        let start_seq = self.log.next_seq();
        let started_msg = |is_req: bool| {
            ServerMsg::Session(SessionMsg::RunStarted {
                id: if is_req { req_id } else { None },
                run_id: run_id.clone(),
                path: path.clone(),
                mode,
                start_seq,
                replaced_previous: replaced,
            })
        };
        let msg_for_req = started_msg(true);
        let msg_for_others = started_msg(false);
        let announce = |session: &mut Self| {
            session.broadcast(Some(conn_id), |is_req| {
                if is_req {
                    msg_for_req.clone()
                } else {
                    msg_for_others.clone()
                }
            })
        };
        match started {
            Ok((mut live, io)) => {
                if let Some(since) = self.detached_since {
                    live.detached_snapshot = Some((since.max(live.started), 0, 0));
                }
                live.slot = Some(slot);
                tracing::info!(user = %self.user.username, run_id = %run_id, mode = mode.as_str(), path = %path, warm = warm_start, "run started");
                self.run = Some(live);
                self.last_start_warm = warm_start;
                self.io = io;
                self.next_sample = Instant::now() + SAMPLE_INTERVAL;
                self.priority = PriorityPolicy::new(Instant::now().into_std());
                announce(self);
            }
            Err(err) => {
                drop(slot);
                announce(self);
                tracing::error!(user = %self.user.username, run_id = %run_id, error = %err, "run failed to start");
                let facts = EndFacts {
                    kill_reason: Some(EndReason::StartFailed),
                    cpu_limit_ms: ctx.cfg.cpu_limit_ms(),
                    memory_limit_bytes: ctx.cfg.limits.memory_bytes,
                    ..EndFacts::default()
                };
                let ended = ending::ended(run_id.clone(), &facts);
                Self::record_finish(&self.ctx, &ended);
                self.announce_end(ended, Some((conn_id.to_string(), req_id)));
            }
        }
        Ok(())
    }

    /// Hand the run's start to the record writer (never waits for the database).
    pub(super) fn record_start(
        ctx: &Context,
        user_id: i64,
        run_id: &str,
        path: &str,
        mode: RunMode,
    ) {
        let Some(records) = &ctx.records else {
            return;
        };
        let new = NewRun {
            id: run_id.to_string(),
            user_id,
            path: path.to_string(),
            mode,
            started_at_ms: crate::store::now_ms(),
            // Stamped by the record writer (it knows the instance).
            instance: None,
        };
        records.run_started(new);
        if let Some(m) = records.metrics() {
            m.run_started();
        }
    }

    /// The earliest moment something time-based may need doing.
    pub(super) fn next_wake(&self, now: Instant) -> Instant {
        let cfg = &self.ctx.cfg;
        let Some(run) = &self.run else {
            let mut at = now + HOUSEKEEPING_IDLE;
            if self.conns.is_empty() {
                at = at.min(
                    self.idle_since.max(self.detached_since.unwrap_or(now)) + cfg.detached_grace,
                );
            }
            return at;
        };
        let mut at = (now + HOUSEKEEPING_RUNNING).min(self.next_sample);
        if run.exit.is_none() {
            let limit = run.max_age(cfg);
            let kill_at = run.phase_started + limit;
            at = at.min(kill_at);
            if !run.warned_max_age {
                at = at.min(kill_at - run::warn_lead(limit));
            }
            if let Some((since, _, _)) = run.detached_snapshot {
                at = at.min(since + cfg.detached_grace);
            } else if let Some(since) = self.detached_since {
                at = at.min(since + cfg.detached_grace);
            }
        } else if self.io.reader.is_some() && !self.paused {
            at = at.min(run.last_data + EOF_GRACE);
        }
        at
    }

    /// Timers: closed connections, usage sampling, CPU limit, max ages,
    /// abandonment, the EOF backstop, idle removal. Returns true to end the actor.
    pub(super) async fn on_wake(&mut self) -> bool {
        let now = Instant::now();
        let closed: Vec<String> = self
            .conns
            .iter()
            .filter(|(_, c)| c.tx.is_closed())
            .map(|(id, _)| id.clone())
            .collect();
        self.drop_conns(closed);
        let cfg = self.ctx.cfg.clone();
        let detached_since = self.detached_since;
        let Some(run) = self.run.as_mut() else {
            let idle_from = self.idle_since.max(detached_since.unwrap_or(now));
            if self.conns.is_empty() {
                return now >= idle_from + cfg.detached_grace;
            }
            // Retries after a warm sandbox failed to start.
            self.maybe_warm();
            return false;
        };
        if run.exit.is_some() {
            if self.io.reader.is_some() && !self.paused && now >= run.last_data + EOF_GRACE {
                self.end_run(None).await;
            }
            return false;
        }
        if now >= self.next_sample {
            run.sample().await;
            self.next_sample = now + SAMPLE_INTERVAL;
            if run.cpu_ms >= cfg.cpu_limit_ms() {
                self.end_run(Some(EndReason::CpuLimit)).await;
                return false;
            }
            // Only without a kernel quota: a usage scan found the tree over it.
            if run.quota.poll(now) {
                self.end_run(Some(EndReason::DiskQuota)).await;
                return false;
            }
            if let Some(priority) = self.priority.observe(now.into_std(), run.cpu_ms) {
                run.set_priority(priority).await;
            }
        }
        let limit = run.max_age(&cfg);
        let age = now.saturating_duration_since(run.phase_started);
        if age >= limit {
            self.end_run(Some(EndReason::Timeout)).await;
            return false;
        }
        if !run.warned_max_age && age + run::warn_lead(limit) >= limit {
            run.warned_max_age = true;
            let stop_in = limit - age;
            let run_id = run.run_id.clone();
            let message = format!(
                "This run will be stopped in {}: it reached the time limit ({}).",
                ending::fmt_duration(stop_in),
                ending::fmt_duration(limit)
            );
            self.broadcast(None, |_| {
                ServerMsg::Session(SessionMsg::Warning {
                    run_id: run_id.clone(),
                    reason: "max_age".into(),
                    message: message.clone(),
                    stop_in_ms: stop_in.as_millis() as u64,
                })
            });
            return false;
        }
        if let Some(since) = detached_since {
            let (t0, cpu0, out0) =
                *run.detached_snapshot
                    .get_or_insert((since, run.cpu_ms, run.output_bytes));
            if now >= t0 + cfg.detached_grace {
                // A script that is still computing or printing is not abandoned;
                // a REPL, or a script blocked (e.g. in input()), is.
                let working =
                    run.phase == Phase::Script && (run.cpu_ms > cpu0 || run.output_bytes > out0);
                if working {
                    run.detached_snapshot = Some((now, run.cpu_ms, run.output_bytes));
                } else {
                    self.end_run(Some(EndReason::Abandoned)).await;
                }
            }
        }
        false
    }
}
