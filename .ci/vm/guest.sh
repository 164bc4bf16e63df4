#!/bin/bash
# Runs as PID 1 inside the test VM, on the host's root (read-only 9p) after
# .ci/vm/init: finish the mounts a Debian host has (devpts, /dev/shm, cgroup2
# ONLY at /sys/fs/cgroup, loopback up), put itself into a delegated cgroup as
# systemd would for a `Delegate=yes` service, then run every line of the plan
# the host wrote to the output share and record each one's exit status and
# time. Powers the VM off at the end, whatever happened.
#
# Plan lines: NAME<TAB>TIMEOUT_SECONDS<TAB>WORKING_DIR<TAB>SHELL_COMMAND.
# Results: OUT/results gets NAME<TAB>STATUS<TAB>SECONDS per line, OUT/NAME.log
# the command's output; the console gets one progress line per step.
OUT=/tmp/campus-vm-out
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp/home TMPDIR=/tmp LANG=C.UTF-8 CI=true RUST_BACKTRACE=1
# Tests whose bounds count CPU time widen them here (tests/runner.rs, INSPECT).
export CAMPUS_TEST_EMULATED=1
unset campus_guest

say() { echo "VM: $*" >/dev/console; }
off() {
    sync
    echo o >/proc/sysrq-trigger
    sleep 30
}
trap off EXIT

say "guest up at $(cut -d' ' -f1 /proc/uptime) s after kernel start ($(uname -r))"
mkdir -p "$HOME" /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# What systemd mounts on a unified-hierarchy host (Debian 12, Ubuntu 22.04+).
if ! mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup; then
    say "FAILED: cannot mount cgroup2"
    exit 1
fi
ip link set lo up
# Debian builds these as modules; the kernel would ask for them on first use,
# but load them up front so a missing one is named here, not as a mount EPERM.
for m in loop ext4 quota_v2; do
    modprobe "$m" || say "cannot load module $m"
done

# systemd's layout for a service with Delegate=yes: the controllers are
# enabled down to system.slice, and the service's own cgroup (where the
# server starts) is handed over to it.
cg=/sys/fs/cgroup
for c in cpu memory pids io; do echo "+$c" >"$cg/cgroup.subtree_control"; done
mkdir -p "$cg/system.slice/campus-ci.service"
for c in cpu memory pids io; do echo "+$c" >"$cg/system.slice/cgroup.subtree_control"; done
echo $$ >"$cg/system.slice/campus-ci.service/cgroup.procs"
{
    echo "kernel: $(uname -r)"
    echo "cmdline: $(cat /proc/cmdline)"
    grep -E ' /sys/fs/cgroup| / ' /proc/mounts
    echo "controllers: $(cat $cg/cgroup.controllers)"
    echo "own cgroup: $(cat /proc/self/cgroup)"
} >"$OUT/guest-env.txt" 2>&1
say "cgroup2 only: $(grep -c cgroup /proc/mounts) cgroup mount(s); controllers: $(cat $cg/cgroup.controllers)"

while IFS=$'\t' read -r name limit dir cmd; do
    [ -n "$name" ] || continue
    say "start $name"
    t0=$(date +%s%N)
    (cd "$dir" && timeout -k 10 "$limit" bash -c "$cmd") >"$OUT/$name.log" 2>&1 </dev/null
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    secs="$((ms / 1000)).$((ms / 100 % 10))"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$secs" >>"$OUT/results"
    if [ "$rc" -eq 0 ]; then state=ok; elif [ "$rc" -eq 124 ]; then state="TIMED OUT"; else state="FAILED ($rc)"; fi
    say "$(printf '%-28s %-12s %6s s' "$name" "$state" "$secs")"
done <"$OUT/plan"
dmesg >"$OUT/dmesg.log" 2>&1
say "all done at $(cut -d' ' -f1 /proc/uptime) s"
echo done >"$OUT/finished"
