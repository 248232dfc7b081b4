#!/usr/bin/env bash
# Session 12 probe: batch-1 transformers with cuDNN's SDPA and with Kiln's tensor-core attention
# (KILN_EXCLUDE_TACTICS=cuda.attention.cudnn), Kiln alone, same process order, median ms.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/check.txt" 2>&1; echo "gpu_check rc $?"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
for round in 1 2; do
  for ex in "" cuda.attention.cudnn; do
    KILN_EXCLUDE_TACTICS=$ex timeout 150 python3 bench/run.py --models gpt2,vit_b_16,bert --batches 1 \
      --contenders kiln --out "$OUT/b_${round}_${ex:-none}" > "$OUT/b_${round}_${ex:-none}.log" 2>&1
    echo "round $round exclude '${ex}':"; grep -E "^\| (gpt2|vit|bert)" "$OUT/b_${round}_${ex:-none}/results.md"
  done
done
