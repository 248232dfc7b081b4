"""Compile a torchvision ResNet-50 (random weights) with Kiln and check it against PyTorch.

Steps: compile (CUDA if available, else CPU) with a dynamic batch, compare with eager (max abs
error, cosine similarity), time eager vs Kiln (median of N runs), save and reload the compiled
module, write a standalone engine plus a .npy input, and run it with `kiln run`. Exits non-zero
when a check fails.

    python examples/resnet50.py [--device cpu|cuda:0] [--batch 4] [--runs 10] [--size 224]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kiln
import numpy as np
import torchvision

import torch

COSINE_MIN = 0.9999
REL_ERROR_MAX = 1e-3


def kiln_runs_cuda() -> bool:
    import kiln

    return bool(getattr(kiln, "CUDA_EXECUTION", False))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # A package built without the CUDA backend (KILN_CUDA=OFF) runs Kiln on the CPU.
    default_device = "cuda:0" if torch.cuda.is_available() and kiln_runs_cuda() else "cpu"
    p.add_argument("--device", default=default_device)
    p.add_argument("--batch", type=int, default=4, help="batch used for checks and timing")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224, help="image height and width")
    p.add_argument("--runs", type=int, default=10, help="timed runs (median reported)")
    p.add_argument("--out", default="", help="directory for the saved files (default: temp)")
    p.add_argument("--kiln-bin", default="", help="the `kiln` command line (default: search)")
    return p.parse_args()


def find_cli(explicit: str) -> str | None:
    if explicit:
        return explicit
    found = shutil.which("kiln")
    if found:
        return found
    root = Path(__file__).resolve().parents[1]
    for candidate in sorted(root.glob("build/**/tools/kiln/kiln")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(fn, x: torch.Tensor, runs: int, device: str) -> float:
    with torch.no_grad():
        for _ in range(2):
            fn(x)
        sync(device)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn(x)
            sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def compare(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    out, ref = out.double().cpu().flatten(), ref.double().cpu().flatten()
    max_abs = (out - ref).abs().max().item()
    rel = max_abs / max(ref.abs().max().item(), 1e-12)
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=0).item()
    return max_abs, rel, cos


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    device = args.device
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="kiln_resnet50_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []

    model = torchvision.models.resnet50().eval().to(device)
    shape = (3, args.size, args.size)
    inputs = [
        kiln.Input(
            min_shape=(1, *shape),
            opt_shape=(args.batch, *shape),
            max_shape=(args.max_batch, *shape),
            name="x",
        )
    ]

    start = time.perf_counter()
    compiled = kiln.compile(model, inputs=inputs, device=device)
    compile_s = time.perf_counter() - start
    report = compiled.kiln_report

    x = torch.randn(args.batch, *shape, device=device)
    with torch.no_grad():
        ref = model(x)
        out = compiled(x)
    max_abs, rel, cos = compare(out, ref)
    if cos < COSINE_MIN or rel > REL_ERROR_MAX:
        failures.append(f"compiled vs eager: cosine {cos:.6f}, relative error {rel:.2e}")

    with torch.no_grad():
        other = torch.randn(1, *shape, device=device)
        _, rel1, cos1 = compare(compiled(other), model(other))
    if cos1 < COSINE_MIN or rel1 > REL_ERROR_MAX:
        failures.append(f"batch 1: cosine {cos1:.6f}, relative error {rel1:.2e}")

    eager_ms = median_ms(model, x, args.runs, device)
    kiln_ms = median_ms(compiled, x, args.runs, device)

    saved = out_dir / "resnet50.pt2"
    kiln.save(compiled, saved, inputs=inputs)
    reloaded = kiln.load(saved)
    with torch.no_grad():
        _, rel_r, cos_r = compare(reloaded(x), ref)
    if cos_r < COSINE_MIN or rel_r > REL_ERROR_MAX:
        failures.append(f"reloaded: cosine {cos_r:.6f}, relative error {rel_r:.2e}")

    engine_path = out_dir / "resnet50.kiln"
    kiln.convert_to_engine(model, inputs, engine_path, device=device)
    npy_in = out_dir / "x.npy"
    np.save(npy_in, x.cpu().numpy())
    cli = find_cli(args.kiln_bin)
    cli_line = "kiln run: skipped (no `kiln` command line found)"
    if cli is None:
        failures.append("the `kiln` command line was not found (pass --kiln-bin)")
    else:
        run_dir = out_dir / "run"
        proc = subprocess.run(
            [cli, "run", str(engine_path), "--input", f"x={npy_in}", "--output-dir", str(run_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        outputs = sorted(run_dir.glob("*.npy")) if run_dir.exists() else []
        if proc.returncode != 0 or len(outputs) != 1:
            failures.append(f"kiln run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        else:
            y = torch.from_numpy(np.load(outputs[0]))
            _, rel_c, cos_c = compare(y, ref)
            # `kiln run` runs on the engine's own device by default and prints "device ..." first.
            ran_on = next(
                (ln.split(None, 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("device ")),
                "an unreported device",
            )
            cli_line = f"kiln run on {ran_on}: cosine {cos_c:.6f}, relative error {rel_c:.2e}"
            if cos_c < COSINE_MIN or rel_c > REL_ERROR_MAX:
                failures.append(f"kiln run output: cosine {cos_c:.6f}, relative error {rel_c:.2e}")

    blocks = ", ".join(f"{b.name} ({b.num_nodes} nodes)" for b in report.blocks)
    print()
    print(f"ResNet-50 on {device}, batch {args.batch} (dynamic 1..{args.max_batch})")
    print(f"  {report.summary()}")
    print(f"  blocks: {blocks}")
    print(f"  compile: {compile_s:.1f} s")
    print(f"  accuracy: max abs error {max_abs:.2e}, relative {rel:.2e}, cosine {cos:.6f}")
    print(f"  eager {eager_ms:.2f} ms, kiln {kiln_ms:.2f} ms (median of {args.runs}): "
          f"{eager_ms / kiln_ms:.2f}x")
    print(f"  saved {saved} and reloaded: cosine {cos_r:.6f}")
    print(f"  engine {engine_path} ({engine_path.stat().st_size / 1e6:.1f} MB)")
    print(f"  {cli_line}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
