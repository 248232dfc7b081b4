"""Kiln benchmark: eager, inductor (default, reduce-overhead) and Kiln in one process.

Protocol (../shared/BENCHMARKS.md): fp16 weights and activations, random weights, models built
from code or configs; 20 warm-up calls then 100 timed calls each between CUDA events; median and
p90; Kiln's output checked against eager (cosine similarity > 0.999, no NaN) before timing.
Also reports build time, peak device memory and host overhead per execute_engine call.

    python bench/run.py --models resnet50,vit_b_16,bert,gpt2 --batches 1,32 --out results/

Kiln builds at optimization level 1 unless KILN_BENCH_OPT_LEVEL names another.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from models import MODEL_FLOPS, build_model, make_inputs

PEAK_FLOPS = 790e12


def time_cuda(fn: Callable[[], object], warmup: int = 20, iters: int = 100) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))]}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float().flatten(), b.float().flatten()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def host_call_us(fn: Callable[[], object], engines: int = 1, calls: int = 21, rounds: int = 10,
                 split: Callable[[], list] | None = None) -> dict:
    """Host time per call (no synchronization inside), divided by the engines per call.

    Each of `rounds` rounds starts after the GPU went idle. Its first call is timed alone: the
    first launch onto an idle GPU costs the host several times a later one, for torch's own
    CUDA graphs as for Kiln's (tools/host_profile.py, HOST_PROFILE_POSITIONS=1). The other
    `calls - 1` calls run back to back, as a serving loop calls, and are timed together: wall
    time and the calling thread's CPU time (what the host did, without time it was not running).
    20 calls stay below the GPU queue's depth for every engine here (28 for ViT b32 with cuDNN's
    attention, README), so no call waits for the GPU. The medians over rounds are reported
    (one round alone moved by up to 2x between runs):
      steady_us, steady_cpu_us: per call of the back-to-back calls (the headline figure);
      first_us: the first call after the GPU went idle;
      *_rounds: each round's figure;
      split_us_rounds (with `split`, an engine's runtime_stats): per round, the engine's own
        host time per back-to-back call: execute_engine body, the runtime's enqueue, and the
        graph launch inside it."""
    steady, cpu, first, split_rounds = [], [], [], []
    scale = 1e6 / max(engines, 1)
    keys = ("execute_host_ns", "enqueue_host_ns", "graph_launch_host_ns")
    for _ in range(rounds):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        first.append((time.perf_counter() - t0) * scale)
        before = dict(split()) if split else {}
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(calls - 1):
            fn()
        t1, c1 = time.perf_counter(), time.thread_time()
        steady.append((t1 - t0) * scale / (calls - 1))
        cpu.append((c1 - c0) * scale / (calls - 1))
        if split:
            after = dict(split())
            split_rounds.append([round((after[k] - before[k]) / (calls - 1) / 1e3, 2) for k in keys])
    torch.cuda.synchronize()
    med = statistics.median
    return {"steady_us": med(steady), "steady_us_rounds": steady, "steady_cpu_us": med(cpu),
            "steady_cpu_us_rounds": cpu, "first_us": med(first), "first_us_rounds": first,
            "split_us_rounds": split_rounds}


def kernel_breakdown(fn: Callable[[], object], calls: int = 10, top: int = 20) -> list[dict]:
    """Device time per kernel name over `calls` calls (torch.profiler / CUPTI), largest first:
    where a contender's time goes."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    totals: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0:
            t = totals.setdefault(e.name, [0.0, 0])
            t[0] += e.device_time
            t[1] += 1
    whole = sum(t for t, _ in totals.values()) or 1.0
    rows = sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]
    return [
        {"kernel": k[:90], "us_per_call": t / calls, "share": t / whole, "launches_per_call": n / calls}
        for k, (t, n) in rows
    ]


