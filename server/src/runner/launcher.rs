//! What a run executes: the argv per mode (with the embedded hybrid launcher),
//! the minimal environment, and validation of the script path.

use std::path::Path;

use campus_protocol::RunMode;

use super::RunnerError;

/// HOME inside the sandbox: the workspace is mounted there (the stub sandbox
/// runs in the workspace directory itself, so HOME is only a hint there).
pub const SANDBOX_HOME: &str = "/home/student";

/// Replaces `site`'s interactive hook (same Tab completion, same
/// `~/.python_history`) but imports `rlcompleter` at the first Tab: it pulls in
/// `inspect`, which was 11 of the 22 ms of CPU a REPL start cost (measured at
/// 38 → 24 ms of CPU per hybrid run, start to exit).
macro_rules! readline_hook {
    () => {
        r#"def _campus_readline():
    import atexit, os, sys
    # Set by the launcher to reach this REPL; a program started from the
    # REPL must not inherit it (it would go interactive too).
    os.environ.pop("PYTHONINSPECT", None)
    try:
        import readline
    except ImportError:
        return
    def complete(text, state):
        import rlcompleter
        c = rlcompleter.Completer()
        readline.set_completer(c.complete)
        return c.complete(text, state)
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    if readline.get_current_history_length() == 0:
        history = os.path.join(os.path.expanduser("~"), ".python_history")
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        def write_history():
            try:
                readline.write_history_file(history)
            except OSError:
                pass
        atexit.register(write_history)
"#
    };
}

/// The hybrid launcher, passed with `python3 -c`. It runs the script in the
/// real `__main__` namespace (exactly what `python -i script.py` does), prints
/// a traceback for any exception (SystemExit and KeyboardInterrupt included,
/// like `-i`) without its own frame, then reports the start of the REPL on
/// the result channel at fd 3 (`repl`, or `repl;raised=NAME` naming the
/// exception's class when the script raised; never on the terminal, so
/// nothing printed can fake it), closes the channel and sets PYTHONINSPECT so the interpreter's own interactive loop starts with the
/// script's globals when the `-c` program returns. Everything it needs is local
/// to `_campus_hybrid`, which removes itself and the readline hook from the
/// globals, so the script and the REPL see only the script's names.
macro_rules! hybrid_def {
    () => {
        r#"
def _campus_hybrid():
    # No `traceback` here: it imports re, tokenize, linecache … (~10 ms),
    # which the interpreter's own excepthook does not need.
    import os, sys, __main__
    # The phase channel: not inherited by anything the script starts.
    try:
        os.set_inheritable(3, False)
        channel = 3
    except OSError:
        channel = None
    g = __main__.__dict__
    g.pop("_campus_hybrid", None)
    hook = g.pop("_campus_readline", None)
    path = sys.argv[1]
    sys.argv[:] = [path]
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    g["__file__"] = path
    def report(skip_own_frame):
        t, v, tb = sys.exc_info()
        if skip_own_frame and tb is not None:
            tb = tb.tb_next
        if v is not None:
            v.__traceback__ = tb
        sys.last_type, sys.last_value, sys.last_traceback = t, v, tb
        try:
            sys.excepthook(t, v, tb)
        except BaseException:
            import traceback
            traceback.print_exception(t, v, tb)
        name = getattr(t, "__name__", None) or "Exception"
        return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)[:100]
    raised = None
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec")
    except BaseException:
        raised = report(False)
    else:
        try:
            exec(code, g)
        except BaseException:
            raised = report(True)
    if hook is not None:
        sys.__interactivehook__ = hook
    os.environ["PYTHONINSPECT"] = "1"
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if channel is not None:
        report = "repl" + ("" if raised is None else ";raised=" + raised) + "\n"
        try:
            os.write(channel, report.encode("ascii"))
        except OSError:
            pass
        try:
            os.close(channel)
        except OSError:
            pass
"#
    };
}

