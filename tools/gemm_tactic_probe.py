"""GPU machine diagnostic: does a GEMM's tactic-timed time match what its engine then runs at?

Builds a one-Linear engine (ViT-B/16's fc2 at batch 32 by default), prints the timing cache's
candidates with their timed ms, then the engine's time per call (events over back-to-back calls)
and torch's F.linear beside it, with each one's kernel names (torch.profiler, at the end).

    python3 tools/gemm_tactic_probe.py [BATCH ROWS IN OUT]
"""

from __future__ import annotations

import os
import sys
import tempfile

import torch

import kiln

sys.path.insert(0, os.path.dirname(__file__))
from gemm_probe import time_us as per_call_us  # noqa: E402


def kernels(fn) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sorted({f"{e.device_time:7.1f} us {e.name[:100]}" for e in prof.events()
                   if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0})


def main() -> None:
    batch, rows, fin, fout = (int(a) for a in sys.argv[1:5]) if len(sys.argv) > 4 else (32, 197, 3072, 768)
    lin = torch.nn.Linear(fin, fout).half().cuda().eval()
    x = torch.randn(batch, rows, fin, device="cuda", dtype=torch.half)
    flop = 2 * batch * rows * fin * fout
    report = []
    with torch.no_grad():
        for timing in ("cold", "warm"):
            os.environ["KILN_TACTIC_TIMING"] = timing
            cache = os.path.join(tempfile.gettempdir(), f"kiln_gemm_probe_{timing}.timing")
            if os.path.exists(cache):
                os.remove(cache)
            eng = kiln.compile(lin, inputs=[kiln.Input(shape=tuple(x.shape), dtype=x.dtype)],
                               device="cuda:0", optimization_level=1, timing_cache_path=cache,
                               min_block_size=1)
            if not list(kiln.runtime.engines(eng)):
                raise SystemExit("no Kiln engine was built (the Linear ran in PyTorch)")
            got = eng(x)
            err = (got.float() - torch.nn.functional.linear(x, lin.weight, lin.bias).float()).abs().max()
            print(f"[{timing}] timed candidates ({batch}x{rows}x{fin} -> {fout}), max |err| {float(err):.3g}:")
            for line in open(cache):
                if "|" in line:
                    key, ms = line.rsplit("\t", 1)
                    print(f"   {float(ms) * 1e3:8.1f} us  {key.split(' | ')[-1][:110]}")
            us = per_call_us(lambda: eng(x))
            print(f"[{timing}] engine: {us:.1f} us per call, {flop / us / 1e6:.0f} TFLOP/s")
            report.append((f"kiln {timing}", lambda e=eng: e(x)))
            # The same engine on GELU outputs (what fc2 reads in the model) instead of randn.
            g = torch.nn.functional.gelu(x * 2)
            us = per_call_us(lambda: eng(g))
            print(f"[{timing}] engine on gelu(2x): {us:.1f} us per call")
        us = per_call_us(lambda: torch.nn.functional.linear(x, lin.weight, lin.bias))
        print(f"torch F.linear: {us:.1f} us per call, {flop / us / 1e6:.0f} TFLOP/s")
        report.append(("torch", lambda: torch.nn.functional.linear(x, lin.weight, lin.bias)))
        for name, fn in report:
            print(f"{name} kernels:")
            for k in kernels(fn):
                print("   ", k)


if __name__ == "__main__":
    main()
