"""Where the host time of one execute_engine call goes (GPU machine diagnostic).

Builds one model with Kiln in fp16, then measures per call: the whole compiled module, the
engine called directly, the same with the GPU kept busy (no back-pressure can reach the host),
plain launches (KILN_CUDA_GRAPHS=0), a torch CUDA graph of as many tiny kernels for comparison,
and the CUDA runtime calls torch.profiler sees inside one engine call.

    python3 tools/host_profile.py [bert|gpt2|vit_b_16|resnet50] [batch]
"""

from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models  # noqa: E402

import kiln  # noqa: E402


def per_call_us(fn, calls: int, busy_ms: float = 0.0) -> float:
    torch.cuda.synchronize()
    if busy_ms:
        torch.cuda._sleep(int(busy_ms * 1.7e6))  # roughly ms at the H100's clock
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / calls * 1e6


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "bert"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    model = models.build_model(name, "cuda")
    inputs = models.make_inputs(name, batch, "cuda")
    compiled = kiln.compile(model, inputs=models.kiln_inputs(name, (1, batch, 32)), device="cuda:0")
    with torch.no_grad():
        for _ in range(5):
            compiled(*inputs)
    found = list(kiln.runtime.engines(compiled))
    print(f"{name} b{batch}: {len(found)} engine(s); FX nodes calling engines:",
          sum(1 for n in compiled.graph.nodes if "execute_engine" in str(n.target)))
    _, engine = max(found, key=lambda e: len(e[1].input_names()))
    direct_inputs = list(inputs) if len(engine.input_names()) == len(inputs) else None
    call = lambda: compiled(*inputs)  # noqa: E731
    print(f"  module call:              {per_call_us(call, 50):8.1f} us")
    print(f"  module call, GPU busy:    {per_call_us(call, 50, 200):8.1f} us")
    if direct_inputs is not None:
        op = torch.ops.kiln.execute_engine.default
        direct = lambda: op(direct_inputs, engine)  # noqa: E731
        for _ in range(5):
            direct()
        print(f"  execute_engine:           {per_call_us(direct, 50):8.1f} us")
        print(f"  execute_engine, GPU busy: {per_call_us(direct, 50, 200):8.1f} us")
        print("  stats:", dict(engine.runtime_stats()), repr(engine.cuda_graph_failure()))
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        torch.cuda._sleep(int(100 * 1.7e6))
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(20):
                direct()
            torch.cuda.synchronize()
        rows = [e for e in prof.key_averages() if e.key.startswith(("cuda", "cu", "kiln", "aten"))]
        rows.sort(key=lambda e: -e.cpu_time_total)
        print("  host calls in 20 execute_engine calls (count, total us, per call us):")
        for e in rows[:14]:
            print(f"    {e.key:40s} {e.count:5d} {e.cpu_time_total:9.1f} {e.cpu_time_total / 20:8.2f}")
        # Plain launches, same engine: a fresh module so its context starts without graphs.
        os.environ["KILN_CUDA_GRAPHS"] = "0"
        plain = kiln.compile(model, inputs=models.kiln_inputs(name, (1, batch, 32)), device="cuda:0")
        _, pengine = max(kiln.runtime.engines(plain), key=lambda e: len(e[1].input_names()))
        pdirect = lambda: op(direct_inputs, pengine)  # noqa: E731
        for _ in range(5):
            pdirect()
        print(f"  execute_engine plain:     {per_call_us(pdirect, 50, 200):8.1f} us (GPU busy)")
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
