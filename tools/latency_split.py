"""GPU machine diagnostic: what one call's latency (the bench's measure) is made of.

For each case, Kiln (as the bench builds it) and inductor + CUDA graphs, each measured as:
  idle    the bench's measure: events around one call with the GPU idle before it, so the host
          time up to the first launch shows in the latency;
  queued  the same call queued behind a 2 ms spin kernel: the events see only device time;
  host    host time of the call while the GPU is busy (back-pressure shows here).
Kiln is also measured calling its engine directly (no FX module, no stream ops) on the default
stream and on a side stream. Last, a torch.profiler (CUPTI) trace of queued calls gives the
kernel sum and the gaps between kernels, and the idle latency is measured again after it, to see
whether the profiler changes later measurements.

    python3 tools/latency_split.py gpt2:1 vit_b_16:1 ...
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models  # noqa: E402

SPIN_CYCLES = int(2e-3 * 1.7e9)  # about 2 ms at the H100's clock
TOP = int(os.environ.get("SPLIT_TOP", "0"))  # kernels listed per trace, by total time


def measure(fn, iters: int = 60, engine=None) -> str:
    idle, queued, host = [], [], []
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    before = dict(engine.runtime_stats()) if engine is not None else None
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); e.synchronize()
        idle.append(s.elapsed_time(e))
    stats = ""
    if engine is not None:
        after = dict(engine.runtime_stats())
        d = {k: (after[k] - before[k]) / iters / 1e3 for k in
             ("execute_host_ns", "enqueue_host_ns", "graph_launch_host_ns")}
        stats = (f"  [idle: execute {d['execute_host_ns']:5.1f} enqueue {d['enqueue_host_ns']:5.1f} "
                 f"launch {d['graph_launch_host_ns']:5.1f} us]")
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(SPIN_CYCLES)
        s.record()
        t0 = time.perf_counter(); fn(); host.append((time.perf_counter() - t0) * 1e6)
        e.record(); e.synchronize()
        queued.append(s.elapsed_time(e))
    m = statistics.median
    return (f"idle {m(idle) * 1e3:7.1f} us  queued {m(queued) * 1e3:7.1f} us  host {m(host):6.1f} us"
            + stats)


def trace(fn, calls: int = 5) -> str:
    """Kernel sum and span per call from CUPTI, each call queued behind a spin."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            torch.cuda._sleep(SPIN_CYCLES)
            fn()
        torch.cuda.synchronize()
    kernels = sorted((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                     if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0)
    # Split the stream into calls at the spin kernels.
    calls_k, cur = [], []
    for k in kernels:
        if "spin" in k[2].lower() or "sleep" in k[2].lower():
            if cur:
                calls_k.append(cur)
            cur = []
        else:
            cur.append(k)
    if cur:
        calls_k.append(cur)
    rows = []
    for ks in calls_k[1:] or calls_k:
        busy = sum(e - s for s, e, _ in ks)
        span = ks[-1][1] - ks[0][0]
        rows.append((len(ks), busy, span))
    n, busy, span = (statistics.median(c) for c in zip(*rows))
    by_name: dict[str, list[float]] = {}
    for ks in calls_k[1:] or calls_k:
        for s0, e0, name in ks:
            t = by_name.setdefault(name, [0.0, 0])
            t[0] += e0 - s0
            t[1] += 1
    ncalls = len(calls_k[1:] or calls_k)
    top = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:TOP]
    lines = "".join(f"\n      {t / ncalls:7.1f} us x{c / ncalls:<4.0f} {name[:100]}" for name, (t, c) in top)
    return (f"kernels {n:.0f}  kernel sum {busy:7.1f} us  span {span:7.1f} us  gaps {span - busy:6.1f} us"
            + lines)


def main() -> None:
    import kiln

    for case in sys.argv[1:]:
        name, batch = case.split(":")
        batch = int(batch)
        model = models.build_model(name, "cuda")
        inputs = models.make_inputs(name, batch, "cuda")
        kin = [kiln.Input(shape=tuple(x.shape), dtype=x.dtype) for x in inputs]
        cache = os.path.join(tempfile.gettempdir(), f"kiln_split_{name}_{batch}_{os.environ.get('KILN_TACTIC_TIMING', 'activations-warm')}.timing")
        with torch.no_grad():
            t_build = time.perf_counter()
            fn = kiln.compile(model, inputs=kin, device="cuda:0", optimization_level=1,
                              timing_cache_path=cache)
            kiln.runtime.enable_pre_allocated_outputs(fn)
            found = list(kiln.runtime.engines(fn))
            print(f"== {name} b{batch} [{os.environ.get('KILN_TACTIC_TIMING', 'activations-warm')} tactic timing, "
                  f"build {time.perf_counter() - t_build:.1f} s]: {len(found)} engine(s); "
                  f"nodes {[dict(e.runtime_stats())['cuda_graph_nodes'] for _, e in found]}", flush=True)
            eng = max(found, key=lambda e: len(e[1].input_names()))[1]
            print(f"  kiln module          {measure(lambda: fn(*inputs), engine=eng)}", flush=True)
            quick = os.environ.get("SPLIT_QUICK") == "1"  # Kiln's module and inductor-cg only
            bare = None if quick else torch.fx.GraphModule(fn, copy.deepcopy(fn.graph))
            for n in list(bare.graph.nodes) if bare else []:
                if n.target in (torch.ops.kiln.enter_compute_stream.default,
                                torch.ops.kiln.exit_compute_stream.default):
                    bare.graph.erase_node(n)
            if bare:
                bare.recompile()
                print(f"  module, no stream op {measure(lambda: bare(*inputs), engine=eng)}", flush=True)
            if not quick and len(found) == 1 and len(found[0][1].input_names()) == len(inputs):
                op = torch.ops.kiln.execute_engine.default
                direct = lambda: op(list(inputs), eng)  # noqa: E731
                print(f"  kiln engine, default {measure(direct, engine=eng)}", flush=True)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    print(f"  kiln engine, side    {measure(direct)}", flush=True)
                torch.cuda.current_stream().wait_stream(side)
            if not quick:
                print(f"  kiln module again    {measure(lambda: fn(*inputs), engine=eng)}", flush=True)
            torch._dynamo.reset()
            cg = torch.compile(model, mode="reduce-overhead")
            for _ in range(3):
                cg(*inputs)
            print(f"  inductor-cg          {measure(lambda: cg(*inputs))}", flush=True)
            print(f"  kiln trace           {trace(lambda: fn(*inputs))}", flush=True)
            print(f"  inductor-cg trace    {trace(lambda: cg(*inputs))}", flush=True)
            print(f"  kiln after CUPTI     {measure(lambda: fn(*inputs))}", flush=True)
            print(f"  ind-cg after CUPTI   {measure(lambda: cg(*inputs))}", flush=True)
        del fn, cg, model
        torch._dynamo.reset()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
