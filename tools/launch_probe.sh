#!/usr/bin/env bash
# GPU machine diagnostic (session 7): what makes a host-launched graph slow.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/build.txt" 2>&1; tail -2 "$OUT/build.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
p() { python3 tools/launch_probe.py "$@" 2>&1 | grep "graph launch"; }
for m in "gpt2 1" "vit_b_16 1" "bert 1" "gpt2 32"; do
  PROBE_LABEL=default p $m
  PROBE_LABEL=no-cudnn KILN_EXCLUDE_TACTICS=cuda.attention.cudnn p $m
  PROBE_LABEL=device-launch KILN_DEVICE_GRAPH_LAUNCH=1 p $m
done
