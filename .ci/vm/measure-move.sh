#!/bin/bash
# Inside the VM: what entering a run cgroup costs on cgroup v2
# (.ci/vm/cgroup_move.c), under the server's cgroup as the sandbox lays it out,
# first as mounted (no favordynmods), then after remounting cgroup2 with
# favordynmods (one-way on recent kernels, hence the plan's last step).
#
# usage: measure-move.sh CGROUP_MOVE_BINARY
set -euo pipefail
bin="$1"
own="/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)"
# Our shell sits in a leaf (the sandbox moved it to .../campus-server): the
# test cgroups go beside it, under the delegated parent.
parent="$(dirname "$own")/campus-move-test"
mkdir -p "$parent"
trap 'rmdir "$parent" 2>/dev/null' EXIT
echo "kernel $(uname -r); cgroup2 mount: $(awk '$3 == "cgroup2" {print $4}' /proc/mounts)"
# 100 samples spaced 100 ms apart (a run starting on a quiet server), then
# back to back (a burst of run starts), then spaced again with favordynmods.
"$bin" "$parent" 100 100
"$bin" "$parent" 100 0
mount -o remount,favordynmods /sys/fs/cgroup
echo "after mount -o remount,favordynmods: $(awk '$3 == "cgroup2" {print $4}' /proc/mounts)"
"$bin" "$parent" 100 100
