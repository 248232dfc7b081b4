"""Where the host time of one execute_engine call goes (GPU machine diagnostic).

Builds one model with Kiln in fp16, then measures per call: the whole compiled module, the
engine called directly, the same with the GPU kept busy (no back-pressure can reach the host),
plain launches (KILN_CUDA_GRAPHS=0) and device-launched graphs, each split into the engine's
own host-time stats and the rest, then a torch CUDA graph of tiny kernels for comparison. No
torch.profiler: CUPTI's tracing inflates every CUDA call it sees (cudaGraphLaunch ~200 us).

    python3 tools/host_profile.py [bert|gpt2|vit_b_16|resnet50] [batch]

SDPA_PROBE_LMEM=1 creates the CUDA context with CU_CTX_LMEM_RESIZE_TO_MAX (tools/sdpa_wait_probe.py).
"""

from __future__ import annotations

import os
import sys
import time

# Before torch: with SDPA_PROBE_LMEM=1 it sets LMEM_RESIZE_TO_MAX before torch creates the context.
import sdpa_wait_probe
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models

import kiln


def per_call_us(fn, calls: int, busy_ms: float = 0.0) -> float:
    torch.cuda.synchronize()
    if busy_ms:
        torch.cuda._sleep(int(busy_ms * 1.7e6))  # roughly ms at the H100's clock
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    if busy_ms:
        # One long wait, or a wait per call, or a full queue after some calls?
        slow = [(i, round(t * 1e3, 1)) for i, t in enumerate(times) if t > 100e-6]
        print(f"      behind the spin, calls over 100 us (index, ms): {slow[:8]}")
    return sum(times) / calls * 1e6


def host_split(engine, fn, calls: int, busy_ms: float = 0.0) -> str:
    """Per call: wall time, then what of it the engine's own stats account for (execute_engine's
    C++ body, the runtime's enqueue, the graph launch inside it); the rest is Python, the
    dispatcher and the FX module."""
    before = dict(engine.runtime_stats())
    wall = per_call_us(fn, calls, busy_ms)
    after = dict(engine.runtime_stats())
    d = {k: (after[k] - before[k]) / calls / 1e3 for k in ("execute_host_ns", "enqueue_host_ns",
                                                          "graph_launch_host_ns")}
    return (f"{wall:8.1f} us = execute_engine body {d['execute_host_ns']:6.1f} (enqueue "
            f"{d['enqueue_host_ns']:6.1f}, graph launch {d['graph_launch_host_ns']:6.1f}) + "
            f"Python/dispatch {wall - d['execute_host_ns']:6.1f}")


