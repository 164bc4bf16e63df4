#!/usr/bin/env bash
# End-to-end suite: builds the client if needed, then runs e2e/*.e2e.ts against
# a real `campus serve` (CAMPUS_BIN) in headless Debian Chromium (/usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CAMPUS_BIN:?set CAMPUS_BIN to the campus binary, e.g. target/debug/campus}"
CAMPUS_BIN="$(realpath "$CAMPUS_BIN")"
export CAMPUS_BIN
if [[ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]]; then
  echo "e2e: ${CHROMIUM_PATH:-/usr/bin/chromium} is missing (apt-get install -y chromium)" >&2
  exit 1
fi
[[ -d node_modules ]] || npm ci
if [[ ! -f dist/index.html || -n "$(find src index.html -newer dist/index.html -print -quit)" ]]; then
  npm run build
fi
exec npx vitest run --config vitest.e2e.config.ts "$@"
