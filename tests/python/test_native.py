"""kiln._C: SymExpr, Network, attribute conversion, build, engine_info, error mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kiln  # noqa: F401  (loads kiln._C and the torch ops)
from kiln import _C

DType, Network, SymExpr = _C.DType, _C.Network, _C.SymExpr


def mlp_network(name: str = "mlp") -> tuple[Network, dict[str, torch.Tensor]]:
    """x[batch, 8] -> linear(16) -> relu -> linear(4), batch in 1..8."""
    torch.manual_seed(0)
    weights = {
        "w1": torch.randn(16, 8),
        "b1": torch.randn(16),
        "w2": torch.randn(4, 16),
        "b2": torch.randn(4),
    }
    net = Network(name)
    batch = net.add_symbol("batch", 1, 4, 8)
    x = net.add_input("x", DType.float32, [batch, 8])
    consts = {
        k: net.add_constant(k, DType.float32, list(v.shape), v.numpy().tobytes())
        for k, v in weights.items()
    }
    (h,) = net.add_op("linear", [x, consts["w1"], consts["b1"]], {}, "fc1")
    (h,) = net.add_op("unary", [h], {"fn": "relu"}, "act")
    (y,) = net.add_op("linear", [h, consts["w2"], consts["b2"]], {}, "fc2")
    net.mark_output(y, "y")
    return net, weights


# SymExpr


def test_symexpr_constants_fold() -> None:
    e = SymExpr(3) + 4
    assert e.is_constant()
    assert e.constant() == 7
    assert e == 7 and e == SymExpr(7)
    assert hash(e) == hash(7)


def test_symexpr_arithmetic_with_ints_on_either_side() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 4, 64)
    assert not s.is_constant()
    assert (s * 3 + 1).evaluate([5]) == 16
    assert (2 * s).evaluate([5]) == 10
    assert (100 - s).evaluate([5]) == 95
    assert (7 + s).evaluate([5]) == 12
    assert (30 // s).evaluate([4]) == 7
    assert (30 % s).evaluate([4]) == 2


def test_symexpr_floordiv_and_mod_follow_python() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 4, 64)
    e = s - 11
    assert (e // 3).evaluate([1]) == -10 // 3
    assert (e % 3).evaluate([1]) == -10 % 3


def test_sym_max_and_sym_min() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 4, 64)
    assert _C.sym_max(s, 10).evaluate([3]) == 10
    assert _C.sym_max(s, 10).evaluate([30]) == 30
    assert _C.sym_min(4, s).evaluate([3]) == 3
    assert _C.sym_max(2, 5) == 5


def test_symexpr_equality_is_structural() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 4, 64)
    assert s * 2 == s * 2
    assert s * 2 != s * 3
    assert str(s * 2) == str(s * 2)


def test_symexpr_constant_of_symbol_raises_value_error() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 4, 64)
    with pytest.raises(ValueError, match="not a constant"):
        s.constant()


def test_symexpr_rejects_non_int_operands() -> None:
    with pytest.raises(TypeError):
        SymExpr(1) + 1.5
    with pytest.raises(TypeError):
        SymExpr("3")


# Network


def test_add_input_records_dtype_shape_and_name() -> None:
    net = Network("n")
    b = net.add_symbol("b", 1, 2, 4)
    x = net.add_input("x", DType.float16, [b, 3])
    assert net.dtype(x) == DType.float16
    shape = net.shape(x)
    assert shape[0] == b and shape[1] == 3
    assert net.tensor_name(x) == "x"


def test_add_op_infers_output_and_lists_kinds() -> None:
    net = Network("n")
    x = net.add_input("x", DType.float32, [2, 3])
    (y,) = net.add_op("unary", [x], {"fn": "relu"}, "act")
    assert net.shape(y) == [2, 3]
    assert net.dtype(y) == DType.float32
    assert net.num_ops() == 1
    assert net.op_kinds() == ["unary"]
    net.mark_output(y, "y")
    net.verify()
    assert "act" in str(net)


def test_add_constant_accepts_numpy_and_bytes() -> None:
    net = Network("n")
    a = net.add_constant("a", DType.float32, [2, 2], np.ones((2, 2), np.float32))
    b = net.add_constant(
        "b",
        DType.bfloat16,
        [3],
        torch.ones(3, dtype=torch.bfloat16).view(torch.uint8).numpy(),
    )
    c = net.add_constant("c", DType.int64, [1], bytes(8))
    assert [net.shape(t) for t in (a, b, c)] == [[2, 2], [3], [1]]
    assert net.dtype(b) == DType.bfloat16


def test_add_constant_with_wrong_byte_count_raises_value_error() -> None:
    net = Network("n")
    with pytest.raises(ValueError, match="w"):
        net.add_constant("w", DType.float32, [2, 2], bytes(12))


def test_add_constant_rejects_non_contiguous_buffer() -> None:
    net = Network("n")
    data = np.ones((4, 4), np.float32)[:, ::2]
    with pytest.raises(TypeError, match="add_constant 'w'.*C-contiguous"):
        net.add_constant("w", DType.float32, [4, 2], data)


def test_add_op_with_unknown_tensor_id_names_the_op() -> None:
    net = Network("n")
    with pytest.raises(ValueError, match="add_op unary 'act'.*tensor id 5"):
        net.add_op("unary", [5], {"fn": "relu"}, "act")


def test_add_op_with_unknown_kind_raises() -> None:
    net = Network("n")
    x = net.add_input("x", DType.float32, [2])
    with pytest.raises((ValueError, RuntimeError), match="frobnicate"):
        net.add_op("frobnicate", [x], {})


def test_add_op_shape_error_is_value_error_naming_the_op() -> None:
    net = Network("n")
    x = net.add_input("x", DType.float32, [2, 3])
    w = net.add_constant("w", DType.float32, [4, 5], bytes(80))
    with pytest.raises(ValueError, match="fc"):
        net.add_op("linear", [x, w], {}, "fc")


# Attribute conversion (python_api.md)


def test_attr_scalars_convert_by_python_type() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 2, 4)
    got = _C._convert_attrs(
        {
            "b": True,
            "i": 3,
            "f": 0.5,
            "s": "relu",
            "d": DType.int8,
            "e": s,
            "n": np.int64(7),
        }
    )
    assert got["b"] == ("bool", True)
    assert got["i"] == ("int", 3)
    assert got["f"] == ("float", 0.5)
    assert got["s"] == ("str", "relu")
    assert got["d"] == ("dtype", DType.int8)
    assert got["e"][0] == "sym" and got["e"][1] == s
    assert got["n"] == ("int", 7)


def test_attr_bool_is_not_an_int() -> None:
    assert _C._convert_attrs({"x": False}) == {"x": ("bool", False)}


def test_attr_lists_convert_by_contents() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 2, 4)
    got = _C._convert_attrs(
        {
            "empty": [],
            "ints": (1, -2, 3),
            "floats": [1.5, 2.0],
            "mixed": [1, 2.5],
            "shape": [s, 4],
        }
    )
    assert got["empty"] == ("ints", [])
    assert got["ints"] == ("ints", [1, -2, 3])
    assert got["floats"] == ("floats", [1.5, 2.0])
    assert got["mixed"] == ("floats", [1.0, 2.5])
    kind, shape = got["shape"]
    assert (
        kind == "shape" and shape[0] == s and shape[1].is_constant() and shape[1] == 4
    )


def test_attr_none_is_left_out() -> None:
    assert _C._convert_attrs({"scale": None, "dim": 1}) == {"dim": ("int", 1)}


def test_attr_unsupported_types_raise_type_error_naming_the_attribute() -> None:
    net = Network("n")
    s = net.add_symbol("s", 1, 2, 4)
    with pytest.raises(TypeError, match="attribute 'x'"):
        _C._convert_attrs({"x": {"a": 1}})
    with pytest.raises(TypeError, match="attribute 'y'.*mixes"):
        _C._convert_attrs({"y": [s, 1.5]})
    with pytest.raises(TypeError, match="attribute 'z'"):
        _C._convert_attrs({"z": [1, "a"]})


# Error mapping


@pytest.mark.parametrize(
    "code, exc",
    [
        ("invalid_argument", ValueError),
        ("out_of_range", ValueError),
        ("unsupported", NotImplementedError),
        ("not_found", RuntimeError),
        ("corrupt_file", RuntimeError),
        ("internal", RuntimeError),
    ],
)
def test_status_maps_to_python_exception_with_message_intact(
    code: str, exc: type
) -> None:
    message = "conv 'layer1.conv1': weight has 3 dims, expected 4"
    with pytest.raises(exc) as info:
        _C._raise_status(code, message)
    assert type(info.value) is exc
    assert str(info.value) == message


# build / engine_info


def test_build_returns_engine_bytes_that_engine_info_describes() -> None:
    net, _ = mlp_network()
    engine = _C.build(net, profile={"batch": (1, 4, 8)})
    assert isinstance(engine, bytes) and len(engine) > 0
    info = _C.engine_info(engine)
    assert info["name"] == "mlp"
    assert [s["name"] for s in info["symbols"]] == ["batch"]
    assert (info["symbols"][0]["min"], info["symbols"][0]["max"]) == (1, 8)
    bindings = {b["name"]: b for b in info["bindings"]}
    assert bindings["x"]["is_input"] and not bindings["y"]["is_input"]
    assert bindings["x"]["shape"] == ["batch", "8"]
    assert bindings["y"]["shape"] == ["batch", "4"]
    assert bindings["y"]["dtype"] == DType.float32
    assert info["constant_bytes"] >= 4 * (16 * 8 + 16 + 4 * 16 + 4)
    assert len(info["steps"]) >= 2


def test_build_reports_progress() -> None:
    net, _ = mlp_network()
    calls: list[tuple[str, int, int]] = []
    _C.build(
        net, progress=lambda stage, done, total: calls.append((stage, done, total))
    )
    assert calls
    assert all(isinstance(s, str) and done <= total for s, done, total in calls)


def test_build_progress_exception_propagates() -> None:
    net, _ = mlp_network()

    def progress(stage: str, done: int, total: int) -> None:
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        _C.build(net, progress=progress)


def test_engine_info_of_garbage_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        _C.engine_info(b"not an engine at all, just some bytes")


def test_engine_info_on_cuda_device_is_not_implemented() -> None:
    net, _ = mlp_network()
    engine = _C.build(net)
    with pytest.raises(NotImplementedError, match="cuda"):
        _C.engine_info(engine, device="cuda:0")


def test_abi_version_is_a_string() -> None:
    assert isinstance(_C.ABI_VERSION, str) and _C.ABI_VERSION
