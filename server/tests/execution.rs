//! Batch executions through the real sandbox (as root: cgroups, namespaces,
//! per-student uids): pipes with capture caps, several at once for one user,
//! read-only trees a program cannot write through, the scratch tree, the
//! result channel, and the shared admission policy.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use campus_protocol::EndReason;
use campus_server::execution::{
    AdmissionConfig, BatchOutcome, Class, ExecError, ExecLimits, ExecutionSpec, Executor, Mounts,
    PipeSpec, ReadOnlyTree, Stdio,
};
use campus_server::sandbox::{Sandbox, SandboxConfig};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

fn sandbox() -> Arc<Sandbox> {
    let sb = Sandbox::new(SandboxConfig {
        helper_exe: PathBuf::from(env!("CARGO_BIN_EXE_campus")),
        production: false,
        uid_base: 200_000,
        cgroup_group: format!("campus-exec-test-{}", std::process::id()),
        ..SandboxConfig::default()
    })
    .unwrap();
    // These tests are about isolation: without it they would prove nothing.
    assert!(
        sb.isolated(),
        "the execution tests need the full sandbox (run as root): {:?}",
        sb.report()
    );
    Arc::new(sb)
}

fn executor(slots: usize, reserve: usize) -> Arc<Executor> {
    Executor::new(
        sandbox(),
        AdmissionConfig {
            slots,
            interactive_reserve: reserve,
            batch_queue: 16,
        },
        Duration::from_secs(1),
        CancellationToken::new(),
    )
}

