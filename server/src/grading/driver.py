# Campus grader: the student side. Runs in the student's sandbox (their uid,
# their snapshot read-only at /home/student) and serves the harness's
# requests, one at a time, on fd 3: import a module, read an attribute, call
# something, run a program. Everything it sends back is plain JSON; nothing
# here is trusted (the student's code shares this process and may replace
# any of it) — the trusted side decodes only data and decides alone.
import base64
import importlib
import json
import math
import os
import socket
import subprocess
import sys

_sock = socket.socket(fileno=3)
os.set_inheritable(3, False)
_reader = _sock.makefile("rb")
_refs = {}
_next = [0]
sys.path.insert(0, "/home/student")
sys.argv = ["solution"]


def _ref(obj):
    _next[0] += 1
    _refs[_next[0]] = obj
    return {"$ref": _next[0], "type": type(obj).__name__, "callable": callable(obj)}


def _enc(v, depth=0):
    if depth > 50:
        raise ValueError("the value is nested too deeply")
    if v is None or type(v) is bool:
        return v
    if isinstance(v, bool):
        return bool.__bool__(v)
    if isinstance(v, int):
        return int.__index__(v)
    if isinstance(v, float):
        f = float.__float__(v)
        if math.isnan(f) or math.isinf(f):
            return {"$float": repr(f)}
        return f
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(v)).decode()}
    if type(v) is list:
        return [_enc(x, depth + 1) for x in v]
    if type(v) is tuple:
        return {"$tuple": [_enc(x, depth + 1) for x in v]}
    if type(v) in (set, frozenset):
        return {"$set": [_enc(x, depth + 1) for x in v]}
    if type(v) is dict:
        return {"$dict": [[_enc(k, depth + 1), _enc(x, depth + 1)] for k, x in v.items()]}
    return _ref(v)


def _dec(v):
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if isinstance(v, dict):
        if "$ref" in v:
            return _refs[v["$ref"]]
        if "$tuple" in v:
            return tuple(_dec(x) for x in v["$tuple"])
        if "$set" in v:
            return set(_dec(x) for x in v["$set"])
        if "$dict" in v:
            return {_dec(k): _dec(x) for k, x in v["$dict"]}
        if "$bytes" in v:
            return base64.b64decode(v["$bytes"])
        if "$float" in v:
            return float(v["$float"])
        raise ValueError("unknown value")
    return v


def _serve(req):
    op = req.get("op")
    if op == "import":
        return importlib.import_module(req["module"])
    if op == "getattr":
        return getattr(_refs[req["ref"]], req["name"])
    if op == "call":
        fn = _refs[req["ref"]]
        args = [_dec(a) for a in req.get("args", [])]
        kwargs = _dec(req.get("kwargs", {"$dict": []}))
        return fn(*args, **kwargs)
    if op == "value":
        v = _refs[req["ref"]]
        if isinstance(v, (list, tuple, set, frozenset, dict)) or not hasattr(v, "__iter__"):
            return v
        return list(v)
    if op == "str":
        return str(_refs[req["ref"]])
    if op == "repr":
        return repr(_refs[req["ref"]])
    if op == "run":
        p = subprocess.run(
            [sys.executable, req["path"]] + list(req.get("args", [])),
            input=req.get("stdin", ""),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=req.get("timeout", 10),
            cwd="/home/student",
        )
        return {"stdout": p.stdout, "stderr": p.stderr, "exit_code": p.returncode}
    raise ValueError(f"unknown request {op!r}")


def _send(obj):
    _sock.sendall(json.dumps(obj).encode() + b"\n")


while True:
    line = _reader.readline()
    if not line:
        break
    try:
        req = json.loads(line)
        rid = req.get("id")
    except Exception:
        break
    try:
        reply = {"id": rid, "ok": True, "value": _enc(_serve(req))}
    except BaseException as e:  # noqa: B036 — SystemExit from student code is an answer too
        kinds = [c.__name__ for c in type(e).__mro__]
        reply = {"id": rid, "ok": False, "kind": "exception", "type": kinds, "message": str(e)[:2000]}
    try:
        _send(reply)
    except Exception:
        _send({"id": rid, "ok": False, "kind": "exception", "type": ["ValueError"], "message": "the value could not be sent"})
