"""The runtime side of compiled graphs: the stream ops graphs with several engines carry, pre-allocated
outputs (CPU and CUDA), and on the GPU: the caller's stream, no host synchronization between
engines separated by graph breaks, and the same results on the default and a user stream."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from kiln_testing import EXECUTE_ENGINE, assert_close, engines_of
from torch import nn

import kiln

ENTER = torch.ops.kiln.enter_compute_stream.default
EXIT = torch.ops.kiln.exit_compute_stream.default


class ThreeEngines(nn.Module):
    """Linear -> tanh -> Linear -> tanh -> Linear: with tanh kept in PyTorch, three engines
    separated by two graph breaks."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(width, width) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.fc[0](x))
        x = torch.tanh(self.fc[1](x))
        return self.fc[2](x)


def _compile_three(device: str, dtype: torch.dtype = torch.float32, width: int = 64) -> tuple:
    model = ThreeEngines(width).eval().to(device, dtype)
    inputs = [kiln.Input((1, width), (4, width), (8, width), dtype=dtype)]
    compiled = kiln.compile(
        model,
        inputs=inputs,
        device=device,
        min_block_size=1,
        torch_executed_ops=["aten.tanh.default"],
    )
    assert len(engines_of(compiled)) == 3
    return model, compiled


class EngineOutputs(torch.fx.Interpreter):
    """Runs a compiled graph and keeps what each execute_engine call returned."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.engine_outputs: list[list[torch.Tensor]] = []

    def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
        out = super().call_function(target, args, kwargs)
        if target is EXECUTE_ENGINE:
            self.engine_outputs.append(list(out))
        return out


def _run_recording(gm: torch.fx.GraphModule, x: torch.Tensor) -> tuple[Any, list[list[torch.Tensor]]]:
    interp = EngineOutputs(gm)
    with torch.no_grad():
        out = interp.run(x)
    return out, interp.engine_outputs


def test_compiled_graph_enters_and_exits_the_compute_stream_once() -> None:
    _, compiled = _compile_three("cpu")
    nodes = [n for n in compiled.graph.nodes if n.op == "call_function"]
    targets = [n.target for n in nodes]
    assert targets.count(ENTER) == 1 and targets.count(EXIT) == 1
    # enter before every engine and PyTorch op, exit after all of them.
    assert targets[0] is ENTER and targets[-1] is EXIT
    exit_node = nodes[-1]
    output = next(n for n in compiled.graph.nodes if n.op == "output")
    assert set(exit_node.args[0]) == set(output.all_input_nodes)


class OneEngine(nn.Module):
    """Linear -> GELU -> Linear, all of it one engine."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def _compile_one(device: str, width: int = 64) -> tuple:
    model = OneEngine(width).eval().to(device)
    compiled = kiln.compile(model, inputs=[kiln.Input(shape=(8, width))], device=device)
    assert len(engines_of(compiled)) == 1
    return model, compiled


def test_one_engine_graph_has_no_stream_ops() -> None:
    """A graph that is one engine call has nothing to order: no enter / exit pair."""
    model, compiled = _compile_one("cpu")
    targets = [n.target for n in compiled.graph.nodes if n.op == "call_function"]
    assert ENTER not in targets and EXIT not in targets
    assert targets.count(EXECUTE_ENGINE) == 1
    x = torch.randn(8, 64)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-5, 1e-5)


def test_stream_ops_survive_save_and_load(tmp_path: Any) -> None:
    model, compiled = _compile_three("cpu")
    path = tmp_path / "three.pt2"
    kiln.save(compiled, path, [kiln.Input((1, 64), (4, 64), (8, 64))])
    loaded = kiln.load(path)
    targets = [n.target for n in loaded.graph.nodes if n.op == "call_function"]
    assert targets.count(ENTER) == 1 and targets.count(EXIT) == 1
    x = torch.randn(3, 64)
    with torch.no_grad():
        assert_close(loaded(x), model(x), 1e-5, 1e-5)


