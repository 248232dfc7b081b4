#!/usr/bin/env bash
# One round on the GPU machine: build and test (tools/gpu_check.sh), the attention tests with
# their timings (with NCU=1 an Nsight Compute look at the tensor-core kernel). The benchmark is a
# call of its own. Device-tool helper, not part of CI.
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
tools/gpu_check.sh build ctest python > "$OUT/gpu_check.txt" 2>&1
sed -n '/=== gpu_check summary ===/,$p' "$OUT/gpu_check.txt"
grep -E "Failure|FAILED|Error" "$OUT"/ctest.log | head -20
build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter='CudaAttention*' 2>&1 | grep -E "ms|OK|FAIL|Failure|Expected|Which is" | head -40
if [[ -n "${NCU:-}" ]] && command -v ncu >/dev/null; then
  timeout 240 ncu -k regex:attention_mma_kernel -c 1 --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section LaunchStats --section SchedulerStats \
    build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter=CudaAttentionMma.PrintsTimingsOfBothKernels \
    > "$OUT/ncu.txt" 2>&1
  grep -E "Duration|Throughput|Occupancy|Registers|Stall|Warp Cycles|Eligible|Issued|Block Limit|One or More|No Eligible|Shared Memory" "$OUT/ncu.txt" | head -45
fi
# The benchmark runs as a call of its own (the machine goes back 30 s after a call returns, and a
# benchmark left running in the background goes with it):
echo "next: python3 bench/run.py --out \$OUT/bench (about 220 s for all 8 cases on a warm machine)"
