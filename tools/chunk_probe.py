"""Does running ResNet-50's early stages in batch chunks (each chunk's activations small enough
to stay in the H100's 50 MB L2 from one layer to the next) beat running them at the whole
batch? Compiles the network's front (stem through layer N) with Kiln at batch B and at B/k, and
times one B-batch pass against k chunk passes over slices of the same input, CUDA-event timed,
median of 50 after 20 warm-up passes. Prints ms per pass for each split and chunk count, and the
whole model at B and in chunks for reference.

    python3 tools/chunk_probe.py [BATCH]
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models
from run import time_cuda

import kiln


def main() -> None:
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    model = models.build_model("resnet50", "cuda")
    x = models.make_inputs("resnet50", batch, "cuda")[0]
    stages = [model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
              model.layer3, model.layer4]
    fronts = {"layer1": 5, "layer2": 6, "layer3": 7, "whole": None}
    with torch.no_grad():
        for label, end in fronts.items():
            net = model if end is None else torch.nn.Sequential(*stages[:end]).eval()
            want = net(x)
            row = []
            for k in (1, 2, 4, 8):
                chunk = batch // k
                engine = kiln.compile(net, inputs=[kiln.Input(shape=(chunk, 3, 224, 224), dtype=x.dtype)],
                                      device="cuda:0")
                parts = [x[i * chunk:(i + 1) * chunk] for i in range(k)]
                got = torch.cat([engine(p) for p in parts])
                cos = torch.nn.functional.cosine_similarity(got.float().flatten(), want.float().flatten(), dim=0)
                ms = time_cuda(lambda engine=engine, parts=parts: [engine(p) for p in parts], iters=50)["median_ms"]
                row.append(f"k={k} (b{chunk}) {ms:.3f} ms cos {float(cos):.6f}")
                del engine
                torch.cuda.empty_cache()
            print(f"{label:7s} b{batch}: " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
