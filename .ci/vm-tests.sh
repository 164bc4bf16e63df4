#!/usr/bin/env bash
# The sandbox on a pure cgroup v2 host with kernel disk quotas: boot Debian's
# stock kernel in a QEMU virtual machine (no network device at all) whose root
# is this machine's root, shared read-only over virtio-9p, with ONLY cgroup2
# mounted at /sys/fs/cgroup (cgroup_no_v1=all), and run there as root: the
# server lib's sandbox unit tests, tests/sandbox.rs, syscall_filter.rs,
# disk_quota.rs (including the ignored kernel-quota test), crash.rs,
# runner.rs, `campus sandbox check` on an ext4 with user quotas, and the
# cgroup-move measurement (.ci/vm/cgroup_move.c). Reports pass/fail per step
# and fails if any step fails, times out, or the VM does not finish in time.
#
# Software emulation (TCG): this machine's /dev/kvm is the PVM hypervisor
# (kvm_pvm); with accel=kvm a stock kernel stops in early boot (after "Probing
# EDD"; with -cpu host QEMU cannot even set its MSRs), so the VM is emulated,
# 10-50x slower than the host (docs/performance.md, "cgroup v2: the move vs
# clone3").
#
# Environment: CAMPUS_VM_TIMEOUT (seconds for the whole VM, default 1080),
# CAMPUS_VM_ONLY (space-separated step names to run, default all),
# CAMPUS_VM_KEEP=1 (keep the output directory).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
export CARGO_TERM_COLOR=never
vm_timeout="${CAMPUS_VM_TIMEOUT:-1080}"

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v cc >/dev/null 2>&1 || need+=(gcc)
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || need+=(linux-image-amd64)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The newest installed Debian kernel that has its modules (not the running one:
# this machine's own kernel is built for its hypervisor).
kver=""
for k in $(ls -v /boot/vmlinuz-*-amd64 | sed 's|^/boot/vmlinuz-||'); do
    [ -f "/lib/modules/$k/modules.dep" ] && kver="$k"
done
[ -n "$kver" ] || { echo "vm-tests: no /boot/vmlinuz-*-amd64 with modules"; exit 1; }
echo "guest kernel: $kver"

out="$(mktemp -d /tmp/campus-vm.XXXXXX)"
chmod 0755 "$out"
qemu_pid=""
cleanup() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
    if [ "${CAMPUS_VM_KEEP:-}" = 1 ]; then echo "output kept in $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT

# The same selection of packages as `cargo test --workspace`, so in CI (after
# that step) nothing is rebuilt; only the executables' paths are read here.
echo "building the test binaries (cargo test --no-run)"
cargo test --workspace --no-run --message-format=json-render-diagnostics \
    --lib --test sandbox --test runner --test syscall_filter --test crash --test disk_quota \
    >"$out/cargo.json"
exe() { # KIND NAME -> path of campus-server's executable for that target
    python3 - "$out/cargo.json" "$1" "$2" <<'PY'
import json, sys
path, kind, name = sys.argv[1:]
for line in open(path):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if "campus-server" in m["package_id"]:
        if kind in t["kind"] and t["name"] == name:
            print(m["executable"])
            break
PY
}
lib="$(exe lib campus_server)"
campus="$(exe bin campus)"
for t in sandbox runner syscall_filter crash disk_quota; do
    declare "test_$t=$(exe test "$t")"
done
for v in lib campus test_sandbox test_runner test_syscall_filter test_crash test_disk_quota; do
    [ -x "${!v}" ] || { echo "vm-tests: no executable for $v in cargo's output"; exit 1; }
done
cc -O2 -Wall -o "$out/cgroup_move" .ci/vm/cgroup_move.c

# Tests left out in the VM (they still run on the host, in `cargo test`):
# each times one of the runner's own clocks (a 1 s detach grace, a 2 s
# max_age, a CPU limit against a million-line flood, a 60 s bound on a suite
# that starts a dozen interpreters, a 3 s script max age against a script
# that starts two interpreters) against a CPU that software emulation makes
# 10-50x slower, with every session's warm sandbox being prepared beside
# them; none is about the cgroup.
vm_skip_runner="--skip detached_idle_runs_are_abandoned_but_busy_scripts_are_not"
vm_skip_runner+=" --skip flood_of_a_million_lines_arrives_in_order_with_bounded_buffers"
vm_skip_runner+=" --skip max_age_warns_then_times_out_per_phase"
vm_skip_runner+=" --skip a_script_printing_the_phase_marker_stays_in_the_script_phase"
vm_skip_filter="--skip ordinary_python_keeps_working_under_the_filter"
echo "left out in the VM (timing-bound under emulation; run on the host):"
echo "  runner: ${vm_skip_runner//--skip /}"
echo "  syscall_filter: ${vm_skip_filter//--skip /}"

# The plan: NAME, timeout (s), working dir, command. Cheap and decisive first;
# the long runner suite before the measurement (which remounts cgroup2 with
# favordynmods, a one-way switch, so it comes last).
srv="$repo/server"
{
    printf 'sandbox-check\t240\t/\t%s\n' "bash $repo/.ci/vm/sandbox-check.sh $campus"
    printf 'lib-sandbox\t240\t%s\t%s\n' "$srv" "$lib sandbox::"
    printf 'sandbox\t420\t%s\t%s\n' "$srv" "$test_sandbox"
    printf 'syscall_filter\t300\t%s\t%s\n' "$srv" "$test_syscall_filter $vm_skip_filter"
    printf 'disk_quota\t300\t%s\t%s\n' "$srv" "$test_disk_quota --include-ignored"
    printf 'crash\t300\t%s\t%s\n' "$srv" "$test_crash"
    printf 'runner\t600\t%s\t%s\n' "$srv" "$test_runner $vm_skip_runner"
    printf 'cgroup-move\t240\t/\t%s\n' "bash $repo/.ci/vm/measure-move.sh /tmp/campus-vm-out/cgroup_move"
} >"$out/plan.all"
if [ -n "${CAMPUS_VM_ONLY:-}" ]; then
    for n in $CAMPUS_VM_ONLY; do
        awk -F'\t' -v n="$n" '$1 == n' "$out/plan.all"
    done >"$out/plan"
else
    cp "$out/plan.all" "$out/plan"
fi

bash .ci/vm/initramfs.sh "$kver" "$out/initrd.gz"

echo "booting the VM (TCG, 2 vCPUs, 4 GiB, no network; bound ${vm_timeout}s)"
start=$(date +%s)
qemu-system-x86_64 \
    -machine q35,accel=tcg -cpu max -smp 2 -m 4G \
    -display none -monitor none -serial stdio -no-reboot -nic none \
    -kernel "/boot/vmlinuz-$kver" -initrd "$out/initrd.gz" \
    -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=root,mount_tag=root \
    -fsdev "local,id=out,path=$out,security_model=none" \
    -device virtio-9p-pci,fsdev=out,mount_tag=out \
    -append "console=ttyS0 loglevel=1 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 campus_guest=$repo/.ci/vm/guest.sh" \
    </dev/null >"$out/console.log" 2>&1 &
qemu_pid=$!
tail -n +1 -f "$out/console.log" --pid "$qemu_pid" | grep --line-buffered -E '^(VM|\[)' &
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
    if [ $(($(date +%s) - start)) -ge "$vm_timeout" ]; then
        timed_out=1
        echo "vm-tests: the VM did not finish within ${vm_timeout}s: killed"
        kill "$qemu_pid" 2>/dev/null || true
        break
    fi
    sleep 1
done
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""
sleep 0.5
echo "VM wall time: $(($(date +%s) - start)) s"

echo
echo "---- campus sandbox check in the VM (cgroup v2 only) ----"
cat "$out/sandbox-check.log" 2>/dev/null || echo "(not run)"
echo "---- cgroup move on cgroup v2 ----"
cat "$out/cgroup-move.log" 2>/dev/null || echo "(not run)"
echo
echo "---- results per step ----"
failed=0
passed=0
while IFS=$'\t' read -r name _ _ _; do
    line="$(awk -F'\t' -v n="$name" '$1 == n' "$out/results" 2>/dev/null)"
    if [ -z "$line" ]; then
        echo "NOT RUN  $name (the VM ended before it)"
        failed=$((failed + 1))
        continue
    fi
    rc="$(cut -f2 <<<"$line")"
    secs="$(cut -f3 <<<"$line")"
    counts="$(grep -E '^test result:' "$out/$name.log" 2>/dev/null | sed 's/; finished in.*//' | tr '\n' ' ' || true)"
    if [ "$rc" = 0 ]; then
        echo "ok       $name (${secs}s) $counts"
        passed=$((passed + 1))
    else
        echo "FAILED   $name (exit $rc, ${secs}s) $counts"
        failed=$((failed + 1))
        echo "     ---- last lines of $name.log ----"
        tail -n 60 "$out/$name.log" | sed 's/^/     /'
    fi
done <"$out/plan"
if [ ! -f "$out/finished" ] || [ "$timed_out" = 1 ]; then
    echo "vm-tests: the VM did not finish its plan; console:"
    tail -n 40 "$out/console.log"
    failed=$((failed + 1))
fi
echo "vm-tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
