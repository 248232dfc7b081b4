"""torch.classes.kiln.Engine and torch.ops.kiln.execute_engine against torch eager."""

from __future__ import annotations

import base64
import copy
import io
import json

import pytest
import torch
import torch.nn.functional as F

import kiln
from kiln import _C

DType, Network = _C.DType, _C.Network


def add_weight(net: Network, name: str, t: torch.Tensor) -> int:
    return net.add_constant(
        name, DType.float32, list(t.shape), t.contiguous().numpy().tobytes()
    )


def mlp_engine(
    name: str = "mlp", metadata: str = "{}"
) -> tuple[object, dict[str, torch.Tensor]]:
    """x[batch, 8] -> linear(16) -> relu -> linear(4), batch in 1..8."""
    torch.manual_seed(0)
    w = {
        "w1": torch.randn(16, 8),
        "b1": torch.randn(16),
        "w2": torch.randn(4, 16),
        "b2": torch.randn(4),
    }
    net = Network(name)
    batch = net.add_symbol("batch", 1, 4, 8)
    x = net.add_input("x", DType.float32, [batch, 8])
    (h,) = net.add_op(
        "linear",
        [x, add_weight(net, "w1", w["w1"]), add_weight(net, "b1", w["b1"])],
        {},
        "fc1",
    )
    (h,) = net.add_op("unary", [h], {"fn": "relu"}, "act")
    (y,) = net.add_op(
        "linear",
        [h, add_weight(net, "w2", w["w2"]), add_weight(net, "b2", w["b2"])],
        {},
        "fc2",
    )
    net.mark_output(y, "y")
    engine = _C.make_engine(name, _C.build(net), ["x"], ["y"], metadata, "cpu")
    return engine, w


def mlp_reference(x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    x = x.double()
    h = torch.relu(x @ w["w1"].double().T + w["b1"].double())
    return (h @ w["w2"].double().T + w["b2"].double()).float()


def run(engine: object, *inputs: torch.Tensor) -> list[torch.Tensor]:
    return torch.ops.kiln.execute_engine(list(inputs), engine)


# Execution


def test_mlp_matches_eager() -> None:
    engine, w = mlp_engine()
    x = torch.randn(4, 8)
    (y,) = run(engine, x)
    assert y.shape == (4, 4) and y.dtype == torch.float32
    torch.testing.assert_close(y, mlp_reference(x, w), rtol=1e-4, atol=1e-4)


def test_mlp_runs_at_several_batch_sizes() -> None:
    engine, w = mlp_engine()
    for batch in (1, 3, 8):
        x = torch.randn(batch, 8)
        (y,) = run(engine, x)
        torch.testing.assert_close(y, mlp_reference(x, w), rtol=1e-4, atol=1e-4)


def test_conv_matches_eager() -> None:
    torch.manual_seed(1)
    weight, bias = torch.randn(6, 3, 3, 3), torch.randn(6)
    net = Network("conv")
    n = net.add_symbol("n", 1, 2, 4)
    x = net.add_input("x", DType.float32, [n, 3, 10, 12])
    (y,) = net.add_op(
        "conv",
        [x, add_weight(net, "w", weight), add_weight(net, "b", bias)],
        {"stride": [2, 1], "padding": [1, 2], "dilation": [1, 1], "groups": 1},
        "conv1",
    )
    net.mark_output(y, "y")
    engine = _C.make_engine("conv", _C.build(net), ["x"], ["y"], "{}", "cpu")
    inp = torch.randn(2, 3, 10, 12)
    (out,) = run(engine, inp)
    ref = F.conv2d(
        inp.double(), weight.double(), bias.double(), stride=(2, 1), padding=(1, 2)
    )
    torch.testing.assert_close(out, ref.float(), rtol=1e-4, atol=1e-4)


def test_non_contiguous_input_is_made_contiguous() -> None:
    engine, w = mlp_engine()
    x = torch.randn(8, 5).T  # [5, 8], transposed strides
    assert not x.is_contiguous()
    (y,) = run(engine, x)
    torch.testing.assert_close(y, mlp_reference(x, w), rtol=1e-4, atol=1e-4)


def test_outputs_are_fresh_tensors_each_call() -> None:
    engine, _ = mlp_engine()
    x = torch.randn(2, 8)
    (a,) = run(engine, x)
    (b,) = run(engine, x)
    assert a.data_ptr() != b.data_ptr()
    torch.testing.assert_close(a, b)


def test_inputs_bind_in_the_order_of_input_names() -> None:
    net = Network("sub")
    a = net.add_input("a", DType.float32, [3])
    b = net.add_input("b", DType.float32, [3])
    (d,) = net.add_op("binary", [a, b], {"fn": "sub"}, "d")
    net.mark_output(d, "d")
    serialized = _C.build(net)
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])
    forward = _C.make_engine("sub", serialized, ["a", "b"], ["d"], "{}", "cpu")
    reverse = _C.make_engine("sub", serialized, ["b", "a"], ["d"], "{}", "cpu")
    torch.testing.assert_close(run(forward, x, y)[0], x - y)
    torch.testing.assert_close(run(reverse, x, y)[0], y - x)
    assert reverse.input_names() == ["b", "a"]


