"""GPU machine diagnostic, run under Nsight Compute with --profile-from-start off: builds one
contender for a bench case, warms it up, then profiles exactly one call.

    ncu --clock-control none --profile-from-start off -k regex:NAME ... \\
        python3 tools/ncu_probe.py gpt2 1 kiln|inductor-cg
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models  # noqa: E402

name, batch, contender = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = models.build_model(name, "cuda")
inputs = models.make_inputs(name, batch, "cuda")
with torch.no_grad():
    if contender == "kiln":
        import kiln

        fn = kiln.compile(model, inputs=[kiln.Input(shape=tuple(x.shape), dtype=x.dtype) for x in inputs],
                          device="cuda:0", optimization_level=1)
    else:
        fn = torch.compile(model, mode="reduce-overhead")
    for _ in range(3):
        fn(*inputs)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    fn(*inputs)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()
