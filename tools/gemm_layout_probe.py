"""GPU machine diagnostic: does a linear's weight layout change cuBLAS's speed? GPT-2 b32's four
linears (M = 32 x 128 tokens), each with its bias, with the weight stored [N, K] (what Kiln runs:
cuBLAS's TN form, `x @ w.T`) and [K, N] (what GPT-2's Conv1D holds and inductor runs: NN,
`x @ w`), with and without a residual added in the GEMM (beta = 1, Kiln's fused residual).
Timed in a torch CUDA graph of 20 calls, median of 7 replays. Pure torch: no Kiln code.

    python3 tools/gemm_layout_probe.py
"""

from __future__ import annotations

import functools
import statistics

import torch


def graph_us(fn, calls: int = 20, replays: int = 7) -> float:
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        g.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / calls)
    return statistics.median(times)


def main() -> None:
    m = 32 * 128
    half = {"device": "cuda", "dtype": torch.float16}
    for label, n, k in (("qkv", 2304, 768), ("out-proj", 768, 768), ("fc1", 3072, 768), ("fc2", 768, 3072)):
        x = torch.randn(m, k, **half)
        w_nk = torch.randn(n, k, **half) * 0.02
        w_kn = w_nk.t().contiguous()
        bias = torch.randn(n, **half)
        residual = torch.randn(m, n, **half)
        flop = 2 * m * n * k
        cases = {
            "[N,K] x @ w.T + bias": (bias, w_nk.t()),
            "[K,N] x @ w + bias": (bias, w_kn),
            "[N,K] + residual": (residual, w_nk.t()),
            "[K,N] + residual": (residual, w_kn),
        }
        for name, (c, w) in cases.items():
            us = graph_us(functools.partial(torch.addmm, c, x, w))
            print(f"  {label:8s} {m}x{n}x{k} {name:22s} {us:7.1f} us {flop / us / 1e6:6.0f} TFLOP/s")


if __name__ == "__main__":
    main()
