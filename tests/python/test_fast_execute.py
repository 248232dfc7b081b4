"""The dispatcher-free engine call of compiled modules (kiln._C.execute_engine_fast, called
through kiln._codegen.execute_engine) and their direct __call__: same results and errors as
torch.ops.kiln.execute_engine, and the op's path wherever the dispatcher could behave
differently."""

from __future__ import annotations

import weakref

import pytest
import torch
from test_engine_class import mlp_engine, mlp_reference
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

import kiln
from kiln import _C

EXECUTE = torch.ops.kiln.execute_engine.default


class CountingMode(TorchDispatchMode):
    """Counts the ops that reach Python dispatch."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_fast_call_matches_the_op_and_the_reference() -> None:
    engine, w = mlp_engine()
    x = torch.randn(5, 8)
    (fast,) = _C.execute_engine_fast([x], engine)
    (op,) = EXECUTE([x], engine)
    torch.testing.assert_close(fast, op, rtol=0, atol=0)
    torch.testing.assert_close(fast, mlp_reference(x, w), rtol=1e-4, atol=1e-4)
    assert _C.execute_engine_fast((x,), engine)[0].shape == (5, 4)  # a tuple works too


def test_fast_call_raises_the_ops_errors() -> None:
    engine, _ = mlp_engine()
    for bad in (torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 9), torch.randn(9, 8)):
        with pytest.raises(ValueError) as fast:
            _C.execute_engine_fast([bad], engine)
        with pytest.raises(ValueError) as op:
            EXECUTE([bad], engine)
        assert str(fast.value) == str(op.value)
        assert "execute_engine" in str(fast.value) and "'x'" in str(fast.value)


def test_fast_call_declines_where_the_dispatcher_could_differ() -> None:
    engine, _ = mlp_engine()
    x = torch.randn(5, 8)
    assert _C.execute_engine_fast([x], object()) is None  # not an Engine
    assert _C.execute_engine_fast(x, engine) is None  # not a list
    assert _C.execute_engine_fast([x, 3], engine) is None  # not a tensor
    needs_grad = torch.randn(5, 8, requires_grad=True)
    assert _C.execute_engine_fast([needs_grad], engine) is None
    with torch.no_grad():
        assert _C.execute_engine_fast([needs_grad], engine) is not None
    with CountingMode():
        assert _C.execute_engine_fast([x], engine) is None
    with FakeTensorMode() as mode:
        fake = mode.from_tensor(x)
        assert _C.execute_engine_fast([fake], engine) is None
    assert _C.execute_engine_fast([x.to_sparse()], engine) is None
    assert _C.execute_engine_fast([torch.randn(5, 8, device="meta")], engine) is None


class TwoLayers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.b = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def compiled_two_layers() -> tuple[torch.nn.Module, torch.fx.GraphModule]:
    torch.manual_seed(1)
    model = TwoLayers().eval()
    gm = kiln.compile(model, inputs=[kiln.Input((1, 8), (4, 8), (8, 8))], device="cpu")
    assert any(n.target is EXECUTE for n in gm.graph.nodes), "the graph keeps the op"
    return model, gm


def test_compiled_module_calls_the_fast_path_and_matches_eager() -> None:
    model, gm = compiled_two_layers()
    assert "_kiln_execute_engine(" in gm.code
    assert "torch.ops.kiln.execute_engine" not in gm.code
    x = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-4, atol=1e-4)
    with CountingMode() as mode:  # under a mode the call goes through the dispatcher
        gm(x)
    assert any("kiln.execute_engine" in op for op in mode.ops)


def test_profiler_still_names_the_engine_call() -> None:
    _, gm = compiled_two_layers()
    x = torch.randn(3, 8)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        gm(x)
    assert any(e.name == "kiln::execute_engine" for e in prof.events())


def test_direct_call_still_runs_hooks_and_traces() -> None:
    model, gm = compiled_two_layers()
    call = type(gm).__dict__["__call__"]
    assert isinstance(call, _C.DirectCall) and call.fallback.__name__ == "_direct_call"
    x = torch.randn(3, 8)
    seen: list[str] = []
    pre = gm.register_forward_pre_hook(lambda mod, args: seen.append("pre"))
    post = gm.register_forward_hook(lambda mod, args, out: seen.append("post"))
    gm(x)
    pre.remove()
    post.remove()
    assert seen == ["pre", "post"]
    gm(x)
    assert seen == ["pre", "post"], "removed hooks do not run"
    traced = torch.jit.trace(gm, (x,), check_trace=False)
    assert "kiln::execute_engine" in str(traced.graph)
    torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)


def test_export_of_a_compiled_module_records_the_op() -> None:
    _, gm = compiled_two_layers()
    ep = torch.export.export(gm, (torch.randn(4, 8),))
    assert any(n.target is EXECUTE for n in ep.graph.nodes)


class TwoOutputs(TwoLayers):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.a(x))
        return self.b(h), h


class WithTorchStep(TwoLayers):
    """A block Kiln runs, an op it is told to leave to PyTorch, another block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.sigmoid(torch.relu(self.a(x))))


def engine_call(gm: torch.nn.Module):
    return type(gm).__dict__.get("_kiln_engine_call")


