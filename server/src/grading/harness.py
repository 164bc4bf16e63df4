# Campus grader: the trusted side. Runs in its own sandbox (the grader's uid,
# the professor's tests read-only at /home/student, no student file in
# sight) and talks only to the Campus server on fd 3. It collects the tests,
# runs them one by one, and drives the student's code — which runs in
# another sandbox — through the server: every value that comes back is
# decoded here from plain JSON into fresh builtins, so nothing the student
# wrote can run on this side or lie about what it is. Results go to the
# server after the run's nonce; the server alone turns them into points.
import ast
import builtins
import importlib.abc
import importlib.machinery
import importlib.util
import json
import linecache
import math
import os
import signal
import socket
import sys
import time
import traceback
import types
import unittest

TESTS = "/home/student"
NONCE = os.environ.pop("CAMPUS_GRADER_NONCE", "")
TIMEOUT = float(os.environ.pop("CAMPUS_TEST_TIMEOUT", "10"))
SKIP = set(filter(None, os.environ.pop("CAMPUS_TEST_SKIP", "").split("\n")))
# Tests hidden from the student: after one of them, the next test gets a
# fresh student process, so what their code saw of a hidden test's inputs
# cannot come back in a visible test's message.
FRESH_AFTER = set(filter(None, os.environ.pop("CAMPUS_FRESH_AFTER", "").split("\n")))
STUDENT_MODULES = set(filter(None, os.environ.pop("CAMPUS_STUDENT_MODULES", "").split(",")))
_sock = socket.socket(fileno=3)
os.set_inheritable(3, False)
_reader = _sock.makefile("rb")
_next_id = [0]


def _send(obj):
    _sock.sendall(json.dumps(obj).encode() + b"\n")


class TestTimeout(Exception):
    """The test ran past its time limit."""


class StudentCrashed(Exception):
    """The student's program ended, or did not answer, during a call."""


class StudentError(Exception):
    """An exception raised by the student's code whose type is not a builtin."""


_SAFE = {
    n: c
    for n, c in vars(builtins).items()
    if isinstance(c, type) and issubclass(c, Exception) and c is not StopIteration
}


def _exception(reply):
    names = reply.get("type") if isinstance(reply.get("type"), list) else []
    msg = reply.get("message") if isinstance(reply.get("message"), str) else ""
    for n in names:
        if isinstance(n, str) and n in _SAFE:
            cls = _SAFE[n]
            try:
                return cls(msg)
            except Exception:
                return StudentError(msg)
    first = names[0] if names and isinstance(names[0], str) else "Exception"
    err = StudentError(f"{first}: {msg}")
    return err


def _request(op, **fields):
    _next_id[0] += 1
    rid = _next_id[0]
    _send({"t": "call", "id": rid, "op": op, **fields})
    while True:
        line = _reader.readline()
        if not line:
            os._exit(3)
        try:
            reply = json.loads(line)
        except ValueError:
            raise StudentCrashed("the student's program sent something that is not an answer")
        if not isinstance(reply, dict):
            raise StudentCrashed("the student's program sent something that is not an answer")
        if reply.get("id") == rid:
            break
    if reply.get("ok") is True:
        return _decode(reply.get("value"))
    kind = reply.get("kind")
    if kind in ("timeout", "crashed"):
        # The server ended the student's side: its objects are gone, and the
        # next test imports everything afresh from a new one.
        _forget_student()
        if kind == "timeout":
            raise TestTimeout(f"the test ran past its time limit ({TIMEOUT:g} s)")
        raise StudentCrashed(str(reply.get("message", "the student's program ended")))
    raise _exception(reply)


def _forget_student():
    _modules.clear()
    for name, mod in list(sys.modules.items()):
        if isinstance(mod, StudentModule) or getattr(mod, "__file__", "").startswith(TESTS + "/"):
            del sys.modules[name]


