#!/usr/bin/env bash
# Regenerates the TypeScript protocol bindings from the Rust protocol crate
# (ts-rs) and fails if web-client/src/protocol/generated.ts is stale.
#   scripts/check-protocol.sh          check (CI)
#   scripts/check-protocol.sh --write  regenerate in place
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
committed="$here/src/protocol/generated.ts"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
out="$tmp/generated.ts"
(cd "$repo" && CAMPUS_TS_OUT="$out" cargo test -q -p campus-protocol --features ts --test export_ts >"$tmp/log" 2>&1) || {
  cat "$tmp/log" >&2
  echo "check-protocol: generating the bindings failed" >&2
  exit 1
}
if [[ "${1:-}" == "--write" ]]; then
  cp "$out" "$committed"
  echo "check-protocol: wrote $committed"
  exit 0
fi
if ! diff -u "$committed" "$out"; then
  echo "check-protocol: web-client/src/protocol/generated.ts is stale; run web-client/scripts/check-protocol.sh --write" >&2
  exit 1
fi
echo "check-protocol: generated.ts is up to date"
