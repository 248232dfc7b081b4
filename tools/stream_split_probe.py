"""Does splitting a batch in two halves that run on two streams at once beat one stream with the
whole batch? The wave tails of one half's kernels could be filled by the other half's kernels.
Times, per model at batch B (GPU machine diagnostic):
  - torch eager in a CUDA graph: the whole batch, and two halves on two captured streams;
  - Kiln: one engine at B on one stream, two engines at B/2 on two streams at once, and the two
    B/2 engines one after the other on one stream.

    python3 tools/stream_split_probe.py [MODELS] [BATCH]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models

import kiln


def time_ms(issue, iters: int = 50, rounds: int = 5) -> float:
    """Median over rounds of the time per iteration of `issue()` (which enqueues on its own
    streams, each waiting on the current stream first and joined back after)."""
    cur = torch.cuda.current_stream()
    for _ in range(10):
        issue()
    torch.cuda.synchronize()
    out = []
    for _ in range(rounds):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(cur)
        for _ in range(iters):
            issue()
        b.record(cur)
        b.synchronize()
        out.append(a.elapsed_time(b) / iters)
    return statistics.median(out)


def fork(streams, works):
    cur = torch.cuda.current_stream()
    for s in streams:
        s.wait_stream(cur)
    for s, w in zip(streams, works):
        with torch.cuda.stream(s):
            w()
    for s in streams:
        cur.wait_stream(s)


def probe(name: str, batch: int, s0: torch.cuda.Stream, s1: torch.cuda.Stream, tmp: str) -> None:
    half = batch // 2
    model = models.build_model(name, "cuda")
    (x,) = models.make_inputs(name, batch, "cuda")
    xa, xb = x[:half].contiguous(), x[half:].contiguous()
    with torch.no_grad():
        # torch eager, captured
        g_full, g_split = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        for _ in range(3):
            model(x)
        torch.cuda.synchronize()
        with torch.cuda.graph(g_full):
            model(x)
        fork([s0, s1], [lambda: model(xa), lambda: model(xb)])
        torch.cuda.synchronize()
        with torch.cuda.graph(g_split):
            fork([s0, s1], [lambda: model(xa), lambda: model(xb)])
        t_full = time_ms(g_full.replay)
        t_split = time_ms(g_split.replay)
        print(f"{name} b{batch} torch graph: whole {t_full:.3f} ms, two halves on two streams {t_split:.3f} ms", flush=True)
        cache = os.path.join(tmp, f"{name}.cache")

        def build(b):
            return kiln.compile(model, inputs=models.kiln_inputs(name, (b, b, b)), device="cuda:0",
                                timing_cache_path=cache)
        k_full, k_a, k_b = build(batch), build(half), build(half)
        ref = model(x).float()
        got = torch.cat([k_a(xa), k_b(xb)]).float()
        cos = torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0).item()
        t_k = time_ms(lambda: fork([s0], [lambda: k_full(x)]))
        t_k2 = time_ms(lambda: fork([s0, s1], [lambda: k_a(xa), lambda: k_b(xb)]))
        t_kseq = time_ms(lambda: fork([s0], [lambda: (k_a(xa), k_b(xb))]))
        print(f"{name} b{batch} kiln: whole {t_k:.3f} ms, two halves on two streams {t_k2:.3f} ms, "
              f"halves one after the other {t_kseq:.3f} ms (cosine of the split {cos:.6f})", flush=True)


def main() -> None:
    names = (sys.argv[1] if len(sys.argv) > 1 else "vit_b_16,gpt2,bert,resnet50").split(",")
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    s0, s1 = torch.cuda.Stream(), torch.cuda.Stream()
    tmp = tempfile.mkdtemp()
    for name in names:
        probe(name, batch, s0, s1, tmp)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
