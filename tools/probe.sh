#!/usr/bin/env bash
# A GPU-machine diagnostic round. First the parts that need no build, from binaries built on the
# CPU machine and carried:
#   LAB=1                      the attention lab (tools/attention_lab.cu), every build/lab/lab_*
#                              binary (say lab_old from HEAD's kernel, lab_new from the tree),
#                              two interleaved rounds; LAB_SPLITS="2 3" also runs the last one
#                              with KILN_SHORT_SPLIT at each value on the b32 cases
#   SWEEP=1                    the CUTLASS sweep (tools/cutlass_sweep, build/cutlass_sweep/sweep)
# Then, when any other part is named, the build (tools/device_env.sh) and each part its variable
# names, in this order (logs under $OUT):
#   RT_FILTER=gtest-filter     the CUDA runtime tests it selects, failures with their messages
#   PROBE_FILTER=gtest-filter  the CUDA kernel tests it selects, the same, and their
#                              "[ timing ]" lines (CudaAttentionMma.PrintsTimingsOfBothKernels)
#   MEMBENCH=1                 the memory-bound kernel bench (CudaMemoryBoundBench, graph-timed);
#                              with AB_ENV also run with that setting
#   HOST_CASES="gpt2:1 ..."    the host-time split of one engine call (tools/host_profile.py)
#   TACTIC_CASES="vit_b_16:32 gpt2:32:cuda.attention:static"
#                              the fastest candidate of each kernel per op signature
#                              (tools/tactic_timings.py MODEL BATCH [PREFIX [static]])
#   PROFILE_MODELS=vit_b_16,gpt2  Kiln's per-kernel device time at batch 32, or at the batches
#                              PROFILE_BATCHES=1,32 lists (bench/run.py --profile); with
#                              NO_CUDNN=1 also Kiln alone on those cases with cuDNN attention
#                              excluded, with NO_CUDNN=profile that run's per-kernel profile
#                              (Kiln's own attention kernels in the model); PROFILE_ENV="A=1"
#                              also profiles those cases with that setting
#   AB_ENV="KILN_HOIST_FILLS=0" AB_MODELS=vit_b_16,gpt2 AB_BATCHES=32
#                              Kiln alone on those cases with AB_ENV and without, twice each,
#                              interleaved (an env variable's effect on Kiln's own time;
#                              AB_ROUNDS=1: one round; AB_ENV="A=0|A=1 B=2": one arm per
#                              |-separated setting)
set -u
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ -n "${LAB:-}" ]; then
  labs=(build/lab/lab_*)
  for r in 1 2; do
    for b in "${labs[@]}"; do echo "=== $(basename "$b") round $r"; "$b" 2>&1 | grep lab; done
  done
  for sp in ${LAB_SPLITS:-}; do
    echo "=== $(basename "${labs[-1]}"), KILN_SHORT_SPLIT=$sp"
    for c in "vit b32" "gpt2 b32" "bert b32"; do KILN_SHORT_SPLIT=$sp "${labs[-1]}" "$c" | grep short; done
  done
fi
if [ -n "${SWEEP:-}" ]; then
  echo "=== CUTLASS sweep"
  timeout 150 build/cutlass_sweep/sweep > "$OUT/sweep.txt" 2>&1; echo "sweep rc $?"
  grep -E "^==| us |refused" "$OUT/sweep.txt"  # not CUTLASS's TMA descriptor dumps
fi
[ -n "${RT_FILTER:-}${PROBE_FILTER:-}${MEMBENCH:-}${HOST_CASES:-}${TACTIC_CASES:-}${PROFILE_MODELS:-}${AB_ENV:-}" ] || exit 0
source tools/device_env.sh
failures() { grep -E -A4 "^\[  (PASSED|FAILED) |Failure|^\[ timing \]" | head -80; }
if [ -n "${RT_FILTER:-}" ]; then
  echo "=== runtime tests: $RT_FILTER ==="
  timeout 200 build/gpu/tests/cpp/kiln_cuda_runtime_tests --gtest_filter="$RT_FILTER" 2>&1 | failures
fi
if [ -n "${PROBE_FILTER:-}" ]; then
  echo "=== kernel tests: $PROBE_FILTER ==="
  timeout 200 build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter="$PROBE_FILTER" 2>&1 | failures
fi
if [ -n "${MEMBENCH:-}" ]; then
  echo "=== memory-bound bench ==="
  timeout 100 build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter="CudaMemoryBoundBench.*" 2>&1 | grep -E "\[bench\]|FAILED|Failure"
  if [ -n "${AB_ENV:-}" ]; then
    echo "=== memory-bound bench with $AB_ENV ==="
    env $AB_ENV timeout 100 build/gpu/tests/cpp/kiln_cuda_tests --gtest_filter="CudaMemoryBoundBench.*" 2>&1 | grep -E "\[bench\]|FAILED|Failure"
  fi
