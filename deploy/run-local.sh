#!/usr/bin/env bash
# Build the web client and the server, then run Campus with the embedded
# defaults (SQLite + workspaces under ./campus-data, http://127.0.0.1:8080).
# Extra arguments go to `campus serve` (see `campus serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f web-client/package.json ]; then
    if command -v npm >/dev/null 2>&1; then
        (cd web-client && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
    else
        echo "run-local: npm not found; serving the API without the web client" >&2
    fi
fi
exec cargo run --release -p campus-server --bin campus -- serve "$@"
