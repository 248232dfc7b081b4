"""The roofline floor of a torchvision CNN at a batch (CPU only, no GPU needed): per conv,
linear and max-pool layer, the slower of its FLOPs at 790 TFLOP/s and its bytes (input, output
and weights once, fp16, no L2 reuse) at 3.0 TB/s, summed; beside BENCHMARKS.md's compute floor
(FLOPs alone). What "50% of the compute floor" asks of each layer.

    python3 tools/roofline.py [resnet50] [batch]
"""
import sys

import torch
import torchvision

name = sys.argv[1] if len(sys.argv) > 1 else "resnet50"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 32
m = getattr(torchvision.models, name)().eval()
rows = []
def hook(mod, inp, out):
    x = inp[0]
    if isinstance(mod, torch.nn.Conv2d):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        flops = 2 * out.numel() * k
        w = mod.weight.numel()
    elif isinstance(mod, torch.nn.Linear):
        flops = 2 * out.numel() * mod.in_features; w = mod.weight.numel()
    else:
        flops = 0; w = 0
    rows.append((type(mod).__name__, flops, 2 * (x.numel() + out.numel() + w)))
for mod in m.modules():
    if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.MaxPool2d)):
        mod.register_forward_hook(hook)
with torch.no_grad():
    m(torch.randn(N, 3, 224, 224))
P, B = 790e12, 3.0e12
tot_f = sum(r[1] for r in rows); tot_b = sum(r[2] for r in rows)
roof = sum(max(f / P, b / B) for _, f, b in rows)
mem_bound = sum(max(f / P, b / B) for _, f, b in rows if b / B > f / P)
print(f"GFLOP {tot_f/1e9:.0f}, compute floor {tot_f/P*1e3:.3f} ms, bytes {tot_b/1e6:.0f} MB (each layer's input, output, weights once), "
      f"roofline floor {roof*1e3:.3f} ms, of which memory-bound layers {mem_bound*1e3:.3f} ms, layers {len(rows)}")
