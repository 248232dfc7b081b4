"""Compiles a benchmark model with Kiln and prints its engines' steps by op, with the fused
attributes that decide memory traffic (residual, sum_output, activation) and the tactic of each
linear that does not run on cuBLASLt: which epilogues the
builder fused.

    python3 tools/plan_summary.py MODEL [BATCH] [cpu|cuda:0]

PLAN_FIRST=N also prints each engine's first N steps in order (op, tactic, attributes, inputs
and outputs): what the front of a model became on that device.
"""

from __future__ import annotations

import collections
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models

import kiln
from kiln._ops import _C, engine_bytes


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "vit_b_16"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    device = (
        sys.argv[3]
        if len(sys.argv) > 3
        else ("cuda:0" if torch.cuda.is_available() else "cpu")
    )
    model = models.build_model(name, device.split(":")[0])
    inputs = models.make_inputs(name, batch, device.split(":")[0])
    compiled = kiln.compile(
        model,
        inputs=[kiln.Input(shape=tuple(x.shape), dtype=x.dtype) for x in inputs],
        device=device,
    )
    with torch.no_grad():
        got, want = compiled(*inputs), model(*inputs)
    cos = torch.nn.functional.cosine_similarity(
        got.float().flatten(), want.float().flatten(), dim=0
    )
    print(f"{name} b{batch} on {device}: cosine {float(cos):.7f}")
    for label, engine in kiln.runtime.engines(compiled):
        info = _C.engine_info(engine_bytes(engine), device=device)
        counts: collections.Counter = collections.Counter()
        for step in info["steps"]:
            attrs = dict(
                kv.split("=", 1) for kv in step["attrs"].split(", ") if "=" in kv
            )
            flags = [
                k
                for k in ("residual", "sum_output", "seq_major_out")
                if attrs.get(k) == "true"
            ]
            if attrs.get("activation", "none") != "none":
                flags.append(attrs["activation"])
            if step["op"] == "linear" and step.get("tactic") != "cuda.linear.cublaslt":
                flags.append(f"[{step.get('tactic')}]")
            counts[" ".join([step["op"], *flags])] += 1
        print(
            f"  engine {label}: {len(info['steps'])} steps, arena {info['arena_bytes'] / 2**20:.1f} MiB"
        )
        for op, n in sorted(counts.items()):
            print(f"    {n:4d} {op}")
        for step in info["steps"][: int(os.environ.get("PLAN_FIRST", "0"))]:
            print(f"    {step['op']} [{step.get('tactic')}] {step['attrs']}: "
                  f"{', '.join(step['inputs'])} -> {', '.join(step['outputs'])}")


if __name__ == "__main__":
    main()