def test_whole_model_call_skips_the_forward_and_matches_it() -> None:
    model, gm = compiled_two_layers()
    assert engine_call(gm) is not None, "one engine on the inputs: the call takes EngineCall"
    x = torch.randn(3, 8)
    forward_calls = []
    original = gm.forward
    gm.forward = lambda *a, **k: forward_calls.append(1) or original(*a, **k)
    out = gm(x)
    assert forward_calls == [], "the generated forward did not run"
    torch.testing.assert_close(out, original(x), rtol=0, atol=0)
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)
    # Where the fast path declines, the forward runs (and through it the dispatcher).
    with CountingMode() as mode:
        gm(x)
    assert forward_calls == [1] and any("kiln.execute_engine" in op for op in mode.ops)
    with pytest.raises(TypeError):  # a wrong argument count is the forward's error
        gm(x, x)


def test_whole_model_call_keeps_the_output_structure() -> None:
    torch.manual_seed(2)
    model = TwoOutputs().eval()
    gm = kiln.compile(model, inputs=[torch.randn(3, 8)], device="cpu")
    assert engine_call(gm) is not None
    x = torch.randn(3, 8)
    out = gm(x)
    assert isinstance(out, tuple) and len(out) == 2
    for got, want in zip(out, model(x)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_whole_model_call_reads_the_engine_attribute_each_call() -> None:
    _, gm = compiled_two_layers()
    (name, _engine), = kiln.runtime.engines(gm)
    x = torch.randn(3, 8)
    other, w = mlp_engine()  # 8 -> 4 as well, other weights
    setattr(gm, name, other)
    torch.testing.assert_close(gm(x), mlp_reference(x, w), rtol=1e-4, atol=1e-4)
    setattr(gm, name, "not an engine")
    with pytest.raises(RuntimeError, match="argument 'engine'"):  # the forward's op says why
        gm(x)


def test_direct_call_declines_to_the_python_path() -> None:
    """kiln._C.DirectCall hands every call that is not plain to _direct_call: keyword
    arguments, global hooks, a compiled call; errors come through as Python exceptions."""
    model, gm = compiled_two_layers()
    x = torch.randn(3, 8)
    call = type(gm).__dict__["__call__"]
    torch.testing.assert_close(gm.__call__(x), model(x), rtol=1e-4, atol=1e-4)  # a bound method
    torch.testing.assert_close(call(gm, x), model(x), rtol=1e-4, atol=1e-4)  # called unbound
    placeholder = next(n.target for n in gm.graph.nodes if n.op == "placeholder")
    torch.testing.assert_close(gm(**{placeholder: x}), model(x), rtol=1e-4, atol=1e-4)
    seen: list[str] = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: seen.append(type(m).__name__))
    try:
        gm(x)
    finally:
        handle.remove()
    assert seen and seen[-1] == type(gm).__name__, "a global forward hook ran: the Python path"
    with pytest.raises(ValueError, match="execute_engine"):  # the engine's error, as a ValueError
        gm(torch.randn(3, 9))
    with pytest.raises(TypeError):
        _C.DirectCall(object(), lambda: None, torch.nn.modules.module, torch.compiler.is_compiling)
    # An attribute the checks read is missing: the Python path meets it and raises its error.
    del gm._forward_pre_hooks
    with pytest.raises(AttributeError, match="_forward_pre_hooks"):
        gm(x)


def test_whole_model_call_keeps_no_replaced_engine_alive() -> None:
    """EngineCall remembers the last engine's holder through a weak reference only: an engine
    replaced on the module is freed at once, and the next call runs the new one."""
    _, gm = compiled_two_layers()
    x = torch.randn(3, 8)
    gm(x)
    gm(x)  # the second call takes the remembered holder
    (name, engine), = kiln.runtime.engines(gm)
    gone = weakref.ref(engine)
    other, w = mlp_engine()
    setattr(gm, name, other)
    del engine
    assert gone() is None, "the replaced engine is freed without another call"
    torch.testing.assert_close(gm(x), mlp_reference(x, w), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gm(x), mlp_reference(x, w), rtol=1e-4, atol=1e-4)


def test_partly_compiled_modules_keep_the_forward() -> None:
    torch.manual_seed(3)
    model = WithTorchStep().eval()
    gm = kiln.compile(model, inputs=[torch.randn(3, 8)], device="cpu", min_block_size=1,
                      torch_executed_ops=[torch.ops.aten.sigmoid.default])
    assert sum(n.target is EXECUTE for n in gm.graph.nodes) == 2
    assert engine_call(gm) is None
    x = torch.randn(3, 8)
    torch.testing.assert_close(gm(x), model(x), rtol=1e-4, atol=1e-4)


def test_whole_model_call_declines_an_engine_with_too_few_outputs_without_running_it() -> None:
    torch.manual_seed(2)
    gm = kiln.compile(TwoOutputs().eval(), inputs=[torch.randn(3, 8)], device="cpu")
    (name, _engine), = kiln.runtime.engines(gm)
    one_output, _ = mlp_engine()  # the graph reads outputs 0 and 1
    setattr(gm, name, one_output)
    with pytest.raises(IndexError):  # the forward's getitem
        gm(torch.randn(3, 8))
    assert dict(one_output.runtime_stats())["calls"] == 1, "the engine ran once, in the forward"
