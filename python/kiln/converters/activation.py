"""Activations (gelu, silu, hardswish, ...) and softmax / log_softmax."""

from __future__ import annotations

import torch

from kiln import _dtypes
from kiln.converters._args import Args, dtype_of
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter

aten = torch.ops.aten
Node = torch.fx.Node


def _float_input(node: Node) -> bool | str:
    dt = dtype_of(node.args[0])
    if dt not in _dtypes.FLOAT_DTYPES:
        return f"needs a floating input, got {dt}"
    return True


@converter(aten.gelu.default, validator=_float_input)
def gelu(ctx: ConversionContext, node: Node, a: Args) -> int:
    fn = "gelu_tanh" if a.approximate == "tanh" else "gelu"
    return ctx.unary(fn, ctx.tensor(a.self))


def _simple(fn: str):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        return ctx.unary(fn, ctx.tensor(a.self))

    convert.__name__ = fn
    return convert


for _name in ("silu", "hardswish", "hardsigmoid"):
    converter(getattr(aten, _name).default, validator=_float_input)(_simple(_name))


@converter(aten.leaky_relu.default, validator=_float_input)
def leaky_relu(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.unary("leaky_relu", ctx.tensor(a.self), alpha=float(a.negative_slope))


def _elu_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True:
        return ok
    args = list(node.args) + [1, 1, 1]
    scale = node.kwargs.get("scale", args[2])
    input_scale = node.kwargs.get("input_scale", args[3])
    if scale != 1 or input_scale != 1:
        return "elu with scale or input_scale != 1 (selu)"
    return True


@converter(aten.elu.default, validator=_elu_validator)
def elu(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.unary("elu", ctx.tensor(a.self), alpha=float(a.alpha))


def _softplus_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True:
        return ok
    args = list(node.args) + [1, 20]
    beta = node.kwargs.get("beta", args[1])
    if beta != 1:
        return f"softplus with beta={beta}"
    return True


@converter(aten.softplus.default, validator=_softplus_validator)
def softplus(ctx: ConversionContext, node: Node, a: Args) -> int:
    # Kiln's softplus is log1p(exp(x)); above torch's threshold it returns x, which is the
    # same value in float32 for the default threshold of 20.
    x = ctx.tensor(a.self)
    y = ctx.unary("softplus", x)
    if a.threshold is None or float(a.threshold) >= 20:
        return y
    above = ctx.binary("gt", x, ctx.scalar(float(a.threshold), ctx.dtype(x)))
    return ctx.add("where", [above, x, y])


def _softmax_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True and node.meta["val"].dtype not in _dtypes.FLOAT_DTYPES:
        return ok
    if node.target in (aten._softmax.default, aten._log_softmax.default):
        half_to_float = node.args[2] if len(node.args) > 2 else False
        if half_to_float:
            return "half_to_float"
    return True


def _softmax(kind: str):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        x = ctx.tensor(a.self, node.meta["val"].dtype)
        return ctx.add(kind, [x], dim=int(a.dim))

    convert.__name__ = kind
    return convert


converter(aten._softmax.default, aten.softmax.int, validator=_softmax_validator)(
    _softmax("softmax")
)
converter(aten._log_softmax.default, aten.log_softmax.int, validator=_softmax_validator)(
    _softmax("log_softmax")
)
