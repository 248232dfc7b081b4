#!/usr/bin/env bash
# Builds and runs the CUTLASS sweep (tools/cutlass_sweep/sweep_main.cu): every (configuration,
# activation) pair is its own object, compiled in parallel (nproc jobs); a pair that fails to
# compile is reported as missing. The build needs no GPU, so it can run on a CPU machine and the
# binary travel to the GPU machine:
#   KILN_CUTLASS_DIR=... SWEEP_BUILD_ONLY=1 tools/cutlass_sweep/run.sh   # build only
#   tools/cutlass_sweep/run.sh                                          # build what is missing, run
# SWEEP_CONFIGS / SWEEP_ACTS: which configurations and activations to build (default all).
set -eu
cd "$(dirname "$0")/../.."
B=${SWEEP_BUILD:-build/cutlass_sweep}; mkdir -p "$B"
if [ ! -x "$B/sweep" ]; then
  CUTLASS=${KILN_CUTLASS_DIR:-$(python3 -c "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))")}
  FLAGS="-std=c++20 -O3 -DNDEBUG --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a -Isrc -isystem $CUTLASS"
  export FLAGS B
  { echo main; for c in ${SWEEP_CONFIGS:-0 1 2 3 4 5 6 7 8 9 10}; do for a in ${SWEEP_ACTS:-0 1 2}; do echo "$c $a"; done; done; } |
    xargs -P "$(nproc)" -L 1 bash -c '
      if [ "$0" = main ]; then exec nvcc $FLAGS -c tools/cutlass_sweep/sweep_main.cu -o "$B/main.o"; fi
      [ -f "$B/c$0_a$1.o" ] && exit 0
      nvcc $FLAGS -DCFG=$0 -DACT=$1 -c tools/cutlass_sweep/sweep_config.cu -o "$B/c$0_a$1.o.tmp" \
        > "$B/c$0_a$1.log" 2>&1 && mv "$B/c$0_a$1.o.tmp" "$B/c$0_a$1.o" || echo "sweep: c$0 a$1 did not compile"' || true
  nvcc -gencode arch=compute_90a,code=sm_90a "$B/main.o" "$B"/c*_a*.o -lcublasLt -o "$B/sweep"
fi
[ "${SWEEP_BUILD_ONLY:-0}" = 1 ] || "$B/sweep"