def by_position(fn, stats=None, calls: int = 20, rounds: int = 30) -> None:
    """Rounds of `calls` calls back to back, each round after the GPU went idle: the median host
    time of the k-th call of a round, with (`stats`, an engine's runtime_stats) the engine's own
    split of it. Tells whether a call costs more the more work is queued ahead of it (the GPU
    queue's back-pressure, a graph still in flight) or the same at every depth."""
    keys = ("execute_host_ns", "enqueue_host_ns", "graph_launch_host_ns")
    wall = [[] for _ in range(calls)]
    split = [[[] for _ in keys] for _ in range(calls)]
    for _ in range(rounds):
        torch.cuda.synchronize()
        for k in range(calls):
            before = dict(stats()) if stats else None
            t0 = time.perf_counter()
            fn()
            wall[k].append((time.perf_counter() - t0) * 1e6)
            if stats:
                after = dict(stats())
                for j, key in enumerate(keys):
                    split[k][j].append((after[key] - before[key]) / 1e3)
    torch.cuda.synchronize()
    med = lambda xs: sorted(xs)[len(xs) // 2]
    for k in (0, 1, 2, 3, 5, 8, 12, 16, calls - 1):
        line = f"      call {k:2d}: {med(wall[k]):7.1f} us"
        if stats:
            body, enq, launch = (med(split[k][j]) for j in range(3))
            line += f" = body {body:6.1f} (enqueue {enq:6.1f}, graph launch {launch:6.1f}) + rest {med(wall[k]) - body:5.1f}"
        print(line)
    quiet = []
    for _ in range(200):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        quiet.append((time.perf_counter() - t0) * 1e6)
    torch.cuda.synchronize()
    quiet.sort()
    print(f"      one call on an idle GPU, 200 calls: median {quiet[100]:.1f} us, p10 {quiet[20]:.1f}, p90 {quiet[180]:.1f}")


def profile_engine(label: str, name: str, batch: int, model, inputs) -> None:
    compiled = kiln.compile(model, inputs=models.kiln_inputs(name, (1, batch, 32)), device="cuda:0",
                            timing_cache_path=os.environ.get("HOST_PROFILE_TIMING_CACHE", ""))
    with torch.no_grad():
        for _ in range(5):
            compiled(*inputs)
    found = list(kiln.runtime.engines(compiled))
    _, engine = max(found, key=lambda e: len(e[1].input_names()))
    stats = dict(engine.runtime_stats())
    print(f"  [{label}] {len(found)} engine(s), graph nodes {stats['cuda_graph_nodes']}, "
          f"device launches {stats['cuda_graph_device_launches']}, plain {stats['plain_launches']}")
    call = lambda: compiled(*inputs)
    if os.environ.get("HOST_PROFILE_POSITIONS"):
        print("    module call by position in a round of 20:")
        by_position(call, engine.runtime_stats)
        # The same for torch's own CUDA graph of the eager model, replayed back to back.
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.no_grad():
            for _ in range(3):
                model(*inputs)
            torch.cuda.synchronize()
            with torch.cuda.graph(g, stream=s):
                model(*inputs)
        torch.cuda.synchronize()
        print("    torch CUDAGraph.replay of the eager model by position:")
        by_position(g.replay)
        del g
        return
    print(f"    module call:              {host_split(engine, call, 50)}")
    rounds = []
    for _ in range(30):
        rounds.append(per_call_us(call, 20))
    rounds.sort()
    print(f"    module call, 30 rounds of 20 calls: median {rounds[15]:.1f} us, "
          f"quartiles {rounds[7]:.1f}-{rounds[22]:.1f}, min {rounds[0]:.1f}")
    print(f"    module call, GPU busy:    {host_split(engine, call, 50, 200)}")
    print(f"    module call, queue depth: {sdpa_wait_probe.queue_depth(call)}")
    if len(engine.input_names()) == len(inputs):
        op = torch.ops.kiln.execute_engine.default
        direct_inputs = list(inputs)
        direct = lambda: op(direct_inputs, engine)
        for _ in range(5):
            direct()
        print(f"    execute_engine:           {host_split(engine, direct, 50)}")
        # The same without TorchBindOpOverload.__call__'s pytree scan for fake script objects.
        raw_op = op._op
        raw = lambda: raw_op(direct_inputs, engine)
        print(f"    execute_engine (raw _op): {host_split(engine, raw, 50)}")
        print(f"    execute_engine, GPU busy: {host_split(engine, direct, 50, 200)}")
        fast = lambda: kiln._C.execute_engine_fast(direct_inputs, engine)
        print(f"    execute_engine_fast:      {host_split(engine, fast, 50)}")


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "bert"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    model = models.build_model(name, "cuda")
    inputs = models.make_inputs(name, batch, "cuda")
    print(f"{name} b{batch}:")
    # How fast this host runs torch's own dispatch, for scale.
    t = torch.zeros(16, device="cuda")
    for _ in range(20):  # the first calls load the kernel (lazy module loading)
        torch.ops.aten.relu.default(t)
    print(f"  torch.ops.aten.relu.default, one CUDA tensor: {per_call_us(lambda: torch.ops.aten.relu.default(t), 200):.1f} us")
    profile_engine("graphs", name, batch, model, inputs)
    if os.environ.get("HOST_PROFILE_QUICK"):
        return
    os.environ["KILN_DEVICE_GRAPH_LAUNCH"] = "1"
    profile_engine("device-launched graphs", name, batch, model, inputs)
    del os.environ["KILN_DEVICE_GRAPH_LAUNCH"]
    os.environ["KILN_CUDA_GRAPHS"] = "0"
    profile_engine("plain launches", name, batch, model, inputs)
    del os.environ["KILN_CUDA_GRAPHS"]
    # A torch CUDA graph of tiny kernels: what one graph launch costs on this driver.
    x = torch.zeros(16, device="cuda")
    for nodes in (1, 50, 150, 400):
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            x.add_(1)
            with torch.cuda.graph(g, stream=s):
                for _ in range(nodes):
                    x.add_(1)
        torch.cuda.synchronize()
        g.replay()
        print(f"  torch CUDAGraph.replay of {nodes:3d} kernels: {per_call_us(g.replay, 50, 200):8.1f} us (GPU busy)")


if __name__ == "__main__":
    main()
