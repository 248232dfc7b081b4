#!/usr/bin/env bash
# Builds Kiln for sm_90 on a machine with an NVIDIA GPU, runs the C++ and Python tests (CPU and
# GPU), compute-sanitizer over the runtime tests, and the benchmark, and prints a summary.
#   tools/gpu_check.sh [stage...]   stages: build ctest python mainjob sanitizer hostprof bench
#                                   (default: all)
# Logs go to $OUT (or ./gpu_check_out) so they can be read afterwards. Needs no network: when
# flatc, OpenBLAS or GoogleTest are missing it unpacks .deps/deps.tar.gz (tools/pack_deps.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
STAGES=${*:-build ctest python mainjob sanitizer hostprof bench}
JOBS=$(nproc)
BUILD=build/gpu
declare -a summary=()
status=0
want() { [[ " $STAGES " == *" $1 "* ]]; }
stage() {  # stage NAME LOG COMMAND...
  local name=$1 log=$2; shift 2
  echo; echo "=== $name ==="
  local t0=$SECONDS
  if "$@" > >(tee "$OUT/$log") 2>&1; then summary+=("PASS  $name ($((SECONDS - t0)) s)")
  else summary+=("FAIL  $name ($((SECONDS - t0)) s), log: $log"); status=1; fi
}

echo "gpu_check: $(nvidia-smi -L 2>/dev/null | head -1); $(nvcc --version | tail -1); $(python3 -c 'import torch; print("torch", torch.__version__)')"
# kiln._C must use the libstdc++ that torch loads. The image's $CXX (/opt/gcc, a Red Hat
# toolchain) links libstdc++ statically, which puts a second copy of the C++ runtime into
# kiln._C; take the system compiler instead when a shared library built by $CXX needs no
# libstdc++.so.6.
links_shared_libstdcxx() {
  echo 'int f(int x) { if (x) throw x; return 0; }' | "$1" -x c++ -shared -fPIC -o /tmp/kiln_cxx_probe.so - &&
    readelf -d /tmp/kiln_cxx_probe.so | grep -q 'libstdc++'
}
if [ -n "${CXX:-}" ] && ! links_shared_libstdcxx "$CXX" && [ -x /usr/bin/g++ ]; then
  echo "gpu_check: $CXX links libstdc++ statically; building with /usr/bin/g++"
  export CXX=/usr/bin/g++ CC=/usr/bin/gcc CUDAHOSTCXX=/usr/bin/g++
fi
need_deps=0
command -v flatc >/dev/null || need_deps=1
python3 -c "import cutlass_library" 2>/dev/null || [ -n "${KILN_CUTLASS_DIR:-}" ] || need_deps=1
[ -f /usr/include/cblas.h ] || [ -f /usr/include/x86_64-linux-gnu/cblas.h ] || need_deps=1
if [ $need_deps = 1 ]; then
  if [ -f .deps/deps.tar.gz ]; then
    mkdir -p /tmp/kiln-deps && tar -C /tmp/kiln-deps -xzf .deps/deps.tar.gz
    export PATH=/tmp/kiln-deps/usr/bin:$PATH
    export CMAKE_PREFIX_PATH=/tmp/kiln-deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    [ -d /tmp/kiln-deps/usr/share/cutlass/include ] &&
      export KILN_CUTLASS_DIR=/tmp/kiln-deps/usr/share/cutlass/include
    echo "gpu_check: using packed dependencies from .deps/deps.tar.gz"
  else
    echo "gpu_check: flatc/OpenBLAS missing and no .deps/deps.tar.gz (run tools/pack_deps.sh and carry .deps)"
  fi
fi

# A build directory configured with another compiler keeps it in its cache: start it afresh.
if [ -n "${CXX:-}" ] && [ -f $BUILD/CMakeCache.txt ] &&
   ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=$(readlink -f "$(command -v "$CXX")")\$" $BUILD/CMakeCache.txt &&
   ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=$CXX\$" $BUILD/CMakeCache.txt; then
  echo "gpu_check: $BUILD was configured with another compiler; reconfiguring from scratch"
  rm -rf $BUILD
