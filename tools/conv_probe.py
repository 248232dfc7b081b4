"""Device time of ResNet-50's 3x3 convolutions at a batch through PyTorch's cuDNN path
(channels-last fp16, cudnn.benchmark on: cuDNN's v9 engine search), each with the kernel cuDNN
ran: a bar for Kiln's legacy-API choice of the same convolution (tools/stage_profile.py).

    python3 tools/conv_probe.py [BATCH]
"""

from __future__ import annotations

import functools
import statistics
import sys

import torch
from torch.profiler import ProfilerActivity, profile

# (input channels, output channels, spatial size of the input, stride) of ResNet-50's 3x3 convs.
SHAPES = [(64, 64, 56, 1), (128, 128, 56, 2), (128, 128, 28, 1), (256, 256, 28, 2),
          (256, 256, 14, 1), (512, 512, 14, 2), (512, 512, 7, 1)]


def main() -> None:
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    torch.backends.cudnn.benchmark = True
    for c, k, size, stride in SHAPES:
        x = torch.randn(batch, c, size, size, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(c, k, 3, stride, 1, bias=True).cuda().half().to(memory_format=torch.channels_last)
        with torch.no_grad():
            fn = functools.partial(lambda conv, x: torch.relu_(conv(x)), conv, x)
            for _ in range(10):
                fn()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(20):
                    fn()
            times = []
            for _ in range(10):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                graph.replay()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) * 1e3 / 20)
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
        kernels = [f"{e.device_time:.1f} {e.name[:70]}" for e in prof.events()
                   if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0]
        flops = 2 * batch * (size // stride) ** 2 * k * c * 9
        us = statistics.median(times)
        print(f"3x3 {c}->{k} at {size}, stride {stride}: {us:.1f} us ({flops / us / 1e6:.0f} TFLOP/s) "
              f"conv+relu; kernels: {' | '.join(kernels)}", flush=True)


if __name__ == "__main__":
    main()