def _decode(v, depth=0):
    # Exact types only: whatever the student's side sends, this builds fresh
    # builtins (or proxies of objects that stay over there).
    if depth > 60:
        raise StudentCrashed("the value is nested too deeply")
    if v is None or type(v) in (bool, int, float, str):
        return v
    if type(v) is list:
        return [_decode(x, depth + 1) for x in v]
    if type(v) is dict and len(v) >= 1:
        if "$tuple" in v and type(v["$tuple"]) is list:
            return tuple(_decode(x, depth + 1) for x in v["$tuple"])
        if "$set" in v and type(v["$set"]) is list:
            return set(_decode(x, depth + 1) for x in v["$set"])
        if "$dict" in v and type(v["$dict"]) is list:
            out = {}
            for pair in v["$dict"]:
                if type(pair) is not list or len(pair) != 2:
                    raise StudentCrashed("malformed value")
                out[_freeze(_decode(pair[0], depth + 1))] = _decode(pair[1], depth + 1)
            return out
        if "$bytes" in v and type(v["$bytes"]) is str:
            import base64

            return base64.b64decode(v["$bytes"])
        if "$float" in v and v["$float"] in ("nan", "inf", "-inf"):
            return float(v["$float"])
        if "$ref" in v and type(v["$ref"]) is int:
            return Remote(v["$ref"], str(v.get("type", "object"))[:100], v.get("callable") is True)
    raise StudentCrashed("the student's program sent a value that is not plain data")


def _freeze(k):
    if type(k) is list:
        return tuple(_freeze(x) for x in k)
    if type(k) is set:
        return frozenset(k)
    return k


def _encode(v, depth=0):
    if depth > 60:
        raise ValueError("value nested too deeply")
    if isinstance(v, Remote):
        return {"$ref": object.__getattribute__(v, "_ref")}
    if v is None or type(v) in (bool, int, str):
        return v
    if type(v) is float:
        return v if math.isfinite(v) else {"$float": repr(v)}
    if type(v) is list:
        return [_encode(x, depth + 1) for x in v]
    if type(v) is tuple:
        return {"$tuple": [_encode(x, depth + 1) for x in v]}
    if type(v) in (set, frozenset):
        return {"$set": [_encode(x, depth + 1) for x in v]}
    if type(v) is dict:
        return {"$dict": [[_encode(k, depth + 1), _encode(x, depth + 1)] for k, x in v.items()]}
    if type(v) in (bytes, bytearray):
        import base64

        return {"$bytes": base64.b64encode(bytes(v)).decode()}
    raise TypeError(f"a {type(v).__name__} cannot be passed to the student's code")


class Remote:
    """An object that stays in the student's process. Equality is identity:
    an object's own __eq__ never runs on this side."""

    __slots__ = ("_ref", "_type", "_callable")

    def __init__(self, ref, type_name, is_callable):
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_callable", is_callable)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _request("getattr", ref=object.__getattribute__(self, "_ref"), name=name)

    def __call__(self, *args, **kwargs):
        return _request(
            "call",
            ref=object.__getattribute__(self, "_ref"),
            args=[_encode(a) for a in args],
            kwargs=_encode(dict(kwargs)),
        )

    def _value(self):
        v = _request("value", ref=object.__getattribute__(self, "_ref"))
        if isinstance(v, Remote):
            raise TypeError(f"a {object.__getattribute__(self, '_type')} is not a collection")
        return v

    def __iter__(self):
        return iter(self._value())

    def __len__(self):
        return len(self._value())

    def __contains__(self, x):
        return x in self._value()

    def __getitem__(self, k):
        return self._value()[k]

    def __eq__(self, other):
        # Identity between proxies; against anything else there is no
        # answer (`f() != None` must not pass because an object came back).
        if isinstance(other, Remote):
            return object.__getattribute__(other, "_ref") == object.__getattribute__(self, "_ref")
        raise TypeError(
            f"the student's code returned a {object.__getattribute__(self, '_type')}, which cannot be compared here"
        )

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(object.__getattribute__(self, "_ref"))

    def __bool__(self):
        # `assert is_prime(7)` must not pass because an object came back:
        # only a real bool (or number, string…) has a truth value here.
        raise TypeError(
            f"the student's code returned a {object.__getattribute__(self, '_type')}, which has no truth value here"
        )

    def __str__(self):
        return _request("str", ref=object.__getattribute__(self, "_ref"))

    def __repr__(self):
        return f"<student {object.__getattribute__(self, '_type')}>"


