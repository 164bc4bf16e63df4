#!/bin/bash
# Inside the VM: `campus sandbox check` against a data dir on an ext4 made
# with `-O quota` and mounted `usrquota` (as a production host's workspaces
# should be), so every line of the report is the cgroup v2 host's own.
#
# usage: sandbox-check.sh CAMPUS_BINARY
set -uo pipefail
campus="$1"
dir="$(mktemp -d /tmp/campus-check.XXXXXX)"
cleanup() {
    umount "$dir/mnt" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/mnt"
truncate -s 128M "$dir/disk.img"
mkfs.ext4 -q -F -O quota -E quotatype=usrquota "$dir/disk.img"
if ! mount -o loop,usrquota "$dir/disk.img" "$dir/mnt"; then
    dmesg | tail -n 20
    exit 1
fi
"$campus" sandbox check --data-dir "$dir/mnt/data" | tee "$dir/report"
rc=${PIPESTATUS[0]}
# This VM is the cgroup v2 host: the report must say so, and runs there must
# be born in their cgroup (clone3), not moved into it.
# The warm probe run must take its warm sandbox there too.
for want in '^cgroup +ok +v2 ' '^cgroup placement at fork .* ok +clone3' '^ +warm start +ok '; do
    if ! grep -Eq "$want" "$dir/report"; then
        echo "sandbox-check: no line matching /$want/ in the report"
        rc=1
    fi
done
exit "$rc"
