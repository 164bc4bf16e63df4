#!/usr/bin/env bash
# Make a throwaway PostgreSQL available for the test suite on a fresh Debian
# machine (run as root; no systemd needed). Idempotent: running it again is fine.
#
# Installs PostgreSQL if missing, creates a cluster if none exists, starts it,
# gives the `postgres` role a password so TCP logins from 127.0.0.1 work with
# Debian's default pg_hba.conf (scram-sha-256), waits (bounded) until it accepts
# connections, and prints the line to export on stdout:
#
#     eval "$(.ci/postgres.sh)"   # sets CAMPUS_TEST_PG_URL
#
# Progress goes to stderr so stdout stays eval-able.
set -euo pipefail

# Password of the throwaway CI cluster's superuser. Not a secret: this cluster
# exists only to run tests. Keep in sync with the default in server/tests/support/db.rs.
PG_PASSWORD="${CAMPUS_TEST_PG_PASSWORD:-campus}"
WAIT_SECS="${CAMPUS_TEST_PG_WAIT_SECS:-60}"

log() { echo "postgres.sh: $*" >&2; }

# It goes into SQL and a URL unescaped, so keep it to safe characters.
if [[ ! "$PG_PASSWORD" =~ ^[A-Za-z0-9_-]+$ ]]; then
    log "CAMPUS_TEST_PG_PASSWORD must match [A-Za-z0-9_-]+"
    exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (it installs packages and starts the cluster)"
    exit 1
fi

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    log "installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y postgresql >&2
fi

# First cluster listed: "<version> <name> <port> <status> ...". Header skipped.
cluster_line() { pg_lsclusters --no-header 2>/dev/null | head -n 1; }

if [[ -z "$(cluster_line)" ]]; then
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    if [[ -z "$version" ]]; then
        log "no PostgreSQL server binaries found under /usr/lib/postgresql"
        exit 1
    fi
    log "creating cluster $version/main"
    pg_createcluster "$version" main >&2
fi

read -r version name port status _ <<<"$(cluster_line)"

if [[ "$status" != online* ]]; then
    log "starting cluster $version/$name on port $port"
    # `pg_ctlcluster start` fails if it is already starting; tolerate that and
    # rely on the bounded readiness wait below.
    pg_ctlcluster "$version" "$name" start >&2 || log "pg_ctlcluster start returned non-zero; waiting anyway"
fi

deadline=$((SECONDS + WAIT_SECS))
until pg_isready -q -h 127.0.0.1 -p "$port"; do
    if ((SECONDS >= deadline)); then
        log "PostgreSQL $version/$name did not accept connections on 127.0.0.1:$port within ${WAIT_SECS}s"
        log "see /var/log/postgresql/postgresql-$version-$name.log"
        exit 1
    fi
    sleep 0.5
done

# Local socket + peer auth as the postgres OS user: always works on Debian.
(cd / && runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 \
    -c "ALTER ROLE postgres PASSWORD '$PG_PASSWORD'" >&2)

url="postgres://postgres:${PG_PASSWORD}@127.0.0.1:${port}/postgres"
# Prove the URL works over TCP with a password before handing it out.
if ! PGPASSWORD="$PG_PASSWORD" psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -tAc "SELECT 1" >/dev/null; then
    log "password login over TCP failed; check pg_hba.conf of $version/$name"
    exit 1
fi

log "PostgreSQL $version/$name ready"
echo "export CAMPUS_TEST_PG_URL=$url"