class StudentModule(types.ModuleType):
    """A module of the student's, imported over there."""

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        remote = self.__dict__["_campus_remote"]
        try:
            return _request("getattr", ref=object.__getattribute__(remote, "_ref"), name=name)
        except AttributeError as e:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from e


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name in STUDENT_MODULES:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return StudentModule(spec.name)

    def exec_module(self, module):
        remote = _request("import", module=module.__name__)
        module.__dict__["_campus_remote"] = remote


def run_program(path, stdin="", args=(), timeout=None):
    """Run one of the student's scripts (in their sandbox) with `stdin`;
    returns a dict with `stdout`, `stderr` and `exit_code`."""
    t = TIMEOUT if timeout is None else min(float(timeout), TIMEOUT)
    r = _request("run", path=str(path), stdin=str(stdin), args=[str(a) for a in args], timeout=t)
    if type(r) is not dict or type(r.get("stdout")) is not str:
        raise StudentCrashed("the program's output could not be read")
    return r


# A small `pytest` for test files written against it: raises, approx, fail, skip.
class _Raises:
    def __init__(self, exc, match=None):
        self.exc, self.match, self.value = exc, match, None

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            raise AssertionError(f"DID NOT RAISE {getattr(self.exc, '__name__', self.exc)}")
        if et in (TestTimeout, StudentCrashed) or not issubclass(et, self.exc):
            return False
        if self.match is not None:
            import re

            if not re.search(self.match, str(ev)):
                raise AssertionError(f"{str(ev)!r} does not match {self.match!r}")
        self.value = ev
        return True


class _Approx:
    def __init__(self, expected, rel=1e-6, abs=1e-12):
        self.expected, self.rel, self.abs = expected, rel, abs

    def _close(self, a, b):
        if type(a) not in (int, float) or type(b) not in (int, float):
            return False
        return math.isclose(a, b, rel_tol=self.rel, abs_tol=self.abs)

    def __eq__(self, other):
        e = self.expected
        if type(e) in (list, tuple):
            return type(other) in (list, tuple) and len(other) == len(e) and all(
                self._close(a, b) for a, b in zip(other, e)
            )
        return self._close(other, e)

    def __repr__(self):
        return f"approx({self.expected!r})"


class Skipped(Exception):
    """pytest.skip"""


def _fail(msg=""):
    raise AssertionError(msg)


def _skip(msg=""):
    raise Skipped(msg)


pytest = types.ModuleType("pytest")
pytest.raises = _Raises
pytest.approx = _Approx
pytest.fail = _fail
pytest.skip = _skip
campus = types.ModuleType("campus_grader")
campus.run_program = run_program
campus.TestTimeout = TestTimeout


def _on_alarm(signum, frame):
    raise TestTimeout(f"the test ran past its time limit ({TIMEOUT:g} s)")


def _message(e, path):
    if isinstance(e, AssertionError):
        text = str(e)
        tb = traceback.extract_tb(e.__traceback__)
        where = [f for f in tb if f.filename == path]
        line = linecache.getline(path, where[-1].lineno).strip() if where else ""
        if text and line:
            return f"{line}\n{text}"
        return line or text or "assertion failed"
    return f"{type(e).__name__}: {e}"


def collect():
    """The tests, found statically (pytest's order): nothing runs yet, so a
    test file whose import fails or hangs costs only the tests that need it."""
    tests = []
    for fname in sorted(os.listdir(TESTS)):
        if not fname.endswith(".py") or not (fname.startswith("test_") or fname.endswith("_test.py")):
            continue
        path = os.path.join(TESTS, fname)
        try:
            tree = ast.parse(open(path, encoding="utf-8").read(), path)
        except (SyntaxError, ValueError, OSError) as e:
            tests.append((f"{fname}::<module>", path, None, e))
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                tests.append((f"{fname}::{node.name}", path, (node.name, None), None))
            elif isinstance(node, ast.ClassDef):
                bases = [getattr(b, "attr", getattr(b, "id", "")) for b in node.bases]
                if "TestCase" in bases:
                    for m in node.body:
                        if isinstance(m, ast.FunctionDef) and m.name.startswith("test"):
                            tests.append((f"{fname}::{node.name}::{m.name}", path, (node.name, m.name), None))
    return tests


