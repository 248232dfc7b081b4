"""Where a warm build's time goes (GPU machine diagnostic): builds a benchmark model with Kiln
twice into one timing cache, as bench/run.py does, and prints cProfile's top functions of the
second (warm) build by cumulative time.

    python3 tools/build_profile.py MODEL [BATCH] [cuda:0|cpu] [TOP]
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models

import kiln


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "gpt2"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    device = sys.argv[3] if len(sys.argv) > 3 else ("cuda:0" if torch.cuda.is_available() else "cpu")
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = models.build_model(name, device.split(":")[0], dtype)
    inputs = models.make_inputs(name, batch, device.split(":")[0], dtype)
    kin = [kiln.Input(shape=tuple(x.shape), dtype=x.dtype) for x in inputs]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        cache = os.path.join(tmp, "timings.txt")
        t0 = time.perf_counter()
        kiln.compile(model, inputs=kin, device=device, timing_cache_path=cache)
        cold = time.perf_counter() - t0
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        compiled = kiln.compile(model, inputs=kin, device=device, timing_cache_path=cache)
        profiler.disable()
        warm = time.perf_counter() - t0
        # bench/run.py's build_s also holds the first call (CUDA graph capture and upload).
        t0 = time.perf_counter()
        compiled(*inputs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        first = time.perf_counter() - t0
    print(f"{name} b{batch} on {device}: cold {cold:.1f} s, warm {warm:.1f} s (profiled), first call {first:.2f} s")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top // 2)
    stats.print_callers("acquire")  # lock waits: who waits


if __name__ == "__main__":
    main()
