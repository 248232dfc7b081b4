#!/usr/bin/env bash
# Session 11 device round A: build + CTest + GPU pytest (gpu_check), the fused plans of the
# transformers (plan_summary), and Kiln's per-kernel profile of the b32 transformers.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build ctest python > "$OUT/check.txt" 2>&1; echo "gpu_check rc $?"
sed -n '/=== gpu_check summary ===/,$p' "$OUT/check.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
echo "=== plans ==="
for m in vit_b_16 gpt2 bert; do
  timeout 120 python3 tools/plan_summary.py $m ${PLAN_BATCH:-32} 2>&1 | grep -v -i warn | grep -v "cls.__new__"
done
echo "=== profile ==="
timeout 200 python3 bench/run.py --models ${PROBE_MODELS:-vit_b_16,gpt2} --batches ${PROBE_BATCHES:-32} \
  --contenders kiln --profile --out "$OUT/prof" 2>&1 | grep -v -i warn | grep -v "cls.__new__" | tail -60
