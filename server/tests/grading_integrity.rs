//! The grader's integrity, attack by attack, through the real sandbox (as
//! root: two uids, namespaces, cgroups): the professor's tests in one
//! sandbox, the student's code in another, the server between them. Each
//! test plants a hostile solution and shows that it scores nothing it did
//! not earn and learns nothing it should not (docs/grading.md, "Threat model").

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use campus_server::execution::{AdmissionConfig, Executor};
use campus_server::grading::{self, GradeReport, GradeSpec, Grader, Outcome};
use campus_server::sandbox::{Sandbox, SandboxConfig, SandboxLimits};
use tokio_util::sync::CancellationToken;

/// A value only the tests know.
const SECRET: &str = "expected-7f3a9c-secret";

fn grader(root: &Path) -> Arc<Grader> {
    let sb = Sandbox::new(SandboxConfig {
        helper_exe: PathBuf::from(env!("CARGO_BIN_EXE_campus")),
        production: false,
        uid_base: 200_000,
        cgroup_group: format!("campus-grading-test-{}", std::process::id()),
        ..SandboxConfig::default()
    })
    .unwrap();
    assert!(
        sb.isolated(),
        "grading needs the full sandbox (root): {:?}",
        sb.report()
    );
    let ex = Executor::new(
        Arc::new(sb),
        AdmissionConfig {
            slots: 6,
            interactive_reserve: 0,
            batch_queue: 32,
        },
        Duration::from_secs(1),
        CancellationToken::new(),
    );
    let programs =
        grading::install_programs(&root.join("programs"), "/usr/bin/python3".into()).unwrap();
    Arc::new(Grader::new(ex, programs))
}

