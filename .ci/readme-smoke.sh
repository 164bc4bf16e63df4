#!/usr/bin/env bash
# README smoke: the README's commands, run exactly as written, on a fresh
# `git clone` of this checkout's HEAD in a temporary directory, with the
# defaults the README promises (relative ./campus-data, SQLite, no
# configuration; only the port is chosen, through the documented CAMPUS_LISTEN).
#
# The commands are read from README.md, not copied here, so README and test
# cannot drift. Under "## Two commands" the ```sh blocks are, in order:
#   1. the run command (first line) and the test command (`bash .ci/run`: this
#      suite, so it is not run again here);
#   2. adding a student (run verbatim; the student's name and password are read
#      from it to log in);
#   3. `campus run` (run verbatim, from the clone, with an answer on stdin).
# Between 2 and 3, benches/src/bin/readme-smoke.rs does what a student's first
# session does: logs in over HTTP, and over the WebSocket answers input(), runs
# a hybrid script whose REPL uses its variables, a plain REPL, and a program
# reading a CSV uploaded with PUT /api/files; it also saves main.py for step 3.
#
# Environment, not commands: a fresh clone has no target/, and a full release
# build costs over ten minutes on a 2-core CI machine. The clone builds into a
# temporary copy of this checkout's target/release (CARGO_TARGET_DIR, ~5 s to
# copy; the clone's `target` is a symlink to it so the README's
# `target/release/campus` resolves): cargo rebuilds only the workspace crates
# (the clone's files are newer) and finds the dependencies built. A copy, not
# the checkout's own target dir, so the clone's build never overwrites this
# checkout's binaries or fingerprints. The web client is installed (`npm ci`,
# from the npm cache) and built by the run command itself, as on a user's
# machine.
#
# Loopback only; every wait is bounded; the server (its whole process group) is
# stopped on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

START_TIMEOUT=${README_SMOKE_START_TIMEOUT:-480} # build + first start, seconds
say() { echo "readme-smoke: $*"; }
fail() {
    echo "readme-smoke: FAIL $*" >&2
    exit 1
}

# ---- the commands, from README.md -------------------------------------------
# Prints "N<TAB>line" for every line of the Nth ```sh block under "## Two commands".
readme_blocks() {
    awk '
        /^## / { insec = ($0 == "## Two commands"); inblk = 0; next }
        insec && /^```sh[[:space:]]*$/ { inblk = 1; n++; next }
        insec && inblk && /^```[[:space:]]*$/ { inblk = 0; next }
        insec && inblk && NF { print n "\t" $0 }
    ' README.md
}
block() {
    # Block $1's lines, a trailing "  # comment" removed.
    readme_blocks | awk -F'\t' -v n="$1" '$1 == n { sub(/^[^\t]*\t/, ""); print }' |
        sed -E 's/[[:space:]]+#[^'"'"'"]*$//'
}
mapfile -t first < <(block 1)
mapfile -t add_student < <(block 2)
mapfile -t run_example < <(block 3)
[ "${#first[@]}" -eq 2 ] && [ "${first[1]}" = "bash .ci/run" ] ||
    fail "README's first block under 'Two commands' should be the run command and 'bash .ci/run'; got: ${first[*]:-nothing}"
run_cmd=${first[0]}
[ "${#add_student[@]}" -ge 1 ] || fail "no user-add block under 'Two commands' in README.md"
[ "${#run_example[@]}" -ge 1 ] || fail "no 'campus run' block under 'Two commands' in README.md"
student=$(printf '%s\n' "${add_student[@]}" | sed -nE 's/.*--username[= ]([^ ]+).*/\1/p' | head -n1)
student_pw=$(printf '%s\n' "${add_student[@]}" | sed -nE "s/.*echo '([^']*)'.*/\1/p" | head -n1)
[ -n "$student" ] && [ -n "$student_pw" ] ||
    fail "cannot read the student's name and password from the README's command: ${add_student[*]}"
say "commands read from README.md:"
for c in "$run_cmd" "${add_student[@]}" "${run_example[@]}"; do say "  \$ $c"; done

# ---- a fresh clone -------------------------------------------------------------
head=$(git rev-parse HEAD 2>/dev/null) || fail "the README smoke clones this checkout: run it in a git checkout"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    say "note: uncommitted changes are not in the clone; testing commit $head"
fi
say "building the WebSocket client (benches/src/bin/readme-smoke.rs)"
cargo build --release -q -p campus-bench --bin readme-smoke
client="$repo/target/release/readme-smoke"

tmp=$(mktemp -d /tmp/campus-readme-smoke.XXXXXX)
clone="$tmp/campus"
server_pid=""
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM -- "-$server_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$server_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$tmp/server.log" ]; then
        echo "readme-smoke: last lines of the server's output:" >&2
        tail -n 40 "$tmp/server.log" | sed 's/^/    /' >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git clone -q --no-hardlinks "$repo" "$clone"
