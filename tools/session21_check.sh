#!/usr/bin/env bash
# Session 21's check round: build, CTest and the GPU pytest (tools/gpu_check.sh), then the
# attention candidates' timings as the builder measures them (tools/tactic_timings.py) for the
# b32 transformers: how far cuDNN's SDPA and Kiln's kernels are apart before the handicap.
set -u
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
timeout 380 tools/gpu_check.sh build ${CHECK_STAGES:-ctest python} > "$OUT/check.txt" 2>&1
sed -n '/=== gpu_check summary ===/,$p' "$OUT/check.txt"
grep -E "^\[  FAILED|Failure" "$OUT"/ctest.log 2>/dev/null | head -20
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
for m in ${TACTIC_MODELS:-vit_b_16 gpt2 bert}; do
  echo "=== attention tactic timings $m b32"
  timeout 60 python3 tools/tactic_timings.py "$m" 32 cuda.attention ${TACTIC_STATIC:-} 2>&1 | grep -v -i warn | grep -v "cls.__new__" | tail -12
done
