//! One grading: the professor's tests in one sandbox, the student's code in
//! another, and the server between them.
//!
//! ```text
//!  harness sandbox (grader uid)        server (trusted)          student sandbox (student uid)
//!  /home/student = tests, read-only    relays calls, keeps       /home/student = snapshot, read-only
//!  harness.py ── fd 3 ───────────────▶ the clock, reads the ◀─── fd 3 ── driver.py + student code
//!                nonce, then results   verdicts (harness only)
//! ```
//!
//! The harness sends, one JSON line each: the nonce, `collected`, and per
//! test `start` … `result`, then `done`; between them `call` lines, which
//! the server forwards to the student side and answers with the student
//! side's one-line reply (or `timeout` / `crashed`). Nothing the student's
//! side writes is ever read as a verdict: its channel is another socket, its
//! stdout and exit code are output only. A call that runs past the test's
//! time ends the student's sandbox (`timeout` for that test); the next call
//! starts a fresh one, so the other tests still run. The harness never sees
//! a student file; the student's side never sees a test.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use campus_protocol::RunEnded;
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use crate::execution::{
    BatchOutcome, Class, ExecError, ExecLimits, ExecutionSpec, Executor, Mounts, PipeSpec,
    ReadOnlyTree, Slot, Stdio,
};
use crate::sandbox::SandboxLimits;

/// The user id whose uid the harness runs as: no account has it (ids are
/// allocated from 1 upwards), so the student's uid can never signal or read
/// the harness.
pub const GRADER_USER_ID: i64 = 2_000_000_000;
/// Longest line either side may send (a value, a message).
pub const MAX_LINE: usize = 1 << 20;
/// Output kept per stream of each side.
const OUTPUT_CAP: usize = 64 << 10;
/// Student output kept over all restarts of one grading.
const STUDENT_OUTPUT_MAX: usize = 256 << 10;
/// How long the harness has to say its nonce.
const HELLO_WAIT: Duration = Duration::from_secs(15);

/// Where the harness and the driver are (written once by [`super::Runtime`]).
#[derive(Debug, Clone)]
pub struct Programs {
    /// Directory holding `harness.py`.
    pub harness_dir: PathBuf,
    /// Directory holding `driver.py`.
    pub driver_dir: PathBuf,
    /// The sandbox's Python.
    pub python: PathBuf,
}

/// What to grade.
#[derive(Debug, Clone)]
pub struct GradeSpec {
    /// Names the executions (`<id>-h`, `<id>-s1`, …).
    pub id: String,
    /// The student (their uid runs their code).
    pub user_id: i64,
    /// The student's files (a snapshot, or the live workspace for a check), mounted read-only.
    pub student_home: PathBuf,
    /// The test files, mounted read-only in the harness only.
    pub tests_dir: PathBuf,
    /// The student's importable module names (top-level `*.py` of their files).
    pub student_modules: Vec<String>,
    /// Tests (node ids) not to run (a check leaves out the hidden ones).
    pub skip: Vec<String>,
    /// Tests after which the student's process is replaced (those hidden
    /// from the student: what it saw of their inputs dies with it).
    pub fresh_after: Vec<String>,
    /// Each test's time.
    pub test_timeout: Duration,
    /// The student side's limits (memory, CPU…).
    pub student_limits: SandboxLimits,
    /// The whole grading's wall clock.
    pub wall: Duration,
}

/// How one test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It passed.
    Passed,
    /// An assertion failed.
    Failed,
    /// It raised, or the student's program ended or misbehaved.
    Error,
    /// It ran past its time.
    Timeout,
    /// `pytest.skip` (counts as not passed).
    Skipped,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One test's result as the harness reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// Node id (`test_basic.py::test_add`).
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The failure's message (empty when passed).
    pub message: String,
    /// How long it ran, ms.
    pub duration_ms: u64,
}

