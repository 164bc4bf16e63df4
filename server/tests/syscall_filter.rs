//! The system-call filter and private keyring of every run, in the real
//! sandbox (as root: namespaces, cgroups, per-student uids, a real PTY):
//! ordinary Python keeps working, each denied class of call fails with EPERM
//! (ENOSYS for clone3 and unknown calls) without killing the interpreter, no
//! key crosses runs, and the dev fallback is filtered too.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic there is a failed test (clippy.toml)

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use campus_server::sandbox::{
    spawn_on_terminal, PreparedRun, RunCgroup, RunSpec, Sandbox, SandboxConfig, SandboxLimits,
};
use rustix::pty::OpenptFlags;

/// Distinct from the other sandbox tests' uids.
const UID_BASE: u32 = 330_000;
const PYTHON: &str = "/usr/bin/python3";
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const ORDINARY: &str = include_str!("python/ordinary.py");
const ATTACKS: &str = include_str!("python/attacks.py");

fn config(force_fallback: bool) -> SandboxConfig {
    SandboxConfig {
        helper_exe: PathBuf::from(env!("CARGO_BIN_EXE_campus")),
        production: !force_fallback,
        uid_base: UID_BASE,
        cgroup_group: "campus-test-filter".into(),
        force_fallback,
    }
}

/// A production sandbox (fails the test if the host's isolation is incomplete).
fn sandbox() -> Sandbox {
    let sb = Sandbox::new(config(false)).expect("full sandbox on this host");
    assert!(sb.isolated());
    sb
}

fn spec(name: &str, user_id: i64, workspace: &Path, argv: &[&str]) -> RunSpec {
    RunSpec {
        run_id: format!("{name}-{}", std::process::id()),
        user_id,
        workspace_dir: workspace.to_path_buf(),
        read_only_mounts: vec![],
        workspace_read_only: false,
        scratch_dir: None,
        cwd: None,
        result_channel: false,
        result_duplex: false,
        argv: std::iter::once(PYTHON)
            .chain(argv.iter().copied())
            .map(String::from)
            .collect(),
        env: vec![
            ("PYTHONUNBUFFERED".into(), "1".into()),
            ("HOME".into(), "/home/student".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ],
        limits: SandboxLimits::default(),
    }
}

/// A real PTY pair (master, slave), both close-on-exec.
fn open_pty() -> (File, OwnedFd) {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags).unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .unwrap();
    (File::from(master), OwnedFd::from(slave))
}

/// Run to completion in a PTY (bounded); returns (status, output).
fn run(sb: &Sandbox, spec: &RunSpec) -> (ExitStatus, String) {
    let PreparedRun {
        command, cgroup, ..
    } = sb.prepare(spec).expect("prepare");
    run_command(command, cgroup)
}

/// Like [`run`], but the helper is exec'd by `python3 -c wrapper helper args…`
/// (same pid, so still the child of this process its `--server-pid` names).
fn run_wrapped(sb: &Sandbox, spec: &RunSpec, wrapper: &str) -> (ExitStatus, String) {
    let PreparedRun {
        command, cgroup, ..
    } = sb.prepare(spec).expect("prepare");
    let mut wrapped = Command::new(PYTHON);
    wrapped
        .arg("-c")
        .arg(wrapper)
        .arg(command.get_program())
        .args(command.get_args())
        .env_clear()
        .current_dir("/");
    for (k, v) in command.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    run_command(wrapped, cgroup)
}

fn run_command(command: Command, cgroup: Option<RunCgroup>) -> (ExitStatus, String) {
    let (master, slave) = open_pty();
    let (mut child, _) = spawn_on_terminal(command, slave, None).unwrap();
    let mut reader = master;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once the last slave fd is closed: that is the end.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut text = String::new();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            if let Some(cg) = &cgroup {
                cg.kill_all();
            }
            let _ = child.wait();
            panic!("run did not end; output:\n{text}");
        }
        while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(20)) {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    if let Some(cg) = cgroup {
        cg.remove();
    }
    (status, text)
}

/// A workspace owned by nobody yet (prepare chowns it to the student).
fn workspace_with(name: &str, content: &str) -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join(name), content).unwrap();
    ws
}