git -C "$clone" checkout -q --detach "$head"
mkdir "$tmp/target"
cp -a "$repo/target/release" "$tmp/target/"
ln -s "$tmp/target" "$clone/target"
export CARGO_TARGET_DIR="$tmp/target"
say "fresh clone of $head in $clone (build dir: a copy of this checkout's target/release)"

# No configuration but the port: drop every Campus variable CI may have set.
for v in $(compgen -e); do
    case "$v" in CAMPUS_* | DATABASE_URL) unset "$v" ;; esac
done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CAMPUS_LISTEN="127.0.0.1:$port"
base="http://127.0.0.1:$port"

# ---- step 1: the run command ------------------------------------------------------
say "\$ CAMPUS_LISTEN=$CAMPUS_LISTEN $run_cmd   (in the clone; output in the server log)"
started=$(date +%s)
(cd "$clone" && exec setsid bash -c "$run_cmd") >"$tmp/server.log" 2>&1 </dev/null &
server_pid=$!
admin_pw=""
while [ -z "$admin_pw" ]; do
    kill -0 "$server_pid" 2>/dev/null || fail "the run command exited before Campus started"
    [ $(($(date +%s) - started)) -lt "$START_TIMEOUT" ] ||
        fail "no admin password printed within ${START_TIMEOUT}s"
    admin_pw=$(sed -nE 's/^[[:space:]]*password: ([^[:space:]]+)$/\1/p' "$tmp/server.log" | head -n1)
    [ -n "$admin_pw" ] || sleep 1
done
say "first start printed the admin password ($(($(date +%s) - started))s after the run command, build included)"
compiled=$(grep -oE '^ *Compiling [^ ]+' "$tmp/server.log" | awk '{print $2}' | tr '\n' ' ' || true)
say "the run command built: ${compiled:-nothing (all fresh)}"
ready=$(
    python3 - "$base/readyz" <<'PY'
import json, sys, time, urllib.error, urllib.request
deadline = time.time() + 60
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            body, status = json.load(r), r.status
    except urllib.error.HTTPError as e:
        body, status = json.load(e), e.code
    except OSError:
        if time.time() > deadline:
            print("no answer from /readyz"); sys.exit(1)
        time.sleep(0.2); continue
    sb = body.get("sandbox", {})
    print("%d ready=%s sandbox: %s" % (status, body.get("ready"), sb.get("probe", {}).get("summary")))
    sys.exit(0 if status == 200 else 1)
PY
) || fail "/readyz: $ready"
say "start-up log of the sandbox probe run:"
grep -E 'sandbox probe run' "$tmp/server.log" | sed -E 's/\x1b\[[0-9;]*m//g; s/^/    /' || true
say "GET /readyz: $ready"
[ -f "$clone/campus-data/campus.db" ] || fail "the first start did not create ./campus-data/campus.db"
say "./campus-data was created in the clone: $(cd "$clone/campus-data" && echo *)"

# ---- step 2: add the student with the README's command ------------------------------
for c in "${add_student[@]}"; do
    say "\$ $c"
    out=$(cd "$clone" && timeout 60 bash -c "$c" 2>&1) || fail "README command failed: $c: $out"
    say "  $out"
done

# ---- the browser part over HTTP and the WebSocket ----------------------------------
say "WebSocket session as $student against $base"
set +e
timeout 300 "$client" --url "$base" --user "$student" --password "$student_pw" \
    --admin-password "$admin_pw" >"$tmp/client.log" 2>&1
rc=$?
set -e
grep -v '^MAIN_PY_' "$tmp/client.log" | sed 's/^/  /'
[ "$rc" -eq 0 ] || fail "the WebSocket session failed (exit $rc)"
main_stdin=$(sed -n 's/^MAIN_PY_STDIN=//p' "$tmp/client.log")
main_expect=$(sed -n 's/^MAIN_PY_EXPECT=//p' "$tmp/client.log")

# ---- step 3: campus run as the README shows it ----------------------------------------
for c in "${run_example[@]}"; do
    say "\$ $c   (stdin: $main_stdin)"
    set +e
    out=$(cd "$clone" && printf '%s\n' "$main_stdin" | timeout 60 bash -c "$c" 2>"$tmp/run.err")
    rc=$?
    set -e
    printf '%s\n' "$out" | tr -d '\r' | sed -E 's/\x1b\[[0-9;]*m//g; s/^/    /'
    [ "$rc" -eq 0 ] || fail "README command failed (exit $rc): $c: $(tail -n 5 "$tmp/run.err")"
    case "$out" in
    *"$main_expect"*) say "  ok: printed \"$main_expect\", exit 0" ;;
    *) fail "README command $c did not print \"$main_expect\"" ;;
    esac
done

# ---- stop ---------------------------------------------------------------------------
kill -TERM -- "-$server_pid"
for _ in $(seq 1 150); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "Campus did not stop within 15 s of SIGTERM"
wait "$server_pid" 2>/dev/null || true
server_pid=""
grep -q "shutdown complete" "$tmp/server.log" || fail "Campus did not shut down cleanly"
say "Campus stopped cleanly on SIGTERM"
say "passed in $(($(date +%s) - started))s"