/// Progress of a grading, as it happens.
#[derive(Debug, Clone)]
pub enum GradeEvent {
    /// The tests found, in order.
    Collected(Vec<String>),
    /// A test started.
    Started(String),
    /// A test ended.
    Finished(TestRun),
}

/// What a grading produced.
#[derive(Debug, Clone)]
pub struct GradeReport {
    /// The tests found (node ids, in order).
    pub collected: Vec<String>,
    /// Each test run, in order.
    pub tests: Vec<TestRun>,
    /// The harness said `done` (false: it ended or was ended first).
    pub complete: bool,
    /// The student side's stdout and stderr (every sandbox of it, in order).
    pub student_output: String,
    /// The last student sandbox's ending.
    pub student_ended: Option<RunEnded>,
    /// The harness's own output (the professor's prints, a crash).
    pub harness_output: String,
    /// How long it took, ms.
    pub duration_ms: u64,
}

/// Why a grading could not be done (the platform's fault: retried, never
/// the student's attempt).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GradeError {
    /// A sandbox could not be had or started.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The harness broke its protocol or did not start.
    #[error("the grader failed: {0}")]
    Harness(String),
}

/// A harness line.
#[derive(Debug, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum FromHarness {
    Collected {
        tests: Vec<String>,
    },
    Start {
        name: String,
    },
    Result {
        name: String,
        outcome: Outcome,
        #[serde(default)]
        message: String,
        #[serde(default)]
        duration_ms: u64,
    },
    Call {
        id: u64,
    },
    /// End the student's process: the next call gets a fresh one.
    Fresh,
    Done,
}

/// A running student sandbox.
struct StudentSide {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    stop: CancellationToken,
    task: JoinHandle<Result<BatchOutcome, ExecError>>,
}

/// Read one line of at most `max` bytes (without its newline); None at EOF.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() { None } else { Some(line) });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max + 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            return Ok(Some(line));
        }
    }
}

fn output_of(o: &BatchOutcome) -> String {
    let mut s = String::from_utf8_lossy(&o.stdout.bytes).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr.bytes));
    if o.stdout.truncated || o.stderr.truncated {
        s.push_str("\n[output truncated]\n");
    }
    s
}

fn pipes() -> Stdio {
    Stdio::Pipes(PipeSpec {
        stdin: Bytes::new(),
        stdout_cap: OUTPUT_CAP,
        stderr_cap: OUTPUT_CAP,
        result_cap: None,
        duplex: true,
    })
}

fn env(extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = crate::runner::launcher::env();
    env.retain(|(k, _)| k != "TERM");
    env.push(("TERM".into(), "dumb".into()));
    // Output in order and complete even when a side is ended mid-test.
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env
}

/// Runs gradings: the executor, the programs, and the rule that a grading
/// takes both its sandbox slots before it starts.
#[derive(Debug)]
pub struct Grader {
    executor: Arc<Executor>,
    programs: Programs,
    /// Held while a grading takes its two slots: two gradings each holding
    /// one slot and waiting for a second would wait forever.
    pair_lock: tokio::sync::Mutex<()>,
}

