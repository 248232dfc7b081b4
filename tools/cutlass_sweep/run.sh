#!/usr/bin/env bash
# Builds and runs the CUTLASS sweep (tools/cutlass_sweep/sweep_main.cu) on a GPU machine: every
# (configuration, activation) pair is its own object, compiled in parallel.
#   KILN_CUTLASS_DIR=... tools/cutlass_sweep/run.sh
set -eu
cd "$(dirname "$0")/../.."
CUTLASS=${KILN_CUTLASS_DIR:-$(python3 -c "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))")}
B=${SWEEP_BUILD:-build/cutlass_sweep}; mkdir -p "$B"
FLAGS="-std=c++20 -O3 -DNDEBUG --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a -Isrc -isystem $CUTLASS"
objs=()
for c in 0 1 2 3 4 5 6 7; do for a in 0 1 2; do
  objs+=("$B/c${c}_a${a}.o")
  nvcc $FLAGS -DCFG=$c -DACT=$a -c tools/cutlass_sweep/sweep_config.cu -o "$B/c${c}_a${a}.o" &
done; done
nvcc $FLAGS -c tools/cutlass_sweep/sweep_main.cu -o "$B/main.o" &
fail=0; for j in $(jobs -p); do wait "$j" || fail=1; done
[ $fail = 0 ] || { echo "sweep: a compile failed"; exit 1; }
nvcc -gencode arch=compute_90a,code=sm_90a "$B/main.o" "${objs[@]}" -lcublasLt -o "$B/sweep"
"$B/sweep"
