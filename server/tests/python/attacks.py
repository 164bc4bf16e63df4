"""Each system call the sandbox's filter denies, tried from inside a run.

argv[1] is a JSON object of system-call numbers for this architecture (from
the Rust libc constants). Every attempt prints `RESULT <name> ok` when it
failed the expected way (EPERM, or ENOSYS where noted) or `RESULT <name> BAD
...` otherwise; the interpreter must survive them all and print ALIVE.
"""
import ctypes
import errno
import json
import os
import socket
import sys
import time

NR = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
SIGCHLD = 17
KEY_SPEC_SESSION_KEYRING = -3


def result(name, ok, detail=""):
    print("RESULT", name, "ok" if ok else "BAD", detail, flush=True)


def expect(name, ret, want=errno.EPERM):
    err = ctypes.get_errno()
    if ret == 0 and name.startswith("clone"):
        os._exit(0)  # a child that should never have been born
    result(name, ret == -1 and err == want, "ret=%d errno=%s" % (ret, errno.errorcode.get(err, err)))


def sc(name, *args, want=errno.EPERM):
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    expect(name, libc.syscall(ctypes.c_long(NR[name]), *args), want)


buf = ctypes.create_string_buffer(4096)
ptr = ctypes.cast(buf, ctypes.c_void_p)

# New namespaces and entering others'.
for flag, label in ((CLONE_NEWUSER, "user"), (CLONE_NEWNS, "mnt"), (CLONE_NEWNET, "net")):
    ctypes.set_errno(0)
    expect("unshare-" + label, libc.unshare(flag))
ctypes.set_errno(0)
expect("clone-newuser", libc.syscall(ctypes.c_long(NR["clone"]),
                                     ctypes.c_ulong(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0))
ctypes.set_errno(0)
expect("clone-newpid", libc.syscall(ctypes.c_long(NR["clone"]),
                                    ctypes.c_ulong(CLONE_NEWPID | SIGCHLD), 0, 0, 0, 0))
sc("clone3", ptr, 88, want=errno.ENOSYS)
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
sc("setns", fd, 0)
os.close(fd)
# Mounts.
ctypes.set_errno(0)
expect("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
sc("umount2", b"/tmp", 0)
sc("pivot_root", b"/tmp", b"/tmp")
sc("open_tree", -100, b"/", 0)
sc("fsopen", b"tmpfs", 0)
sc("move_mount", -100, b"/", -100, b"/tmp", 0)
sc("mount_setattr", -100, b"/", 0, ptr, 32)
sc("chroot", b"/tmp")
# Keys.
sc("add_key", b"user", b"campus-attack", b"secret", 6, KEY_SPEC_SESSION_KEYRING)
sc("request_key", b"user", b"campus-attack", None, 0)
sc("keyctl", 0, KEY_SPEC_SESSION_KEYRING, 0)
# Big kernel interfaces.
sc("io_uring_setup", 1, ptr)
sc("userfaultfd", os.O_CLOEXEC | 1)  # UFFD_USER_MODE_ONLY
sc("bpf", 5, ptr, 128)  # BPF_PROG_LOAD
sc("perf_event_open", ptr, 0, -1, -1, 0)
sc("fanotify_init", 0, 0)
# Other processes.
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
sc("ptrace", 16, child, 0, 0)  # PTRACE_ATTACH
sc("process_vm_readv", child, ptr, 1, ptr, 1, 0)
sc("process_vm_writev", child, ptr, 1, ptr, 1, 0)
sc("kcmp", os.getpid(), child, 0, 0, 0)
os.kill(child, 9)
os.waitpid(child, 0)
pidfd = os.pidfd_open(os.getpid())
sc("pidfd_getfd", pidfd, 0, 0)
os.close(pidfd)
# Host administration.
sc("kexec_load", 0, 0, 0, 0)
sc("reboot", 0xfee1dead, 672274793, 0x4321fedc, 0)
sc("init_module", ptr, 16, b"")
sc("finit_module", 0, b"", 0)
sc("delete_module", b"nope", 0)
sc("swapon", b"/tmp/swap", 0)
sc("acct", b"/tmp/acct")
sc("settimeofday", ptr, 0)
sc("clock_settime", 0, ptr)
sc("syslog", 10, 0, 0)
sc("name_to_handle_at", -100, b"/", ptr, ptr, 0)
sc("open_by_handle_at", 0, ptr, 0)
sc("personality", 0x0040000)  # ADDR_NO_RANDOMIZE
ctypes.set_errno(0)
result("personality-query",
       libc.syscall(ctypes.c_long(NR["personality"]), ctypes.c_long(0xffffffff)) >= 0)
if "modify_ldt" in NR:
    sc("modify_ldt", 0, ptr, 16)
# Sockets beyond what Python needs.
for name, args in (("packet", (socket.AF_PACKET, socket.SOCK_RAW, 0)),
                   ("netlink-audit", (socket.AF_NETLINK, socket.SOCK_RAW, 9)),
                   ("netlink-netfilter", (socket.AF_NETLINK, socket.SOCK_RAW, 12)),
                   ("vsock", (40, socket.SOCK_STREAM, 0)),
                   ("alg", (38, socket.SOCK_SEQPACKET, 0))):
    try:
        socket.socket(*args).close()
        result("socket-" + name, False, "opened")
    except OSError as e:
        result("socket-" + name, e.errno == errno.EPERM, str(e))
try:
    socket.socketpair(socket.AF_INET)
    result("socketpair-inet", False, "opened")
except OSError as e:
    result("socketpair-inet", e.errno == errno.EPERM, str(e))
socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()  # NETLINK_ROUTE stays open
# Calls the filter does not know at all.
sc("unknown", want=errno.ENOSYS)
if "x32_getpid" in NR:
    sc("x32_getpid", want=errno.ENOSYS)
print("ALIVE", os.getpid(), flush=True)