# Errors name the engine and the binding


def test_wrong_dtype_names_the_binding() -> None:
    engine, _ = mlp_engine("blk0")
    with pytest.raises(
        ValueError,
        match="execute_engine 'blk0': input 'x' has dtype float16, engine expects float32",
    ):
        run(engine, torch.randn(2, 8, dtype=torch.float16))


def test_unsupported_torch_dtype_names_the_binding() -> None:
    engine, _ = mlp_engine("blk0")
    with pytest.raises(ValueError, match="input 'x' has dtype Double"):
        run(engine, torch.randn(2, 8, dtype=torch.float64))


def test_wrong_rank_names_the_binding() -> None:
    engine, _ = mlp_engine("blk0")
    with pytest.raises(ValueError, match="execute_engine 'blk0': input 'x' has 3 dims"):
        run(engine, torch.randn(2, 8, 1))


def test_wrong_fixed_dim_names_the_binding() -> None:
    engine, _ = mlp_engine("blk0")
    with pytest.raises(
        ValueError, match="execute_engine 'blk0': input 'x' .*dim 1 is 7"
    ):
        run(engine, torch.randn(2, 7))


def test_dim_outside_profile_names_the_binding() -> None:
    engine, _ = mlp_engine("blk0")
    with pytest.raises(ValueError, match="execute_engine 'blk0'.*'x'.*batch"):
        run(engine, torch.randn(9, 8))