impl Grader {
    /// A grader over `executor`'s sandbox and slots.
    pub fn new(executor: Arc<Executor>, programs: Programs) -> Grader {
        Grader {
            executor,
            programs,
            pair_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether the sandbox isolates fully (two uids, namespaces): grading's
    /// guarantees need it.
    pub fn isolated(&self) -> bool {
        self.executor.sandbox().isolated()
    }

    /// Grade: take two slots, run the harness and, on demand, the student's
    /// side; relay; keep the clock. `events` sees the progress.
    pub async fn grade(
        &self,
        spec: &GradeSpec,
        events: Option<mpsc::Sender<GradeEvent>>,
    ) -> Result<GradeReport, GradeError> {
        let slots = {
            let _pair = self.pair_lock.lock().await;
            let h = self.executor.batch_slot().await?;
            (h, self.executor.batch_slot().await?)
        };
        grade(&self.executor, &self.programs, spec, events, slots).await
    }
}

async fn grade(
    executor: &Arc<Executor>,
    programs: &Programs,
    spec: &GradeSpec,
    events: Option<mpsc::Sender<GradeEvent>>,
    (harness_slot, student_slot): (Arc<Slot>, Arc<Slot>),
) -> Result<GradeReport, GradeError> {
    let started = Instant::now();
    let wall_at = started + spec.wall;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let py = programs.python.display().to_string();
    let harness_spec = ExecutionSpec {
        id: format!("{}-h", spec.id),
        user_id: GRADER_USER_ID,
        argv: vec![
            py.clone(),
            "-I".into(),
            "-u".into(),
            "/course/campus-harness/harness.py".into(),
        ],
        env: env(&[
            ("CAMPUS_GRADER_NONCE", nonce.clone()),
            (
                "CAMPUS_TEST_TIMEOUT",
                format!("{}", spec.test_timeout.as_secs_f64()),
            ),
            ("CAMPUS_TEST_SKIP", spec.skip.join("\n")),
            ("CAMPUS_FRESH_AFTER", spec.fresh_after.join("\n")),
            ("CAMPUS_STUDENT_MODULES", spec.student_modules.join(",")),
        ]),
        cwd: None,
        mounts: Mounts {
            home: spec.tests_dir.clone(),
            home_writable: false,
            read_only: vec![ReadOnlyTree {
                host: programs.harness_dir.clone(),
                name: "campus-harness".into(),
            }],
            scratch: None,
        },
        limits: ExecLimits {
            sandbox: SandboxLimits {
                memory_bytes: 256 << 20,
                cpu_secs: spec.wall.as_secs().max(1),
                ..SandboxLimits::default()
            },
            wall: spec.wall,
            output_bytes: 4 << 20,
        },
        stdio: pipes(),
        class: Class::Batch,
    };
    let (htx, hrx) = oneshot::channel();
    let hstop = CancellationToken::new();
    let harness_task = {
        let ex = Arc::clone(executor);
        let stop = hstop.clone();
        tokio::spawn(async move {
            ex.execute_batch_with_channel(harness_spec, htx, stop, Some(harness_slot))
                .await
        })
    };
    // Whatever happens below, no sandbox outlives the grading.
    let _stop_harness = hstop.clone().drop_guard();
    let channel = match hrx.await {
        Ok(c) => c,
        Err(_) => {
            return Err(match harness_task.await {
                Ok(Err(e)) => GradeError::Exec(e),
                Ok(Ok(o)) => {
                    GradeError::Harness(format!("the harness did not start: {}", output_of(&o)))
                }
                Err(e) => GradeError::Harness(format!("harness task: {e}")),
            })
        }
    };
    let (hr, mut hw) = channel.into_split();
    let mut hr = BufReader::new(hr);
    match timeout_at(Instant::now() + HELLO_WAIT, read_line(&mut hr, 64)).await {
        Ok(Ok(Some(line))) if line == nonce.as_bytes() => {}
        _ => {
            hstop.cancel();
            let out = harness_task.await.ok().and_then(Result::ok);
            return Err(GradeError::Harness(format!(
                "the harness did not begin its report: {}",
                out.as_ref().map(output_of).unwrap_or_default()
            )));
        }
    }

    let mut report = GradeReport {
        collected: Vec::new(),
        tests: Vec::new(),
        complete: false,
        student_output: String::new(),
        student_ended: None,
        harness_output: String::new(),
        duration_ms: 0,
    };
    let mut student: Option<StudentSide> = None;
    let mut starts = 0u32;
    let mut current: Option<(String, Instant)> = None;
    let send = |ev: GradeEvent| {
        let events = events.clone();
        async move {
            if let Some(tx) = events {
                let _ = tx.send(ev).await;
            }
        }
    };
    let mut failure: Option<GradeError> = None;
    loop {
        let line = match timeout_at(wall_at, read_line(&mut hr, MAX_LINE)).await {
            Ok(Ok(Some(line))) => line,
            // EOF, a broken line, or the wall clock: the report ends here.
            _ => break,
        };
        let msg: FromHarness = match serde_json::from_slice(&line) {
            Ok(m) => m,
            Err(e) => {
                failure = Some(GradeError::Harness(format!("unreadable harness line: {e}")));
                break;
            }
        };
        match msg {
            FromHarness::Collected { tests } => {
                report.collected = tests.clone();
                send(GradeEvent::Collected(tests)).await;
            }
            FromHarness::Start { name } => {
                current = Some((name.clone(), Instant::now()));
                send(GradeEvent::Started(name)).await;
            }
            FromHarness::Result {
                name,
                outcome,
                message,
                duration_ms,
            } => {
                // Only the test that started can end, once.
                if current.as_ref().map(|(n, _)| n) != Some(&name) {
                    failure = Some(GradeError::Harness(format!(
                        "result for a test not running: {name}"
                    )));
                    break;
                }
                current = None;
                let run = TestRun {
                    name,
                    outcome,
                    message,
                    duration_ms,
                };
                report.tests.push(run.clone());
                send(GradeEvent::Finished(run)).await;
            }
            FromHarness::Done => {
                report.complete = true;
                break;
            }
            FromHarness::Fresh => {
                if let Some(s) = student.take() {
                    finish_student(s, &mut report).await;
                }
            }
            FromHarness::Call { id } => {
                let deadline = current
                    .as_ref()
                    .map(|(_, t)| *t + spec.test_timeout)
                    .unwrap_or_else(|| Instant::now() + spec.test_timeout)
                    .min(wall_at);
                let reply = call_student(
                    executor,
                    programs,
                    spec,
                    &student_slot,
                    &mut student,
                    &mut starts,
                    &mut report,
                    &line,
                    id,
                    deadline,
                )
                .await;
                let reply = match reply {
                    Ok(r) => r,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                if hw.write_all(&reply).await.is_err() || hw.write_all(b"\n").await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(s) = student.take() {
        finish_student(s, &mut report).await;
    }
    hstop.cancel();
    drop(hw);
    match harness_task.await {
        // Ended by a shutdown, the report says nothing about the student.
        Ok(Ok(o)) if o.ended.reason == campus_protocol::EndReason::ServerShutdown => {
            failure = Some(GradeError::Exec(ExecError::ShuttingDown));
        }
        Ok(Ok(o)) => report.harness_output = output_of(&o),
        Ok(Err(e)) => failure = failure.or(Some(GradeError::Exec(e))),
        Err(e) => failure = failure.or(Some(GradeError::Harness(format!("harness task: {e}")))),
    }
    if let Some(e) = failure {
        return Err(e);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn finish_student(s: StudentSide, report: &mut GradeReport) {
    // EOF on its channel ends the driver's loop (and flushes its output);
    // one that does not end by itself is stopped.
    drop(s.write);
    drop(s.read);
    let mut task = s.task;
    let done = match tokio::time::timeout(Duration::from_secs(1), &mut task).await {
        Ok(r) => r,
        Err(_) => {
            s.stop.cancel();
            task.await
        }
    };
    if let Ok(Ok(o)) = done {
        // Bounded however often the side was restarted.
        if report.student_output.len() < STUDENT_OUTPUT_MAX {
            report.student_output.push_str(&output_of(&o));
        }
        report.student_ended = Some(o.ended);
    }
}

fn reply(id: u64, kind: &str, message: &str) -> Vec<u8> {
    serde_json::json!({"id": id, "ok": false, "kind": kind, "message": message})
        .to_string()
        .into_bytes()
}

/// Forward one call to the student's side (starting it if needed) and
/// return the answer for the harness.
#[allow(clippy::too_many_arguments)]
async fn call_student(
    executor: &Arc<Executor>,
    programs: &Programs,
    spec: &GradeSpec,
    slot: &Arc<Slot>,
    student: &mut Option<StudentSide>,
    starts: &mut u32,
    report: &mut GradeReport,
    line: &[u8],
    id: u64,
    deadline: Instant,
) -> Result<Vec<u8>, GradeError> {
    if student.is_none() {
        *starts += 1;
        // Every test may have ended the previous one; beyond that the
        // student's code is only wasting the grader's time.
        if *starts > 200 {
            return Ok(reply(
                id,
                "crashed",
                "the program was restarted too many times",
            ));
        }
        let s = start_student(executor, programs, spec, slot, *starts).await?;
        *student = Some(s);
    }
    let Some(s) = student.as_mut() else {
        return Ok(reply(id, "crashed", "the program did not start"));
    };
    let sent = async {
        s.write.write_all(line).await?;
        s.write.write_all(b"\n").await
    };
    let answer = match timeout_at(deadline, sent).await {
        Ok(Ok(())) => timeout_at(deadline, read_line(&mut s.read, MAX_LINE)).await,
        Ok(Err(e)) => Ok(Err(e)),
        Err(t) => Err(t),
    };
    let verdict = match answer {
        Ok(Ok(Some(a))) => match serde_json::from_slice::<serde_json::Value>(&a) {
            // Passed on as the data it is; the harness decodes it.
            Ok(v) if v.get("id").and_then(|i| i.as_u64()) == Some(id) => return Ok(a),
            _ => reply(
                id,
                "crashed",
                "the program sent something that is not an answer",
            ),
        },
        Ok(Ok(None)) => reply(id, "crashed", "the program ended during the call"),
        Ok(Err(_)) => reply(
            id,
            "crashed",
            "the program's answer was too large or unreadable",
        ),
        Err(_) => {
            // Past its time: ended now, not after a grace.
            if let Some(s) = student.as_ref() {
                s.stop.cancel();
            }
            reply(id, "timeout", "the test ran past its time limit")
        }
    };
    // The student side is finished: a fresh one serves the next call.
    if let Some(s) = student.take() {
        finish_student(s, report).await;
    }
    Ok(verdict)
}

async fn start_student(
    executor: &Arc<Executor>,
    programs: &Programs,
    spec: &GradeSpec,
    slot: &Arc<Slot>,
    n: u32,
) -> Result<StudentSide, GradeError> {
    let es = ExecutionSpec {
        id: format!("{}-s{n}", spec.id),
        user_id: spec.user_id,
        argv: vec![
            programs.python.display().to_string(),
            "-I".into(),
            "-u".into(),
            "/course/campus-driver/driver.py".into(),
        ],
        env: env(&[]),
        cwd: None,
        mounts: Mounts {
            home: spec.student_home.clone(),
            home_writable: false,
            read_only: vec![ReadOnlyTree {
                host: programs.driver_dir.clone(),
                name: "campus-driver".into(),
            }],
            scratch: None,
        },
        limits: ExecLimits {
            sandbox: spec.student_limits.clone(),
            wall: spec.wall,
            output_bytes: 4 << 20,
        },
        stdio: pipes(),
        class: Class::Batch,
    };
    let (tx, rx) = oneshot::channel();
    let stop = CancellationToken::new();
    let task = {
        let ex = Arc::clone(executor);
        let stop = stop.clone();
        let slot = Arc::clone(slot);
        tokio::spawn(async move {
            ex.execute_batch_with_channel(es, tx, stop, Some(slot))
                .await
        })
    };
    match rx.await {
        Ok(channel) => {
            let (r, w) = channel.into_split();
            Ok(StudentSide {
                read: BufReader::new(r),
                write: w,
                stop,
                task,
            })
        }
        Err(_) => Err(match task.await {
            Ok(Err(e)) => GradeError::Exec(e),
            Ok(Ok(o)) => GradeError::Harness(format!(
                "the student's side did not start: {}",
                output_of(&o)
            )),
            Err(e) => GradeError::Harness(format!("student task: {e}")),
        }),
    }
}
