//! Batch executions: pipes instead of a PTY, captured and capped output, an
//! optional result channel, queued admission. What grading and course jobs
//! call ([`Executor::execute_batch`]).
//!
//! Flow of one batch execution:
//! 1. wait for a batch slot ([`super::Admission::batch`]: FIFO, never the
//!    interactive reserve; `busy` only when the queue is full);
//! 2. prepare and spawn on the blocking pool ([`super::process::start`]);
//! 3. feed stdin, read stdout, stderr and the result channel as they come
//!    (always reading, so a program is never blocked on a full pipe: bytes
//!    beyond a stream's capture cap are counted and dropped, and the stream
//!    is flagged `truncated`); sample CPU every 500 ms;
//! 4. end: the program exits, or is killed at the wall-clock limit
//!    (`timeout`), the CPU limit (`cpu_limit`), the total output cap
//!    (`output_limit`) or shutdown (`server_shutdown`); the tree is killed,
//!    the pipes drained, the cgroup removed (blocking pool), and the ending
//!    classified exactly as an interactive run's.

use std::os::fd::OwnedFd;
use std::time::Duration;

use bytes::Bytes;
use campus_protocol::{EndReason, RunEnded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::ending::{self, EndFacts};
use super::proc::ExitInfo;
use super::process::{self, Process, StartedIo, Usage};
use super::{Class, ExecError, ExecutionSpec, Executor, Refused, Slot, Stdio};
use crate::sandbox::RESULT_FD;
use std::sync::Arc;

/// How often CPU usage is sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a killed program gets to be reported dead.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// After the tree is dead, how long a pipe may stay open before we stop reading.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// Bytes per pipe read.
const READ_CHUNK: usize = 16 << 10;
/// Environment variable naming the result channel's descriptor.
pub const RESULT_FD_ENV: &str = "CAMPUS_RESULT_FD";
/// Environment variable holding the per-execution nonce a report must start with.
pub const RESULT_NONCE_ENV: &str = "CAMPUS_RESULT_NONCE";

/// One captured stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes, up to the capture cap.
    pub bytes: Bytes,
    /// Everything the program wrote to the stream, bytes.
    pub total_bytes: u64,
    /// True when `total_bytes` exceeded the cap (the rest was dropped).
    pub truncated: bool,
}

/// What a batch execution produced.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// The exact ending with usage, as `run_ended` reports it.
    pub ended: RunEnded,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr.
    pub stderr: Captured,
    /// The report on the result channel, after its nonce line; None when
    /// no channel was asked for, or nothing valid arrived on it.
    pub report: Option<Captured>,
    /// Something was written on the result channel without the nonce line.
    pub report_rejected: bool,
    /// How long the execution waited for a slot.
    pub queued_for: Duration,
}

/// A stream being captured.
struct Capture {
    buf: Vec<u8>,
    cap: usize,
    total: u64,
}

impl Capture {
    fn new(cap: usize) -> Capture {
        Capture {
            buf: Vec::new(),
            cap,
            total: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.cap.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn finish(self) -> Captured {
        Captured {
            truncated: self.total > self.buf.len() as u64,
            total_bytes: self.total,
            bytes: Bytes::from(self.buf),
        }
    }
}

/// A pipe being read: None once at EOF (or failed).
struct Reader {
    rx: Option<pipe::Receiver>,
    buf: Vec<u8>,
}

impl Reader {
    fn new(fd: Option<OwnedFd>) -> Result<Reader, ExecError> {
        let rx = fd
            .map(pipe::Receiver::from_owned_fd)
            .transpose()
            .map_err(|e| ExecError::Start(format!("pipe: {e}")))?;
        Ok(Reader {
            rx,
            buf: vec![0; READ_CHUNK],
        })
    }

    fn open(&self) -> bool {
        self.rx.is_some()
    }

    /// The next chunk; None (and closed) at EOF.
    async fn next(&mut self) -> Option<&[u8]> {
        let rx = self.rx.as_mut()?;
        match rx.read(&mut self.buf).await {
            Ok(n) if n > 0 => Some(&self.buf[..n]),
            _ => {
                self.rx = None;
                None
            }
        }
    }
}

async fn recv_exit(rx: &mut Option<tokio::sync::oneshot::Receiver<ExitInfo>>) -> ExitInfo {
    let info = match rx.as_mut() {
        // The sender only disappears if the waiter thread died: status unknown.
        Some(rx) => rx.await.unwrap_or_default(),
        None => std::future::pending().await,
    };
    *rx = None;
    info
}

/// Run blocking process work on the blocking pool.
async fn blocking<T: Send + 'static>(
    p: &Process,
    f: impl FnOnce(&Process) -> T + Send + 'static,
) -> Option<T> {
    let p = p.clone();
    tokio::task::spawn_blocking(move || f(&p)).await.ok()
}

impl Executor {
    /// Execute `spec` as batch work (its `stdio` must be pipes): wait for a
    /// batch slot, run it to its end, and return the captured output and
    /// the ending. `Busy` when the batch queue is full, `ShuttingDown` when
    /// the server stops first.
    pub async fn execute_batch(&self, spec: ExecutionSpec) -> Result<BatchOutcome, ExecError> {
        self.run_batch(spec, None, CancellationToken::new(), None)
            .await
    }