#[test]
fn ordinary_python_keeps_working_under_the_filter() {
    let sb = sandbox();
    let ws = workspace_with("ordinary.py", ORDINARY);
    let (status, out) = run(
        &sb,
        &spec("ordinary", 1, ws.path(), &["/home/student/ordinary.py"]),
    );
    assert_eq!(status.code(), Some(0), "{out}");
    for check in [
        "seccomp-mode 2",
        "threading",
        "multiprocessing-fork",
        "multiprocessing-spawn",
        "multiprocessing-forkserver",
        "shared-memory",
        "concurrent-futures",
        "subprocess",
        "fork",
        "sockets",
        "asyncio",
        "files",
        "sqlite3",
        "signals-time",
        "select-poll-epoll-mmap",
        "ctypes",
        "users-misc",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("OK {check}"))),
            "{check} did not pass:\n{out}"
        );
    }
    assert!(out.contains("ALL DONE"), "{out}");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("written-by-suite.txt")).unwrap(),
        "home is writable"
    );
}

/// The numbers attacks.py needs, for this architecture.
fn syscall_numbers() -> String {
    let mut nr: Vec<(&str, i64)> = vec![
        ("clone", libc::SYS_clone),
        ("clone3", libc::SYS_clone3),
        ("setns", libc::SYS_setns),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("open_tree", libc::SYS_open_tree),
        ("fsopen", libc::SYS_fsopen),
        ("move_mount", libc::SYS_move_mount),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("chroot", libc::SYS_chroot),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("keyctl", libc::SYS_keyctl),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("fanotify_init", libc::SYS_fanotify_init),
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("kcmp", libc::SYS_kcmp),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("kexec_load", libc::SYS_kexec_load),
        ("reboot", libc::SYS_reboot),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("swapon", libc::SYS_swapon),
        ("acct", libc::SYS_acct),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("syslog", libc::SYS_syslog),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("personality", libc::SYS_personality),
        // Not a system call of any architecture.
        ("unknown", 1000),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        nr.push(("modify_ldt", libc::SYS_modify_ldt));
        // getpid through the x32 ABI (bit 30): not in the table, so ENOSYS.
        nr.push(("x32_getpid", 0x4000_0000 | libc::SYS_getpid));
    }
    let fields: Vec<String> = nr.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", fields.join(", "))
}

#[test]
fn every_denied_call_fails_and_the_interpreter_lives() {
    let sb = sandbox();
    let ws = workspace_with("attacks.py", ATTACKS);
    let numbers = syscall_numbers();
    let (status, out) = run(
        &sb,
        &spec(
            "attacks",
            2,
            ws.path(),
            &["/home/student/attacks.py", &numbers],
        ),
    );
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("ALIVE"), "{out}");
    let results: Vec<&str> = out.lines().filter(|l| l.starts_with("RESULT ")).collect();
    let bad: Vec<&&str> = results.iter().filter(|l| l.contains(" BAD")).collect();
    assert!(bad.is_empty(), "not refused as expected: {bad:#?}\n{out}");
    // Every attempt of attacks.py reported (a skipped one would hide a hole).
    let mut expected = 49;
    if cfg!(target_arch = "x86_64") {
        expected += 2;
    }
    assert_eq!(results.len(), expected, "{out}");
    for must in [
        "unshare-user",
        "clone-newuser",
        "clone3",
        "mount",
        "add_key",
        "keyctl",
        "io_uring_setup",
        "userfaultfd",
        "bpf",
        "perf_event_open",
        "ptrace",
        "socket-packet",
    ] {
        assert!(
            results
                .iter()
                .any(|l| l.starts_with(&format!("RESULT {must} ok"))),
            "{must}: {out}"
        );
    }
}

/// /proc/key-users lists `uid: usage nkeys/…`; true when `uid` owns no key.
fn owns_no_keys(uid: u32) -> bool {
    let text = std::fs::read_to_string("/proc/key-users").unwrap();
    !text
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{uid}:")))
}

