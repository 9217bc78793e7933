#!/usr/bin/env bash
# Starts an S3 API server (moto, from PyPI) on 127.0.0.1 for the tests, if one
# is not already answering there, installing moto when it is missing.
# Prints one line: SIGNALDB_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
# Usage: scripts/start-s3.sh [PORT]   (default 59000)
set -euo pipefail
port="${1:-${SIGNALDB_S3_PORT:-59000}}"
endpoint="http://127.0.0.1:${port}"
log="${TMPDIR:-/tmp}/signaldb-s3-${port}.log"

up() {
  python3 - "$endpoint" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer means the server is up
except Exception:
    sys.exit(1)
PY
}

if ! up; then
  if ! python3 -c 'import moto.server' 2>/dev/null; then
    echo "installing moto[server] from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6' >&2
  fi
  nohup python3 -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  for _ in $(seq 1 100); do
    up && break
    sleep 0.2
  done
  up || { echo "S3 server did not start on ${endpoint}; see ${log}" >&2; exit 1; }
fi
echo "SIGNALDB_TEST_S3_ENDPOINT=${endpoint}"
