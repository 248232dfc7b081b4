#!/usr/bin/env bash
# Session 22's attention round: the lab (tools/attention_lab.cu) built on the CPU machine from
# HEAD's kernel (build/lab/lab_old) and from the tree's variants (build/lab/lab_*; carry
# build/lab), two interleaved rounds; then the build and the attention kernel tests.
set -u
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for r in 1 2; do
  for b in build/lab/lab_*; do echo "=== $(basename "$b") round $r"; "$b" 2>&1 | grep lab; done
done
[ "${SKIP_TESTS:-0}" = 1 ] && exit 0
PROBE_FILTER=${PROBE_FILTER:-'CudaAttention*'} timeout ${PROBE_TIMEOUT:-400} tools/probe.sh 2>&1 | grep -v -i warn
