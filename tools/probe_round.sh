#!/usr/bin/env bash
# GPU machine diagnostic round (session 9): GEMM timed-vs-run time, back-to-back graph launch,
# and the kernel table of gpt2 b1.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/build.txt" 2>&1; tail -2 "$OUT/build.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
echo "=== gemm tactic probe (vit b32 fc2) ==="; timeout 120 python3 tools/gemm_tactic_probe.py 2>&1 | grep -v Warning
echo "=== gemm tactic probe (flat 6304 rows) ==="; timeout 90 python3 tools/gemm_tactic_probe.py 1 6304 3072 768 2>&1 | grep -v Warning
p() { timeout 90 python3 tools/launch_probe.py "$@" 2>&1 | grep "graph launch"; }
for m in "gpt2 1" "bert 1"; do
  PROBE_LABEL=default p $m
done
echo "=== kernel table gpt2 b1 ==="; timeout 90 python3 tools/kernel_table_probe.py gpt2 2>&1 | grep -v Warning | head -40