    /// A batch slot to run executions in ([`Executor::execute_batch_with_channel`]'s
    /// `slot`): work that needs several sandboxes at once (a grading) takes
    /// all its slots before it starts any, so it never holds one while its
    /// clock runs waiting for another.
    pub async fn batch_slot(&self) -> Result<Arc<Slot>, ExecError> {
        tokio::select! {
            _ = self.token.cancelled() => Err(ExecError::ShuttingDown),
            slot = self.admission.batch() => slot.map(Arc::new).map_err(|r| match r {
                Refused::Busy => ExecError::Busy {
                    retry_after_ms: self.busy_retry_after.as_millis() as u64,
                },
                Refused::Closed => ExecError::ShuttingDown,
            }),
        }
    }

    /// [`Executor::execute_batch`] with the result channel a socket pair the
    /// caller drives (its `PipeSpec::duplex` must be set): the server's end is
    /// sent on `channel` once the program has started (no nonce is added:
    /// the caller speaks its own protocol). Cancelling `stop` ends the
    /// execution (`stopped`); with `slot` it runs in a slot the caller
    /// already holds. What the grader's two sandboxes talk through.
    pub async fn execute_batch_with_channel(
        &self,
        spec: ExecutionSpec,
        channel: oneshot::Sender<UnixStream>,
        stop: CancellationToken,
        slot: Option<Arc<Slot>>,
    ) -> Result<BatchOutcome, ExecError> {
        self.run_batch(spec, Some(channel), stop, slot).await
    }