def _check_pre_allocated(model: nn.Module, compiled: torch.fx.GraphModule, device: str,
                         atol: float) -> None:
    assert kiln.runtime.enable_pre_allocated_outputs(compiled) == 3
    x = torch.randn(4, 64, device=device, dtype=next(model.parameters()).dtype)
    out1, rec1 = _run_recording(compiled, x)
    kept = out1.clone()
    out2, rec2 = _run_recording(compiled, x)
    # Engines 0 and 1 feed only tanh inside the graph: their buffers are reused.
    for i in (0, 1):
        assert rec1[i][0].data_ptr() == rec2[i][0].data_ptr(), f"engine {i} reallocated"
    # Engine 2's output is what the user gets: a new tensor each call, the old one intact.
    assert rec1[2][0].data_ptr() != rec2[2][0].data_ptr()
    assert out1.data_ptr() != out2.data_ptr()
    assert torch.equal(out1, kept)
    with torch.no_grad():
        assert_close(out2, model(x), atol, atol)
    # A shape change reallocates the owned buffers and stays correct.
    y = torch.randn(7, 64, device=device, dtype=x.dtype)
    out3, rec3 = _run_recording(compiled, y)
    for i in (0, 1):
        assert rec3[i][0].shape[0] == 7
        assert rec3[i][0].data_ptr() != rec2[i][0].data_ptr() or rec3[i][0].numel() != rec2[i][0].numel()
    with torch.no_grad():
        assert_close(out3, model(y), atol, atol)
    # Turned off: every output is fresh again.
    kiln.runtime.enable_pre_allocated_outputs(compiled, False)
    _, rec4 = _run_recording(compiled, y)
    _, rec5 = _run_recording(compiled, y)
    assert rec4[0][0].data_ptr() != rec5[0][0].data_ptr() or not rec4[0][0].is_cuda


def test_pre_allocated_outputs_cpu() -> None:
    model, compiled = _compile_three("cpu")
    _check_pre_allocated(model, compiled, "cpu", 1e-5)


def test_pre_allocated_outputs_need_an_engine() -> None:
    with pytest.raises(ValueError, match="holds no Kiln engine"):
        kiln.runtime.enable_pre_allocated_outputs(nn.Linear(2, 2))


def test_owned_flags_come_from_escape_analysis() -> None:
    _, compiled = _compile_three("cpu")
    flags = [kiln.runtime._owned_flags(e) for _, e in kiln.runtime.engines(compiled)]
    assert sorted(flags) == [[False], [True], [True]]


