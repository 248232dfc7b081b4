#!/usr/bin/env bash
# GPU test of the `kiln` command line (ctest `cli_gpu`, label gpu): kiln_test_engine builds the
# example convnet and transformer for cuda:0 and for the CPU (same weights); `kiln run` and
# `kiln bench` run the CUDA engines on their default device, and the outputs must match the
# CPU engines' on the same inputs.
#   tests/cli/test_cli_gpu.sh BUILD_DIR
# Runs every check, prints one line per check and exits non-zero if any failed.
set -uo pipefail

BUILD=${1:?usage: test_cli_gpu.sh BUILD_DIR}
KILN="$BUILD/tools/kiln/kiln"
TEST_ENGINE="$BUILD/examples/cpp/kiln_test_engine"
for bin in "$KILN" "$TEST_ENGINE"; do
  [[ -x "$bin" ]] || { echo "FAIL: $bin not built"; exit 1; }
done
python3 -c 'import numpy' 2>/dev/null || { echo "FAIL: numpy is needed to compare outputs"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

failures=0
pass() { echo "ok:   $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
check() {
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
contains() { grep -q -- "$2" "$1"; }
# runs NAME LOG COMMAND...: passes when COMMAND exits 0; prints its output when it does not.
runs() {
  local name=$1 log=$2; shift 2
  if "$@" >"$log" 2>&1; then pass "$name"; return 0; fi
  fail "$name"; cat "$log"; return 1
}
fails_with() {
  local name=$1 file=$2 pattern=$3; shift 3
  if "$@" >/dev/null 2>"$file"; then
    fail "$name (exited 0)"
  elif grep -q -- "$pattern" "$file"; then
    pass "$name"
  else
    fail "$name"; cat "$file"
  fi
}
# same NAME CUDA.npy CPU.npy: the CUDA output matches the CPU engine's (float32 on both, no TF32).
same() {
  check "$1" python3 -c '
import sys
import numpy as np
got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
assert np.isfinite(got).all(), "non-finite CUDA output"
err = float(np.abs(got.astype(np.float64) - want).max())
scale = max(1.0, float(np.abs(want).max()))
assert err <= 1e-3 * scale, f"max abs error {err:.3e} (scale {scale:.3e})"
assert np.abs(want).max() > 0, "the CPU output is all zeros: the comparison proves nothing"
' "$2" "$3"
}

# --- engines ---------------------------------------------------------------------------------
for net in convnet transformer; do
  runs "build $net for cuda:0" "$TMP/build_${net}_cuda.log" "$TEST_ENGINE" build $net cuda:0 "$TMP/${net}_cuda.engine"
  runs "build $net for cpu" "$TMP/build_${net}_cpu.log" "$TEST_ENGINE" build $net cpu "$TMP/${net}_cpu.engine"
done
CONV_CUDA="$TMP/convnet_cuda.engine"; CONV_CPU="$TMP/convnet_cpu.engine"
TRANS_CUDA="$TMP/transformer_cuda.engine"; TRANS_CPU="$TMP/transformer_cpu.engine"
[[ -s $CONV_CUDA && -s $CONV_CPU && -s $TRANS_CUDA && -s $TRANS_CPU ]] || {
  echo "$failures check(s) failed"; exit 1; }

if runs "kiln inspect of a CUDA engine" "$TMP/inspect.txt" "$KILN" inspect "$CONV_CUDA"; then
  check "inspect names the CUDA target" contains "$TMP/inspect.txt" "^target *cuda sm_"
fi

# --- run: default device of a CUDA engine is cuda:0 --------------------------------------------
python3 -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('$TMP/x.npy', rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
"
if runs "kiln run of a CUDA engine with a .npy input" "$TMP/run_conv_cuda.out" \
    "$KILN" run "$CONV_CUDA" --input "input=$TMP/x.npy" --output-dir "$TMP/conv_cuda"; then
  check "kiln run ran on cuda:0 by default and says so" contains "$TMP/run_conv_cuda.out" "^device cuda:0 ("
  check "kiln run lists the output" contains "$TMP/run_conv_cuda.out" "logits.*float32.*2x10"
fi
runs "kiln run of the CPU engine with the same input" "$TMP/run_conv_cpu.out" \
  "$KILN" run "$CONV_CPU" --input "input=$TMP/x.npy" --output-dir "$TMP/conv_cpu"
same "convnet on cuda:0 matches the CPU engine" "$TMP/conv_cuda/logits.npy" "$TMP/conv_cpu/logits.npy"

# Two inputs, random (same seeds on both devices), at a batch other than the opt one.
runs "kiln run --device cuda:0 of the transformer at batch 3" "$TMP/run_trans_cuda.out" \
  "$KILN" run "$TRANS_CUDA" --device cuda:0 --seed 5 --shape input=3x8x32 --shape mask=3x1x1x8 \
  --output-dir "$TMP/trans_cuda"
runs "kiln run of the CPU transformer at batch 3" "$TMP/run_trans_cpu.out" \
  "$KILN" run "$TRANS_CPU" --seed 5 --shape input=3x8x32 --shape mask=3x1x1x8 --output-dir "$TMP/trans_cpu"
same "transformer on cuda:0 matches the CPU engine" "$TMP/trans_cuda/output.npy" "$TMP/trans_cpu/output.npy"

# --- bench -----------------------------------------------------------------------------------
if runs "kiln bench of a CUDA engine" "$TMP/bench.txt" \
    "$KILN" bench "$CONV_CUDA" --shape input=2x3x32x32 --iterations 20 --warmup 3; then
  check "bench ran on cuda:0" contains "$TMP/bench.txt" "^device *cuda:0 ("
  check "bench reports device time from cudaEvents" contains "$TMP/bench.txt" "cudaEvents"
  check "bench reports the host enqueue time" contains "$TMP/bench.txt" "^enqueue *host time per call: median"
  check "bench ran at the requested shape" contains "$TMP/bench.txt" "2x3x32x32"
  check "bench's median device time is positive" python3 -c '
import re, sys
text = open(sys.argv[1]).read()
median = float(re.search(r"^median\s+([0-9.]+) ms", text, re.M).group(1))
host = float(re.search(r"host time per call: median ([0-9.]+) ms", text).group(1))
assert median > 0 and host > 0, (median, host)
' "$TMP/bench.txt"
fi
runs "kiln bench of the two-input CUDA transformer" "$TMP/bench_trans.txt" \
  "$KILN" bench "$TRANS_CUDA" --iterations 5 --warmup 1
runs "kiln bench --device cpu of a CPU engine on a CUDA build" "$TMP/bench_cpu.txt" \
  "$KILN" bench "$CONV_CPU" --device cpu --iterations 3 --warmup 1

# --- errors ----------------------------------------------------------------------------------
fails_with "a CUDA engine on --device cpu is the wrong target" "$TMP/wrong_cpu.err" \
  "engine built for cuda sm_[0-9]*, this device is cpu" "$KILN" run "$CONV_CUDA" --device cpu --output-dir "$TMP"
fails_with "a CPU engine on --device cuda:0 is the wrong target" "$TMP/wrong_cuda.err" \
  "engine built for cpu, this device is cuda sm_" "$KILN" run "$CONV_CPU" --device cuda:0 --output-dir "$TMP"
fails_with "a device that does not exist is named" "$TMP/no_device.err" "cuda:99" \
  "$KILN" run "$CONV_CUDA" --device cuda:99 --output-dir "$TMP"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all CLI GPU checks passed"