def test_wrong_input_count_is_value_error() -> None:
    engine, _ = mlp_engine("blk0")
    with pytest.raises(ValueError, match="got 2 inputs, engine expects 1"):
        run(engine, torch.randn(2, 8), torch.randn(2, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_input_to_cpu_engine_names_the_binding() -> None:
    engine, _ = mlp_engine("blk0")
    with pytest.raises(ValueError, match="input 'x' is on cuda:0, engine runs on cpu"):
        run(engine, torch.randn(2, 8, device="cuda"))


@pytest.mark.skipif(_C.HAS_CUDA, reason="this build has the CUDA backend")
def test_cuda_engine_is_refused_in_a_cpu_build() -> None:
    net = Network("n")
    x = net.add_input("x", DType.float32, [2])
    net.mark_output(net.add_op("unary", [x], {"fn": "relu"})[0], "y")
    with pytest.raises(NotImplementedError, match="has no CUDA"):
        _C.make_engine("n", _C.build(net), [], [], "{}", "cuda:0")


def test_unknown_input_name_is_value_error() -> None:
    net = Network("n")
    x = net.add_input("x", DType.float32, [2])
    net.mark_output(net.add_op("unary", [x], {"fn": "relu"})[0], "y")
    with pytest.raises(ValueError, match="has no input 'z'"):
        _C.make_engine("n", _C.build(net), ["z"], ["y"], "{}", "cpu")


# The engine object


def test_engine_methods_describe_the_engine() -> None:
    engine, _ = mlp_engine("blk0", metadata='{"owned": [false]}')
    assert engine.name() == "blk0"
    assert engine.input_names() == ["x"]
    assert engine.output_names() == ["y"]
    assert engine.device() == "cpu"
    assert engine.metadata() == '{"owned": [false]}'
    info = json.loads(engine.info_json())
    assert info["inputs"][0]["shape"] == [["sym", 0], 8]
    assert info["outputs"][0]["shape"] == [["sym", 0], 4]
    assert info["outputs"][0]["shape_str"] == ["batch", "4"]
    assert info["symbols"][0] == {"name": "batch", "min": 1, "opt": 4, "max": 8}
    assert json.loads(info["metadata"]) == {"owned": [False]}


def test_serialized_is_the_built_engine_as_base64() -> None:
    net = Network("n")
    x = net.add_input("x", DType.float32, [2])
    net.mark_output(net.add_op("unary", [x], {"fn": "relu"})[0], "y")
    serialized = _C.build(net)
    engine = _C.make_engine("n", serialized, [], [], "{}", "cpu")
    assert base64.b64decode(engine.serialized()) == serialized
    assert kiln._ops.engine_bytes(engine) == serialized


def test_base64_round_trip_at_every_padding_length() -> None:
    # Engines named with 1 to 12 letters differ in size (FlatBuffers pads strings to 4 bytes),
    # so their sizes leave each remainder mod 3: the encoder's last group and the decoder's
    # padding take all three forms.
    remainders = set()
    for name in ("n" * k for k in range(1, 13)):
        net = Network(name)
        x = net.add_input("x", DType.float32, [2])
        net.mark_output(net.add_op("unary", [x], {"fn": "relu"})[0], "y")
        serialized = _C.build(net)
        remainders.add(len(serialized) % 3)
        engine = _C.make_engine(name, serialized, [], [], "{}", "cpu")
        assert base64.b64decode(engine.serialized(), validate=True) == serialized
        state, _ = engine.__getstate__()
        rebuilt = torch.classes.kiln.Engine(list(state))
        assert kiln._ops.engine_bytes(rebuilt) == serialized
    assert remainders == {0, 1, 2}


@pytest.mark.parametrize("text", ["abc", "ab=c", "a===", "ab!d", "====", "abcd=", "YQ==YQ=="])
def test_engine_text_that_is_not_base64_is_refused(text: str) -> None:
    engine, _ = mlp_engine("blk0")
    state = pickle_state(engine)
    state[3] = text
    with pytest.raises(ValueError, match="'blk0': the serialized engine is not base64 text"):
        torch.classes.kiln.Engine(state)


def pickle_state(engine: object) -> list[str]:
    """The list def_pickle gives (Python's __getstate__ pairs it with the class name)."""
    state, class_name = engine.__getstate__()
    assert class_name == "__torch__.torch.classes.kiln.Engine"
    return list(state)


def test_pickle_state_is_the_documented_list() -> None:
    engine, _ = mlp_engine("blk0", metadata='{"k": 1}')
    state = pickle_state(engine)
    assert len(state) == 7
    assert state[0] == _C.ABI_VERSION
    assert state[1] == "blk0"
    assert state[2] == "cpu"
    assert json.loads(state[4]) == ["x"] and json.loads(state[5]) == ["y"]
    assert state[6] == '{"k": 1}'


def test_torch_save_and_load_round_trip() -> None:
    engine, w = mlp_engine("blk0")
    buffer = io.BytesIO()
    torch.save(engine, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded.name() == "blk0" and loaded.input_names() == ["x"]
    x = torch.randn(3, 8)
    torch.testing.assert_close(
        run(loaded, x)[0], mlp_reference(x, w), rtol=1e-4, atol=1e-4
    )


def test_deepcopy_gives_a_working_engine() -> None:
    engine, _ = mlp_engine("blk0")
    clone = copy.deepcopy(engine)
    x = torch.randn(2, 8)
    torch.testing.assert_close(run(clone, x)[0], run(engine, x)[0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_module_with_engine_saves_and_loads() -> None:
    engine, w = mlp_engine("blk0")

    class Wrapper(torch.nn.Module):
        def __init__(self, engine: object) -> None:
            super().__init__()
            self.engine = engine

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.kiln.execute_engine([x], self.engine)[0]

    scripted = torch.jit.script(Wrapper(engine))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x = torch.randn(5, 8)
    torch.testing.assert_close(loaded(x), mlp_reference(x, w), rtol=1e-4, atol=1e-4)


def test_pickle_with_other_abi_version_is_refused_naming_both() -> None:
    engine, _ = mlp_engine("blk0")
    state = pickle_state(engine)
    state[0] = "999"
    with pytest.raises(RuntimeError) as info:
        torch.classes.kiln.Engine(state)
    assert (
        f"Kiln engine ABI version 999, this Kiln reads version {_C.ABI_VERSION}"
        in str(info.value)
    )


def test_pickle_with_missing_fields_is_refused() -> None:
    engine, _ = mlp_engine("blk0")
    state = pickle_state(engine)[:5]
    with pytest.raises(ValueError, match="5 fields"):
        torch.classes.kiln.Engine(state)


def test_fresh_engine_and_its_pickle_list_give_the_same_engine() -> None:
    # make_engine loads the build's bytes directly; the pickle list's constructor decodes them
    # from base64. Both must describe and compute the same engine.
    engine, w = mlp_engine("blk0", metadata='{"k": 1}')
    rebuilt = torch.classes.kiln.Engine(pickle_state(engine))
    assert rebuilt.info_json() == engine.info_json()
    assert rebuilt.serialized() == engine.serialized()
    assert pickle_state(rebuilt) == pickle_state(engine)
    x = torch.randn(4, 8)
    torch.testing.assert_close(run(rebuilt, x)[0], run(engine, x)[0], rtol=0, atol=0)
    torch.testing.assert_close(run(engine, x)[0], mlp_reference(x, w), rtol=1e-4, atol=1e-4)


def test_make_engine_with_corrupt_bytes_names_the_engine() -> None:
    with pytest.raises(RuntimeError, match="Kiln engine 'blk9'"):
        _C.make_engine("blk9", b"garbage bytes, not an engine", [], [], "{}", "cpu")


def test_pickle_with_corrupt_engine_is_refused() -> None:
    engine, _ = mlp_engine("blk0")
    state = pickle_state(engine)
    state[3] = base64.b64encode(b"garbage bytes, not an engine").decode()
    with pytest.raises(RuntimeError, match="Kiln engine 'blk0'"):
        torch.classes.kiln.Engine(state)


# Tracing: the fake kernel


class EngineModule(torch.nn.Module):
    def __init__(self, engine: object) -> None:
        super().__init__()
        self.engine = engine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.kiln.execute_engine([x], self.engine)[0] * 2


def test_fake_kernel_gives_output_shapes_under_fake_mode() -> None:
    engine, _ = mlp_engine("blk0")
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        (y,) = torch.ops.kiln.execute_engine([torch.empty(6, 8)], engine)
    assert tuple(y.shape) == (6, 4) and y.dtype == torch.float32


def test_export_gives_symbolic_output_shape() -> None:
    engine, w = mlp_engine("blk0")
    batch = torch.export.Dim("batch", min=2, max=8)
    ep = torch.export.export(
        EngineModule(engine), (torch.randn(4, 8),), dynamic_shapes={"x": {0: batch}}
    )
    calls = [
        n for n in ep.graph.nodes if n.target is torch.ops.kiln.execute_engine.default
    ]
    assert len(calls) == 1
    out = next(n for n in ep.graph.nodes if n.op == "output").args[0][0].meta["val"]
    assert isinstance(out.shape[0], torch.SymInt)
    assert out.shape[1] == 4
    x = torch.randn(6, 8)
    torch.testing.assert_close(
        ep.module()(x), 2 * mlp_reference(x, w), rtol=1e-4, atol=1e-4
    )
