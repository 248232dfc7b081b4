#!/usr/bin/env bash
# Session 11 probe: build, the flaky-host-time test, host split (vit b32, gpt2 b1), per-kernel
# profile of vit b32 (Kiln vs inductor-cg).
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/build.txt" 2>&1; tail -2 "$OUT/build.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
timeout 100 python3 -m pytest -q -p no:xdist tests/python/test_runtime.py -m gpu 2>&1 | tail -3
echo "=== host ==="
HOST_PROFILE_QUICK=1 timeout 100 python3 tools/host_profile.py vit_b_16 32 2>&1 | grep -v -i warn
HOST_PROFILE_QUICK=1 timeout 100 python3 tools/host_profile.py gpt2 1 2>&1 | grep -v -i warn
echo "=== profile ==="
timeout 250 python3 bench/run.py --models ${PROBE_MODELS:-vit_b_16} --batches ${PROBE_BATCHES:-32} --contenders inductor-cg,kiln --profile --out "$OUT/prof" 2>&1 | grep -v -i warn | tail -60
