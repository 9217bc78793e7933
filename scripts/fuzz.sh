#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a short fixed time, one after the
# other, with the machine's stable toolchain (RUSTC_BOOTSTRAP=1 lets it take
# the sanitizer flags). scripts/test.sh runs it as its last step.
#
#   scripts/fuzz.sh                       # every target, 20 s each
#   SIGNALDB_FUZZ_SECONDS=300 scripts/fuzz.sh tempo_params   # one, longer
#
# Seeds come from fuzz/seeds/<target>/ (committed); what a run learns is kept
# in <fuzz target dir>/corpus/<target>/ for the next run. A crash, a failed
# assertion, a leak or an input running past SIGNALDB_FUZZ_TIMEOUT seconds
# fails the script, naming the input libFuzzer saved under
# fuzz/artifacts/<target>/ and the command that replays it.
#
# Builds go to ${CARGO_TARGET_DIR}/fuzz (or fuzz/target without
# CARGO_TARGET_DIR), apart from the main build: sanitizer flags would
# otherwise invalidate its artifacts. SIGNALDB_FUZZ_SECONDS=0 skips the fuzz
# runs (and says so); cargo-fuzz is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${SIGNALDB_FUZZ_SECONDS:-20}"
timeout="${SIGNALDB_FUZZ_TIMEOUT:-10}"
cargo_fuzz_version="${SIGNALDB_CARGO_FUZZ_VERSION:-0.13.2}"
case "${seconds}" in
  '' | *[!0-9]*)
    echo "error: SIGNALDB_FUZZ_SECONDS must be a whole number of seconds, not '${seconds}'" >&2
    exit 2
    ;;
esac
if [ "${seconds}" -eq 0 ]; then
  echo "fuzz: SKIPPED, SIGNALDB_FUZZ_SECONDS=0"
  exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz ${cargo_fuzz_version}"
  if ! cargo install cargo-fuzz --version "${cargo_fuzz_version}" --locked; then
    echo "error: cargo-fuzz is missing and 'cargo install cargo-fuzz --locked' failed;" \
      "install it by hand (or set SIGNALDB_FUZZ_SECONDS=0 to skip fuzzing knowingly)" >&2
    exit 1
  fi
fi

if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir="${CARGO_TARGET_DIR}/fuzz"
else
  target_dir="${PWD}/fuzz/target"
fi
export RUSTC_BOOTSTRAP=1
# Release with AddressSanitizer. 16 codegen units (cargo-fuzz's default is
# 1): the server crate, rebuilt after most commits, then builds on both
# cores in half the time, for slightly slower runs.
build=(-O --codegen-units 16 --target-dir "${target_dir}")

cd fuzz
targets="${*:-$(cargo fuzz list)}"
echo "fuzz: building every target (release, ASan) in ${target_dir}"
nice -n 10 cargo fuzz build "${build[@]}"

# wal_open writes and fsyncs a WAL per input: in memory that costs nothing.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi

report=""
for t in ${targets}; do
  corpus="${target_dir}/corpus/${t}"
  logs="${target_dir}/logs"
  mkdir -p "${corpus}" "${logs}" "seeds/${t}" "artifacts/${t}"
  extra=()
  case "${t}" in
    # The WAL's writer thread outlives each input by a moment; LeakSanitizer
    # would report its handle.
    wal_open) extra+=(-detect_leaks=0) ;;
  esac
  marker="${logs}/${t}.started"
  touch "${marker}"
  log="${logs}/${t}.log"
  echo "fuzz: ${t} for ${seconds} s (log ${log})"
  if ! nice -n 10 cargo fuzz run "${build[@]}" "${t}" "${corpus}" "seeds/${t}" -- \
    -max_total_time="${seconds}" -timeout="${timeout}" -print_final_stats=1 "${extra[@]}" >"${log}" 2>&1; then
    echo "error: fuzz target ${t} failed; the end of its log (long lines cut):" >&2
    # cargo-fuzz ends with the input as a byte list; cut it short.
    tail -n 80 "${log}" | cut -c1-300 >&2
    found=$(find "artifacts/${t}" -type f -newer "${marker}" 2>/dev/null || true)
    if [ -n "${found}" ]; then
      for a in ${found}; do
        echo "error: the failing input is fuzz/${a}; replay it with:" >&2
        echo "  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} ${t} ${a})" >&2
      done
    else
      echo "error: no input was saved under fuzz/artifacts/${t}/ (a build or setup failure?)" >&2
    fi
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -n 1)
  size=$(find "${corpus}" -type f | wc -l)
  report="${report}$(printf '%-20s %12s runs  %4s s  corpus %6s' "${t}" "${runs:-?}" "${seconds}" "${size}")"$'\n'
done
echo "fuzz: no crash (${SECONDS} s in all, build included)"
printf '%s' "${report}"
