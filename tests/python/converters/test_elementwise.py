"""Elementwise converters against eager: arithmetic, math, comparisons, logic, casts."""

from __future__ import annotations

import pytest
import torch
from kiln_testing import Case, check_case

aten = torch.ops.aten


def r(b: int, *shape: int) -> torch.Tensor:
    return torch.randn(b, *shape)


def pos(b: int, *shape: int) -> torch.Tensor:
    return torch.rand(b, *shape) + 0.1


def ints(b: int, *shape: int, lo: int = -5, hi: int = 6) -> torch.Tensor:
    return torch.randint(lo, hi, (b, *shape))


def two(b: int) -> tuple[torch.Tensor, ...]:
    return r(b, 3, 4), r(b, 3, 4)


def one(b: int) -> tuple[torch.Tensor, ...]:
    return (r(b, 3, 4),)


def nonzero_ints(b: int) -> tuple[torch.Tensor, ...]:
    y = ints(b, 3, 4, lo=1, hi=5) * (torch.randint(0, 2, (b, 3, 4)) * 2 - 1)
    return ints(b, 3, 4, lo=-20, hi=20), y


CASES = [
    Case("add", lambda x, y: x + y, two, aten.add.Tensor),
    Case("add_alpha", lambda x, y: torch.add(x, y, alpha=2.5), two, aten.add.Tensor),
    Case("add_scalar", lambda x: x + 1.5, one, aten.add.Tensor),
    Case("add_broadcast", lambda x, y: x + y[:, :1], two, aten.add.Tensor),
    Case("add_int", lambda x, y: x + y, lambda b: (ints(b, 4), ints(b, 4)), aten.add.Tensor),
    Case("add_int_float", lambda x, y: x + y, lambda b: (ints(b, 4), r(b, 4)), aten.add.Tensor),
    Case("add_int_float_scalar", lambda x: x + 0.5, lambda b: (ints(b, 4),), aten.add.Tensor),
    Case("sub", lambda x, y: x - y, two, aten.sub.Tensor),
    Case("sub_alpha", lambda x, y: torch.sub(x, y, alpha=3), two, aten.sub.Tensor),
    Case("rsub", lambda x: torch.rsub(x, 2.0), one, aten.rsub.Scalar),
    Case("mul", lambda x, y: x * y, two, aten.mul.Tensor),
    Case("mul_scalar", lambda x: x * 3, one, aten.mul.Tensor),
    Case("div", lambda x, y: x / (y.abs() + 0.5), two, aten.div.Tensor),
    Case("div_int", lambda x, y: x / y, nonzero_ints, aten.div.Tensor),
    Case(
        "div_floor",
        lambda x, y: torch.div(x, y, rounding_mode="floor"),
        nonzero_ints,
        aten.div.Tensor_mode,
    ),
    Case(
        "div_trunc",
        lambda x, y: torch.div(x, y.abs() + 0.5, rounding_mode="trunc"),
        two,
        aten.div.Tensor_mode,
    ),
    Case("floor_divide", lambda x, y: torch.floor_divide(x, y), nonzero_ints,
         aten.floor_divide.default),
    Case("remainder", lambda x, y: torch.remainder(x, y), nonzero_ints, aten.remainder.Tensor),
    Case("remainder_scalar", lambda x: x % 3, lambda b: (ints(b, 5),), aten.remainder.Scalar),
    Case("pow_scalar", lambda x: x**3, one, aten.pow.Tensor_Scalar),
    Case("pow_square", lambda x: x**2, one, aten.pow.Tensor_Scalar),
    Case("pow_frac", lambda x: x**1.7, lambda b: (pos(b, 4),), aten.pow.Tensor_Scalar),
    Case("pow_tensor", lambda x, y: x**y, lambda b: (pos(b, 4), r(b, 4)), aten.pow.Tensor_Tensor),
    Case("maximum", torch.maximum, two, aten.maximum.default),
    Case("minimum", torch.minimum, two, aten.minimum.default),
    Case("where", lambda x, y: torch.where(x > 0, x, y), two, aten.where.self),
    Case("where_scalar", lambda x: torch.where(x > 0, x, 0.5), one),
    Case(
        "masked_fill",
        lambda x: x.masked_fill(x < 0, -1.0),
        one,
        aten.masked_fill.Scalar,
    ),
    Case(
        "masked_fill_tensor",
        lambda x, v: x.masked_fill(x < 0, v[0, 0]),
        lambda b: (r(b, 4), r(b, 4)),
        None,
    ),
    Case("clamp", lambda x: torch.clamp(x, -0.5, 0.5), one, aten.clamp.default),
    Case("clamp_min", lambda x: torch.clamp_min(x, 0.1), one, aten.clamp_min.default),
    Case("clamp_max", lambda x: torch.clamp_max(x, 0.1), one, aten.clamp_max.default),
    Case(
        "clamp_tensor",
        lambda x, lo: torch.clamp(x, min=lo, max=lo + 1),
        two,
        aten.clamp.Tensor,
    ),
    Case("clamp_int", lambda x: torch.clamp(x, -2, 3), lambda b: (ints(b, 6),), aten.clamp.default),
    Case("hardtanh", torch.nn.Hardtanh(-0.3, 0.7), one, aten.hardtanh.default),
    Case("relu6", torch.nn.ReLU6(), lambda b: (r(b, 6) * 8,), aten.hardtanh.default),
    Case("to_half", lambda x: x.to(torch.float16), one, aten._to_copy.default, atol=1e-3),
    Case("to_bf16", lambda x: x.to(torch.bfloat16), one, aten._to_copy.default, atol=1e-2),
    Case("to_int", lambda x: (x * 4).to(torch.int32), one, aten._to_copy.default),
    Case("to_bool", lambda x: x.round().to(torch.bool), one, aten._to_copy.default),
    Case("int_to_float", lambda x: x.float() * 0.5, lambda b: (ints(b, 4),), aten._to_copy.default),
    Case("isnan", lambda x: torch.isnan(x / x), one, aten.isnan.default),
]

