"""GPU machine diagnostic: writes each captured graph's kernel table (KILN_CUDA_GRAPH_DOT) for
gpt2 b1 and prints the kernels that ask for local memory or large parameters, and whether the
process has CUPTI loaded (torch may load it at import)."""
import os, sys, torch
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models, kiln  # noqa: E402
out = os.environ.get("OUT", "/tmp/out")
for name in sys.argv[1:] or ["gpt2"]:
    folder = f"{out}/dot_{name}"; os.makedirs(folder, exist_ok=True)
    os.environ["KILN_CUDA_GRAPH_DOT"] = folder
    m = models.build_model(name, "cuda"); x = models.make_inputs(name, 1, "cuda")
    c = kiln.compile(m, inputs=models.kiln_inputs(name, (1, 1, 32)), device="cuda:0")
    with torch.no_grad():
        for _ in range(3): c(*x)
    torch.cuda.synchronize()
    for f in sorted(os.listdir(folder)):
        if f.endswith(".tsv"):
            rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(folder, f))]
            print(f, len(rows) - 1, "kernels")
            seen = set()
            for r in rows[1:]:
                key = r[0][:60]
                if key in seen: continue
                seen.add(key); print("  ", " | ".join([r[0][:70]] + r[1:]))
maps = open("/proc/self/maps").read()
print("cupti loaded:", sorted({l.split()[-1] for l in maps.splitlines() if "cupti" in l.lower()}))
