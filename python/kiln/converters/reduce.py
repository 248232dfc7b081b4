"""Reductions: sum, mean, amax, amin, prod, var (and max/min over a dim, values only), and
cumsum."""

from __future__ import annotations

from typing import Any

import torch

from kiln import _dtypes
from kiln.converters._args import Args, dtype_of, rank_of, unused_outputs_ok
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter

aten = torch.ops.aten
Node = torch.fx.Node


def _dims(dim: Any, rank: int) -> list[int]:
    """Normalized reduction dims; None or [] means every dim."""
    if dim is None:
        return list(range(rank))
    if isinstance(dim, int):
        dim = [dim]
    dims = sorted({d % rank if rank else 0 for d in dim})
    return dims if dims else list(range(rank))


def reduce(
    ctx: ConversionContext, fn: str, x: int, dim: Any, keepdim: bool, **attrs: Any
) -> int:
    rank = ctx.rank(x)
    if rank == 0:
        return x if fn != "var" else ctx.binary("mul", x, ctx.scalar(0, ctx.dtype(x)))
    return ctx.add("reduce", [x], fn=fn, dims=_dims(dim, rank), keepdim=bool(keepdim), **attrs)


def _reduce_validator(node: Node) -> bool | str:
    dt = node.meta["val"].dtype
    if dt == torch.bool:
        return "reduction with a bool result"
    return True


def _sum_like(fn: str):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        # torch sums ints and bools in int64 (or the dtype argument): cast first.
        x = ctx.tensor(a.self, node.meta["val"].dtype)
        return reduce(ctx, fn, x, a.get("dim"), a.get("keepdim", False))

    convert.__name__ = fn
    return convert


converter(aten.sum.dim_IntList, validator=_reduce_validator)(_sum_like("sum"))
converter(aten.prod.dim_int, aten.prod.default, validator=_reduce_validator)(_sum_like("prod"))


def _mean_validator(node: Node) -> bool | str:
    if node.meta["val"].dtype not in _dtypes.FLOAT_DTYPES:
        return "mean of a non-floating tensor"
    return True


converter(aten.mean.dim, aten.mean.default, validator=_mean_validator)(_sum_like("mean"))


def _extreme_validator(node: Node) -> bool | str:
    if dtype_of(node.args[0]) == torch.bool:
        return "amax/amin of a bool tensor"
    return True


@converter(aten.amax.default, aten.amin.default, validator=_extreme_validator)
def amax(ctx: ConversionContext, node: Node, a: Args) -> int:
    fn = "amax" if node.target == aten.amax.default else "amin"
    return reduce(ctx, fn, ctx.tensor(a.self), a.dim, a.keepdim)


@converter(aten.max.default, aten.min.default, validator=_extreme_validator)
def max_all(ctx: ConversionContext, node: Node, a: Args) -> int:
    fn = "amax" if node.target == aten.max.default else "amin"
    return reduce(ctx, fn, ctx.tensor(a.self), None, False)


def _max_dim_validator(node: Node) -> bool | str:
    ok = _extreme_validator(node)
    if ok is not True:
        return ok
    if not unused_outputs_ok(node, {0}):
        return "indices output (argmax) is used"
    return True


@converter(aten.max.dim, aten.min.dim, validator=_max_dim_validator)
def max_dim(ctx: ConversionContext, node: Node, a: Args) -> list[Any]:
    fn = "amax" if node.target == aten.max.dim else "amin"
    return [reduce(ctx, fn, ctx.tensor(a.self), a.dim, a.keepdim), None]


def _correction(a: Args) -> int:
    c = a.get("correction")
    if c is None:
        unbiased = a.get("unbiased")
        return 0 if unbiased is False else 1
    return int(c)


def _var_validator(node: Node) -> bool | str:
    ok = _mean_validator(node) if not isinstance(node.meta["val"], tuple) else True
    if ok is not True:
        return ok
    if dtype_of(node.args[0]) not in _dtypes.FLOAT_DTYPES:
        return "var of a non-floating tensor"
    c = node.kwargs.get("correction")
    if c is not None and float(c) != int(c):
        return f"non-integer correction {c}"
    if rank_of(node.args[0]) == 0:
        return "var of a 0-dim tensor"
    return True


@converter(aten.var.correction, validator=_var_validator)
def var(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    return reduce(ctx, "var", x, a.dim, a.keepdim, correction=_correction(a))


@converter(aten.var_mean.correction, validator=_var_validator)
def var_mean(ctx: ConversionContext, node: Node, a: Args) -> list[int]:
    x = ctx.tensor(a.self)
    v = reduce(ctx, "var", x, a.dim, a.keepdim, correction=_correction(a))
    m = reduce(ctx, "mean", x, a.dim, a.keepdim)
    return [v, m]


def _any_all(fn: str):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        # any(x != 0) = amax of that as uint8 (Kiln reduces no bools).
        x = ctx.cast(ctx.tensor(a.self, torch.bool), torch.uint8)
        out = reduce(ctx, fn, x, a.get("dim"), a.get("keepdim", False))
        return ctx.cast(out, torch.bool)

    return convert


# all() decomposes into not(any(not x)).
converter(aten.any.dim, aten.any.dims, aten.any.default)(_any_all("amax"))


# cumsum's output dtypes in Kiln (torch's default for bool/integer input is int64).
_CUMSUM_DTYPES = frozenset(
    {torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.int64}
)


def _cumsum_validator(node: Node) -> bool | str:
    out = node.meta["val"].dtype
    if out not in _CUMSUM_DTYPES:
        return f"cumsum into {_dtypes.name(out)} (supported: float32 float16 bfloat16 int32 int64)"
    if not _dtypes.is_supported(dtype_of(node.args[0])):
        return f"cumsum of a {_dtypes.name(dtype_of(node.args[0]))} tensor"
    return True


@converter(aten.cumsum.default, validator=_cumsum_validator)
def cumsum(ctx: ConversionContext, node: Node, a: Args) -> int:
    out = node.meta["val"].dtype  # the dtype argument, or torch's default for the input
    x = ctx.tensor(a.self)
    if ctx.rank(x) == 0:  # a 0-d cumsum is the value itself
        return ctx.cast(x, out)
    return ctx.add("cumsum", [x], dim=int(a.dim), dtype=_dtypes.to_kiln(out))
