#!/usr/bin/env bash
# Session 12 verification round: build, CTest (cpu + gpu), GPU pytest, then the host split of
# one engine call (tools/host_profile.py, quick) for gpt2 and resnet50 at batch 1.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build ctest python > "$OUT/check.txt" 2>&1; echo "gpu_check rc $?"
sed -n '/=== gpu_check summary ===/,$p' "$OUT/check.txt"
grep -E "^[0-9]+% tests passed|tests failed out|FAILED|Failed" "$OUT/ctest.log" | head -20
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
for m in gpt2 resnet50; do
  HOST_PROFILE_QUICK=1 timeout 120 python3 tools/host_profile.py $m 1 2>&1 | grep -v -i warn | grep -v cls.__new__
done
