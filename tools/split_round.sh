#!/usr/bin/env bash
# GPU machine diagnostic: build, then tools/latency_split.py for each case in its own process
# (CUPTI, once loaded, stays attached to a process), under each tactic-timing method in
# TIMINGS (default: cold). Device-tool helper, not part of CI.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/build.txt" 2>&1; tail -2 "$OUT/build.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
for c in ${CASES:-gpt2:1 vit_b_16:1 bert:1 resnet50:1 gpt2:32}; do
  for t in ${TIMINGS:-cold}; do
    KILN_TACTIC_TIMING=$t python3 tools/latency_split.py $c 2>&1 | grep -v -i "warn\|return cls" | tee -a "$OUT/split.txt"
  done
done
