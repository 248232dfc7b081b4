"""GPU machine diagnostic: host time of one cudaGraphLaunch of a Kiln engine (GPU idle), for a
model from bench/models.py or 'sdpa' (one attention op, 12 of them in a chain)."""
import os, sys, time, torch
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import models, kiln  # noqa: E402


class Sdpa(torch.nn.Module):
    def forward(self, q, k, v):
        for _ in range(12):
            q = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return q


def latency_ms(fn, iters=100):
    """The bench's measure (bench/run.py time_cuda): events around one call, GPU idle before."""
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); fn(); end.record(); end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[iters // 2]


def build(name, batch):
    if name == "sdpa":
        x = [torch.randn(1, 12, 128, 64, device="cuda", dtype=torch.half) for _ in range(3)]
        return kiln.compile(Sdpa().eval(), inputs=x, device="cuda:0"), x
    m = models.build_model(name, "cuda"); x = models.make_inputs(name, batch, "cuda")
    return kiln.compile(m, inputs=models.kiln_inputs(name, (1, batch, 32)), device="cuda:0"), x


name = sys.argv[1]
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
c, x = build(name, batch)
with torch.no_grad():
    for _ in range(5): c(*x)
torch.cuda.synchronize()
_, engine = max(kiln.runtime.engines(c), key=lambda e: len(e[1].input_names()))
launch = []
for _ in range(20):
    before = dict(engine.runtime_stats())["graph_launch_host_ns"]
    with torch.no_grad(): c(*x)
    launch.append((dict(engine.runtime_stats())["graph_launch_host_ns"] - before) / 1e3)
    torch.cuda.synchronize()
launch.sort()
# Back to back: each call is queued while the previous forward still runs.
before = dict(engine.runtime_stats())["graph_launch_host_ns"]
t0 = time.perf_counter()
with torch.no_grad():
    for _ in range(50): c(*x)
wall = (time.perf_counter() - t0) / 50 * 1e6
busy = (dict(engine.runtime_stats())["graph_launch_host_ns"] - before) / 50 / 1e3
torch.cuda.synchronize()
with torch.no_grad():
    lat = latency_ms(lambda: c(*x))
print(f"{name} b{batch} [{os.environ.get('PROBE_LABEL', '')}]: graph launch, GPU idle: median {launch[10]:.1f} us "
      f"(min {launch[0]:.1f}, max {launch[-1]:.1f}); back to back: launch {busy:.1f} us, call {wall:.1f} us; "
      f"latency {lat:.3f} ms; nodes {dict(engine.runtime_stats())['cuda_graph_nodes']}")
