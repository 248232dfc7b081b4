#!/usr/bin/env bash
# Packs the build dependencies that a machine without network access lacks (flatc and the
# FlatBuffers headers, OpenBLAS with its runtime libraries, GoogleTest) from this machine's apt
# packages, and CUTLASS's headers from its pip package (usr/share/cutlass/include), into
# .deps/deps.tar.gz, laid out as a prefix (usr/...). tools/gpu_check.sh unpacks
# it when those are missing there. .deps/ is git-ignored; pass it to the device tool's carry.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
lib=$stage/usr/lib/x86_64-linux-gnu
mkdir -p "$stage/usr/bin" "$stage/usr/include" "$lib/cmake"
cp -L /usr/bin/flatc "$stage/usr/bin/"
cp -rL /usr/include/flatbuffers /usr/include/gtest /usr/include/gmock "$stage/usr/include/"
blas_inc=/usr/include/x86_64-linux-gnu/openblas-pthread
cp -L "$blas_inc"/cblas.h "$blas_inc"/openblas_config.h "$stage/usr/include/"
cp -L /usr/lib/x86_64-linux-gnu/libopenblas.so.0 /usr/lib/x86_64-linux-gnu/libgfortran.so.5 \
      /usr/lib/x86_64-linux-gnu/libquadmath.so.0 "$lib/"
ln -s libopenblas.so.0 "$lib/libopenblas.so"
cp -L /usr/lib/x86_64-linux-gnu/libgtest*.a /usr/lib/x86_64-linux-gnu/libgmock*.a "$lib/"
cp -rL /usr/lib/x86_64-linux-gnu/cmake/GTest "$lib/cmake/"
cutlass=$(python3 -c "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))")
mkdir -p "$stage/usr/share/cutlass"
cp -rL "$cutlass" "$stage/usr/share/cutlass/include"
mkdir -p .deps
tar -C "$stage" -czf .deps/deps.tar.gz usr
echo "pack_deps: $(du -h .deps/deps.tar.gz | cut -f1) in .deps/deps.tar.gz"
