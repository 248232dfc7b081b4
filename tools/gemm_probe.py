"""How fast cuBLASLt's first heuristic choice runs one GEMM shape through torch, with and without
the bias epilogue, with a residual as the C operand, and with the residual added by a separate
kernel (GPU machine diagnostic): ViT-B/16's fc1 at batch 32 by default.

    python3 tools/gemm_probe.py [M N K]
"""

from __future__ import annotations

import sys

import torch


def time_us(fn, reps: int = 50) -> float:
    for _ in range(5):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps * 1e3


def main() -> None:
    m, n, k = (int(a) for a in sys.argv[1:4]) if len(sys.argv) > 3 else (32 * 197, 3072, 768)
    x = torch.randn(m, k, device="cuda", dtype=torch.float16)
    w = torch.randn(n, k, device="cuda", dtype=torch.float16)
    b = torch.randn(n, device="cuda", dtype=torch.float16)
    r = torch.randn(m, n, device="cuda", dtype=torch.float16)  # a residual, as fc2's
    flop = 2 * m * n * k
    for name, fn in [("mm x @ w.T (no epilogue)", lambda: torch.mm(x, w.t())),
                     ("addmm (bias epilogue)", lambda: torch.addmm(b, x, w.t())),
                     ("F.linear 3-D (bias)", lambda: torch.nn.functional.linear(x.view(32, -1, k) if m % 32 == 0 else x, w, b)),
                     ("mm w @ x.T (swapped)", lambda: torch.mm(w, x.t())),
                     ("addmm (residual as C)", lambda: torch.addmm(r, x, w.t())),
                     ("addmm (bias) + residual add", lambda: torch.addmm(b, x, w.t()).add_(r))]:
        us = time_us(fn)
        print(f"  {m}x{n}x{k} {name:28s} {us:8.1f} us {flop / us / 1e6:7.1f} TFLOP/s")


if __name__ == "__main__":
    main()