fi
for c in ${HOST_CASES:-}; do
  echo "=== host profile $c ==="
  HOST_PROFILE_QUICK=1 timeout 150 python3 tools/host_profile.py "${c%%:*}" "${c##*:}" 2>&1 | grep -v -i warn | grep -v "cls.__new__" | tail -12
done
for c in ${TACTIC_CASES:-}; do
  echo "=== tactic timings $c ==="
  IFS=: read -r -a tc <<< "$c"  # model, batch, then optional prefix and "static"
  timeout 150 python3 tools/tactic_timings.py "${tc[@]}" 2>&1 | grep -v -i warn | grep -v "cls.__new__" | tail -40
done
show_profile() {  # show_profile RESULTS_JSON LABEL: Kiln's per-kernel device time per case
  python3 - "$1" "$2" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    k = r.get("kiln", {})
    print(f"== {r['model']} b{r['batch']}{sys.argv[2]}: {k.get('median_ms')} ms")
    for row in k.get("kernels", []):
        print(f"  {row['us_per_call']:8.1f} us {row['launches_per_call']:5.1f}x  {row['kernel'][:80]}")
PY
}
if [ -n "${PROFILE_MODELS:-}" ]; then
  echo "=== profile ($PROFILE_MODELS b${PROFILE_BATCHES:-32}, kiln) ==="
  timeout 300 python3 bench/run.py --models "$PROFILE_MODELS" --batches "${PROFILE_BATCHES:-32}" --contenders kiln --profile \
    --out "$OUT/prof" > "$OUT/prof.log" 2>&1; echo "rc $?"
  show_profile "$OUT/prof/results.json" ""
  if [ -n "${PROFILE_ENV:-}" ]; then
    echo "=== profile with $PROFILE_ENV ==="
    # shellcheck disable=SC2086  # the setting may name several variables
    env $PROFILE_ENV timeout 300 python3 bench/run.py --models "$PROFILE_MODELS" --batches "${PROFILE_BATCHES:-32}" \
      --contenders kiln --profile --out "$OUT/prof_env" > "$OUT/prof_env.log" 2>&1; echo "rc $?"
    show_profile "$OUT/prof_env/results.json" " with $PROFILE_ENV"
  fi
  if [ -n "${NO_CUDNN:-}" ]; then
    echo "=== kiln without cuDNN attention ==="
    prof=""; [ "$NO_CUDNN" = profile ] && prof=--profile
    KILN_EXCLUDE_TACTICS=cuda.attention.cudnn timeout 240 python3 bench/run.py --models "$PROFILE_MODELS" \
      --batches 32 --contenders kiln $prof --out "$OUT/nocudnn" > "$OUT/nocudnn.log" 2>&1
    grep -E "^\| [a-z]" "$OUT/nocudnn/"*.md 2>/dev/null
    if [ -n "$prof" ]; then show_profile "$OUT/nocudnn/results.json" " without cuDNN attention"; fi
  fi
fi
if [ -n "${AB_ENV:-}" ]; then
  ab() {  # ab LABEL [VAR=val...]: one kiln-only bench of the AB cases, its table rows
    local label=$1; shift
    echo "--- $label"
    env "$@" timeout 240 python3 bench/run.py --models "${AB_MODELS:-vit_b_16,gpt2}" \
      --batches "${AB_BATCHES:-32}" --contenders kiln --out "$OUT/ab_$label" > "$OUT/ab_$label.log" 2>&1
    echo "rc $?"; grep -E "^\| [a-z]" "$OUT/ab_$label/"*.md 2>/dev/null
    python3 - "$OUT/ab_$label/results.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    k = r.get("kiln", {})
    print(f"  {r['model']} b{r['batch']}: host us per module call {k.get('host_overhead_us', -1):.1f} "
          f"(rounds {min(k.get('host_overhead_us_rounds', [-1])):.1f}-{max(k.get('host_overhead_us_rounds', [-1])):.1f}), "
          f"engine call {k.get('host_execute_engine_fast_us', -1):.1f}; thread CPU time per module call "
          f"{k.get('host_cpu_us', -1):.1f} (rounds {min(k.get('host_cpu_us_rounds', [-1])):.1f}-"
          f"{max(k.get('host_cpu_us_rounds', [-1])):.1f}), engine call {k.get('host_execute_engine_fast_cpu_us', -1):.1f}")
    for e in k.get("runtime", []):
        print(f"    graph nodes {e.get('cuda_graph_nodes')}, prefetch {e.get('cuda_graph_prefetch_nodes')}: "
              f"{e.get('l2_prefetch', '')}")
PY
  }
  echo "=== A/B: with and without $AB_ENV ==="
  IFS='|' read -r -a arms <<< "$AB_ENV"  # "A=1|B=2": each setting its own arm
  for round in $(seq 1 "${AB_ROUNDS:-2}"); do
    ab "base$round" KILN_AB=base
    for i in "${!arms[@]}"; do
      # shellcheck disable=SC2086  # an arm may set several variables
      ab "env$((i + 1))_$round" ${arms[$i]}
    done
  done
fi