/// The hybrid launcher (see `hybrid_def`).
pub(crate) const HYBRID_LAUNCHER: &str =
    concat!(readline_hook!(), hybrid_def!(), "_campus_hybrid()\n");

/// The REPL launcher, passed with `python3 -c`: the banner the plain
/// interpreter prints (it prints none with `-c`), `sys.argv == [""]` as in a
/// plain REPL, and the cheaper readline hook.
macro_rules! repl_def {
    () => {
        r#"
def _campus_repl():
    import os, sys
    # The interpreter's own REPL once this program returns (as `-i` would,
    # without `-i`'s eager import of rlcompleter and inspect at start-up).
    os.environ["PYTHONINSPECT"] = "1"
    g = sys.modules["__main__"].__dict__
    sys.__interactivehook__ = g.pop("_campus_readline")
    g.pop("_campus_repl", None)
    sys.argv[:] = [""]
    print(f"Python {sys.version} on {sys.platform}", file=sys.stderr)
    print('Type "help", "copyright", "credits" or "license" for more information.', file=sys.stderr)
"#
    };
}

/// The REPL launcher (see `repl_def`).
pub(crate) const REPL_LAUNCHER: &str = concat!(readline_hook!(), repl_def!(), "_campus_repl()\n");

/// The warm launcher, passed with `python3 -c`: the interpreter starts
/// (site, encodings, the standard streams) and then waits on its command
/// channel at fd 3, a socket only the server holds the other end of, for one
/// line `MODE<TAB>PATH`. Nothing of the student's runs before that line.
/// Then it does what the cold argv of that mode would have done:
/// - `script`: closes the channel and runs the file in `__main__` as
///   `python3 -- PATH` would (`sys.argv`, `sys.path[0]`, `sys.orig_argv`,
///   `__file__`, `__loader__`, `__cached__`; an uncaught exception's
///   traceback without the launcher's frames, exit status 1, SIGINT
///   re-raised, `SystemExit` as the interpreter handles it);
/// - `hybrid`: the hybrid launcher, which reports the REPL on the same channel;
/// - `repl`: closes the channel and opens the REPL (PYTHONINSPECT, dropped
///   again by the readline hook).
///
/// Known differences from a cold start are listed in docs/architecture.md
/// ("Warm sandboxes").
pub(crate) const WARM_LAUNCHER: &str = concat!(
    readline_hook!(),
    hybrid_def!(),
    repl_def!(),
    r#"
def _campus_warm():
    import os, sys
    g = sys.modules["__main__"].__dict__
    hybrid = g.pop("_campus_hybrid")
    repl = g.pop("_campus_repl")
    g.pop("_campus_warm", None)
    os.set_inheritable(3, False)
    line = b""
    while b"\n" not in line:
        chunk = os.read(3, 4096)
        if not chunk:
            os._exit(0)
        line += chunk
    mode, _, rel = line.split(b"\n", 1)[0].decode("utf-8", "surrogateescape").partition("\t")
    del line, chunk
    if mode == "hybrid":
        sys.argv[:] = ["-c", rel]
        g["_campus_hybrid"] = hybrid
        del hybrid, repl
        g["_campus_hybrid"]()
        return
    os.close(3)
    if mode == "repl":
        g["_campus_repl"] = repl
        del hybrid, repl
        g["_campus_repl"]()
        return
    del hybrid, repl
    if mode != "script":
        os._exit(125)
    g.pop("_campus_readline", None)
    path = os.path.join(os.getcwd(), rel)
    sys.argv[:] = [rel]
    sys.orig_argv[:] = [sys.orig_argv[0], "--", rel]
    sys.path[0] = os.path.dirname(path)
    g["__file__"] = path
    g["__cached__"] = None
    g["__loader__"] = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        print(f"{sys.executable}: can't open file {path!r}: [Errno {e.errno}] {e.strerror}", file=sys.stderr)
        raise SystemExit(2)
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        del source
        exec(code, g)
    except BaseException as e:
        if not isinstance(e, SystemExit):
            shown = sys.excepthook
            def strip(t, v, tb):
                while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
                    tb = tb.tb_next
                if v is not None:
                    v.__traceback__ = tb
                shown(t, v, tb)
            sys.excepthook = strip
        raise
_campus_warm()
"#
);