#[test]
fn no_key_crosses_runs_or_outlives_them() {
    let sb = sandbox();
    let pid = std::process::id();
    // The helper is exec'd by a wrapper that joins a fresh session keyring
    // holding a key only a possessor may see: a run that kept the keyring it
    // inherited (as runs did: the server's) would see it.
    let wrapper = format!(
        "import ctypes, os, sys\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.syscall.restype = ctypes.c_long\n\
         L = ctypes.c_long\n\
         assert libc.syscall(L({keyctl}), L(1), b'campus-test-ses-{pid}') > 0\n\
         k = libc.syscall(L({add_key}), b'user', b'campus-host-{pid}', b'host secret', L(11), L(-3))\n\
         assert k > 0, ctypes.get_errno()\n\
         assert libc.syscall(L({keyctl}), L(5), L(k), L(0x3f000000)) == 0\n\
         os.execv(sys.argv[1], sys.argv[1:])\n",
        keyctl = libc::SYS_keyctl,
        add_key = libc::SYS_add_key,
    );
    // Student A tries to publish a key readable by everyone; student B looks for it.
    let publish = "import ctypes, errno\n\
                   libc = ctypes.CDLL(None, use_errno=True)\n\
                   r = libc.syscall(ctypes.c_long(NR_ADD_KEY), b'user', b'campus-cross', b'from A', 6, ctypes.c_long(-3))\n\
                   print('ADD_KEY', r, errno.errorcode.get(ctypes.get_errno()))\n\
                   print('KEYS', repr(open('/proc/keys').read()))\n"
        .replace("NR_ADD_KEY", &libc::SYS_add_key.to_string());
    let look = "import os\n\
                for line in open('/proc/keys'):\n\
                \x20   print('KEY', line.strip())\n\
                print('UID', os.getuid())\n";
    let ws_a = tempfile::tempdir().unwrap();
    let (status, out_a) = run_wrapped(
        &sb,
        &spec("keys-a", 31, ws_a.path(), &["-c", &publish]),
        &wrapper,
    );
    assert_eq!(status.code(), Some(0), "{out_a}");
    assert!(out_a.contains("ADD_KEY -1 EPERM"), "{out_a}");
    let ws_b = tempfile::tempdir().unwrap();
    let (status, out_b) = run_wrapped(
        &sb,
        &spec("keys-b", 32, ws_b.path(), &["-c", look]),
        &wrapper,
    );
    assert_eq!(status.code(), Some(0), "{out_b}");

    for out in [&out_a, &out_b] {
        assert!(
            !out.contains("campus-host"),
            "a run saw the server's key: {out}"
        );
        assert!(!out.contains("campus-cross"), "{out}");
    }
    // B sees exactly its own fresh, empty session keyring.
    let uid_b = UID_BASE + 32;
    let keys: Vec<&str> = out_b.lines().filter(|l| l.starts_with("KEY ")).collect();
    assert_eq!(keys.len(), 1, "{out_b}");
    assert!(
        keys[0].contains(&format!(" {uid_b} {uid_b} keyring")) && keys[0].contains("_ses: empty"),
        "{out_b}"
    );
    // And nothing of either run is left on the host once they ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(owns_no_keys(UID_BASE + 31) && owns_no_keys(uid_b)) {
        assert!(
            Instant::now() < deadline,
            "keys outlived the runs: {}",
            std::fs::read_to_string("/proc/key-users").unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dev_fallback_runs_are_filtered_too() {
    let sb = Sandbox::new(config(true)).unwrap();
    assert!(!sb.isolated());
    let ws = tempfile::tempdir().unwrap();
    let code = "import ctypes, errno\n\
                libc = ctypes.CDLL(None, use_errno=True)\n\
                print('MODE', [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])\n\
                print('UNSHARE', libc.unshare(0x10000000), errno.errorcode.get(ctypes.get_errno()))\n";
    let mut prepared = sb
        .prepare(&spec("fallback-filter", 3, ws.path(), &["-c", code]))
        .unwrap();
    let out = prepared.command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("MODE 2"), "{text}");
    assert!(text.contains("UNSHARE -1 EPERM"), "{text}");
}

#[test]
fn the_probe_reports_the_filter() {
    let sb = sandbox();
    let line = sb
        .report()
        .features
        .iter()
        .find(|(n, _, _)| n == "seccomp filter")
        .cloned()
        .unwrap_or_else(|| panic!("no seccomp line in {:?}", sb.report()));
    assert!(line.1, "{line:?}");
    assert!(line.2.contains("Seccomp: 2"), "{line:?}");
}