class ConstantBlock(nn.Module):
    """arange * 2 + 1 needs no input: with tanh kept in PyTorch it becomes an engine with no
    inputs, whose execute_engine call dispatches on no tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = torch.arange(16, dtype=torch.float32, device=x.device).reshape(4, 4) * 2.0 + 1.0
        return torch.tanh(c) + x


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda:0", marks=pytest.mark.gpu)])
def test_engine_with_no_inputs(device: str) -> None:
    model = ConstantBlock()
    x = torch.randn(4, 4, device=device)
    compiled = kiln.compile(model, inputs=[x], device=device, min_block_size=1,
                            torch_executed_ops=["aten.tanh.default"])  # fmt: skip
    calls = [n for n in compiled.graph.nodes if n.target is EXECUTE_ENGINE]
    assert any(not n.args[0] for n in calls), "expected an engine with no inputs"
    with torch.no_grad():
        out = compiled(x)
    assert out.device == x.device
    assert_close(out, model(x), 1e-5, 1e-5)


def test_runtime_stats_count_calls_cpu() -> None:
    _, compiled = _compile_three("cpu")
    x = torch.randn(4, 64)
    with torch.no_grad():
        for _ in range(3):
            compiled(x)
    stats = kiln.runtime.stats(compiled)
    assert len(stats) == 3
    for entry in stats.values():
        assert entry["calls"] == 3
        assert entry["cuda_graph_replays"] == 0 and entry["plain_launches"] == 0
        assert entry["cuda_graph_failure"] == ""
        assert entry["cuda_graph_nodes"] == 0 and entry["graph_launch_host_ns"] == 0
        assert entry["cuda_graph_prefetch_nodes"] == 0 and entry["l2_prefetch"] == ""
        # The runtime's enqueue (here the whole CPU run) is part of the execute_engine call.
        assert 0 < entry["enqueue_host_ns"] <= entry["execute_host_ns"], entry


# ---------------------------------------------------------------------------------------------
# CUDA


@pytest.mark.gpu
@pytest.mark.parametrize("pre_allocated", [False, True])
def test_compiled_graph_replays_cuda_graphs(pre_allocated: bool) -> None:
    """Called from PyTorch (fresh output tensors, torch's current stream), each engine captures
    once, then replays: no kernel-by-kernel launches after the warm-up."""
    model, compiled = _compile_three("cuda:0", dtype=torch.float16, width=256)
    if pre_allocated:
        kiln.runtime.enable_pre_allocated_outputs(compiled)
    x = torch.randn(8, 256, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        ref = model(x)
        for _ in range(10):
            out = compiled(x)
    torch.cuda.synchronize()
    assert_close(out, ref, 2e-2, 2e-2)
    for name, entry in kiln.runtime.stats(compiled).items():
        assert entry["cuda_graph_failure"] == "", (name, entry)
        assert entry["calls"] == 10, (name, entry)
        assert entry["cuda_graph_replays"] >= 7, (name, entry)
        assert entry["plain_launches"] <= 2, (name, entry)
        assert entry["cuda_graph_nodes"] > 0, (name, entry)
        # Three small linears: their weights stay in L2, so no prefetch branch, and it says why.
        assert entry["cuda_graph_prefetch_nodes"] == 0, (name, entry)
        assert entry["l2_prefetch"].startswith("off: "), (name, entry)
        assert 0 < entry["graph_launch_host_ns"] < entry["enqueue_host_ns"], (name, entry)
        assert entry["enqueue_host_ns"] < entry["execute_host_ns"], (name, entry)


@pytest.mark.gpu
def test_pre_allocated_outputs_cuda() -> None:
    model, compiled = _compile_three("cuda:0")
    _check_pre_allocated(model, compiled, "cuda", 1e-4)


@pytest.mark.gpu
def test_execute_engine_runs_on_the_current_stream() -> None:
    model, compiled = _compile_three("cuda:0", width=256)
    x = torch.randn(8, 256, device="cuda")
    with torch.no_grad():
        ref = model(x)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        compiled(x)  # warm up (contexts, workspaces, CUDA graph capture): host time, not queued
        stream.synchronize()
        torch.cuda._sleep(200_000_000)  # keeps `stream` busy ~100 ms
        out = compiled(x)
        # Our work is queued behind the sleep on `stream`: the default stream stays idle.
        assert torch.cuda.default_stream().query()
        assert not stream.query()
    stream.synchronize()
    assert_close(out, ref, 1e-4, 1e-4)


def _host_return_while_busy(compiled: torch.fx.GraphModule, x: torch.Tensor) -> tuple:
    """Queues a long kernel on the current stream, then calls the compiled graph: returns the
    host time of the call and whether the stream was still busy when it returned."""
    torch.cuda._sleep(200_000_000)  # ~100 ms on an H100
    t0 = time.perf_counter()
    with torch.no_grad():
        out = compiled(x)
    elapsed = time.perf_counter() - t0
    busy = not torch.cuda.current_stream().query()
    return out, elapsed, busy


@pytest.mark.gpu
def test_three_engines_do_not_synchronize_the_host() -> None:
    model, compiled = _compile_three("cuda:0", width=512)
    x = torch.randn(8, 512, device="cuda")
    with torch.no_grad():
        ref = model(x)
        compiled(x)  # warm up: contexts, workspaces
    torch.cuda.synchronize()
    # Default stream: enter moves the work to a compute stream that waits on the default one.
    out_default, t_default, busy_default = _host_return_while_busy(compiled, x)
    assert busy_default, "the host waited for the device inside the compiled call"
    assert t_default < 0.05, f"compiled call took {t_default * 1e3:.1f} ms on the host"
    torch.cuda.synchronize()
    # User stream: the ops do nothing, everything runs on the user's stream.
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out_user, t_user, busy_user = _host_return_while_busy(compiled, x)
        assert busy_user and t_user < 0.05
        assert torch.cuda.default_stream().query(), "work leaked onto the default stream"
    torch.cuda.synchronize()
    assert_close(out_default, ref, 1e-4, 1e-4)
    assert torch.equal(out_default, out_user)
    print(f"host time per 3-engine call behind a busy stream: default {t_default * 1e6:.0f} us, "
          f"user stream {t_user * 1e6:.0f} us")


@pytest.mark.gpu
def test_exit_makes_the_default_stream_wait() -> None:
    """A result read on the default stream right after the call is complete and correct: the
    default stream waited on the compute stream (no host sync needed by the caller)."""
    model, compiled = _compile_three("cuda:0", width=512)
    x = torch.randn(8, 512, device="cuda")
    with torch.no_grad():
        ref = model(x)
        for _ in range(3):
            torch.cuda._sleep(20_000_000)
            out = compiled(x)
            host = out.sum().item()  # .item() syncs the default stream only
            assert abs(host - ref.sum().item()) < 1e-2 * max(1.0, abs(host))


@pytest.mark.gpu
def test_one_engine_runs_on_the_default_stream() -> None:
    """With no stream ops, a one-engine graph called on the default stream queues its work on
    that stream: a result read there right after the call (.item() waits for the default stream
    only) is complete, and the host did not wait for the device."""
    model, compiled = _compile_one("cuda:0", width=1024)
    x = torch.randn(8, 1024, device="cuda")
    with torch.no_grad():
        ref = model(x).sum().item()
        # Warm up in the loop's own pattern: each call's result is still alive at the next call,
        # so the output address alternates and the runtime stages it (a recapture, milliseconds
        # of host time by design, happens here and not in the timed calls).
        out = None
        for _ in range(3):
            out = compiled(x)
        torch.cuda.synchronize()
        for _ in range(3):
            torch.cuda._sleep(50_000_000)  # ~25 ms on an H100
            t0 = time.perf_counter()
            out = compiled(x)
            elapsed = time.perf_counter() - t0
            assert not torch.cuda.default_stream().query()
            assert elapsed < 0.01, f"the call took {elapsed * 1e3:.1f} ms on the host"
            got = out.sum().item()
            assert abs(got - ref) < 1e-2 * max(1.0, abs(ref)), (got, ref)


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.fc(x))
        return h + y, h * 2


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": torch.relu(self.fc(x)) * scale}


def test_compiled_forward_binds_plain_arguments_without_pytree() -> None:
    """Positional tensor inputs and a flat tuple result: forward binds and returns them directly
    (no tree_flatten_spec / tree_unflatten per call) and matches PyTorch, by position and by
    keyword; a single result is returned bare."""
    model = TwoOutputs().eval()
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    compiled = kiln.compile(model, inputs=[x, y], device="cpu", min_block_size=1)
    assert "tree_flatten_spec" not in compiled.code and "tree_unflatten" not in compiled.code
    with torch.no_grad():
        want = model(x, y)
        for got in (compiled(x, y), compiled(x, y=y), compiled(y=y, x=x)):
            assert isinstance(got, tuple) and len(got) == 2
            for g, w in zip(got, want):
                assert_close(g, w, 1e-5, 1e-5)
    single = kiln.compile(ThreeEngines(8).eval(), inputs=[x], device="cpu", min_block_size=1)
    assert "tree_unflatten" not in single.code
    with torch.no_grad():
        assert isinstance(single(x), torch.Tensor)


def test_compiled_forward_keeps_pytree_for_keywords_and_dicts() -> None:
    """Keyword-only inputs and dict results keep torch's pytree code, and still match."""
    model = DictOutput().eval()
    x, scale = torch.randn(4, 8), torch.randn(1, 8)
    ep = torch.export.export(model, (x,), {"scale": scale})
    compiled = kiln.compile(ep, device="cpu", min_block_size=1)
    assert "tree_flatten_spec" in compiled.code and "tree_unflatten" in compiled.code
    with torch.no_grad():
        got = compiled(x, scale=scale)
        assert set(got) == {"out"}
        assert_close(got["out"], model(x, scale=scale)["out"], 1e-5, 1e-5)


def test_compiled_and_loaded_modules_have_no_per_call_hooks(tmp_path: Any) -> None:
    """ep.module()'s input-constraint hook and its nn.Module-input pytree hooks (no-ops with
    tensor inputs) are gone from kiln.compile's and kiln.load's modules, so a call takes
    nn.Module's fast path; results are unchanged, and a loaded module still takes every batch
    of its kiln.Input range."""
    model = TwoOutputs().eval()
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    inputs = [kiln.Input(min_shape=(1, 8), opt_shape=(4, 8), max_shape=(16, 8))] * 2
    compiled = kiln.compile(model, inputs=inputs, device="cpu", min_block_size=1)
    kiln.save(compiled, tmp_path / "m.pt2", inputs=inputs)
    loaded = kiln.load(tmp_path / "m.pt2")
    for module in (compiled, loaded):
        assert not module._forward_pre_hooks and not module._forward_hooks
        with torch.no_grad():
            for batch in (1, 4, 16):
                xb, yb = x.repeat(4, 1)[:batch], y.repeat(4, 1)[:batch]
                for g, w in zip(module(xb, yb), model(xb, yb)):
                    assert_close(g, w, 1e-5, 1e-5)


def test_module_input_hooks_that_do_something_are_kept() -> None:
    """Only a hook of torch.export's with an empty `module_types` counts as a no-op."""
    from kiln._codegen import _is_noop_module_input_hook

    def _create_stateful_graph_module(module_types: set) -> Any:  # torch.export's closure shape
        return lambda *args, **kwargs: [t for t in module_types]

    assert _is_noop_module_input_hook(_create_stateful_graph_module(set()))
    assert not _is_noop_module_input_hook(_create_stateful_graph_module({nn.Linear}))
    assert not _is_noop_module_input_hook(lambda *args: None)


def test_engine_argument_does_not_hide_torch_function_modes() -> None:
    """kiln gives torch.ScriptObject the 'no override' __torch_function__ (a lookup through its
    __getattr__ raised and caught an exception on every execute_engine call); a
    TorchFunctionMode still sees every execute_engine call, and results are unchanged."""
    from torch.overrides import TorchFunctionMode

    assert torch._C.ScriptObject.__torch_function__ is torch._C._disabled_torch_function_impl

    class Seen(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            self.calls += func is EXECUTE_ENGINE
            return func(*args, **(kwargs or {}))

    model, compiled = _compile_three("cpu")
    x = torch.randn(4, 64)
    with torch.no_grad():
        want = model(x)
        with Seen() as mode:
            got = compiled(x)
    assert mode.calls == 3
    assert_close(got, want, 1e-5, 1e-5)
