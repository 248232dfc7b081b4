#!/usr/bin/env bash
# Session 20's first device run: build, the attention kernel tests, BERT with and without cuDNN's
# attention, and the host time of a call by its position in a round (tools/host_profile.py).
set -u
cd "$(dirname "$0")/.."
PROBE_FILTER='CudaAttentionMma*' AB_ENV=KILN_EXCLUDE_TACTICS=cuda.attention.cudnn AB_MODELS=bert \
  AB_BATCHES=1,32 AB_ROUNDS=1 timeout 380 tools/probe.sh 2>&1 | grep -v -i warn
source tools/device_env.sh
for c in ${POS_CASES:-resnet50:32 bert:32 gpt2:1}; do
  echo "=== host by position $c ==="
  HOST_PROFILE_QUICK=1 HOST_PROFILE_POSITIONS=1 timeout 100 python3 tools/host_profile.py "${c%%:*}" "${c##*:}" 2>&1 \
    | grep -v -i warn | grep -v "cls.__new__"
done
