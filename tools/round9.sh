#!/usr/bin/env bash
# GPU machine round (sessions 9-12): build, the GEMM timed-vs-run probe and the host split of one
# call (unless SKIP_PROBES), a filtered run of the CUDA kernel tests (when ROUND_FILTER names a
# gtest filter, such as CudaAttention*), then the benchmark (all cases, no profile). Logs under
# $OUT.
set -u
source "$(dirname "$0")/device_env.sh"
if [ -z "${SKIP_PROBES:-}" ]; then
  echo "=== gemm tactic probe (vit b32 fc2) ==="; timeout 120 python3 tools/gemm_tactic_probe.py 2>&1 | grep -v -i warn
  echo "=== host profile gpt2 b1 ==="; timeout 150 python3 tools/host_profile.py gpt2 1 2>&1 | grep -v -i warn
fi
if [ -n "${ROUND_FILTER:-}" ]; then
  echo "=== CUDA kernel tests ($ROUND_FILTER) ==="
  timeout 120 build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter="$ROUND_FILTER" > "$OUT/kernels.log" 2>&1
  echo "rc $?"; grep -E "candidates|PASSED|FAILED|Failure" "$OUT/kernels.log" | head -20
fi
echo "=== bench ==="
timeout ${BENCH_TIMEOUT:-450} python3 bench/run.py --out "$OUT/bench" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench rc $?"; grep -E "^\| " "$OUT/bench/"*.md 2>/dev/null | head -20
python3 - "$OUT/bench/results.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    k = r.get("kiln", {})
    print(r["model"], r["batch"], "cos", round(k.get("cosine", 0), 7), "host us/call",
          round(k.get("host_overhead_us", -1), 1),
          "rounds", [round(x, 1) for x in k.get("host_overhead_us_rounds", [])],
          "CPU", round(k.get("host_cpu_us", -1), 1), [round(x, 1) for x in k.get("host_cpu_us_rounds", [])],
          "first call", round(k.get("host_first_call_us", -1), 1),
          "inductor-cg us/call", round(r.get("inductor-cg", {}).get("host_overhead_us", -1), 1),
          "first", round(r.get("inductor-cg", {}).get("host_first_call_us", -1), 1),
          "slowest round's body/enqueue/launch", (lambda w, sp: sp[w.index(max(w))] if w and sp else None)(
              k.get("host_overhead_us_rounds", []), k.get("host_split_us_rounds", [])),
          "execute_engine alone",
          round(k.get("host_execute_engine_us", -1), 1), "fast",
          round(k.get("host_execute_engine_fast_us", -1), 1), "CPU",
          round(k.get("host_execute_engine_fast_cpu_us", -1), 1), "build cold/warm",
          round(k.get("build_cold_s", -1), 1), round(k.get("build_s", -1), 1), "mem MB",
          round(k.get("peak_mem_mb", 0)), round(r.get("inductor", {}).get("peak_mem_mb", 0)),
          round(r.get("inductor-cg", {}).get("peak_mem_mb", 0)),
          "EngineCall", k.get("engine_call"), "staged copies", [st.get("cuda_graph_staged_copies") for st in k.get("runtime", [])],
          "nodes", [st.get("cuda_graph_nodes") for st in k.get("runtime", [])],
          "L2 prefetch launches", [st.get("cuda_graph_prefetch_nodes") for st in k.get("runtime", [])])
PY
