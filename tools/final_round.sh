#!/usr/bin/env bash
# One full round on the GPU machine (session 8): build, CTest, the Python GPU tests, a short
# Nsight Compute look at the layer-norm and vit fc2 kernels.
# Device-tool helper, not part of CI.
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
tools/gpu_check.sh build ctest python > "$OUT/gpu_check.txt" 2>&1
sed -n '/=== gpu_check summary ===/,$p' "$OUT/gpu_check.txt"
grep -E "Failure|FAILED|Error" "$OUT"/ctest.log | head -20
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
if [[ -z "${NO_NCU:-}" ]] && command -v ncu >/dev/null; then
  n() {  # n REGEX COUNT ARGS...
    local re=$1 c=$2; shift 2
    echo "--- ncu $re: $*"
    timeout 150 ncu --clock-control none --profile-from-start off -k "regex:$re" -c "$c" \
      --section SpeedOfLight --section LaunchStats python3 tools/ncu_probe.py "$@" 2>&1 |
      grep -E "^  [a-z_].*\(|Duration|Memory Throughput|Compute \(SM\) Throughput|Grid Size|Block Size|Registers Per" | head -40
  }
  n fast_row_norm 2 gpt2 1 kiln
  n layer_norm 2 gpt2 1 inductor-cg
  n 384x32 1 vit_b_16 32 kiln
fi
# The benchmark runs as a call of its own (the machine goes back 30 s after a call returns, and a
# benchmark left running in the background goes with it):
echo "next: python3 bench/run.py --out \$OUT/bench (about 220 s for all 8 cases on a warm machine)"