fi
# KILN_CRASH_TRACE=1 makes kiln._C print a native backtrace on a crash; symbolize names its frames.
export KILN_CRASH_TRACE=1
symbolize() {  # symbolize LOG: the native frames of a crash backtrace in LOG, through addr2line
  grep -oE "[^ ]+\.so[.0-9]*\(\+0x[0-9a-f]+\)" "$1" | head -40 | while IFS= read -r f; do
    lib=${f%%(*}; off=${f#*(+}; off=${off%)}
    echo "  $f: $(addr2line -f -C -e "$lib" "$off" 2>/dev/null | head -1)"
  done
}
if want build; then
  stage "build (sm_90, release)" build.log bash -c "set -o pipefail
    cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=ON -DKILN_CUDA_ARCHITECTURES=90 \
          -DKILN_BUILD_TORCH=ON -DPython_EXECUTABLE=$(command -v python3) \
          ${KILN_CUTLASS_DIR:+-DKILN_CUTLASS_DIR=$KILN_CUTLASS_DIR} | grep -i cutlass &&
    cmake --build $BUILD -j $JOBS -- -k 0"
fi
# The Python package runs from the source tree with the extension of the build above (one CUDA
# build, not a second one through pip): kiln._C is copied next to python/kiln/__init__.py.
cp -f "$BUILD"/src/torch/_C*.so python/kiln/ 2>/dev/null && export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
if want ctest; then
  stage "C++ tests (cpu + gpu)" ctest.log ctest --test-dir "$BUILD" -j 4 --output-on-failure --timeout 600
fi
if want python; then
  # Several workers (pytest-xdist, where installed): a test that crashes its worker is reported
  # as failed and the others still run.
  xdist=(); python3 -c "import xdist" 2>/dev/null && xdist=(-n 4)
  stage "Python tests (gpu marker)" pytest_gpu.log python3 -m pytest tests/python -q -m gpu -p no:cacheprovider -rs "${xdist[@]}"
  grep -q "Segmentation fault\|crashed" "$OUT/pytest_gpu.log" && symbolize "$OUT/pytest_gpu.log"
fi
if want mainjob; then
  stage "main job (examples/resnet50.py on cuda:0)" mainjob.log python3 examples/resnet50.py --device cuda:0 --out "$OUT/mainjob"
  grep -q "Segmentation fault" "$OUT/mainjob.log" && symbolize "$OUT/mainjob.log"
fi
if want sanitizer; then
  # The runtime's CUDA behaviour tests (threads sharing an engine and CUDA graphs included), minus
  # the ones that time 24-layer 4096-wide engines (minutes under the sanitizer, and they add no
  # coverage the others lack). KILN_TEST_RUNS=50 shortens the long loops (4 threads x 1000 runs
  # timed out under racecheck).
  filter='CudaRuntime.*:CudaGraphs.*:-CudaRuntime.MatchesCpuAndLeavesDefaultStreamIdleUnderGuard:CudaRuntime.EnqueueDoesNotSynchronizeTheHost:CudaRuntime.GreenContextConfinesTheEngine'
  if [ -x "$BUILD/tests/cpp/kiln_cuda_runtime_tests" ]; then
    stage "compute-sanitizer memcheck (CUDA runtime)" memcheck.log env KILN_TEST_RUNS=50 compute-sanitizer --tool memcheck \
      --error-exitcode 1 "$BUILD/tests/cpp/kiln_cuda_runtime_tests" --gtest_filter="$filter"
    stage "compute-sanitizer racecheck (CUDA runtime)" racecheck.log env KILN_TEST_RUNS=50 compute-sanitizer --tool racecheck \
      --error-exitcode 1 "$BUILD/tests/cpp/kiln_cuda_runtime_tests" --gtest_filter="$filter"
  fi
fi
if want hostprof; then
  # Where the host time of an engine call goes (tools/host_profile.py), for two models at batch 1.
  stage "host profile (bert, gpt2, vit at batch 1)" hostprof.log bash -c \
    "python3 tools/host_profile.py bert 1 && python3 tools/host_profile.py gpt2 1 && python3 tools/host_profile.py vit_b_16 1"
fi
if want bench && [ -f bench/run.py ]; then
  stage "benchmark" bench.log python3 bench/run.py --out "$OUT" ${BENCH_ARGS:-}
fi

echo; echo "=== gpu_check summary ==="
printf '%s\n' "${summary[@]}"
grep -hE "tests passed|passed|failed" "$OUT"/ctest.log "$OUT"/pytest_gpu.log 2>/dev/null | tail -5
exit $status
