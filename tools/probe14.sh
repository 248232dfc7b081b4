#!/usr/bin/env bash
# Session 14 device round: build; the CUDA runtime tests in RT_FILTER and the kernel tests in
# PROBE_FILTER (failures with their messages); the memory-bound bench (graph-timed) unless
# SKIP_MEMBENCH; the host-time split (tools/host_profile.py, quick) for each "MODEL:BATCH" in
# HOST_CASES.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/check.txt" 2>&1; echo "gpu_check rc $?"
sed -n '/=== gpu_check summary ===/,$p' "$OUT/check.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
echo "=== runtime tests: ${RT_FILTER:-CudaGraphs*} ==="
timeout 200 build/gpu/tests/cpp/kiln_cuda_runtime_tests --gtest_filter="${RT_FILTER:-CudaGraphs*}" 2>&1 | grep -E -A4 "^\[  (PASSED|FAILED) |Failure" | head -60
echo "=== kernel tests: ${PROBE_FILTER:-*Norm*} ==="
timeout 200 build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter="${PROBE_FILTER:-*Norm*}" 2>&1 | grep -E -A4 "^\[  (PASSED|FAILED) |Failure" | head -60
if [ -z "${SKIP_MEMBENCH:-}" ]; then
  echo "=== memory-bound bench ==="
  timeout 100 build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter="CudaMemoryBoundBench.*" 2>&1 | grep -E "\[bench\]|FAILED|Failure"
fi
for c in ${HOST_CASES:-gpt2:1}; do
  echo "=== host profile $c ==="
  HOST_PROFILE_QUICK=1 timeout 150 python3 tools/host_profile.py ${c%%:*} ${c##*:} 2>&1 | grep -v -i warn | grep -v "cls.__new__" | tail -12
done
