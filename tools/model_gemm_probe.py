"""GPU machine diagnostic: a model's GEMM tactics as timed at build, against what its engine runs.

Builds MODEL at BATCH (bench/models.py) with a fresh timing cache and prints, per distinct
linear/matmul signature (shapes and strides), the candidates' timed microseconds; then the
engine's kernels per launch in a profiled run (torch.profiler, after all timings) and the launch
grid of each GEMM kernel node (KILN_CUDA_GRAPH_DOT's kernel table).

    python3 tools/model_gemm_probe.py [MODEL] [BATCH]
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models  # noqa: E402

import kiln  # noqa: E402


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "vit_b_16"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    folder = tempfile.mkdtemp(prefix="kiln_dot_")
    os.environ["KILN_CUDA_GRAPH_DOT"] = folder
    cache = os.path.join(tempfile.gettempdir(), f"kiln_probe_{name}_{batch}.timing")
    if os.path.exists(cache):
        os.remove(cache)
    model = models.build_model(name, "cuda")
    inputs = models.make_inputs(name, batch, "cuda")
    compiled = kiln.compile(model, inputs=models.kiln_inputs(name, (1, batch, 32)), device="cuda:0",
                            timing_cache_path=cache)
    groups: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    for line in open(cache):
        if "\t" not in line or " | " not in line:
            continue
        key, ms = line.rstrip("\n").rsplit("\t", 1)
        parts = key.split(" | ")
        if not parts[-2].startswith(("linear", "matmul")):
            continue
        groups[parts[-2]].append((float(ms) * 1e3 if ms != "fail" else -1.0, parts[-1]))
    for sig, cands in groups.items():
        print(sig[:300])
        best = min((c for c in cands if c[0] >= 0), default=None)
        for us, label in sorted(cands):
            print(f"   {us:8.1f} us {'*' if (us, label) == best else ' '} {label[:100]}")
    with torch.no_grad():
        for _ in range(5):
            compiled(*inputs)
        torch.cuda.synchronize()
        from torch.profiler import ProfilerActivity, profile

        calls = 5
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                compiled(*inputs)
            torch.cuda.synchronize()
    per: dict[str, list[float]] = collections.defaultdict(list)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0:
            per[e.name].append(e.device_time)
    print("kernels (per call: total us, launches, us per launch):")
    for k, ts in sorted(per.items(), key=lambda kv: -sum(kv[1]))[:14]:
        print(f"   {sum(ts) / calls:8.1f} us x{len(ts) / calls:5.1f} {sum(ts) / len(ts):7.1f} us  {k[:90]}")
    for f in sorted(os.listdir(folder)):
        if f.endswith(".tsv"):
            seen = collections.Counter()
            for row in open(os.path.join(folder, f)).read().splitlines()[1:]:
                cols = row.split("\t")
                if "nvjet" in cols[0] or "gemm" in cols[0].lower() or "cutlass" in cols[0]:
                    seen[(cols[0][:70], cols[1], cols[9])] += 1
            for (k, grid, cluster), n in seen.items():
                print(f"   graph node x{n}: {k} grid {grid} cluster {cluster}")


if __name__ == "__main__":
    main()
