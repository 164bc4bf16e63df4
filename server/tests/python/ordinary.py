"""Ordinary Python a student runs, under the sandbox's syscall filter.

Every check prints `OK <name>`; the Rust test (syscall_filter.rs) compares
the names with its list, so a check that fails, hangs or is skipped fails it.
"""
import asyncio
import concurrent.futures as cf
import ctypes
import ctypes.util
import datetime
import errno
import faulthandler
import getpass
import grp
import gzip
import hashlib
import io
import json
import mmap
import multiprocessing as mp
import os
import pwd
import queue
import random
import resource
import select
import selectors
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from multiprocessing import shared_memory


def ok(name, detail=""):
    print("OK", name, detail, flush=True)


def square(x):
    return x * x


def put_name(q, name):
    q.put(name)


def check_seccomp():
    status = open("/proc/self/status").read()
    mode = [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")]
    ok("seccomp-mode", mode[0])


def check_threading():
    results = []
    lock = threading.Lock()

    def work(i):
        with lock:
            results.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(16))
    barrier = threading.Barrier(3)
    ts = [threading.Thread(target=barrier.wait) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    ev = threading.Event()
    threading.Timer(0.01, ev.set).start()
    assert ev.wait(10)
    q = queue.Queue()
    threading.Thread(target=q.put, args=(5,)).start()
    assert q.get(timeout=10) == 5
    ok("threading")


def check_multiprocessing():
    for method in ("fork", "spawn", "forkserver"):
        ctx = mp.get_context(method)
        with ctx.Pool(2) as pool:
            assert pool.map(square, range(20)) == [x * x for x in range(20)]
        q = ctx.Queue()
        p = ctx.Process(target=put_name, args=(q, method))
        p.start()
        assert q.get(timeout=30) == method
        p.join(30)
        assert p.exitcode == 0
        lock = ctx.Lock()
        with lock:
            pass
        ok("multiprocessing-" + method)
    shm = shared_memory.SharedMemory(create=True, size=4096)
    shm.buf[0] = 42
    other = shared_memory.SharedMemory(name=shm.name)
    assert other.buf[0] == 42
    other.close()
    shm.close()
    shm.unlink()
    ok("shared-memory")


def check_concurrent_futures():
    with cf.ThreadPoolExecutor(4) as ex:
        assert list(ex.map(square, range(10))) == [x * x for x in range(10)]
    with cf.ProcessPoolExecutor(2) as ex:
        assert sum(ex.map(square, range(10))) == 285
    ok("concurrent-futures")


def check_subprocess():
    out = subprocess.run(
        [sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "42", out
    out = subprocess.run("echo shell-$((40 + 2))", shell=True, capture_output=True, text=True)
    assert out.stdout.strip() == "shell-42", out
    p = subprocess.Popen([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.communicate("piped", timeout=30)[0].strip() == "PIPED"
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], os.environ)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    ok("subprocess")


def check_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.write(w, b"child")
        os._exit(0)
    os.close(w)
    assert os.read(r, 10) == b"child"
    os.waitpid(pid, 0)
    ok("fork")


def check_sockets():
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.create_server((host, 0), family=family)
        port = srv.getsockname()[1]

        def echo():
            conn, _ = srv.accept()
            with conn:
                conn.sendall(conn.recv(100))

        t = threading.Thread(target=echo)
        t.start()
        with socket.create_connection((host, port), timeout=10) as c:
            c.sendall(b"ping")
            assert c.recv(100) == b"ping"
        t.join(10)
        srv.close()
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        peer = socket.socket(family, socket.SOCK_DGRAM)
        peer.settimeout(10)
        peer.sendto(b"dgram", udp.getsockname())
        data, addr = udp.recvfrom(100)
        udp.sendto(data.upper(), addr)
        assert peer.recv(100) == b"DGRAM"
        udp.close()
        peer.close()
    a, b = socket.socketpair()
    a.sendall(b"pair")
    assert b.recv(10) == b"pair"
    path = os.path.join(tempfile.mkdtemp(), "sock")
    us = socket.socket(socket.AF_UNIX)
    us.bind(path)
    us.listen()
    uc = socket.socket(socket.AF_UNIX)
    uc.connect(path)
    conn, _ = us.accept()
    uc.sendall(b"unix")
    assert conn.recv(10) == b"unix"
    assert socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert socket.getaddrinfo("127.0.0.1", 80, flags=socket.AI_ADDRCONFIG)
    names = dict((n, i) for i, n in socket.if_nameindex())
    assert socket.if_nametoindex("lo") == names["lo"], names
    socket.gethostname()
    ok("sockets", sorted(names))


def check_asyncio():
    async def main():
        async def handle(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"async\n")
        await writer.drain()
        assert await reader.readline() == b"async\n"
        writer.close()
        server.close()
        await server.wait_closed()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('sub')", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert out.strip() == b"sub"
        results = await asyncio.gather(*(asyncio.sleep(0.01, result=i) for i in range(5)))
        assert results == list(range(5))
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.01)

    asyncio.run(main())
    ok("asyncio")


def check_files():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.txt")
        with open(p, "w") as f:
            f.write("hello")
        os.chmod(p, 0o600)
        os.utime(p, (1, 1))
        os.link(p, p + ".link")
        os.symlink(p, p + ".sym")
        os.rename(p + ".link", p + ".moved")
        os.truncate(p + ".moved", 2)
        assert os.readlink(p + ".sym") == p
        shutil.copy(p, p + ".copy")
        shutil.copytree(d, d + "-tree", symlinks=True)
        shutil.rmtree(d + "-tree")
        os.mkfifo(os.path.join(d, "fifo"))
        assert sorted(e.name for e in os.scandir(d))
        with open(p, "rb") as src, open(p + ".sf", "wb") as dst:
            os.sendfile(dst.fileno(), src.fileno(), 0, 5)
        with gzip.open(os.path.join(d, "x.gz"), "wt") as g:
            g.write("zip" * 100)
        with zipfile.ZipFile(os.path.join(d, "x.zip"), "w") as z:
            z.write(p, "a.txt")
        fd = os.memfd_create("m")
        os.write(fd, b"memfd")
        os.close(fd)
        fd = os.eventfd(0)
        os.eventfd_write(fd, 3)
        assert os.eventfd_read(fd) == 3
        os.close(fd)
        os.statvfs(d)
    with open("/home/student/written-by-suite.txt", "w") as f:
        f.write("home is writable")
    ok("files")


def check_sqlite():
    for target in (":memory:", os.path.join(tempfile.mkdtemp(), "t.db")):
        db = sqlite3.connect(target)
        db.execute("create table t (x integer)")
        db.executemany("insert into t values (?)", [(i,) for i in range(100)])
        db.commit()
        assert db.execute("select sum(x) from t").fetchone()[0] == 4950
        db.close()
    ok("sqlite3")


def check_signals_and_time():
    got = []
    signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    os.kill(os.getpid(), signal.SIGUSR1)
    signal.signal(signal.SIGALRM, lambda s, f: got.append(s))
    signal.setitimer(signal.ITIMER_REAL, 0.02)
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [signal.SIGUSR1, signal.SIGALRM], got
    signal.pthread_kill(threading.get_ident(), 0)
    signal.alarm(0)
    for clock in (time.CLOCK_REALTIME, time.CLOCK_MONOTONIC, time.CLOCK_PROCESS_CPUTIME_ID,
                  time.CLOCK_THREAD_CPUTIME_ID, time.CLOCK_BOOTTIME):
        time.clock_gettime(clock)
    time.perf_counter(), time.process_time(), time.thread_time(), time.time_ns()
    time.sleep(0.01)
    time.strftime("%Y-%m-%d", time.localtime())
    datetime.datetime.now().astimezone()
    ok("signals-time")


def check_select_poll_epoll_mmap():
    r, w = os.pipe()
    os.write(w, b"x")
    assert select.select([r], [], [], 5)[0] == [r]
    p = select.poll()
    p.register(r, select.POLLIN)
    assert p.poll(5000)
    e = select.epoll()
    e.register(r, select.EPOLLIN)
    assert e.poll(5)
    e.close()
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ)
    assert sel.select(5)
    sel.close()
    m = mmap.mmap(-1, 1 << 20)
    m[:5] = b"hello"
    assert m[:5] == b"hello"
    m.close()
    with tempfile.TemporaryFile() as f:
        f.write(b"\0" * 4096)
        f.flush()
        fm = mmap.mmap(f.fileno(), 4096)
        fm[0:2] = b"ok"
        fm.flush()
        fm.close()
    ok("select-poll-epoll-mmap")


def check_ctypes():
    name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(name, use_errno=True)
    assert libc.getpid() == os.getpid()
    assert libc.strlen(b"campus") == 6
    buf = ctypes.create_string_buffer(64)
    libc.snprintf(buf, 64, b"%d-%s", 42, b"ok")
    assert buf.value == b"42-ok"
    ok("ctypes", name)


def check_users_and_misc():
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "no passwd entry for uid %d" % os.getuid()
    root = pwd.getpwuid(0).pw_name
    grp.getgrgid(0)
    try:
        pwd.getpwuid(os.getuid())
    except KeyError:
        pass
    hashlib.sha256(b"x").hexdigest()
    hashlib.md5(b"x").hexdigest()
    zlib.decompress(zlib.compress(b"data" * 100))
    json.loads(json.dumps({"a": [1, 2]}))
    random.SystemRandom().random()
    os.urandom(16)
    os.getrandom(16)
    os.cpu_count(), os.sched_getaffinity(0), os.getloadavg()
    resource.getrusage(resource.RUSAGE_SELF)
    resource.getrlimit(resource.RLIMIT_NOFILE)
    os.nice(1)
    faulthandler.enable()
    io.StringIO("x").read()
    ok("users-misc", "%s / %s" % (user, root))


if __name__ == "__main__":
    check_seccomp()
    check_threading()
    check_multiprocessing()
    check_concurrent_futures()
    check_subprocess()
    check_fork()
    check_sockets()
    check_asyncio()
    check_files()
    check_sqlite()
    check_signals_and_time()
    check_select_poll_epoll_mmap()
    check_ctypes()
    check_users_and_misc()
    print("ALL DONE", flush=True)