fn tree(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (path, text) in files {
        let p = d.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    d
}

/// The professor's tests: the expected values include [`SECRET`].
const TESTS: &str = r#"
from solution import add, answer, echo

SECRET = "expected-7f3a9c-secret"

def test_add():
    assert add(2, 3) == 5

def test_add_negative():
    assert add(-2, -3) == -5

def test_answer():
    assert answer() == SECRET

def test_echo_type():
    v = echo(3)
    assert type(v) is int and v == 3

def test_truthy():
    assert echo(True)
"#;

async fn grade_with(
    g: &Grader,
    root: &Path,
    tests: &str,
    solution: &[(&str, &str)],
) -> GradeReport {
    grade_timed(g, root, tests, solution, Duration::from_secs(3)).await
}

async fn grade_timed(
    g: &Grader,
    root: &Path,
    tests: &str,
    solution: &[(&str, &str)],
    test_timeout: Duration,
) -> GradeReport {
    grade_files(
        g,
        root,
        &[("test_main.py", tests)],
        solution,
        test_timeout,
        &[],
    )
    .await
}

async fn grade_files(
    g: &Grader,
    root: &Path,
    tests: &[(&str, &str)],
    solution: &[(&str, &str)],
    test_timeout: Duration,
    fresh_after: &[&str],
) -> GradeReport {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let tests = tree(root, &format!("tests-{id}"), tests);
    let home = tree(root, &format!("home-{id}"), solution);
    let spec = GradeSpec {
        id: format!("grade-{}", &id[..8]),
        user_id: 7,
        student_modules: grading::student_modules(&home),
        student_home: home,
        tests_dir: tests,
        skip: Vec::new(),
        fresh_after: fresh_after.iter().map(|s| s.to_string()).collect(),
        test_timeout,
        student_limits: SandboxLimits::default(),
        wall: Duration::from_secs(60),
    };
    tokio::time::timeout(Duration::from_secs(120), g.grade(&spec, None))
        .await
        .expect("grading did not end")
        .expect("grading failed")
}

fn outcomes(r: &GradeReport) -> Vec<(String, Outcome)> {
    r.tests
        .iter()
        .map(|t| (t.name.rsplit("::").next().unwrap().to_string(), t.outcome))
        .collect()
}

fn outcome(r: &GradeReport, name: &str) -> Outcome {
    outcomes(r)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not run: {:?}\n{}", r.tests, r.harness_output))
        .1
}

fn assert_no_secret(r: &GradeReport) {
    assert!(
        !r.student_output.contains(SECRET),
        "the student's side saw the secret: {}",
        r.student_output
    );
}

const HONEST: &str = "def add(a, b):\n    return a + b\n\ndef answer():\n    return 'no idea'\n\ndef echo(x):\n    return x\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_solution_passes_and_a_wrong_one_fails_test_by_test() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let r = grade_with(&g, root.path(), TESTS, &[("solution.py", HONEST)]).await;
    assert!(r.complete, "{r:?}");
    assert_eq!(
        outcomes(&r),
        vec![
            ("test_add".into(), Outcome::Passed),
            ("test_add_negative".into(), Outcome::Passed),
            ("test_answer".into(), Outcome::Failed),
            ("test_echo_type".into(), Outcome::Passed),
            ("test_truthy".into(), Outcome::Passed),
        ]
    );
    let wrong = "def add(a, b):\n    return a - b if a < 0 else a + b\n\ndef answer():\n    return ''\n\ndef echo(x):\n    return str(x)\n";
    let r = grade_with(&g, root.path(), TESTS, &[("solution.py", wrong)]).await;
    assert_eq!(outcome(&r, "test_add"), Outcome::Passed);
    assert_eq!(outcome(&r, "test_add_negative"), Outcome::Failed);
    assert_eq!(outcome(&r, "test_echo_type"), Outcome::Failed);
    // The failure says which assertion, from the test's source.
    let msg = &r.tests[1].message;
    assert!(msg.contains("assert add(-2, -3) == -5"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_tests_cannot_be_read_from_disk_proc_or_the_environment() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    // Search everything the student's sandbox can reach for the secret.
    let thief = r#"
import os

NEEDLE = "expected-" + "7f3a9c"  # not spelled out: this file must not match

def _scan():
    hits = []
    for base in ("/", "/proc"):
        for d, dirs, files in os.walk(base):
            if d.startswith(("/proc/sys", "/sys", "/dev", "/usr/share", "/usr/lib/python3")):
                dirs[:] = []
                continue
            for f in files:
                p = os.path.join(d, f)
                try:
                    with open(p, "rb") as fh:
                        data = fh.read(1 << 20)
                except Exception:
                    continue
                if NEEDLE.encode() in data:
                    hits.append(p)
    for k, v in os.environ.items():
        if NEEDLE in v or "NONCE" in k:
            hits.append("env:" + k)
    return hits

def add(a, b):
    return a + b

def answer():
    hits = _scan()
    print("FOUND", hits)
    return hits[0] if hits else ""

def echo(x):
    return x
"#;
    let long = Duration::from_secs(30);
    let r = grade_timed(&g, root.path(), TESTS, &[("solution.py", thief)], long).await;
    assert_eq!(outcome(&r, "test_answer"), Outcome::Failed, "{r:?}");
    assert!(r.student_output.contains("FOUND []"), "{r:?}");
    assert_no_secret(&r);
    // A previous submission's grading left nothing behind to find either.
    let r2 = grade_timed(&g, root.path(), TESTS, &[("solution.py", thief)], long).await;
    assert!(
        r2.student_output.contains("FOUND []"),
        "{}",
        r2.student_output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_results_markers_exit_codes_and_planted_config_score_nothing() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let forger = r#"
import builtins, json, os, sys

# Every result format a one-process grader might trust.
for t in ("test_add", "test_add_negative", "test_answer", "test_echo_type"):
    line = json.dumps({"t": "result", "name": "test_main.py::" + t, "outcome": "passed"})
    print(line)
    print(line, file=sys.stderr)
print('{"score": 100, "tests": []}')
for path in ("/home/student/results.json", "/tmp/results.json", "/scratch/results.json"):
    try:
        open(path, "w").write('{"score": 100}')
    except OSError:
        pass
# Monkeypatching the framework and builtins on this side.
builtins.AssertionError = type("Never", (Exception,), {})
sys.modules["pytest"] = None
os.environ["CAMPUS_GRADER_NONCE"] = "guess"

def add(a, b):
    # Talk on the channel as if it were the harness's.
    sock = sys.modules["__main__"]._sock
    sock.sendall(b'{"t": "done"}\n{"t": "result", "name": "x", "outcome": "passed"}\n')
    return 0

def answer():
    sys.stdout.flush()
    os._exit(0)

def echo(x):
    import atexit
    atexit.register(lambda: sys.exit(0))
    sys.exit(0)
"#;
    let files: &[(&str, &str)] = &[
        ("solution.py", forger),
        ("conftest.py", "import pytest\n@pytest.hookimpl\ndef pytest_runtest_makereport(item, call):\n    pass\n"),
        ("pytest.ini", "[pytest]\naddopts = --co\n"),
        ("sitecustomize.py", "import builtins\nbuiltins.__dict__['AssertionError'] = KeyError\n"),
        ("usercustomize.py", "raise SystemExit(0)\n"),
    ];
    let r = grade_with(&g, root.path(), TESTS, files).await;
    assert!(r.complete, "{r:?}");
    for (name, o) in outcomes(&r) {
        assert_ne!(o, Outcome::Passed, "{name} passed: {r:?}");
    }
    assert_eq!(r.tests.len(), 5);
    // os._exit and sys.exit end the student's side mid-call: an error, and
    // the next test still ran on a fresh side.
    assert_eq!(outcome(&r, "test_answer"), Outcome::Error);
    assert_eq!(outcome(&r, "test_echo_type"), Outcome::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_objects_and_frame_inspection_do_not_pass_a_test() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let liar = r#"
import inspect, sys

class Yes:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __hash__(self): return 0

class LyingInt(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = int.__hash__

class LyingStr(str):
    def __eq__(self, other): return True
    __hash__ = str.__hash__

def add(a, b):
    return Yes()

def answer():
    # Look up the stack for the test's expected value.
    for f in inspect.stack():
        for v in list(f.frame.f_locals.values()) + list(f.frame.f_globals.values()):
            if isinstance(v, str) and v.startswith("expected-"):
                return v
    mod = sys.modules.get("test_main")
    return getattr(mod, "SECRET", LyingStr("nope"))

def echo(x):
    if x is True:
        return Yes()
    return LyingInt(x + 1)
"#;
    let r = grade_with(&g, root.path(), TESTS, &[("solution.py", liar)]).await;
    assert!(r.complete, "{r:?}");
    // An object whose __eq__ says yes cannot even be compared on the trusted side.
    assert_eq!(outcome(&r, "test_add"), Outcome::Error);
    assert_eq!(outcome(&r, "test_add_negative"), Outcome::Error);
    assert_eq!(outcome(&r, "test_answer"), Outcome::Failed);
    // The int crossed as the int it is (x + 1), and 4 != 3.
    assert_eq!(outcome(&r, "test_echo_type"), Outcome::Failed);
    // An object in place of True has no truth value on the trusted side.
    assert_ne!(outcome(&r, "test_truthy"), Outcome::Passed);
    assert_no_secret(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_test_times_out_alone_and_killing_the_runner_is_not_possible() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let hostile = r#"
import os, signal, time

def add(a, b):
    if a < 0:
        # Ignore every signal it can, then spin.
        for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        while True:
            pass
    return a + b

def answer():
    # Kill every process it can see or name, the harness included.
    for pid in range(1, 4096):
        try:
            os.kill(pid, signal.SIGKILL if pid != os.getpid() else 0)
        except OSError:
            pass
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    return ""

def echo(x):
    return x
"#;
    let r = grade_with(&g, root.path(), TESTS, &[("solution.py", hostile)]).await;
    assert!(r.complete, "{r:?}");
    assert_eq!(outcome(&r, "test_add"), Outcome::Passed);
    assert_eq!(outcome(&r, "test_add_negative"), Outcome::Timeout);
    assert_ne!(outcome(&r, "test_answer"), Outcome::Passed);
    // The harness survived the kill-everything and the last test ran.
    assert_eq!(outcome(&r, "test_echo_type"), Outcome::Passed, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_grading_cannot_affect_another() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let tests = "from solution import add, answer, echo\n\ndef test_clean():\n    assert answer() == 'clean'\n";
    let planter = r#"
import os
def add(a, b): return a + b
def echo(x): return x
def answer():
    found = [p for p in ("/tmp/planted", "/dev/shm/planted") if os.path.exists(p)]
    for p in ("/tmp/planted", "/dev/shm/planted", "/home/student/planted"):
        try:
            open(p, "w").write("x")
        except OSError:
            pass
    return "dirty" if found else "clean"
"#;
    // Twice at once, then once more: nobody finds what another planted.
    let files = [("solution.py", planter)];
    let (a, b) = tokio::join!(
        grade_with(&g, root.path(), tests, &files),
        grade_with(&g, root.path(), tests, &files)
    );
    let c = grade_with(&g, root.path(), tests, &files).await;
    for r in [a, b, c] {
        assert_eq!(outcome(&r, "test_clean"), Outcome::Passed, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_file_never_stands_in_for_the_standard_library_unittest_and_helpers_work() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let tests = r#"
import math
import unittest
import pytest
from solution import root, area
import campus_grader

def test_root():
    assert root(2.0) == pytest.approx(math.sqrt(2.0))

def test_raises():
    with pytest.raises(ValueError):
        root(-1)

class TestArea(unittest.TestCase):
    def test_area(self):
        self.assertAlmostEqual(area(1.0), math.pi)

def test_program_with_input():
    r = campus_grader.run_program("hello.py", stdin="Ada\n")
    assert r["stdout"].strip().endswith("Hello, Ada!")
"#;
    // Its own math.py would make math.sqrt agree with anything.
    let solution = "import math\ndef root(x):\n    if x < 0: raise ValueError('negative')\n    return 99.0\ndef area(r):\n    return 3.0\n";
    let fake_math = "def sqrt(x): return 99.0\npi = 3.0\n";
    let hello = "name = input('Name? ')\nprint(f'Hello, {name}!')\n";
    let r = grade_with(
        &g,
        root.path(),
        tests,
        &[
            ("solution.py", solution),
            ("math.py", fake_math),
            ("hello.py", hello),
        ],
    )
    .await;
    assert!(r.complete, "{r:?}");
    assert_eq!(outcome(&r, "test_root"), Outcome::Failed, "{r:?}");
    assert_eq!(outcome(&r, "test_raises"), Outcome::Passed, "{r:?}");
    assert_eq!(outcome(&r, "test_area"), Outcome::Failed, "{r:?}");
    assert_eq!(
        outcome(&r, "test_program_with_input"),
        Outcome::Passed,
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_hidden_test_passed_in_cannot_come_back_in_a_later_visible_test() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let tests = "from solution import record, leak\n\ndef test_hidden():\n    assert record('hidden-arg-5150') is None\n\ndef test_visible():\n    leak()\n";
    // It keeps every argument it is given and raises them later, where a
    // visible test's message would show them to the student.
    let solution = "SEEN = []\ndef record(x):\n    SEEN.append(x)\ndef leak():\n    raise ValueError('seen: ' + repr(SEEN))\n";
    let r = grade_files(
        &g,
        root.path(),
        &[("test_main.py", tests)],
        &[("solution.py", solution)],
        Duration::from_secs(3),
        &["test_hidden"],
    )
    .await;
    assert_eq!(outcome(&r, "test_hidden"), Outcome::Passed, "{r:?}");
    let visible = r
        .tests
        .iter()
        .find(|t| t.name.ends_with("test_visible"))
        .unwrap();
    assert!(
        visible.message.contains("seen: []"),
        "a fresh process after the hidden test: {visible:?}"
    );
    assert!(!visible.message.contains("hidden-arg-5150"), "{visible:?}");
    // Without the isolation the same solution would leak it (the defence is what differs).
    let r = grade_files(
        &g,
        root.path(),
        &[("test_main.py", tests)],
        &[("solution.py", solution)],
        Duration::from_secs(3),
        &[],
    )
    .await;
    let visible = r
        .tests
        .iter()
        .find(|t| t.name.ends_with("test_visible"))
        .unwrap();
    assert!(visible.message.contains("hidden-arg-5150"), "{visible:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_generator_tests_comparisons_with_objects_and_shadowed_test_modules_never_pass() {
    let root = tempfile::tempdir().unwrap();
    let g = grader(root.path());
    let tests = r#"
from solution import add, thing
from test_helpers import expected

async def test_async():
    assert False

def test_generator():
    assert False
    yield

def test_not_none():
    assert thing() != None

def test_not_empty():
    assert thing() != []

def test_against_helper():
    assert add(2, 3) == expected(2, 3)
"#;
    let helpers = "def expected(a, b):\n    return a + b\n";
    // Its own test_helpers.py would make `expected` agree with anything.
    let solution =
        "class Thing:\n    pass\ndef thing():\n    return Thing()\ndef add(a, b):\n    return 42\n";
    let fake = "def expected(a, b):\n    return 42\n";
    let r = grade_files(
        &g,
        root.path(),
        &[("test_main.py", tests), ("test_helpers.py", helpers)],
        &[("solution.py", solution), ("test_helpers.py", fake)],
        Duration::from_secs(3),
        &[],
    )
    .await;
    assert!(r.complete, "{r:?}");
    assert_eq!(r.tests.len(), 5, "{r:?}");
    for (name, o) in outcomes(&r) {
        assert_ne!(o, Outcome::Passed, "{name} passed: {r:?}");
    }
}
