"""Convolution (1d/2d/3d, transposed) and pooling (max, avg, adaptive avg)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kiln import _dtypes
from kiln.converters._args import Args, dtype_of, is_static, rank_of, unused_outputs_ok
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter, op

aten = torch.ops.aten
Node = torch.fx.Node


def _ints(value: Any, n: int, name: str) -> list[int]:
    """An int or a list of 1 or n ints, as n ints."""
    if isinstance(value, int):
        return [value] * n
    vals = [int(v) for v in value]
    if len(vals) == 1:
        return vals * n
    if len(vals) != n:
        raise ValueError(f"{name} has {len(vals)} entries, expected {n}")
    return vals


def _float_input(node: Node) -> bool | str:
    dt = dtype_of(node.args[0])
    if dt not in _dtypes.FLOAT_DTYPES:
        return f"needs a floating input, got {dt}"
    return True


def _conv_validator(node: Node) -> bool | str:
    ok = _float_input(node)
    if ok is not True:
        return ok
    rank = rank_of(node.args[1])
    if rank not in (3, 4, 5) or rank_of(node.args[0]) != rank:
        return f"convolution of rank {rank_of(node.args[0])} (Kiln has 1d/2d/3d, batched)"
    if not is_static(node.args[1]):
        return "convolution weight with a symbolic shape"
    for arg in node.args[3:]:
        if not is_static(arg):
            return "symbolic convolution parameters"
    return True


@converter(aten.convolution.default, validator=_conv_validator)
def convolution(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = node.meta["val"].dtype
    n = ctx.rank(ctx.tensor(a.input)) - 2
    inputs = [ctx.tensor(a.input, dt), ctx.tensor(a.weight, dt)]
    if a.bias is not None:
        inputs.append(ctx.tensor(a.bias, dt))
    attrs: dict[str, Any] = {
        "stride": _ints(a.stride, n, "stride"),
        "padding": _ints(a.padding, n, "padding"),
        "dilation": _ints(a.dilation, n, "dilation"),
        "groups": int(a.groups),
        "transposed": bool(a.transposed),
    }
    if a.transposed:
        attrs["output_padding"] = _ints(a.output_padding, n, "output_padding")
    return ctx.add("conv", inputs, **attrs)


def _batched(ctx: ConversionContext, x: int, spatial: int) -> tuple[int, bool]:
    """Pooling takes [N, C, *sp]; an unbatched [C, *sp] input gets N = 1 added."""
    if ctx.rank(x) == spatial + 1:
        return ctx.add("unsqueeze", [x], dim=0), True
    return x, False


def _unbatch(ctx: ConversionContext, out: int, added: bool) -> int:
    return ctx.add("squeeze", [out], dims=[0]) if added else out


def _pool_validator(spatial: int, with_indices: bool = False):
    def validate(node: Node) -> bool | str:
        ok = _float_input(node)
        if ok is not True:
            return ok
        if rank_of(node.args[0]) not in (spatial + 1, spatial + 2):
            return f"pooling input of rank {rank_of(node.args[0])}"
        for arg in node.args[1:]:
            if not is_static(arg):
                return "symbolic pooling parameters"
        if with_indices and not unused_outputs_ok(node, {0}):
            return "pooling indices are used"
        return True

    return validate


def _max_pool(spatial: int, multi_output: bool):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> Any:
        x, added = _batched(ctx, ctx.tensor(a.self), spatial)
        kernel = _ints(a.kernel_size, spatial, "kernel_size")
        stride = _ints(a.stride, spatial, "stride") if a.stride else kernel
        out = ctx.add(
            "pool",
            [x],
            kind="max",
            kernel=kernel,
            stride=stride,
            padding=_ints(a.padding, spatial, "padding"),
            dilation=_ints(a.dilation, spatial, "dilation"),
            ceil_mode=bool(a.ceil_mode),
        )
        out = _unbatch(ctx, out, added)
        return [out, None] if multi_output else out

    return convert


converter(aten.max_pool2d.default, validator=_pool_validator(2))(_max_pool(2, False))
converter(aten.max_pool2d_with_indices.default, validator=_pool_validator(2, True))(
    _max_pool(2, True)
)
converter(op("aten.max_pool3d_with_indices.default"), validator=_pool_validator(3, True))(
    _max_pool(3, True)
)


def _avg_pool_validator(spatial: int):
    base = _pool_validator(spatial)

    def validate(node: Node) -> bool | str:
        ok = base(node)
        if ok is not True:
            return ok
        schema = node.target._schema
        names = [arg.name for arg in schema.arguments]
        if "divisor_override" in names:
            i = names.index("divisor_override")
            value = node.args[i] if len(node.args) > i else node.kwargs.get("divisor_override")
            if value is not None:
                return "avg_pool with divisor_override"
        return True

    return validate


def _avg_pool(spatial: int):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        x, added = _batched(ctx, ctx.tensor(a.self), spatial)
        kernel = _ints(a.kernel_size, spatial, "kernel_size")
        stride = _ints(a.stride, spatial, "stride") if a.stride else kernel
        out = ctx.add(
            "pool",
            [x],
            kind="avg",
            kernel=kernel,
            stride=stride,
            padding=_ints(a.padding, spatial, "padding"),
            ceil_mode=bool(a.ceil_mode),
            count_include_pad=bool(a.count_include_pad),
        )
        return _unbatch(ctx, out, added)

    return convert


converter(aten.avg_pool2d.default, validator=_avg_pool_validator(2))(_avg_pool(2))
converter(op("aten.avg_pool3d.default"), validator=_avg_pool_validator(3))(_avg_pool(3))


def _adaptive_validator(spatial: int):
    def validate(node: Node) -> bool | str:
        ok = _float_input(node)
        if ok is not True:
            return ok
        if rank_of(node.args[0]) not in (spatial + 1, spatial + 2):
            return f"adaptive pooling input of rank {rank_of(node.args[0])}"
        if not is_static(node.args[1]):
            return "symbolic output_size"
        return True

    return validate


def _adaptive(spatial: int):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        x, added = _batched(ctx, ctx.tensor(a.self), spatial)
        size: Sequence[Any] = _ints(a.output_size, spatial, "output_size")
        out = ctx.add("adaptive_avg_pool", [x], output_size=list(size))
        return _unbatch(ctx, out, added)

    return convert


for _spatial, _names in (
    (2, ("aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default")),
    (3, ("aten._adaptive_avg_pool3d.default",)),
):
    converter(*[op(n) for n in _names], validator=_adaptive_validator(_spatial))(
        _adaptive(_spatial)
    )