/// A world-accessible directory (the per-student uid must reach it).
fn dir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn spec(user_id: i64, home: &Path, code: &str) -> ExecutionSpec {
    ExecutionSpec {
        id: uuid::Uuid::new_v4().to_string(),
        user_id,
        argv: vec!["/usr/bin/python3".into(), "-c".into(), code.into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: None,
        mounts: Mounts::workspace(home.to_path_buf()),
        limits: ExecLimits {
            wall: Duration::from_secs(30),
            ..ExecLimits::default()
        },
        stdio: Stdio::Pipes(PipeSpec {
            stdin: Bytes::new(),
            stdout_cap: 64 << 10,
            stderr_cap: 64 << 10,
            result_cap: None,
            duplex: false,
        }),
        class: Class::Batch,
    }
}

fn pipes(s: &mut ExecutionSpec) -> &mut PipeSpec {
    match &mut s.stdio {
        Stdio::Pipes(p) => p,
        Stdio::Pty(_) => unreachable!(),
    }
}

async fn run(ex: &Executor, s: ExecutionSpec) -> BatchOutcome {
    tokio::time::timeout(WAIT, ex.execute_batch(s))
        .await
        .expect("batch execution did not end")
        .expect("batch execution failed")
}

fn out(o: &BatchOutcome) -> String {
    String::from_utf8_lossy(&o.stdout.bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_carry_stdin_stdout_stderr_and_the_exit_code() {
    let ex = executor(4, 1);
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    let mut s = spec(
        11,
        &home,
        "import sys\nline = sys.stdin.read()\nprint('got', line.strip())\n\
         print('oops', file=sys.stderr)\nsys.exit(3)",
    );
    pipes(&mut s).stdin = Bytes::from_static(b"hello from stdin\n");
    let o = run(&ex, s).await;
    assert_eq!(o.ended.reason, EndReason::Exited, "{:?}", o.ended);
    assert_eq!(o.ended.exit_code, Some(3));
    assert_eq!(out(&o), "got hello from stdin\n");
    assert_eq!(&o.stderr.bytes[..], b"oops\n");
    assert!(!o.stdout.truncated && !o.stderr.truncated);
    assert_eq!(ex.admission().in_use(), 0, "the slot was not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_beyond_the_capture_cap_is_cut_and_flagged_and_never_blocks_the_program() {
    let ex = executor(4, 1);
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    // 8 MiB on each stream, far beyond a pipe's 64 KiB buffer: a program
    // whose pipe is not read would block forever and end at the wall clock.
    let mut s = spec(
        12,
        &home,
        "import sys\nchunk = 'x' * 1023 + '\\n'\nfor _ in range(8192):\n\
         \x20   sys.stdout.write(chunk)\n\x20   sys.stderr.write(chunk)\nprint('END')",
    );
    pipes(&mut s).stdout_cap = 1000;
    pipes(&mut s).stderr_cap = 10;
    let o = run(&ex, s).await;
    assert_eq!(o.ended.reason, EndReason::Exited, "{:?}", o.ended);
    assert_eq!(o.ended.exit_code, Some(0));
    assert_eq!(o.stdout.bytes.len(), 1000);
    assert!(o.stdout.truncated);
    assert_eq!(o.stdout.total_bytes, 8192 * 1024 + 4);
    assert_eq!(o.stderr.bytes.len(), 10);
    assert!(o.stderr.truncated);
    assert_eq!(o.ended.output_bytes, 2 * 8192 * 1024 + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_output_cap_and_the_wall_clock_end_a_batch_execution() {
    let ex = executor(4, 1);
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    let mut flood = spec(13, &home, "while True:\n    print('y' * 1000)");
    flood.limits.output_bytes = 1 << 20;
    let o = run(&ex, flood).await;
    assert_eq!(o.ended.reason, EndReason::OutputLimit, "{:?}", o.ended);
    assert!(o.stdout.truncated);

    let mut sleeper = spec(13, &home, "import time\ntime.sleep(600)");
    sleeper.limits.wall = Duration::from_millis(500);
    let o = run(&ex, sleeper).await;
    assert_eq!(o.ended.reason, EndReason::Timeout, "{:?}", o.ended);
    assert!(o.ended.duration_ms < 30_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_batch_executions_of_one_user_run_at_once() {
    let ex = executor(6, 1);
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    // Each marks itself in their shared read-write home, then waits until
    // all four have: it ends only if the four ran at the same time.
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
    let code = |i: usize| {
        format!(
            "import os, time\nopen('/home/student/here-{i}', 'w').close()\n\
             deadline = time.time() + 20\n\
             while len([f for f in os.listdir('/home/student') if f.startswith('here-')]) < 4:\n\
             \x20   assert time.time() < deadline, 'not concurrent'\n\x20   time.sleep(0.01)\n\
             print('all four ran together', {i})"
        )
    };
    let runs = (0..4).map(|i| {
        let ex = Arc::clone(&ex);
        let s = spec(14, &home, &code(i));
        tokio::spawn(async move { run(&ex, s).await })
    });
    for (i, r) in futures_util::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        let o = r.unwrap();
        assert_eq!(
            o.ended.exit_code,
            Some(0),
            "{:?} {}",
            o.ended,
            String::from_utf8_lossy(&o.stderr.bytes)
        );
        assert_eq!(out(&o), format!("all four ran together {i}\n"));
    }
}

/// Every way of writing through a read-only tree; the program prints one
/// line per attempt: `NAME errno` (or `NAME WROTE` if it got through).
const WRITE_ATTEMPTS: &str = r#"
import errno, os
def attempt(name, f):
    try:
        f()
        print(name, "WROTE")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))
T = TARGET
attempt("write", lambda: open(T + "/data.txt", "a").write("x"))
attempt("truncate", lambda: open(T + "/data.txt", "w"))
attempt("create", lambda: os.close(os.open(T + "/new.txt", os.O_CREAT | os.O_WRONLY, 0o644)))
attempt("mkdir", lambda: os.mkdir(T + "/d"))
attempt("chmod", lambda: os.chmod(T + "/data.txt", 0o777))
attempt("unlink", lambda: os.unlink(T + "/data.txt"))
attempt("rename-in", lambda: os.rename(T + "/data.txt", T + "/moved.txt"))
attempt("rename-out", lambda: os.rename(T + "/data.txt", "/tmp/stolen.txt"))
attempt("link", lambda: os.link(T + "/data.txt", T + "/hard.txt"))
attempt("symlink", lambda: os.symlink("/etc/passwd", T + "/sym"))
attempt("utime", lambda: os.utime(T + "/data.txt", (0, 0)))
# The symlink trick: a link in a writable place pointing into the read-only tree.
os.symlink(T + "/data.txt", WRITABLE + "/via-link")
attempt("via-symlink", lambda: open(WRITABLE + "/via-link", "w").write("x"))
print("READ", open(T + "/data.txt").read())
"#;

fn assert_refused(text: &str, what: &str) {
    for name in [
        "write",
        "truncate",
        "create",
        "mkdir",
        "chmod",
        "unlink",
        "rename-in",
        "link",
        "symlink",
        "utime",
        "via-symlink",
    ] {
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{what}: no line for {name}: {text}"));
        assert_eq!(line, format!("{name} EROFS"), "{what}: {text}");
    }
    // Out of the tree is a cross-mount move: refused before any write.
    let line = text.lines().find(|l| l.starts_with("rename-out ")).unwrap();
    assert!(
        line == "rename-out EXDEV" || line == "rename-out EROFS",
        "{what}: {text}"
    );
    assert!(text.contains("READ original"), "{what}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_trees_cannot_be_written_through_any_call() {
    let ex = executor(4, 1);
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    let course = dir(tmp.path(), "course");
    std::fs::write(course.join("data.txt"), "original").unwrap();
    // World-writable on the host: only the mount may stop the program.
    std::fs::set_permissions(&course, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        course.join("data.txt"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let code = WRITE_ATTEMPTS
        .replace("TARGET", "'/course/c101'")
        .replace("WRITABLE", "'/home/student'");
    let mut s = spec(15, &home, &code);
    s.mounts.read_only.push(ReadOnlyTree {
        host: course.clone(),
        name: "c101".into(),
    });
    let o = run(&ex, s).await;
    let text = out(&o);
    assert_eq!(
        o.ended.exit_code,
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr.bytes)
    );
    assert_refused(&text, "course tree");
    // Nothing changed on the host.
    assert_eq!(
        std::fs::read_to_string(course.join("data.txt")).unwrap(),
        "original"
    );
    let names: Vec<_> = std::fs::read_dir(&course)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("data.txt")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_home_with_a_scratch_tree_for_the_program_to_write() {
    let ex = executor(4, 1);
    let tmp = tempfile::tempdir().unwrap();
    // An immutable snapshot, as grading will mount it.
    let snapshot = dir(tmp.path(), "snapshot");
    std::fs::write(snapshot.join("data.txt"), "original").unwrap();
    std::fs::set_permissions(&snapshot, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        snapshot.join("data.txt"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let before = std::fs::metadata(&snapshot).unwrap();
    let scratch = dir(tmp.path(), "scratch");
    let code = WRITE_ATTEMPTS
        .replace("TARGET", "'/home/student'")
        .replace("WRITABLE", "'/scratch'")
        + "open('/scratch/out.txt', 'w').write('from the program')\nprint('CWD', __import__('os').getcwd())\n";
    let mut s = spec(16, &snapshot, &code);
    s.mounts.home_writable = false;
    s.mounts.scratch = Some(scratch.clone());
    s.cwd = Some("/scratch".into());
    let o = run(&ex, s).await;
    let text = out(&o);
    assert_eq!(
        o.ended.exit_code,
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr.bytes)
    );
    assert_refused(&text, "read-only home");
    assert!(text.contains("CWD /scratch"), "{text}");
    assert_eq!(
        std::fs::read_to_string(scratch.join("out.txt")).unwrap(),
        "from the program"
    );
    // The snapshot was neither written nor chowned to the student.
    let after = std::fs::metadata(&snapshot).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((before.uid(), before.gid()), (after.uid(), after.gid()));
    assert_eq!(
        std::fs::read_to_string(snapshot.join("data.txt")).unwrap(),
        "original"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_read_only_tree_names_are_refused() {
    let ex = executor(2, 0);
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    // A course, a section below it (`cs101/week1`), then a workspace-valid
    // path (`cs101/week1/data/a.csv`); nothing stranger.
    for name in [
        "", "..", ".hidden", "a/", "/a", "a/..", "a/.b", "x y", "a/b/..", "a/b/c/", "a/b//c",
        "a/.b/c", "a/b/./c",
    ] {
        let mut s = spec(17, &home, "print(1)");
        s.mounts.read_only.push(ReadOnlyTree {
            host: home.clone(),
            name: name.into(),
        });
        let e = ex.execute_batch(s).await.unwrap_err();
        assert!(matches!(e, ExecError::Start(_)), "{name:?}: {e:?}");
    }
    assert_eq!(ex.admission().in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_channel_reaches_only_the_chosen_process() {
    let ex = executor(4, 1);
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    // The "harness" reads its nonce, writes its report on fd 3, and starts
    // "student code" that tries to forge a report: on stdout, on fd 3 (which
    // subprocess does not pass on), and by guessing the descriptor.
    let code = r#"
import os, subprocess, sys
fd = int(os.environ["CAMPUS_RESULT_FD"])
nonce = os.environ.pop("CAMPUS_RESULT_NONCE")
student = subprocess.run([sys.executable, "-c", """
import os
print('FORGED REPORT')
try:
    os.write(3, b'FORGED ON FD 3')
    print('FD3 OPEN')
except OSError as e:
    print('FD3', e.errno)
print('NONCE', os.environ.get('CAMPUS_RESULT_NONCE'))
"""], capture_output=True, text=True)
print(student.stdout, end="")
os.write(fd, (nonce + "\n" + "score=7/10").encode())
"#;
    let mut s = spec(18, &home, code);
    pipes(&mut s).result_cap = Some(1024);
    let o = run(&ex, s).await;
    let text = out(&o);
    assert_eq!(
        o.ended.exit_code,
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr.bytes)
    );
    assert!(text.contains("FORGED REPORT"), "{text}");
    assert!(text.contains("FD3 9"), "the child could write fd 3: {text}"); // EBADF
    assert!(text.contains("NONCE None"), "{text}");
    let report = o.report.expect("no report");
    assert_eq!(&report.bytes[..], b"score=7/10");
    assert!(!o.report_rejected);

    // A report without the nonce line is rejected, not taken.
    let mut s = spec(
        18,
        &home,
        "import os\nos.write(3, b'score=10/10')\nprint('hi')",
    );
    pipes(&mut s).result_cap = Some(1024);
    let o = run(&ex, s).await;
    assert!(o.report.is_none());
    assert!(o.report_rejected);

    // Without a result channel, fd 3 does not exist for the program.
    let o = run(
        &ex,
        spec(18, &home, "import os\ntry:\n    os.fstat(3)\n    print('OPEN')\nexcept OSError as e:\n    print('CLOSED', e.errno)"),
    )
    .await;
    assert_eq!(out(&o), "CLOSED 9\n");
    assert!(o.report.is_none() && !o.report_rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_waits_behind_interactive_work_and_never_takes_the_reserve() {
    // 3 slots, 1 reserved for interactive work.
    let ex = executor(3, 1);
    let adm = ex.admission().clone();
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Interactive work holds one slot.
    let interactive = adm.try_interactive().unwrap();
    // Two batch executions that run until a file appears: the first fits
    // (1 + 1 + reserve 1 ≤ 3), the second must wait (it would take the reserve).
    let waiter = "import os, time\nwhile not os.path.exists('/home/student/go'):\n    time.sleep(0.02)\nprint('done')";
    let first = {
        let ex = Arc::clone(&ex);
        let s = spec(19, &home, waiter);
        tokio::spawn(async move { run(&ex, s).await })
    };
    wait_for("the first batch execution to hold a slot", || {
        adm.batch_in_use() == 1
    })
    .await;
    let second = {
        let ex = Arc::clone(&ex);
        let s = spec(19, &home, waiter);
        tokio::spawn(async move { run(&ex, s).await })
    };
    wait_for("the second batch execution to queue", || adm.queued() == 1).await;
    assert_eq!(adm.batch_in_use(), 1, "batch work took the reserve");
    // Interactive work still gets the reserved slot while batch waits…
    let reserve = adm.try_interactive().expect("interactive work was starved");
    assert_eq!(adm.available(), 0);
    drop(reserve);
    assert_eq!(adm.queued(), 1, "a freed reserve slot went to batch work");
    // …and the queued one proceeds when a slot frees up.
    drop(interactive);
    wait_for("the queued batch execution to start", || {
        adm.batch_in_use() == 2
    })
    .await;
    std::fs::write(home.join("go"), "").unwrap();
    for r in [first, second] {
        let o = tokio::time::timeout(WAIT, r).await.unwrap().unwrap();
        assert_eq!(out(&o), "done\n", "{:?}", o.ended);
    }
    assert_eq!(adm.in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_running_and_queued_batch_work() {
    let token = CancellationToken::new();
    let ex = Executor::new(
        sandbox(),
        AdmissionConfig {
            slots: 1,
            interactive_reserve: 0,
            batch_queue: 4,
        },
        Duration::from_secs(1),
        token.clone(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let home = dir(tmp.path(), "home");
    let running = {
        let ex = Arc::clone(&ex);
        let s = spec(
            20,
            &home,
            "import time\nprint('up', flush=True)\ntime.sleep(600)",
        );
        tokio::spawn(async move { ex.execute_batch(s).await })
    };
    wait_for("the batch execution to run", || {
        ex.admission().batch_in_use() == 1
    })
    .await;
    let queued = {
        let ex = Arc::clone(&ex);
        let s = spec(20, &home, "print(1)");
        tokio::spawn(async move { ex.execute_batch(s).await })
    };
    wait_for("the second to queue", || ex.admission().queued() == 1).await;
    ex.shutdown();
    let o = tokio::time::timeout(WAIT, running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(o.ended.reason, EndReason::ServerShutdown);
    let e = tokio::time::timeout(WAIT, queued)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e, ExecError::ShuttingDown);
    assert_eq!(ex.admission().in_use(), 0);
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
