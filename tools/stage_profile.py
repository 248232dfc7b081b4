"""Kiln's kernels, in launch order with their device time, for one call of ResNet-50's front
(the stem through stage END: 4 = the max pool, 5 = layer1, ... 8 = layer4) at BATCH, after the
plan's non-view steps: where a stage's time goes, kernel by kernel. A front that ends inside the
network ends with a transpose of its NHWC output back to NCHW, which the whole model does not
have.

    python3 tools/stage_profile.py [END] [BATCH]
"""

from __future__ import annotations

import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models

import kiln
from kiln._ops import _C, engine_bytes


def main() -> None:
    end = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    model = models.build_model("resnet50", "cuda")
    x = models.make_inputs("resnet50", batch, "cuda")[0]
    stages = [model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
              model.layer3, model.layer4]
    net = torch.nn.Sequential(*stages[:end]).eval()
    calls = 5
    with torch.no_grad():
        engine = kiln.compile(net, inputs=[kiln.Input(shape=tuple(x.shape), dtype=x.dtype)], device="cuda:0")
        for _ in range(20):
            engine(x)
        torch.cuda.synchronize()
        for _, e in kiln.runtime.engines(engine):
            for s in _C.engine_info(engine_bytes(e), device="cuda:0")["steps"]:
                if s["tactic"] != "view":
                    print(f"step {s['op']:12s} [{s['tactic']}] {s['attrs'][:80]}")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                engine(x)
            torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0]
    last = kernels[-(len(kernels) // calls):]
    for e in last:
        print(f"{e.device_time:8.1f} us  {e.name[:110]}")
    print(f"kernels per call {len(last)}, sum {sum(e.device_time for e in last):.1f} us")


if __name__ == "__main__":
    main()
