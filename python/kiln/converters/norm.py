"""Normalizations: batch_norm (inference), layer_norm, group_norm, rms_norm."""

from __future__ import annotations

from typing import Any

import torch

from kiln import _dtypes
from kiln.converters._args import Args, dtype_of, is_static, unused_outputs_ok, val
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter, op

aten = torch.ops.aten
Node = torch.fx.Node


def _float_input(node: Node) -> bool | str:
    dt = dtype_of(node.args[0])
    if dt not in _dtypes.FLOAT_DTYPES:
        return f"needs a floating input, got {dt}"
    return True


def _affine(
    ctx: ConversionContext, weight: Any, bias: Any, shape: list[int], dt: torch.dtype
) -> list[int]:
    """Trailing optional weight/bias inputs; a bias without a weight gets a ones weight."""
    out = []
    if weight is not None:
        out.append(ctx.tensor(weight, dt))
    elif bias is not None:
        out.append(ctx.constant(torch.ones(shape, dtype=dt)))
    if bias is not None:
        out.append(ctx.tensor(bias, dt))
    return out


def _bn_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True:
        return ok
    if val(node.args[0]).dim() < 2:
        return "batch_norm input of rank < 2"
    if not unused_outputs_ok(node, {0}):
        return "batch_norm saved statistics are used"
    return True


@converter(aten._native_batch_norm_legit_no_training.default, validator=_bn_validator)
def batch_norm(ctx: ConversionContext, node: Node, a: Args) -> list[Any]:
    dt = node.meta["val"][0].dtype
    x = ctx.tensor(a.input, dt)
    channels = int(val(a.running_mean).shape[0])
    inputs = [x, ctx.tensor(a.running_mean, dt), ctx.tensor(a.running_var, dt)]
    inputs += _affine(ctx, a.weight, a.bias, [channels], dt)
    return [ctx.add("batch_norm", inputs, eps=float(a.eps)), None, None]


def _ln_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True:
        return ok
    if not is_static(node.args[1]):
        return "symbolic normalized_shape"
    if node.target == aten.native_layer_norm.default and not unused_outputs_ok(node, {0}):
        return "layer_norm mean/rstd outputs are used"
    return True


def _layer_norm(multi_output: bool):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> Any:
        dt = (node.meta["val"][0] if multi_output else node.meta["val"]).dtype
        shape = [int(d) for d in a.normalized_shape]
        inputs = [ctx.tensor(a.input, dt)] + _affine(ctx, a.weight, a.bias, shape, dt)
        out = ctx.add("layer_norm", inputs, normalized_ndim=len(shape), eps=float(a.eps))
        return [out, None, None] if multi_output else out

    return convert


converter(aten.layer_norm.default, validator=_ln_validator)(_layer_norm(False))
converter(aten.native_layer_norm.default, validator=_ln_validator)(_layer_norm(True))


def _gn_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True:
        return ok
    if val(node.args[0]).dim() < 2:
        return "group_norm input of rank < 2"
    if not is_static([val(node.args[0]).shape[1]]):
        return "group_norm with a symbolic channel count"
    if node.target == aten.native_group_norm.default and not unused_outputs_ok(node, {0}):
        return "group_norm mean/rstd outputs are used"
    return True


@converter(aten.group_norm.default, aten.native_group_norm.default, validator=_gn_validator)
def group_norm(ctx: ConversionContext, node: Node, a: Args) -> Any:
    multi = node.target == aten.native_group_norm.default
    dt = (node.meta["val"][0] if multi else node.meta["val"]).dtype
    channels = int(val(a.input).shape[1])
    groups = int(a.group if multi else a.num_groups)
    inputs = [ctx.tensor(a.input, dt)] + _affine(ctx, a.weight, a.bias, [channels], dt)
    out = ctx.add("group_norm", inputs, groups=groups, eps=float(a.eps))
    return [out, None, None] if multi else out


def _rms_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True:
        return ok
    if not is_static(node.args[1]):
        return "symbolic normalized_shape"
    if isinstance(node.meta["val"], (list, tuple)) and not unused_outputs_ok(node, {0}):
        return "rms_norm rstd output is used"
    return True


def _rms_norm(multi_output: bool):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> Any:
        dt = (node.meta["val"][0] if multi_output else node.meta["val"]).dtype
        shape = [int(d) for d in a.normalized_shape]
        eps = a.eps if a.eps is not None else torch.finfo(dt).eps
        inputs = [ctx.tensor(a.input, dt)]
        if a.weight is not None:
            inputs.append(ctx.tensor(a.weight, dt))
        out = ctx.add("rms_norm", inputs, normalized_ndim=len(shape), eps=float(eps))
        return [out, None] if multi_output else out

    return convert


converter(op("aten.rms_norm.default"), validator=_rms_validator)(_rms_norm(False))