/// The program of a warm sandbox (see [`WARM_LAUNCHER`]).
pub(crate) fn warm_argv(python: &Path) -> Vec<String> {
    vec![
        python.display().to_string(),
        "-c".into(),
        WARM_LAUNCHER.into(),
    ]
}

/// The line that hands a warm sandbox its run (see [`WARM_LAUNCHER`]); `path`
/// passed [`validate_script`] (no control characters), empty for the REPL.
pub(crate) fn warm_command(mode: RunMode, path: &str) -> Vec<u8> {
    format!("{}\t{path}\n", mode.as_str()).into_bytes()
}

/// The program and arguments for a run (paths relative to the workspace, which is the cwd).
pub(crate) fn argv(python: &Path, mode: RunMode, path: &str) -> Vec<String> {
    let py = python.display().to_string();
    match mode {
        RunMode::Script => vec![py, "--".into(), path.into()],
        RunMode::Hybrid => vec![py, "-c".into(), HYBRID_LAUNCHER.into(), path.into()],
        RunMode::Repl => vec![py, "-c".into(), REPL_LAUNCHER.into()],
    }
}

/// The complete environment of a run: nothing of the server's is inherited.
/// No `PYTHONUNBUFFERED`: on the PTY stdout is line-buffered, exactly as in a
/// terminal (`input()` flushes its prompt), and a printing loop costs one
/// write per line instead of two (200k lines: 0.65 s instead of 1.1 s here).
pub(crate) fn env() -> Vec<(String, String)> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", SANDBOX_HOME),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("TERM", "xterm-256color"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PYTHONIOENCODING", "utf-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Check a script path: relative, no `..`, no symlinks on the way, a regular
/// file inside `workspace`. Returns the normalized `/`-separated path.
pub(crate) fn validate_script(workspace: &Path, path: &str) -> Result<String, RunnerError> {
    // The one path rule of the workspace (no `.`/`..`, no control or bidi
    // characters, no absolute paths …), then what a script needs on top.
    let parts = workspace_fs::validate_path(path)
        .map_err(|e| RunnerError::InvalidPath(format!("{path:?}: {e}")))?;
    if parts.is_empty() {
        return Err(RunnerError::InvalidPath("no file given to run".into()));
    }
    let mut host = workspace.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        host.push(part);
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RunnerError::NotFound(format!("{path} does not exist")))
            }
            Err(e) => return Err(RunnerError::Internal(format!("stat {path}: {e}"))),
        };
        if meta.file_type().is_symlink() {
            return Err(RunnerError::InvalidPath(format!(
                "{path} goes through a symbolic link"
            )));
        }
        let last = i + 1 == parts.len();
        if last && !meta.is_file() {
            return Err(RunnerError::InvalidPath(format!("{path} is not a file")));
        }
        if !last && !meta.is_dir() {
            return Err(RunnerError::NotFound(format!("{path} does not exist")));
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.py"), "").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("evil.py")).unwrap();
        let ok = validate_script(dir.path(), "sub/a.py").unwrap();
        assert_eq!(ok, "sub/a.py");
        for bad in [
            "./sub/a.py",
            "sub/./a.py",
            "sub\u{202e}a.py",
            "sub/a.py\n",
            "../x.py",
            "/etc/passwd",
            "",
            "sub",
            "evil.py",
            "sub/../../x",
        ] {
            assert!(validate_script(dir.path(), bad).is_err(), "{bad}");
        }
        assert!(matches!(
            validate_script(dir.path(), "missing.py"),
            Err(RunnerError::NotFound(_))
        ));
    }
}
