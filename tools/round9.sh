#!/usr/bin/env bash
# GPU machine round (session 9): build, the GEMM timed-vs-run probe, the host split of one call,
# then the benchmark (all cases, no profile). Logs under $OUT.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/build.txt" 2>&1; tail -2 "$OUT/build.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
if [ -z "${SKIP_PROBES:-}" ]; then
  echo "=== gemm tactic probe (vit b32 fc2) ==="; timeout 120 python3 tools/gemm_tactic_probe.py 2>&1 | grep -v -i warn
  echo "=== host profile gpt2 b1 ==="; timeout 150 python3 tools/host_profile.py gpt2 1 2>&1 | grep -v -i warn
fi
echo "=== bench ==="
timeout ${BENCH_TIMEOUT:-450} python3 bench/run.py --out "$OUT/bench" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench rc $?"; grep -E "^\| " "$OUT/bench/"*.md 2>/dev/null | head -20
python3 - "$OUT/bench/results.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    k = r.get("kiln", {})
    print(r["model"], r["batch"], "host us/call", round(k.get("host_overhead_us", -1), 1),
          "execute_engine alone", round(k.get("host_execute_engine_us", -1), 1), "build", k.get("build_s"))
PY
