export OUT=${OUT:-/tmp/out}; mkdir -p $OUT
tools/gpu_check.sh build > $OUT/build.txt 2>&1; tail -3 $OUT/build.txt
python3 tools/gemm_probe.py; python3 tools/gemm_probe.py 4096 3072 768; python3 tools/gemm_probe.py 6304 768 3072
mkdir -p /tmp/dot
cat > /tmp/dot.py <<'PY'
import os, sys, torch
sys.path.insert(0, "bench"); import models, kiln
for name in ("bert", "gpt2", "vit_b_16"):
    os.environ["KILN_CUDA_GRAPH_DOT"] = f"/tmp/dot/{name}"
    os.makedirs(f"/tmp/dot/{name}", exist_ok=True)
    model = models.build_model(name, "cuda"); inputs = models.make_inputs(name, 1, "cuda")
    c = kiln.compile(model, inputs=models.kiln_inputs(name, (1, 1, 32)), device="cuda:0")
    with torch.no_grad():
        for _ in range(3): c(*inputs)
    torch.cuda.synchronize()
PY
PYTHONPATH=$PWD/python LD_LIBRARY_PATH=/tmp/kiln-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} python3 /tmp/dot.py 2>&1 | grep -v Warn | tail -3
for d in /tmp/dot/*; do f=$(ls $d/*.dot | head -1); echo "== $f"; grep -o 'shape="[a-z]*"\|label="[A-Z_]*' $f | sort | uniq -c | sort -rn | head; done
cd /tmp/dot && tar czf $OUT/dots.tgz . ; ls -la $OUT
