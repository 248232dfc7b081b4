# Sourced by the GPU-machine round scripts (tools/round9.sh, tools/probe.sh): $OUT (logs), the
# repository root as the working directory, the build (tools/gpu_check.sh build, its summary
# printed; log in $OUT/build.txt), and the environment the Python tools need.
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/gpu_check.sh build > "$OUT/build.txt" 2>&1
echo "gpu_check build rc $?"
sed -n '/=== gpu_check summary ===/,$p' "$OUT/build.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
