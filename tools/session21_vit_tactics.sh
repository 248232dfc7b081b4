#!/usr/bin/env bash
# Which attention kernel ViT b32's bench build times fastest: the bench's own timing cache after
# a Kiln-only run and after an inductor-cg + Kiln run (the full bench's order).
set -u
source "$(dirname "$0")/device_env.sh"
for contenders in kiln inductor-cg,kiln; do
  echo "=== bench vit_b_16 b32, contenders $contenders"
  timeout 200 python3 bench/run.py --models vit_b_16 --batches 32 --contenders $contenders --out "$OUT/vit_$contenders" \
    > "$OUT/vit_$contenders.log" 2>&1; echo "rc $?"
  grep -E "^\| vit" "$OUT/vit_$contenders/results.md" | head -2
  python3 - "$OUT/vit_$contenders/results.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    k = r.get("kiln", {})
    print("graph nodes", [x.get("cuda_graph_nodes") for x in k.get("runtime", [])], "ms", k.get("median_ms"))
PY
  grep -h "attention" /tmp/kiln_bench_vit_b_16_32.timing | awk -F'\t' '{n=split($1,a," \\| "); print $2*1000, "us", a[n]}' | sort -n | head -8
done
