#!/usr/bin/env bash
# Sets up a fresh machine and runs every Kiln test that does not need a GPU: the layer lint, the
# C++ tests (release build and ASan+UBSan build), a bounded fuzz run of the engine-file reader,
# and the Python tests. GPU tests skip themselves without a GPU (tools/gpu_check.sh runs them).
# Prints each runner's summary and a final table; exits non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
declare -a summary=()
status=0
stage() {  # stage NAME COMMAND...
  local name=$1; shift
  echo; echo "=== $name ==="
  local t0=$SECONDS
  if "$@"; then summary+=("PASS  $name ($((SECONDS - t0)) s)")
  else summary+=("FAIL  $name ($((SECONDS - t0)) s)"); status=1; fi
}

stage "setup (apt, pip)" ./tools/setup.sh || { printf '%s\n' "${summary[@]}"; exit 1; }
stage "lint: layer rules" ./tools/lint.sh
stage "lint: ruff" ruff check python tests/python bench
stage "C++ build (cpu-only)" bash -c "cmake --preset cpu-only >/dev/null && cmake --build --preset cpu-only -j $JOBS"
stage "C++ tests (cpu-only)" ctest --preset cpu-only -j "$JOBS"
stage "C++ build (asan)" bash -c "cmake --preset asan >/dev/null && cmake --build --preset asan -j $JOBS"
stage "C++ tests (asan + ubsan)" env ASAN_OPTIONS=detect_leaks=1 ctest --preset asan -j "$JOBS"
stage "fuzz engine reader (${FUZZ_SECONDS} s)" ./tools/run_fuzzer.sh "$FUZZ_SECONDS"
stage "Python package build" bash -c "set -o pipefail; python3 -m pip install -q --no-build-isolation -e . 2>&1 | tail -20"
stage "Python tests" python3 -m pytest tests/python -q -m "not gpu" -p no:cacheprovider

echo; echo "=== summary ==="
printf '%s\n' "${summary[@]}"
exit $status
