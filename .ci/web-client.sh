#!/usr/bin/env bash
# Web client checks: generated protocol types are current, unit tests (Vitest),
# production build, and the end-to-end flows in headless Chromium against a
# real `campus serve` with the real sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p campus-server --bin campus
cd web-client
npm ci --no-audit --no-fund
bash scripts/check-protocol.sh
npm run build
npm test
CAMPUS_BIN=../target/debug/campus bash scripts/e2e.sh
