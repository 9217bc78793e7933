#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for SignalDB's tests and prints its URL.
#
# Usage: scripts/start-postgres.sh [DATA_DIR] [PORT]
#   DATA_DIR  default $SIGNALDB_PG_DIR or /tmp/signaldb-pgdata
#   PORT      default $SIGNALDB_PG_PORT or 55432
#
# Idempotent: installs PostgreSQL with apt-get if no initdb is found, creates
# the data directory only once, and does nothing but print the URL when a
# server already answers on the port. The server trusts every local
# connection: it is for tests only. The URL is the only line written to
# stdout, so `export SIGNALDB_TEST_POSTGRES_URL=$(scripts/start-postgres.sh)`
# works; progress goes to stderr. Stop it with
#   pg_ctl -D DATA_DIR stop   (as the user that owns DATA_DIR)
set -euo pipefail

DATA_DIR="${1:-${SIGNALDB_PG_DIR:-/tmp/signaldb-pgdata}}"
PORT="${2:-${SIGNALDB_PG_PORT:-55432}}"
# The unprivileged user that runs the server when this script runs as root
# (PostgreSQL refuses to run as root).
PG_USER="${SIGNALDB_PG_USER:-pgtest}"
SOCKET_DIR="${SIGNALDB_PG_SOCKET_DIR:-/tmp}"
URL="postgres://postgres@127.0.0.1:${PORT}/postgres"

log() { echo "start-postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

case "$PORT" in
    ''|*[!0-9]*) die "port must be a number, got '$PORT'" ;;
esac

find_bin_dir() {
    local d
    # Highest version first.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    # A PostgreSQL installed some other way, on the PATH.
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

BIN_DIR="$(find_bin_dir || true)"
if [ -z "$BIN_DIR" ]; then
    log "no PostgreSQL found; installing it with apt-get"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install PostgreSQL (initdb, pg_ctl) by hand"
    SUDO=""
    if [ "$IS_ROOT" -eq 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install the 'postgresql' package by hand"
        SUDO="sudo"
    fi
    $SUDO apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends postgresql >&2
    BIN_DIR="$(find_bin_dir || true)"
    [ -n "$BIN_DIR" ] || die "installed postgresql but found no initdb under /usr/lib/postgresql/*/bin"
fi
log "using PostgreSQL binaries in $BIN_DIR"

PG_ISREADY="$BIN_DIR/pg_isready"
ready() {
    if [ -x "$PG_ISREADY" ]; then
        "$PG_ISREADY" -q -h 127.0.0.1 -p "$PORT" -U postgres >/dev/null 2>&1
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") >/dev/null 2>&1
    fi
}

if ready; then
    log "a server already answers on port $PORT"
    echo "$URL"
    exit 0
fi

# Runs a command as the server's user: directly when not root, through su
# when root.
as_pg() {
    if [ "$IS_ROOT" -eq 1 ]; then
        local cmd="" a
        for a in "$@"; do cmd+=" $(printf '%q' "$a")"; done
        su "$PG_USER" -s /bin/sh -c "$cmd"
    else
        "$@"
    fi
}

if [ "$IS_ROOT" -eq 1 ]; then
    if ! id "$PG_USER" >/dev/null 2>&1; then
        log "creating user $PG_USER"
        useradd -m -s /bin/sh "$PG_USER"
    fi
fi

if [ ! -f "$DATA_DIR/PG_VERSION" ]; then
    log "initialising $DATA_DIR"
    mkdir -p "$DATA_DIR"
    if [ "$IS_ROOT" -eq 1 ]; then
        chown "$PG_USER" "$DATA_DIR"
    fi
    chmod 700 "$DATA_DIR"
    as_pg test -w "$DATA_DIR" \
        || die "the server's user cannot write $DATA_DIR; pick a directory it can reach (e.g. under /tmp)"
    as_pg "$BIN_DIR/initdb" -D "$DATA_DIR" -A trust -U postgres -E UTF8 >&2
fi

LOG_FILE="$DATA_DIR/server.log"
log "starting the server on port $PORT (log: $LOG_FILE)"
# A data directory left by a killed server still has its postmaster.pid;
# pg_ctl notices the process is gone and starts anyway.
if ! as_pg "$BIN_DIR/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 \
    -o "-p $PORT -k $SOCKET_DIR -c listen_addresses=127.0.0.1" start >&2; then
    tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
    die "pg_ctl could not start the server"
fi

for _ in $(seq 1 60); do
    if ready; then
        log "ready"
        echo "$URL"
        exit 0
    fi
    sleep 1
done
tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
die "the server did not answer on port $PORT within 60 seconds"
