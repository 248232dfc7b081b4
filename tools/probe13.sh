#!/usr/bin/env bash
# Session 13 device round: tools/probe12.sh (build, filtered CUDA kernel tests, plans, profile),
# then tools/tactic_timings.py for each "MODEL:BATCH" in TACTIC_CASES (the fastest candidate of
# each kernel per linear signature).
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/probe12.sh > "$OUT/probe.txt" 2>&1
cat "$OUT/probe.txt" | grep -v "^\[" | tail -150
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
for c in ${TACTIC_CASES:-}; do
  echo "=== tactic timings $c ==="
  timeout 150 python3 tools/tactic_timings.py ${c%%:*} ${c##*:} 2>&1 | grep -v -i warn | tail -30
done