_modules = {}


def load(path):
    """The test module at `path`, imported once (again after a failure)."""
    if path in _modules:
        return _modules[path]
    modname = os.path.basename(path)[:-3]
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    _modules[path] = mod
    return mod


def run_one(path, what):
    mod = load(path)
    name, method = what
    obj = getattr(mod, name)
    if method is not None:
        case = obj(method)
        result = unittest.TestResult()
        case.run(result)
        for _, tb in result.errors + result.failures:
            last = tb.strip().splitlines()[-1]
            if "TestTimeout" in last:
                raise TestTimeout(last)
            if "StudentCrashed" in last:
                raise StudentCrashed(last)
            raise AssertionError(last)
        if result.skipped:
            raise Skipped(result.skipped[0][1])
        return
    returned = obj()
    # An `async def` or generator test would "pass" without running a line.
    if returned is not None:
        close = getattr(returned, "close", None)
        if callable(close):
            close()
        raise TypeError("a test function must return None (async and generator tests are not supported)")


def _named(node, names):
    """`node` named in `names` by node id, by what follows the file, or by
    its last part (the function or method): the broadest reading, so a test
    is left out (or isolated) whenever any setting could mean it."""
    short = node.split("::", 1)[-1]
    return node in names or short in names or node.rsplit("::", 1)[-1] in names


def _skipped(node):
    return _named(node, SKIP)


def main():
    _sock.sendall(NONCE.encode() + b"\n")
    # A student's file never stands in for the standard library or an
    # installed package: a test computing its expected value with `math` or
    # `numpy` must get the real one, not the student's.
    system_path = list(sys.path)
    for name in list(STUDENT_MODULES):
        if name in sys.stdlib_module_names or name in sys.builtin_module_names:
            STUDENT_MODULES.discard(name)
        elif importlib.machinery.PathFinder.find_spec(name, system_path) is not None:
            STUDENT_MODULES.discard(name)
        elif os.path.exists(os.path.join(TESTS, name + ".py")):
            # A test module of the professor's: never the student's.
            STUDENT_MODULES.discard(name)
    sys.path.insert(0, TESTS)
    # First: a student module always comes from the student, never from a
    # file of the same name among the tests (a reference solution).
    sys.meta_path.insert(0, _Finder())
    sys.modules["pytest"] = pytest
    sys.modules["campus_grader"] = campus
    signal.signal(signal.SIGALRM, _on_alarm)
    tests = collect()
    _send({"t": "collected", "tests": [t[0] for t in tests if not _skipped(t[0])]})
    previous_hidden = False
    for name, path, what, load_error in tests:
        if _skipped(name):
            continue
        if previous_hidden:
            # The server ends the student's process; ours are stale.
            _send({"t": "fresh"})
            _forget_student()
        previous_hidden = _named(name, FRESH_AFTER)
        _send({"t": "start", "name": name})
        start = time.monotonic()
        outcome, message = "passed", ""
        try:
            if load_error is not None:
                raise load_error
            # The harness's own clock, a little after the server's (which
            # answers a call that runs too long).
            signal.setitimer(signal.ITIMER_REAL, TIMEOUT + 1.0)
            try:
                run_one(path, what)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except TestTimeout as e:
            outcome, message = "timeout", str(e)
            _forget_student()
        except StudentCrashed as e:
            outcome, message = "error", str(e)
            _forget_student()
        except Skipped as e:
            outcome, message = "skipped", str(e)
        except AssertionError as e:
            outcome, message = "failed", _message(e, path)
        except BaseException as e:  # noqa: B036
            outcome, message = "error", _message(e, path)
        _send(
            {
                "t": "result",
                "name": name,
                "outcome": outcome,
                "message": message[:4000],
                "duration_ms": int((time.monotonic() - start) * 1000),
            }
        )
    _send({"t": "done"})


main()
