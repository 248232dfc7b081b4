#!/usr/bin/env bash
# Enforces the layer rules of DESIGN.md section 1. Prints each violation; exits 1 if any.
set -u
cd "$(dirname "$0")/.."
fail=0
violation() { echo "lint: $*"; fail=1; }

# Files of a layer that include headers of a layer above it (or one it may not see).
# layer_dir:allowed-include-prefixes (includes of the form "dir/...")
check_layer() {
  local dir=$1; shift
  local allowed="$*"
  [ -d "$dir" ] || return 0
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(echo "$line" | sed -E 's/.*#include *"([^"]+)".*/\1/')
    top=${inc%%/*}
    [ "$top" = "$inc" ] && continue  # same-directory include
    ok=0
    for a in $allowed; do [ "$top" = "$a" ] && ok=1; done
    [ $ok = 1 ] || violation "$file includes \"$inc\": $dir may not depend on '$top'"
  done < <(grep -rHE '^#include *"' "$dir" --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' 2>/dev/null)
}

# Arrows point down only (DESIGN.md 1).
check_layer include/kiln kiln
check_layer src/ir kiln ir
check_layer src/backends kiln ir backends
check_layer src/format kiln ir format
check_layer src/builder kiln ir backends format builder
check_layer src/runtime kiln ir backends format runtime
check_layer tools/kiln kiln ir

# Only src/torch and python/ mention torch, ATen, c10 or pybind11.
bad=$(grep -rlE '#include *[<"](torch/|ATen/|c10/|pybind11/)' src include tools 2>/dev/null | grep -v '^src/torch/')
for f in $bad; do violation "$f includes torch/ATen/c10/pybind11 outside src/torch"; done

# CUDA headers only in src/backends/cuda, src/runtime and src/builder, in the CLI's device
# buffers (tools/kiln/cuda_io.cpp: the CLI is a user of the API, which leaves those to users),
# in tools/cutlass_sweep (a GPU-machine benchmark of the sm90a kernels, built on its own) and in
# tools/lt_explore.cpp, tools/l2_prefetch_probe.cu and tools/graph_launch_probe.cu (GPU-machine
# probes, built on their own).
bad=$(grep -rlE '#include *[<"](cuda_runtime|cuda\.h|cuda_fp16|cuda_bf16|cublas|cudnn|nvrtc|cuda/)' src include tools 2>/dev/null |
      grep -vE '^src/(backends/cuda|runtime|builder|torch)/|^tools/kiln/cuda_io\.cpp$|^tools/cutlass_sweep/|^tools/lt_explore\.cpp$|^tools/l2_prefetch_probe\.cu$|^tools/graph_launch_probe\.cu$|^tools/probe_check\.h$')
for f in $bad; do violation "$f includes a CUDA header outside the CUDA layers"; done

# The public headers expose no third-party type (cudaStream_t is declared by hand).
bad=$(grep -hE '^#include *<' include/kiln/*.h 2>/dev/null | sed -E 's/#include *<([^>]+)>.*/\1/' |
      grep -vE '^(cstddef|cstdint|cstring|functional|initializer_list|map|memory|optional|span|sstream|string|string_view|utility|variant|vector)$')
for h in $bad; do violation "include/kiln includes <$h>: public headers use the standard library only"; done

[ $fail = 0 ] && echo "lint: layer rules hold"
exit $fail
