#!/usr/bin/env bash
# Session 22's probe round: the CUTLASS sweep (tools/cutlass_sweep, binary built on the CPU machine
# and carried in build/cutlass_sweep), then the build and the linear candidates' timings as the
# builder measures them (tools/tactic_timings.py, static b32 shapes) for the transformer models.
set -u
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ -x build/cutlass_sweep/sweep ] && [ "${SKIP_SWEEP:-0}" != 1 ]; then
  echo "=== CUTLASS sweep"
  timeout 150 build/cutlass_sweep/sweep > "$OUT/sweep.txt" 2>&1; echo "sweep rc $?"
  cat "$OUT/sweep.txt"
fi
[ "${SKIP_TACTICS:-0}" = 1 ] && exit 0
source tools/device_env.sh
for m in ${TACTIC_MODELS:-vit_b_16 gpt2}; do
  echo "=== linear tactic timings $m b32 (static)"
  timeout 90 python3 tools/tactic_timings.py "$m" 32 ${TACTIC_PREFIX:-cuda.linear} static 2>&1 | grep -v -i warn | grep -v "cls.__new__" | tail -40
done