UNARY = [
    "neg", "abs", "exp", "sin", "cos", "tanh", "sigmoid", "relu", "erf", "floor", "ceil",
    "round", "sign", "expm1", "trunc",
]  # fmt: skip
for _name in UNARY:
    CASES.append(Case(_name, getattr(torch, _name), one, getattr(aten, _name).default))
for _name in ("log", "sqrt", "rsqrt", "reciprocal", "log1p"):
    CASES.append(
        Case(_name, getattr(torch, _name), lambda b: (pos(b, 3, 4),), getattr(aten, _name).default)
    )
CASES += [
    Case("neg_int", torch.neg, lambda b: (ints(b, 5),), aten.neg.default),
    Case("abs_int", torch.abs, lambda b: (ints(b, 5),), aten.abs.default),
    Case("exp_int", torch.exp, lambda b: (ints(b, 5),), aten.exp.default),
]

for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    _fn = getattr(torch, _name)
    CASES.append(
        Case(
            f"{_name}_tensor",
            _fn,
            lambda b: (ints(b, 6), ints(b, 6)),
            getattr(aten, _name).Tensor,
        )
    )
    CASES.append(
        Case(
            f"{_name}_scalar",
            lambda x, _fn=_fn: _fn(x, 1),
            lambda b: (ints(b, 6),),
            getattr(aten, _name).Scalar,
        )
    )
CASES.append(Case("lt_mixed", lambda x, y: x < y, lambda b: (ints(b, 6), r(b, 6)), aten.lt.Tensor))


def bools(b: int) -> tuple[torch.Tensor, ...]:
    return torch.rand(b, 6) > 0.5, torch.rand(b, 6) > 0.5


for _name in ("logical_and", "logical_or", "logical_xor"):
    CASES.append(Case(_name, getattr(torch, _name), bools, getattr(aten, _name).default))
    CASES.append(
        Case(f"{_name}_float", getattr(torch, _name), lambda b: (ints(b, 6), r(b, 6)))
    )
CASES.append(
    Case("logical_not", torch.logical_not, lambda b: bools(b)[:1], aten.logical_not.default)
)
for _name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
    CASES.append(
        Case(
            _name,
            getattr(torch, _name),
            lambda b: (ints(b, 6, lo=0, hi=64), ints(b, 6, lo=0, hi=64)),
            getattr(aten, _name).Tensor,
        )
    )
    CASES.append(Case(f"{_name}_bool", getattr(torch, _name), bools, getattr(aten, _name).Tensor))
CASES.append(
    Case("bitwise_not", torch.bitwise_not, lambda b: (ints(b, 6),), aten.bitwise_not.default)
)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)