def run_case(name: str, batch: int, contenders: list[str], device: str, profile: bool = False) -> dict:
    model = build_model(name, device)
    inputs = make_inputs(name, batch, device)
    row: dict = {"model": name, "batch": batch}
    with torch.no_grad():
        reference = model(*inputs)
        for contender in contenders:
            torch.cuda.reset_peak_memory_stats()
            entry: dict = {}
            try:
                t0 = time.perf_counter()
                if contender == "eager":
                    fn = model
                elif contender.startswith("inductor"):
                    torch._dynamo.reset()
                    mode = "reduce-overhead" if contender == "inductor-cg" else "default"
                    fn = torch.compile(model, mode=mode)
                    fn(*inputs)
                elif contender == "kiln":
                    import kiln

                    kin = [kiln.Input(shape=tuple(x.shape), dtype=x.dtype) for x in inputs]
                    cache = Path(tempfile.gettempdir()) / f"kiln_bench_{name}_{batch}.timing"
                    cache.unlink(missing_ok=True)

                    # KILN_BENCH_OPT_LEVEL: the builder's optimization level (1 unless set)
                    opt_level = int(os.environ.get("KILN_BENCH_OPT_LEVEL", "1"))
                    build = functools.partial(kiln.compile, model, inputs=kin, device=device,
                                              optimization_level=opt_level, timing_cache_path=str(cache))
                    build()  # cold: times tactics, fills the cache
                    torch.cuda.synchronize()
                    entry["build_cold_s"] = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    fn = build()  # warm timing cache: what `build_s` reports for Kiln
                    kiln.runtime.enable_pre_allocated_outputs(fn)
                    fn(*inputs)
                else:
                    raise ValueError(contender)
                torch.cuda.synchronize()
                entry["build_s"] = time.perf_counter() - t0
                out = fn(*inputs)
                entry["cosine"] = cosine(out, reference)
                entry["nan"] = bool(torch.isnan(out.float()).any())
                if contender != "eager" and (entry["cosine"] <= 0.999 or entry["nan"]):
                    raise RuntimeError(f"output mismatch: cosine {entry['cosine']:.5f}, nan {entry['nan']}")
                call = functools.partial(fn, *inputs)
                entry.update(time_cuda(call))
                entry["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
                if contender == "kiln":
                    engines = sum(1 for n in fn.graph.nodes if "execute_engine" in str(n.target))
                    entry["engines"] = engines
                    found = list(kiln.runtime.engines(fn))
                    split = found[0][1].runtime_stats if len(found) == 1 else None
                    host = host_call_us(call, engines, split=split)
                    entry["host_overhead_us"] = host["steady_us"]
                    entry["host_overhead_us_rounds"] = host["steady_us_rounds"]
                    entry["host_cpu_us"] = host["steady_cpu_us"]
                    entry["host_cpu_us_rounds"] = host["steady_cpu_us_rounds"]
                    entry["host_first_call_us"] = host["first_us"]
                    # Per round: execute_engine body, enqueue, graph launch (us per call).
                    entry["host_split_us_rounds"] = host["split_us_rounds"]
                    # Whether module calls skip the generated forward (kiln._C.EngineCall).
                    entry["engine_call"] = type(fn).__dict__.get("_kiln_engine_call") is not None
                    # The same for the engine called directly (no FX graph, no stream ops):
                    # what of the overhead is the engine call itself.
                    if len(found) == 1 and len(found[0][1].input_names()) == len(inputs):
                        direct = functools.partial(torch.ops.kiln.execute_engine.default,
                                                   list(inputs), found[0][1])
                        entry["host_execute_engine_us"] = host_call_us(direct)["steady_us"]
                        # The same engine call without the dispatcher (what kiln._codegen's
                        # forwards call where a module is more than one engine call).
                        fast = host_call_us(functools.partial(kiln._C.execute_engine_fast, list(inputs),
                                                              found[0][1]))
                        entry["host_execute_engine_fast_us"] = fast["steady_us"]
                        entry["host_execute_engine_fast_cpu_us"] = fast["steady_cpu_us"]
                    # CUDA graph replays vs plain launches, and why graphs went off if they did.
                    entry["runtime"] = list(kiln.runtime.stats(fn).values())
                if contender == "inductor-cg":
                    # The same host measure for torch's own CUDA graphs (cudagraph trees).
                    host = host_call_us(call)
                    entry["host_overhead_us"] = host["steady_us"]
                    entry["host_cpu_us"] = host["steady_cpu_us"]
                    entry["host_first_call_us"] = host["first_us"]
                if profile and contender in ("kiln", "inductor-cg"):
                    entry["kernels"] = kernel_breakdown(call)
            except Exception as e:  # noqa: BLE001 - a contender that fails is reported, not fatal
                entry["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                traceback.print_exc()
            row[contender] = entry
            kernels = entry.pop("kernels", None)
            print(f"{name:9s} b={batch:<3d} {contender:12s} {json.dumps(entry)}", flush=True)
            if kernels:
                entry["kernels"] = kernels
                for k in kernels:
                    print(f"    {k['us_per_call']:9.1f} us {100 * k['share']:5.1f}% "
                          f"x{k['launches_per_call']:<5.1f} {k['kernel']}", flush=True)
    return row


def write_reports(rows: list[dict], contenders: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    head = "| model | batch | " + " | ".join(contenders) + " | kiln / best inductor | kiln % of floor |"
    lines = [head, "|" + " --- |" * (len(contenders) + 4)]
    for r in rows:
        cells = []
        for c in contenders:
            e = r.get(c, {})
            cells.append(f"{e['median_ms']:.3f}" if "median_ms" in e else "error" if "error" in e else "-")
        ind = [r.get(c, {}).get("median_ms") for c in ("inductor", "inductor-cg")]
        ind = [x for x in ind if x]
        k = r.get("kiln", {}).get("median_ms")
        ratio = f"{k / min(ind):.2f}x" if k and ind else "-"
        floor = MODEL_FLOPS[r["model"]] * r["batch"] / PEAK_FLOPS * 1e3
        pct = f"{100 * floor / k:.0f}%" if k else "-"
        lines.append(f"| {r['model']} | {r['batch']} | " + " | ".join(cells) + f" | {ratio} | {pct} |")
    table = "\n".join(lines) + "\n\nmedian ms; fp16; ratio < 0.67 is the target.\n"
    host = [r for r in rows if "host_overhead_us" in r.get("kiln", {})]
    if host:
        table += ("\nHost time per call (us): back to back, as a serving loop calls (the target: "
                  "under 10 per engine call), and the first call after the GPU went idle.\n\n"
                  "| model | batch | kiln | kiln first call | inductor-cg | inductor-cg first call |\n"
                  "| --- | --- | --- | --- | --- | --- |\n")
        for r in host:
            k, g = r["kiln"], r.get("inductor-cg", {})
            cells = [k.get("host_overhead_us"), k.get("host_first_call_us"), g.get("host_overhead_us"),
                     g.get("host_first_call_us")]
            table += (f"| {r['model']} | {r['batch']} | "
                      + " | ".join(f"{x:.1f}" if x is not None else "-" for x in cells) + " |\n")
    (out / "results.md").write_text(table)
    print(table)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = [f"{r['model']}\nb{r['batch']}" for r in rows]
        fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
        width = 0.8 / max(1, len(contenders) - 1)
        for i, c in enumerate(x for x in contenders if x != "eager"):
            speedups = []
            for r in rows:
                e, base = r.get(c, {}), r.get("eager", {})
                speedups.append(base["median_ms"] / e["median_ms"] if "median_ms" in e and "median_ms" in base else 0)
            ax.bar([j + i * width for j in range(len(rows))], speedups, width, label=c)
        ax.set_xticks([j + width for j in range(len(rows))], labels)
        ax.set_ylabel("speedup over eager")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "results.png", dpi=120)
    except ImportError:
        print("matplotlib missing: no chart")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet50,vit_b_16,bert,gpt2")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--contenders", default="eager,inductor,inductor-cg,kiln")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--out", default="bench_results")
    p.add_argument("--profile", action="store_true",
                   help="also print the per-kernel device time of Kiln and inductor-cg (measured in a "
                        "child process per case, after the timings)")
    p.add_argument("--profile-here", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/run.py needs a CUDA GPU")
    contenders = args.contenders.split(",")
    cases = [(m, int(b)) for m in args.models.split(",") for b in args.batches.split(",")]
    if args.profile_here:
        # A child of --profile: one case, profiled; its rows go to --out for the parent.
        rows = [run_case(m, b, contenders, args.device, profile=True) for m, b in cases]
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "profile.json").write_text(json.dumps(rows))
        return
    rows = []
    for m, b in cases:
        rows.append(run_case(m, b, contenders, args.device))
        # Kept after every case: a run cut short (a time limit) still leaves what it measured.
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=2))
    if args.profile:
        # torch.profiler leaves CUPTI attached to the process, and CUPTI slows every later CUDA
        # call (inductor-cg's gpt2 b1 latency 0.62 -> 0.84 ms, Kiln's 0.57 -> 0.60 on the H100):
        # each case is profiled in a process of its own, after all the timings above.
        for row, (m, b) in zip(rows, cases):
            with tempfile.TemporaryDirectory() as tmp:
                print(f"--- profiling {m} b={b} in a child process", flush=True)
                subprocess.run([sys.executable, __file__, "--models", m, "--batches", str(b),
                                "--contenders", ",".join(c for c in contenders if c in ("inductor-cg", "kiln")),
                                "--device", args.device, "--out", tmp, "--profile-here"], check=False)
                found = Path(tmp) / "profile.json"
                if found.exists():
                    child = json.loads(found.read_text())[0]
                    for c in ("inductor-cg", "kiln"):
                        if c in row and "kernels" in child.get(c, {}):
                            row[c]["kernels"] = child[c]["kernels"]
    write_reports(rows, contenders, Path(args.out))


if __name__ == "__main__":
    main()
