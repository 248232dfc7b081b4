"""Tensor creation: arange, full / zeros / ones (and their _like / new_ forms), scalar_tensor."""

from __future__ import annotations

from typing import Any

import torch

from kiln import _dtypes
from kiln.converters._args import Args
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter, op

aten = torch.ops.aten
Node = torch.fx.Node
_EXACT_FLOAT_INT = 1 << 53


def _is_symint(v: Any) -> bool:
    return isinstance(v, torch.SymInt) or (
        isinstance(v, Node) and isinstance(v.meta.get("val"), torch.SymInt)
    )


def _arange_validator(node: Node) -> bool | str:
    bound = list(node.args) + [node.kwargs.get(k) for k in ("start", "end", "step")]
    for v in bound:
        if v is None or isinstance(v, (torch.dtype, torch.device, torch.layout)):
            continue
        if isinstance(v, (float, torch.SymFloat)):
            return "arange with floating bounds"
        if isinstance(v, Node) and not _is_symint(v):
            return "arange with a non-integer bound"
    step = node.args[2] if node.target == aten.arange.start_step and len(node.args) > 2 else 1
    if _is_symint(step):
        return "arange with a symbolic step"
    if step == 0:
        return "arange with step 0"
    return True


def _bound(ctx: ConversionContext, v: Any) -> Any:
    if isinstance(v, (int, bool)):
        return int(v)
    return ctx.sym(v)


@converter(
    aten.arange.default, aten.arange.start, aten.arange.start_step, validator=_arange_validator
)
def arange(ctx: ConversionContext, node: Node, a: Args) -> int:
    start = a.get("start", 0)
    step = a.get("step", 1)
    out = ctx.add(
        "arange",
        [],
        start=_bound(ctx, start),
        end=_bound(ctx, a.end),
        step=int(step),
        dtype=_dtypes.to_kiln(torch.int64),
    )
    return ctx.cast(out, node.meta["val"].dtype)


def _fill_validator(value_name: str):
    def validate(node: Node) -> bool | str:
        schema = node.target._schema
        names = [arg.name for arg in schema.arguments]
        i = names.index(value_name)
        value = node.args[i] if len(node.args) > i else node.kwargs.get(value_name)
        if isinstance(value, Node) and not _is_symint(value):
            return "fill value is a symbolic float"
        exact = isinstance(value, bool) or not isinstance(value, int)
        if not exact and abs(value) >= _EXACT_FLOAT_INT:
            return f"fill value {value} does not fit a double exactly"
        if node.kwargs.get("layout") not in (None, torch.strided):
            return "non-strided layout"
        return True

    return validate


def fill_of(ctx: ConversionContext, value: Any, dtype: torch.dtype) -> int:
    """A tensor of the current node's output shape filled with `value` (maybe a SymInt)."""
    shape = ctx.out_shape()
    if isinstance(value, (Node, torch.SymInt)):
        scalar = ctx.sym_scalar(value, dtype)
        if not shape:
            return scalar
        one = ctx.add("reshape", [scalar], shape=[1] * len(shape))
        return ctx.add("expand", [one], shape=shape)
    return ctx.add("fill", [], shape=shape, value=float(value), dtype=_dtypes.to_kiln(dtype))


def _fill(value_name: str | None, constant: float | None = None):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        value = constant if value_name is None else a[value_name]
        return fill_of(ctx, value, node.meta["val"].dtype)

    return convert


converter(aten.full.default, validator=_fill_validator("fill_value"))(_fill("fill_value"))
converter(aten.full_like.default, validator=_fill_validator("fill_value"))(_fill("fill_value"))
converter(aten.scalar_tensor.default, validator=_fill_validator("s"))(_fill("s"))
# Uninitialized memory may hold anything; zeros are as good as any.
converter(
    aten.zeros.default,
    aten.zeros_like.default,
    aten.empty.memory_format,
    op("aten.empty_permuted.default"),
)(_fill(None, 0.0))
converter(aten.ones.default, aten.ones_like.default)(_fill(None, 1.0))
# new_zeros/new_ones/new_full, fill.Scalar and empty_like decompose into the ops above.
