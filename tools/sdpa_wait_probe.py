"""GPU machine diagnostic: does a launch of cuDNN's SDPA wait on the host while the GPU is busy?

Kiln's graphs that hold cuDNN's SDPA nodes make cudaGraphLaunch wait behind a long kernel
(README, "Known problem"). This asks the same of PyTorch's own SDPA backends, eager and inside a
torch CUDA graph, with no Kiln code in the process: per call host time behind a 200 ms spin, and
the first calls one by one (one long wait, or a wait per call).

    python3 tools/sdpa_wait_probe.py            # as the process starts
    SDPA_PROBE_LMEM=1 python3 tools/sdpa_wait_probe.py   # primary context with LMEM_RESIZE_TO_MAX
"""

from __future__ import annotations

import ctypes
import functools
import os
import time


def set_lmem_resize_to_max() -> None:
    """CU_CTX_LMEM_RESIZE_TO_MAX on device 0's primary context, before torch creates it."""
    cuda = ctypes.CDLL("libcuda.so.1")
    dev = ctypes.c_int()
    assert cuda.cuInit(0) == 0
    assert cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
    rc = cuda.cuDevicePrimaryCtxSetFlags_v2(dev, 0x10)
    print(f"cuDevicePrimaryCtxSetFlags(LMEM_RESIZE_TO_MAX): rc {rc}")


if os.environ.get("SDPA_PROBE_LMEM"):
    set_lmem_resize_to_max()

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa


def behind_spin(fn, calls: int = 20, busy_ms: float = 200.0) -> str:
    torch.cuda.synchronize()
    torch.cuda._sleep(int(busy_ms * 1.7e6))
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    torch.cuda.synchronize()
    first = " ".join(f"{t:.0f}" for t in times[:4])
    slow = [i for i, t in enumerate(times) if t > 100]
    return f"{sum(times) / calls:9.1f} us per call (first calls: {first}; calls over 100 us: {slow[:6]})"


def queue_depth(fn, most: int = 400) -> str:
    """Calls queued behind a 1 s spin before one waits on the host (back-pressure: the GPU's
    queue is full), up to `most`."""
    torch.cuda.synchronize()
    torch.cuda._sleep(int(1000 * 1.7e6))
    depth = most
    for i in range(most):
        t0 = time.perf_counter()
        fn()
        if time.perf_counter() - t0 > 5e-3:
            depth = i
            break
    torch.cuda.synchronize()
    return f"{depth} calls queue before one waits" if depth < most else f"no wait in {most} calls"


def idle(fn, calls: int = 50) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / calls * 1e6


def captured(fn) -> torch.cuda.CUDAGraph:
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
        with torch.cuda.graph(g, stream=s):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g.replay()
    torch.cuda.synchronize()
    return g


def encoder_like(backend: SDPBackend) -> None:
    """Twelve ViT-b32-like layers (GEMMs, SDPA, layer norms) in one torch CUDA graph."""
    n, seq, heads, dim = 32, 197, 12, 64
    width = heads * dim
    x = torch.randn(n * seq, width, device="cuda", dtype=torch.half)
    w_qkv = torch.randn(3 * width, width, device="cuda", dtype=torch.half) * 0.02
    w_out = torch.randn(width, width, device="cuda", dtype=torch.half) * 0.02

    def layers() -> torch.Tensor:
        h = x
        for _ in range(12):
            q, k, v = torch.nn.functional.linear(h, w_qkv).view(n, seq, 3, heads, dim).permute(2, 0, 3, 1, 4)
            a = sdpa(q, k, v).transpose(1, 2).reshape(n * seq, width)
            h = torch.nn.functional.layer_norm(h + torch.nn.functional.linear(a, w_out), (width,))
        return h

    with sdpa_kernel(backend):
        try:
            g = captured(layers)
        except RuntimeError as e:
            print(f"  encoder-like {backend.name}: unavailable ({str(e).splitlines()[0][:80]})")
            return
    print(f"  encoder-like graph, {backend.name:20s} idle {idle(g.replay):7.1f} us; busy {behind_spin(g.replay)}; "
          f"{queue_depth(g.replay)}")


def small_graphs() -> None:
    """Queue depth of graphs of one node kind: what a graph launch takes of the GPU's queue."""
    x = torch.zeros(1 << 20, device="cuda", dtype=torch.half)
    for label, step in (("add_ kernel", lambda: x.add_(1)), ("zero_ (memset)", x.zero_),
                        ("fill_ kernel", lambda: x.fill_(1))):
        for nodes in (12, 36):
            g = captured(lambda step=step, nodes=nodes: [step() for _ in range(nodes)])
            print(f"  graph of {nodes:3d} x {label:15s}: {queue_depth(g.replay)}")


def main() -> None:
    print("== graphs of one node kind")
    small_graphs()
    print("== twelve encoder-like layers in one torch CUDA graph")
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION):
        encoder_like(backend)
    for causal, shape in ((False, (32, 12, 197, 64)), (True, (32, 12, 128, 64)), (False, (1, 12, 197, 64))):
        q, k, v = (torch.randn(shape, device="cuda", dtype=torch.half) for _ in range(3))
        print(f"== SDPA {list(shape)} causal={causal}")
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
            with sdpa_kernel(backend):
                call = functools.partial(sdpa, q, k, v, is_causal=causal)
                try:
                    for _ in range(3):
                        call()
                    torch.cuda.synchronize()
                except RuntimeError as e:
                    print(f"  {backend.name}: unavailable ({str(e).splitlines()[0][:80]})")
                    continue
                print(f"  {backend.name:20s} eager idle {idle(call):7.1f} us; busy {behind_spin(call)}")
                g = captured(call)
                print(f"  {backend.name:20s} graph idle {idle(g.replay):7.1f} us; busy {behind_spin(g.replay)}")


if __name__ == "__main__":
    main()
