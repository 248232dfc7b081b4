#!/usr/bin/env bash
# Session 21's device round: the attention lab before and after a short-kernel change (binaries
# built on the CPU machine: build/lab/lab_old from HEAD's attention_mma.cu, build/lab/lab_new
# from the tree; carry build/lab), then the build, the attention kernel tests,
# and ViT/GPT-2 b32 profiled with and without cuDNN's attention (tools/probe.sh).
set -u
cd "$(dirname "$0")/.."
if [ -x build/lab/lab_old ] && [ -x build/lab/lab_new ]; then
  for v in old new old new; do echo "=== lab $v"; build/lab/lab_$v 2>&1 | grep lab; done
  for sp in 2 3; do
    echo "=== lab new, KILN_SHORT_SPLIT=$sp"
    for c in "vit b32" "gpt2 b32" "bert b32"; do KILN_SHORT_SPLIT=$sp build/lab/lab_new "$c" | grep short; done
  done
fi
PROBE_FILTER=${PROBE_FILTER:-'CudaAttentionMma*'} PROFILE_MODELS=${PROFILE_MODELS:-vit_b_16,gpt2} \
  NO_CUDNN=${NO_CUDNN:-profile} timeout ${PROBE_TIMEOUT:-480} tools/probe.sh 2>&1 | grep -v -i warn
