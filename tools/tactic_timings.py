"""Builds a benchmark model with Kiln into a fresh timing cache and prints, for every op signature
with several timed kernels, the fastest candidate of each registered kernel: which kernel the
build chose and by how much (GPU machine diagnostic).

    python3 tools/tactic_timings.py MODEL [BATCH] [KERNEL_PREFIX] [static]

The batch is dynamic over (1, BATCH, 32) unless "static" is given: then it is BATCH only, as
bench/run.py builds (cuDNN's plans for static shapes time differently). KILN_TIMINGS_TOP=N
prints each kernel's N fastest candidates instead of its fastest alone.
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models

import kiln


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "gpt2"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    prefix = sys.argv[3] if len(sys.argv) > 3 else "cuda.linear"
    static = len(sys.argv) > 4 and sys.argv[4] == "static"
    model = models.build_model(name, "cuda")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timings.txt")
        kiln.compile(model, inputs=models.kiln_inputs(name, (batch, batch, batch) if static else (1, batch, 32)), device="cuda:0",
                     timing_cache_path=path)
        with open(path) as f:
            lines = f.read().splitlines()[1:-1]
    top = int(os.environ.get("KILN_TIMINGS_TOP", "1"))
    timed: dict[str, dict[str, list[tuple[float, str]]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    failed: dict[str, dict[str, list[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in lines:
        key, ms = line.rsplit("\t", 1)
        signature, candidate = key.rsplit(" | ", 1)
        kernel, _, label = candidate.partition(" ")
        if not kernel.startswith(prefix):
            continue
        label = label.partition(" ")[2]  # drop the data hash
        if ms == "fail":
            failed[signature][kernel].append(label)
            continue
        timed[signature][kernel].append((float(ms) * 1e3, label))
    print(f"{name} b{batch}: fastest {top} candidate(s) per kernel (us)")
    for signature, kernels in timed.items():
        sig = signature.split(" | ", 2)[-1]
        print(f"  {sig[:150]}")
        for kernel, cands in sorted(kernels.items(), key=lambda kv: min(kv[1])[0]):
            for us, label in sorted(cands)[:top]:
                print(f"      {us:8.2f}  {kernel}  {label}  (of {len(cands)})")
            if failed[signature][kernel]:
                print(f"      {len(failed[signature][kernel])} failed, first: {failed[signature][kernel][0]}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