    async fn run_batch(
        &self,
        mut spec: ExecutionSpec,
        channel: Option<oneshot::Sender<UnixStream>>,
        stop: CancellationToken,
        held: Option<Arc<Slot>>,
    ) -> Result<BatchOutcome, ExecError> {
        let Stdio::Pipes(pipes) = &spec.stdio else {
            return Err(ExecError::Invalid(
                "batch work runs on pipes, not a terminal".into(),
            ));
        };
        let pipes = pipes.clone();
        if pipes.duplex != channel.is_some() || (pipes.duplex && pipes.result_cap.is_some()) {
            return Err(ExecError::Invalid(
                "a duplex channel needs execute_batch_with_channel and no result cap".into(),
            ));
        }
        spec.class = Class::Batch;
        let nonce = pipes
            .result_cap
            .map(|_| uuid::Uuid::new_v4().simple().to_string());
        if let Some(n) = &nonce {
            spec.env
                .retain(|(k, _)| k != RESULT_FD_ENV && k != RESULT_NONCE_ENV);
            spec.env.push((RESULT_FD_ENV.into(), RESULT_FD.to_string()));
            spec.env.push((RESULT_NONCE_ENV.into(), n.clone()));
        }
        let asked = Instant::now();
        let slot = match held {
            Some(s) => s,
            None => self.batch_slot().await?,
        };
        let queued_for = asked.elapsed();
        let sandbox = std::sync::Arc::clone(&self.sandbox);
        let start_spec = spec.clone();
        let started = tokio::task::spawn_blocking(move || process::start(&sandbox, &start_spec))
            .await
            .map_err(|e| ExecError::Start(format!("start task: {e}")))?
            .map_err(ExecError::Start)?;
        let started_at = Instant::now();
        let StartedIo::Pipes {
            stdin,
            stdout,
            stderr,
            result,
        } = started.io
        else {
            return Err(ExecError::Start("expected pipes".into()));
        };
        let process = started.process;
        let mut exit_rx = Some(started.exit);
        let mut out = Reader::new(Some(stdout))?;
        let mut err = Reader::new(Some(stderr))?;
        let result = match (channel, result) {
            (Some(tx), Some(fd)) => {
                let stream = std::os::unix::net::UnixStream::from(fd);
                match stream
                    .set_nonblocking(true)
                    .and_then(|()| UnixStream::from_std(stream))
                {
                    // A caller that went away leaves the program to its limits.
                    Ok(s) => drop(tx.send(s)),
                    Err(e) => tracing::warn!(id = %spec.id, "duplex channel: {e}"),
                }
                None
            }
            (_, r) => r,
        };
        let mut res = Reader::new(result)?;
        let mut out_cap = Capture::new(pipes.stdout_cap);
        let mut err_cap = Capture::new(pipes.stderr_cap);
        let nonce_line = nonce.as_ref().map(|n| format!("{n}\n").into_bytes());
        let mut res_cap = Capture::new(
            pipes.result_cap.unwrap_or(0) + nonce_line.as_ref().map_or(0, |l| l.len()),
        );
        // Stdin: written as the program reads it, then closed (EOF).
        let input = pipes.stdin.clone();
        let mut feed = Box::pin(async move {
            if let Ok(mut tx) = pipe::Sender::from_owned_fd(stdin) {
                let _ = tx.write_all(&input).await;
            }
        });
        let mut feeding = true;

        let limits = &spec.limits;
        let cpu_limit_ms = limits.sandbox.cpu_secs.saturating_mul(1000);
        let wall_at = started_at + limits.wall;
        let mut next_sample = started_at + SAMPLE_INTERVAL;
        let mut usage = Usage::default();
        let mut exit: Option<ExitInfo> = None;
        let mut kill_reason: Option<EndReason> = None;
        let output_total = |a: &Capture, b: &Capture| a.total + b.total;

        while exit.is_none() && kill_reason.is_none() {
            tokio::select! {
                _ = self.token.cancelled() => kill_reason = Some(EndReason::ServerShutdown),
                _ = stop.cancelled() => kill_reason = Some(EndReason::Stopped),
                info = recv_exit(&mut exit_rx) => exit = Some(info),
                _ = &mut feed, if feeding => feeding = false,
                chunk = out.next(), if out.open() => if let Some(c) = chunk { out_cap.push(c) },
                chunk = err.next(), if err.open() => if let Some(c) = chunk { err_cap.push(c) },
                chunk = res.next(), if res.open() => if let Some(c) = chunk { res_cap.push(c) },
                _ = sleep_until(wall_at) => kill_reason = Some(EndReason::Timeout),
                _ = sleep_until(next_sample) => {
                    next_sample = Instant::now() + SAMPLE_INTERVAL;
                    if let Some(u) = blocking(&process, |p| p.sample(false)).await {
                        usage = u;
                    }
                    if usage.cpu_ms >= cpu_limit_ms {
                        kill_reason = Some(EndReason::CpuLimit);
                    }
                }
            }
            if kill_reason.is_none() && output_total(&out_cap, &err_cap) > limits.output_bytes {
                kill_reason = Some(EndReason::OutputLimit);
            }
        }
        drop(feed);
        // No process outlives its execution: kill the rest of the tree
        // (the main process is still unreaped, so its group id is ours).
        let _ = blocking(&process, |p| p.kill_tree()).await;
        if exit.is_none() {
            match timeout(KILL_WAIT, recv_exit(&mut exit_rx)).await {
                Ok(info) => exit = Some(info),
                Err(_) => {
                    tracing::error!(id = %spec.id, "killed batch execution did not exit in time")
                }
            }
        }
        // Every writer is dead: what is left is bounded by the pipe buffers.
        for (reader, cap) in [
            (&mut out, &mut out_cap),
            (&mut err, &mut err_cap),
            (&mut res, &mut res_cap),
        ] {
            while reader.open() {
                match timeout(DRAIN_WAIT, reader.next()).await {
                    Ok(Some(c)) => cap.push(c),
                    Ok(None) => {}
                    Err(_) => reader.rx = None,
                }
            }
        }
        if let Some(u) = blocking(&process, |p| p.sample(true)).await {
            usage = u;
        }
        let _ = blocking(&process, |p| {
            p.reap();
            p.remove_cgroup();
        })
        .await;
        drop(slot);

        let exit = exit.unwrap_or_default();
        let output_bytes = output_total(&out_cap, &err_cap);
        let facts = EndFacts {
            kill_reason,
            exit_code: exit.code,
            signal: exit.signal,
            interrupted: false,
            cpu_ms: usage.cpu_ms.max(exit.cpu_ms),
            cpu_limit_ms,
            peak_memory_bytes: usage.peak_memory_bytes,
            memory_limit_bytes: limits.sandbox.memory_bytes,
            oom_kills: usage.oom_kills,
            phase: None,
            duration: started_at.elapsed(),
            output_bytes,
            output_limit_bytes: limits.output_bytes,
            max_age: limits.wall,
            detached_grace: Duration::ZERO,
            // Batch work writes only its scratch tree (a tmpfs with its own
            // size), never a workspace under the disk quota.
            disk_full: false,
            disk_quota_bytes: limits.sandbox.disk_bytes,
            disk_quota_entries: limits.sandbox.disk_entries,
        };
        let ended = ending::ended(spec.id.clone(), &facts);
        tracing::info!(id = %ended.run_id, user_id = spec.user_id, reason = ended.reason.as_str(),
            exit_code = ?ended.exit_code, cpu_ms = ended.cpu_ms, duration_ms = ended.duration_ms,
            output_bytes, "batch execution ended");
        let (report, report_rejected) = match nonce_line {
            None => (None, false),
            Some(line) => {
                let got = res_cap.finish();
                match got.bytes.strip_prefix(line.as_slice()) {
                    Some(rest) => {
                        let total = got.total_bytes - line.len() as u64;
                        (
                            Some(Captured {
                                bytes: Bytes::copy_from_slice(rest),
                                total_bytes: total,
                                truncated: got.truncated,
                            }),
                            false,
                        )
                    }
                    None => (None, got.total_bytes > 0),
                }
            }
        };
        Ok(BatchOutcome {
            ended,
            stdout: out_cap.finish(),
            stderr: err_cap.finish(),
            report,
            report_rejected,
            queued_for,
        })
    }
}
