"""Elementwise arithmetic, math functions, comparisons, logical/bitwise ops, where, casts."""

from __future__ import annotations

from typing import Any

import torch

from kiln import _dtypes
from kiln.converters._args import Args, dtype_of, is_tensor, only_first_output_used, val
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter

aten = torch.ops.aten
Node = torch.fx.Node


def _out_dtype(node: Node) -> torch.dtype:
    return node.meta["val"].dtype


def _arith_validator(node: Node) -> bool | str:
    dt = _out_dtype(node)
    if dt == torch.bool:
        return "arithmetic on bool tensors"
    return True


def _float_result(node: Node) -> bool | str:
    if _out_dtype(node) not in _dtypes.FLOAT_DTYPES:
        return f"needs a floating result, got {_out_dtype(node)}"
    return True


# -- binary arithmetic ---------------------------------------------------------------------


def _scaled(ctx: ConversionContext, x: Any, alpha: Any, dtype: torch.dtype) -> int:
    t = ctx.tensor(x, dtype=dtype)
    if alpha is None or alpha == 1:
        return t
    return ctx.binary("mul", t, ctx.scalar(alpha, dtype))


@converter(aten.add.Tensor, aten.add.Scalar, validator=_arith_validator)
def add(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("add", ctx.tensor(a.self, dt), _scaled(ctx, a.other, a.alpha, dt))


@converter(aten.sub.Tensor, aten.sub.Scalar, validator=_arith_validator)
def sub(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("sub", ctx.tensor(a.self, dt), _scaled(ctx, a.other, a.alpha, dt))


@converter(aten.rsub.Tensor, aten.rsub.Scalar, validator=_arith_validator)
def rsub(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("sub", ctx.tensor(a.other, dt), _scaled(ctx, a.self, a.alpha, dt))


@converter(aten.mul.Tensor, aten.mul.Scalar, validator=_arith_validator)
def mul(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("mul", ctx.tensor(a.self, dt), ctx.tensor(a.other, dt))


@converter(aten.div.Tensor, aten.div.Scalar, validator=_float_result)
def div(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("div", ctx.tensor(a.self, dt), ctx.tensor(a.other, dt))


def _div_mode_validator(node: Node) -> bool | str:
    mode = node.kwargs.get("rounding_mode", node.args[2] if len(node.args) > 2 else None)
    dt = _out_dtype(node)
    if dt == torch.bool:
        return "division of bool tensors"
    if mode == "trunc" and dt not in _dtypes.FLOAT_DTYPES:
        return "integer division with rounding_mode='trunc'"
    if mode is None and dt not in _dtypes.FLOAT_DTYPES:
        return f"true division with result dtype {dt}"
    return True


@converter(aten.div.Tensor_mode, aten.div.Scalar_mode, validator=_div_mode_validator)
def div_mode(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    x, y = ctx.tensor(a.self, dt), ctx.tensor(a.other, dt)
    if a.rounding_mode == "floor":
        return ctx.binary("floor_divide", x, y)
    q = ctx.binary("div", x, y)
    if a.rounding_mode == "trunc":
        return trunc_of(ctx, q)
    return q


def trunc_of(ctx: ConversionContext, x: int) -> int:
    """trunc(x) = x < 0 ? ceil(x) : floor(x)."""
    neg = ctx.binary("lt", x, ctx.scalar(0, ctx.dtype(x)))
    return ctx.add("where", [neg, ctx.unary("ceil", x), ctx.unary("floor", x)])


@converter(aten.floor_divide.default, validator=_arith_validator)
def floor_divide(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("floor_divide", ctx.tensor(a.self, dt), ctx.tensor(a.other, dt))


@converter(aten.remainder.Tensor, aten.remainder.Scalar, validator=_arith_validator)
def remainder(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("remainder", ctx.tensor(a.self, dt), ctx.tensor(a.other, dt))


@converter(aten.maximum.default, aten.minimum.default)
def maximum(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    fn = "maximum" if node.target == aten.maximum.default else "minimum"
    return ctx.binary(fn, ctx.tensor(a.self, dt), ctx.tensor(a.other, dt))


@converter(aten.pow.Tensor_Scalar, validator=_float_result)
def pow_tensor_scalar(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    x = ctx.tensor(a.self, dt)
    e = a.exponent
    if e == 1:
        return x
    if e == 2:
        return ctx.binary("mul", x, x)
    if e == 0.5:
        return ctx.unary("sqrt", x)
    if e == -1:
        return ctx.unary("reciprocal", x)
    if e == -0.5:
        return ctx.unary("rsqrt", x)
    return ctx.binary("pow", x, ctx.scalar(e, dt))


@converter(aten.pow.Tensor_Tensor, aten.pow.Scalar, validator=_float_result)
def pow_tensor(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    return ctx.binary("pow", ctx.tensor(a.self, dt), ctx.tensor(a.exponent, dt))


# -- comparisons, logical and bitwise ops --------------------------------------------------

_COMPARE = {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}


def _compare_targets() -> list[Any]:
    out = []
    for name in _COMPARE:
        packet = getattr(aten, name)
        out += [packet.Tensor, packet.Scalar]
    return out


@converter(*_compare_targets())
def compare(ctx: ConversionContext, node: Node, a: Args) -> int:
    fn = node.target._schema.name.split("::")[1]
    x, y = ctx.promote(a.self, a.other)
    return ctx.binary(_COMPARE[fn], x, y)


def _logical(fn: str):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        return ctx.binary(fn, ctx.tensor(a.self, torch.bool), ctx.tensor(a.other, torch.bool))

    return convert


for _name in ("logical_and", "logical_or", "logical_xor"):
    converter(getattr(aten, _name).default)(_logical(_name))


def _bitwise_validator(node: Node) -> bool | str:
    dt = _out_dtype(node)
    if dt.is_floating_point:
        return f"bitwise op on {dt}"
    return True


def _bitwise(fn: str):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        dt = _out_dtype(node)
        return ctx.binary(fn, ctx.tensor(a.self, dt), ctx.tensor(a.other, dt))

    return convert


for _name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
    _packet = getattr(aten, _name)
    converter(_packet.Tensor, _packet.Scalar, validator=_bitwise_validator)(_bitwise(_name))


# -- unary math ------------------------------------------------------------------------------

# aten name -> (Kiln unary fn, whether Kiln needs a floating input)
_UNARY = {
    "neg": ("neg", False),
    "abs": ("abs", False),
    "exp": ("exp", True),
    "log": ("log", True),
    "sqrt": ("sqrt", True),
    "rsqrt": ("rsqrt", True),
    "sin": ("sin", True),
    "cos": ("cos", True),
    "tanh": ("tanh", True),
    "sigmoid": ("sigmoid", True),
    "relu": ("relu", False),
    "erf": ("erf", True),
    "reciprocal": ("reciprocal", True),
    "floor": ("floor", False),
    "ceil": ("ceil", False),
    "round": ("round", False),
    "sign": ("sign", False),
    "log1p": ("log1p", True),
    "expm1": ("expm1", True),
}

_INT_IDENTITY = {"floor", "ceil", "round"}


def _unary_validator(node: Node) -> bool | str:
    name = node.target._schema.name.split("::")[1]
    if dtype_of(node.args[0]) == torch.bool:
        return f"{name} of a bool tensor"
    return True


def _unary(name: str, fn: str, float_only: bool):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        dt = _out_dtype(node)
        x = ctx.tensor(a.self)
        if name in _INT_IDENTITY and not ctx.dtype(x).is_floating_point:
            return x
        if float_only or ctx.dtype(x) != dt:
            x = ctx.cast(x, dt)
        return ctx.unary(fn, x)

    convert.__name__ = name
    return convert


for _name, (_fn, _float_only) in _UNARY.items():
    converter(getattr(aten, _name).default, validator=_unary_validator)(
        _unary(_name, _fn, _float_only)
    )


@converter(aten.trunc.default)
def trunc(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    if not ctx.dtype(x).is_floating_point:
        return x
    return trunc_of(ctx, x)


@converter(aten.logical_not.default)
def logical_not(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.unary("logical_not", ctx.tensor(a.self, torch.bool))


@converter(aten.bitwise_not.default, validator=_bitwise_validator)
def bitwise_not(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    if ctx.dtype(x) == torch.bool:
        return ctx.unary("logical_not", x)
    return ctx.unary("bitwise_not", x)


@converter(aten.isnan.default)
def isnan(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    if not ctx.dtype(x).is_floating_point:
        false = _dtypes.to_kiln(torch.bool)
        return ctx.add("fill", [], shape=ctx.out_shape(), value=0.0, dtype=false)
    return ctx.unary("isnan", x)


# -- where, masked_fill, clamp ---------------------------------------------------------------


@converter(aten.where.self)
def where(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    cond = ctx.tensor(a.condition, torch.bool)
    return ctx.add("where", [cond, ctx.tensor(a.self, dt), ctx.tensor(a.other, dt)])


def _masked_fill_validator(node: Node) -> bool | str:
    value = node.args[2] if len(node.args) > 2 else node.kwargs.get("value")
    if is_tensor(value) and val(value).dim() != 0:
        return "masked_fill value must be a 0-dim tensor"
    return True


@converter(aten.masked_fill.Scalar, aten.masked_fill.Tensor, validator=_masked_fill_validator)
def masked_fill(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    x = ctx.tensor(a.self, dt)
    mask = ctx.tensor(a.mask, torch.bool)
    return ctx.add("where", [mask, ctx.tensor(a.value, dt), x])


def _bound(value: Any) -> float | None:
    return None if value is None else float(value)


def _clamp_validator(node: Node) -> bool | str:
    if _out_dtype(node) == torch.bool:
        return "clamp of a bool tensor"
    for v in list(node.args[1:]) + list(node.kwargs.values()):
        if isinstance(v, torch.fx.Node):
            return "clamp bound is symbolic"
    return True


@converter(aten.clamp.default, validator=_clamp_validator)
def clamp(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self, _out_dtype(node))
    if a.min is None and a.max is None:
        return x
    return ctx.add("clamp", [x], min=_bound(a.min), max=_bound(a.max))


@converter(aten.clamp_min.default, validator=_clamp_validator)
def clamp_min(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.add("clamp", [ctx.tensor(a.self, _out_dtype(node))], min=_bound(a.min))


@converter(aten.clamp_max.default, validator=_clamp_validator)
def clamp_max(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.add("clamp", [ctx.tensor(a.self, _out_dtype(node))], max=_bound(a.max))


@converter(aten.hardtanh.default, validator=_clamp_validator)
def hardtanh(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self, _out_dtype(node))
    return ctx.add("clamp", [x], min=float(a.min_val), max=float(a.max_val))


@converter(aten.relu6.default, validator=_clamp_validator)
def relu6(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.add("clamp", [ctx.tensor(a.self, _out_dtype(node))], min=0.0, max=6.0)


@converter(aten.clamp.Tensor, validator=_arith_validator)
def clamp_tensor(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = _out_dtype(node)
    x = ctx.tensor(a.self, dt)
    if a.min is not None:
        x = ctx.binary("maximum", x, ctx.tensor(a.min, dt))
    if a.max is not None:
        x = ctx.binary("minimum", x, ctx.tensor(a.max, dt))
    return x


# -- casts and no-ops ------------------------------------------------------------------------


def _to_copy_validator(node: Node) -> bool | str:
    device = node.kwargs.get("device")
    src = val(node.args[0])
    if device is not None and torch.device(device).type != src.device.type:
        return f"copies to another device ({src.device} -> {device})"
    if node.kwargs.get("layout") not in (None, torch.strided):
        return "non-strided layout"
    return True


@converter(aten._to_copy.default, validator=_to_copy_validator)
def to_copy(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.tensor(a.self, _out_dtype(node))


# detach, alias, lift_fresh_copy and eval-mode dropout are removed by lowering (_lowering.py);
# contiguous and reshape decompose into clone and view.
@converter(aten.clone.default)
def identity(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.tensor(a.self)


def _native_dropout_validator(node: Node) -> bool | str:
    train = node.args[2] if len(node.args) > 2 else node.kwargs.get("train")
    if train:
        return "dropout in training mode"
    return True if only_first_output_used(node) else "dropout mask is used"


@converter(aten.native_dropout.default, validator=_native_dropout_validator)
def native_dropout(ctx: ConversionContext, node: Node, a: Args) -> list[Any]:
    return [ctx.tensor(a.input), None]

