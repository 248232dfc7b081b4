#!/usr/bin/env bash
# Session 12 device round: build, a filtered run of the CUDA kernel tests (PROBE_FILTER), the
# fused plans with each linear's tactic (plan_summary), and Kiln's per-kernel profile.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/check.txt" 2>&1; echo "gpu_check rc $?"
sed -n '/=== gpu_check summary ===/,$p' "$OUT/check.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
echo "=== gemm epilogue tests ==="
timeout 200 build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter="${PROBE_FILTER:-CudaGemmEpilogue.*}" 2>&1 | tail -25
echo "=== plans ==="
for m in ${PLAN_MODELS:-vit_b_16 bert}; do
  timeout 150 python3 tools/plan_summary.py $m ${PLAN_BATCH:-32} 2>&1 | grep -v -i warn | grep -v "cls.__new__"
done
echo "=== profile ==="
timeout ${PROFILE_TIMEOUT:-240} python3 bench/run.py --models ${PROBE_MODELS:-vit_b_16,bert} --batches ${PROBE_BATCHES:-32} \
  --contenders ${PROBE_CONTENDERS:-kiln} --profile --out "$OUT/prof" 2>&1 | grep -v -i warn | grep -v "cls.__new__" | tail -70
