#!/usr/bin/env bash
# Fuzzes the engine-file reader: builds the asan preset's fuzzer (clang, ASan + UBSan,
# libFuzzer) if needed, writes a seed corpus of valid engine files into a temp dir, runs the
# fuzzer for a bounded time and fails on any crash, leak, timeout or sanitizer report.
#
#   tools/run_fuzzer.sh [SECONDS]     (default 60)
#
# KILN_FUZZ_BUILD_DIR picks the build directory (default build/asan, configured with the asan
# preset when it has no cache yet). Findings are kept in $BUILD/fuzz-artifacts.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${KILN_FUZZ_BUILD_DIR:-$root/build/asan}"
[[ "$build" = /* ]] || build="$root/$build"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  (cd "$root" && cmake --preset asan -B "$build" >/dev/null)
fi
cmake --build "$build" --target kiln_engine_reader_fuzz kiln_engine_corpus -j"${KILN_JOBS:-2}" >/dev/null

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"
"$build/fuzz/kiln_engine_corpus" "$work/seeds"
seeds=$(ls "$work/seeds" | wc -l)

log="$work/fuzz.log"
status=0
# detect_leaks: a leak fails the run too. The seeds dir is read-only input; new inputs go to
# corpus.
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
  "$build/fuzz/kiln_engine_reader_fuzz" "$work/corpus" "$work/seeds" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?

runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
corpus=$(ls "$work/corpus" | wc -l)
findings=$(ls "$work/artifacts" | wc -l)

if [[ $status -ne 0 || $findings -ne 0 ]] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
  mkdir -p "$build/fuzz-artifacts"
  cp -r "$work/artifacts/." "$build/fuzz-artifacts/" 2>/dev/null || true
  cp "$log" "$build/fuzz-artifacts/fuzz.log"
  tail -n 40 "$log" >&2
  echo "engine_reader fuzz: FAILED (exit $status) after ${runs:-?} runs; findings and log in $build/fuzz-artifacts" >&2
  exit 1
fi
echo "engine_reader fuzz: OK, ${runs:-?} runs in ${seconds}s, ${seeds} seeds, corpus ${corpus}, cov ${cov:-?}, no crash or leak"
