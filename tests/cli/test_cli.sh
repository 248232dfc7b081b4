#!/usr/bin/env bash
# Shell test of the `kiln` command line on engines written by kiln_example (and a CUDA-target
# file that kiln_test_engine relabels, so no GPU is needed).
#   tests/cli/test_cli.sh BUILD_DIR [cpu-only|cuda]
# The second argument says how BUILD_DIR was configured (KILN_CUDA OFF or ON); ctest passes it.
# Runs every check, prints one line per check and exits non-zero if any failed.
set -uo pipefail

BUILD=${1:?usage: test_cli.sh BUILD_DIR [cpu-only|cuda]}
KIND=${2:-}
KILN="$BUILD/tools/kiln/kiln"
EXAMPLE="$BUILD/examples/cpp/kiln_example"
for bin in "$KILN" "$EXAMPLE"; do
  [[ -x "$bin" ]] || { echo "FAIL: $bin not built"; exit 1; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

failures=0
pass() { echo "ok:   $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
# check NAME COMMAND...: passes when COMMAND exits 0.
check() {
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
contains() { grep -q -- "$2" "$1"; }

HAVE_NUMPY=0
python3 -c 'import numpy' 2>/dev/null && HAVE_NUMPY=1

# --- kiln_example writes the engines ---------------------------------------------------------
if "$EXAMPLE" "$TMP" >"$TMP/example.out" 2>"$TMP/example.err"; then
  pass "kiln_example exits 0"
else
  fail "kiln_example exits 0"; cat "$TMP/example.out" "$TMP/example.err"
  echo "$failures check(s) failed"; exit 1
fi
CONV="$TMP/convnet.engine"
TRANS="$TMP/transformer.engine"
check "kiln_example wrote convnet.engine" test -s "$CONV"
check "kiln_example wrote transformer.engine" test -s "$TRANS"
check "kiln_example prints output shapes and checksums" \
  bash -c "grep -q 'logits.*\[4, 10\].*checksum' '$TMP/example.out' && grep -q 'output.*\[4, 8, 32\].*checksum' '$TMP/example.out'"
check "kiln_example draws a progress bar on stderr" contains "$TMP/example.err" "tactics"

# --- inspect -------------------------------------------------------------------------------
if "$KILN" inspect "$CONV" >"$TMP/inspect.txt" 2>&1; then
  pass "kiln inspect exits 0"
  check "inspect lists the input binding" contains "$TMP/inspect.txt" "input.*float32.*\[batch, 3, 32, 32\]"
  check "inspect lists the output binding" contains "$TMP/inspect.txt" "logits"
  check "inspect lists the dynamic dim with its range" contains "$TMP/inspect.txt" "batch.*min 1.*opt 4.*max 8"
  check "inspect lists conv steps with their tactic" contains "$TMP/inspect.txt" "conv.*cpu.conv"
else
  fail "kiln inspect exits 0"; cat "$TMP/inspect.txt"
fi

if "$KILN" inspect "$TRANS" --json >"$TMP/inspect.json" 2>"$TMP/inspect.err"; then
  pass "kiln inspect --json exits 0"
  check "inspect --json parses as JSON" python3 -c 'import json,sys; json.load(sys.stdin)' <"$TMP/inspect.json"
  check "inspect --json names the bindings and steps" python3 -c '
import json, sys
j = json.load(sys.stdin)
names = [b["name"] for b in j["bindings"]]
assert names == ["input", "mask", "output"], names
assert any(s["op"] == "attention" for s in j["steps"]), "no attention step"
assert j["symbols"][0]["name"] == "batch" and j["symbols"][0]["opt"] == 4
assert j["arena_bytes"] > 0 and j["constant_bytes"] > 0
' <"$TMP/inspect.json"
else
  fail "kiln inspect --json exits 0"; cat "$TMP/inspect.err"
fi

# --- run -----------------------------------------------------------------------------------
mkdir -p "$TMP/run_random" "$TMP/run_trans"
check "kiln run with a random input" "$KILN" run "$CONV" --output-dir "$TMP/run_random" --seed 3
check "kiln run writes the output .npy" test -s "$TMP/run_random/logits.npy"
check "kiln run on the two-input transformer" "$KILN" run "$TRANS" --output-dir "$TMP/run_trans"
check "kiln run writes the transformer output" test -s "$TMP/run_trans/output.npy"
if [[ $HAVE_NUMPY == 1 ]]; then
  check "random run output has the opt shape (4, 10)" python3 -c "
import numpy as np
y = np.load('$TMP/run_random/logits.npy')
assert y.shape == (4, 10) and y.dtype == np.float32 and np.isfinite(y).all(), (y.shape, y.dtype)
"
  python3 -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('$TMP/x.npy', rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
np.save('$TMP/x64.npy', np.load('$TMP/x.npy').astype(np.float64))
"
  mkdir -p "$TMP/run_npy" "$TMP/run_npy64"
  check "kiln run with a .npy input" "$KILN" run "$CONV" --input "input=$TMP/x.npy" --output-dir "$TMP/run_npy"
  check "kiln run with a float64 .npy input" \
    "$KILN" run "$CONV" --input "input=$TMP/x64.npy" --output-dir "$TMP/run_npy64"
  check ".npy run output has the input's batch and matches the float64 run" python3 -c "
import numpy as np
a = np.load('$TMP/run_npy/logits.npy'); b = np.load('$TMP/run_npy64/logits.npy')
assert a.shape == (2, 10), a.shape
assert np.isfinite(a).all() and np.array_equal(a, b)
"
else
  echo "skip: numpy not available: the .npy input checks"
fi

# --- bench ---------------------------------------------------------------------------------
if "$KILN" bench "$CONV" --shape input=2x3x32x32 --iterations 5 --warmup 1 >"$TMP/bench.txt" 2>&1; then
  pass "kiln bench exits 0"
  check "bench reports the median time" contains "$TMP/bench.txt" "median"
  check "bench ran at the requested shape" contains "$TMP/bench.txt" "2x3x32x32"
else
  fail "kiln bench exits 0"; cat "$TMP/bench.txt"
fi

# --- errors --------------------------------------------------------------------------------
head -c $(($(stat -c %s "$CONV") / 2)) "$CONV" >"$TMP/truncated.engine"
if "$KILN" run "$TMP/truncated.engine" --output-dir "$TMP" >/dev/null 2>"$TMP/trunc.err"; then
  fail "kiln run on a truncated engine exits non-zero"
else
  pass "kiln run on a truncated engine exits non-zero"
  check "the error says the file is truncated" contains "$TMP/trunc.err" "truncated"
fi
if "$KILN" run "$CONV" --shape input=9x3x32x32 --output-dir "$TMP" >/dev/null 2>"$TMP/range.err"; then
  fail "kiln run outside the built range exits non-zero"
else
  pass "kiln run outside the built range exits non-zero"
  check "the error names the input and its range" contains "$TMP/range.err" "'input'.*\[1, 8\]"
fi
if "$KILN" inspect "$TMP/missing.engine" >/dev/null 2>&1; then
  fail "kiln inspect of a missing file exits non-zero"
else
  pass "kiln inspect of a missing file exits non-zero"
fi

# --- devices -------------------------------------------------------------------------------
# fails_with NAME FILE PATTERN COMMAND...: passes when COMMAND exits non-zero and its stderr
# (saved to FILE) matches PATTERN.
fails_with() {
  local name=$1 file=$2 pattern=$3; shift 3
  if "$@" >/dev/null 2>"$file"; then
    fail "$name (exited 0)"
  elif grep -qi -- "$pattern" "$file"; then
    pass "$name"
  else
    fail "$name"; cat "$file"
  fi
}
NO_CUDA="this kiln was built without CUDA"
if "$KILN" run "$CONV" --device cpu --output-dir "$TMP/run_cpu" >"$TMP/run_cpu.out" 2>&1; then
  pass "kiln run --device cpu exits 0"
  check "kiln run says which device ran" contains "$TMP/run_cpu.out" "^device cpu"
else
  fail "kiln run --device cpu exits 0"; cat "$TMP/run_cpu.out"
fi
fails_with "--device with an unknown value is refused" "$TMP/dev_bad.err" "expected cpu, cuda or cuda:N" \
  "$KILN" run "$CONV" --device tpu --output-dir "$TMP"
if [[ $KIND == cpu-only ]]; then
  fails_with "kiln run --device cuda:0 without CUDA says so" "$TMP/dev_run.err" "$NO_CUDA" \
    "$KILN" run "$CONV" --device cuda:0 --output-dir "$TMP"
  fails_with "kiln bench --device cuda:0 without CUDA says so" "$TMP/dev_bench.err" "$NO_CUDA" \
    "$KILN" bench "$CONV" --device cuda:0 --iterations 1
else
  # With CUDA: a CPU engine is the wrong target on a GPU; without a GPU cuda:0 does not exist.
  fails_with "kiln run of a CPU engine on --device cuda:0 is refused" "$TMP/dev_run.err" "cuda" \
    "$KILN" run "$CONV" --device cuda:0 --output-dir "$TMP"
fi

TEST_ENGINE="$BUILD/examples/cpp/kiln_test_engine"
CUDA_CONV="$TMP/convnet_cuda.engine"
if [[ -x "$TEST_ENGINE" ]] && "$TEST_ENGINE" retarget "$CONV" "$CUDA_CONV" 2>"$TMP/retarget.err"; then
  pass "kiln_test_engine writes a CUDA-target convnet"
  if "$KILN" inspect "$CUDA_CONV" >"$TMP/inspect_cuda.txt" 2>&1; then
    pass "kiln inspect of a CUDA engine exits 0 without loading it on a GPU"
    check "inspect names the CUDA target" contains "$TMP/inspect_cuda.txt" "^target *cuda sm_90"
    check "inspect lists the CUDA engine's input" contains "$TMP/inspect_cuda.txt" "input.*float32.*\[batch, 3, 32, 32\]"
  else
    fail "kiln inspect of a CUDA engine exits 0 without loading it on a GPU"; cat "$TMP/inspect_cuda.txt"
  fi
  "$KILN" inspect "$CUDA_CONV" --json >"$TMP/inspect_cuda.json" 2>&1
  check "inspect --json of a CUDA engine names its target" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["device"]
assert d.startswith("cuda sm_90"), d
' "$TMP/inspect_cuda.json"
  fails_with "kiln run --device cpu of a CUDA engine is the wrong target" "$TMP/wrong.err" \
    "engine built for cuda sm_90, this device is cpu" "$KILN" run "$CUDA_CONV" --device cpu --output-dir "$TMP"
  if [[ $KIND == cpu-only ]]; then
    fails_with "kiln run of a CUDA engine (default device) without CUDA says so" "$TMP/default.err" "$NO_CUDA" \
      "$KILN" run "$CUDA_CONV" --output-dir "$TMP"
    fails_with "kiln bench of a CUDA engine without CUDA says so" "$TMP/default_bench.err" "$NO_CUDA" \
      "$KILN" bench "$CUDA_CONV" --iterations 1
  else
    # Its plan holds CPU tactics: refused on a GPU (no such CUDA kernel) and without one.
    fails_with "kiln run of the relabelled engine defaults to cuda:0" "$TMP/default.err" "cuda" \
      "$KILN" run "$CUDA_CONV" --output-dir "$TMP"
  fi
else
  fail "kiln_test_engine writes a CUDA-target convnet"; cat "$TMP/retarget.err" 2>/dev/null
fi

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all CLI checks passed"
