#!/usr/bin/env bash
# Session 15 device round: build; Kiln's per-kernel device time (bench/run.py --profile) for the
# cases in PROFILE_MODELS at batch 32; then Kiln alone on those cases with cuDNN attention
# excluded (Kiln's own attention kernel in the model), for comparison. Logs under $OUT.
set -u
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
tools/gpu_check.sh build > "$OUT/build.txt" 2>&1; tail -1 "$OUT/build.txt"
export PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
M=${PROFILE_MODELS:-vit_b_16,gpt2}
echo "=== profile ($M b32, kiln) ==="
timeout 300 python3 bench/run.py --models "$M" --batches 32 --contenders kiln --profile \
  --out "$OUT/prof" > "$OUT/prof.log" 2>&1; echo "rc $?"
python3 - "$OUT/prof/results.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    k = r.get("kiln", {})
    print(f"== {r['model']} b{r['batch']}: {k.get('median_ms')} ms")
    for row in k.get("kernels", []):
        print(f"  {row['us_per_call']:8.1f} us {row['launches_per_call']:5.1f}x  {row['kernel'][:80]}")
PY
if [ -z "${SKIP_NO_CUDNN:-}" ]; then
  echo "=== kiln without cuDNN attention ==="
  KILN_EXCLUDE_TACTICS=cuda.attention.cudnn timeout 200 python3 bench/run.py --models "$M" \
    --batches 32 --contenders kiln --out "$OUT/nocudnn" 2>&1 | grep -E "^\| [a-z]"
fi
