"""Shape and data movement: view/reshape, permute, transpose, expand, slice, select, cat,
split, squeeze/unsqueeze, pad, flip, repeat, stack, unbind."""

from __future__ import annotations

from typing import Any

import torch

from kiln.converters._args import Args, is_static, rank_of, val
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter, op

aten = torch.ops.aten
Node = torch.fx.Node
INT64_MAX = (1 << 63) - 1


def reshape_target(shape: list[Any]) -> list[Any]:
    """The output shape with its first symbolic dim as -1: Kiln infers that one from the
    element count, so no symbolic product has to match exactly."""
    out = list(shape)
    for i, d in enumerate(out):
        if not isinstance(d, int):
            out[i] = -1
            break
    return out


@converter(aten.view.default, aten._unsafe_view.default)
def view(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    return ctx.add("reshape", [x], shape=reshape_target(ctx.out_shape()))


@converter(aten.permute.default)
def permute(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    rank = ctx.rank(x)
    perm = [int(d) % rank for d in a.dims] if rank else []
    if perm == list(range(rank)):
        return x
    return ctx.add("permute", [x], perm=perm)


def transpose_of(ctx: ConversionContext, x: int, d0: int, d1: int) -> int:
    rank = ctx.rank(x)
    if rank < 2:
        return x
    d0, d1 = d0 % rank, d1 % rank
    if d0 == d1:
        return x
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return ctx.add("permute", [x], perm=perm)


@converter(aten.t.default)
def t(ctx: ConversionContext, node: Node, a: Args) -> int:
    return transpose_of(ctx, ctx.tensor(a.self), 0, 1)


@converter(aten.transpose.int)
def transpose(ctx: ConversionContext, node: Node, a: Args) -> int:
    return transpose_of(ctx, ctx.tensor(a.self), int(a.dim0), int(a.dim1))


@converter(aten.expand.default)
def expand(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    in_shape = list(val(a.self).shape)
    out_shape = ctx.out_shape()
    lead = len(out_shape) - len(in_shape)
    target: list[Any] = []
    for i, d in enumerate(out_shape):
        j = i - lead
        # Dims the input already has keep their size (-1); only size-1 dims broadcast.
        if j >= 0 and not (isinstance(in_shape[j], int) and in_shape[j] == 1):
            target.append(-1)
        else:
            target.append(d)
    if all(d == -1 for d in target):
        return x
    return ctx.add("expand", [x], shape=target)


def _slice_validator(node: Node) -> bool | str:
    args = list(node.args) + [None] * 5
    step = node.kwargs.get("step", args[4]) or 1
    if not isinstance(step, int):
        return "symbolic slice step"
    if step <= 0:
        return f"slice step {step}"
    return True


@converter(aten.slice.Tensor, validator=_slice_validator)
def slice_(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    start = 0 if a.start is None else a.start
    end = INT64_MAX if a.end is None else a.end
    step = int(a.step or 1)
    rank = ctx.rank(x)
    dim = int(a.dim) % rank
    size = ctx.shape(x)[dim]
    if (
        isinstance(start, int)
        and start == 0
        and step == 1
        and (isinstance(end, int) and size.is_constant() and end >= size.constant())
    ):
        return x
    s = start if isinstance(start, int) else ctx.sym(start)
    e = min(end, INT64_MAX) if isinstance(end, int) else ctx.sym(end)
    return ctx.add("slice", [x], dim=dim, start=s, end=e, step=step)


@converter(aten.select.int)
def select(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    index = a.index if isinstance(a.index, int) else ctx.sym(a.index)
    return ctx.add("select", [x], dim=int(a.dim) % ctx.rank(x), index=index)


@converter(aten.cat.default)
def cat(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = node.meta["val"].dtype
    rank = node.meta["val"].dim()
    parts = []
    for t in a.tensors:
        v = val(t)
        # torch.cat skips legacy empty 1-D tensors.
        if v.dim() == 1 and rank != 1 and isinstance(v.shape[0], int) and v.shape[0] == 0:
            continue
        parts.append(ctx.tensor(t, dt))
    if len(parts) == 1:
        return parts[0]
    return ctx.add("concat", parts, dim=int(a.dim) % rank)


def _split_validator(node: Node) -> bool | str:
    outs = node.meta["val"]
    dim_arg = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    dim = int(dim_arg) % max(rank_of(node.args[0]), 1)
    if not all(is_static([o.shape[dim]]) for o in outs):
        return "split into pieces of symbolic size"
    return True


@converter(aten.split.Tensor, aten.split_with_sizes.default, validator=_split_validator)
def split(ctx: ConversionContext, node: Node, a: Args) -> list[int]:
    x = ctx.tensor(a.self)
    dim = int(a.dim) % ctx.rank(x)
    sizes = [int(o.shape[dim]) for o in node.meta["val"]]
    if len(sizes) == 1:
        return [x]
    return ctx.add_ops("split", [x], {"dim": dim, "sizes": sizes})


def _squeeze_dims(node: Node, dims: Any) -> list[int]:
    shape = list(val(node.args[0]).shape)
    rank = len(shape)
    if dims is None:
        cands = list(range(rank))
    elif isinstance(dims, int):
        cands = [dims % rank] if rank else []
    else:
        cands = [int(d) % rank for d in dims] if rank else []
    return sorted({d for d in cands if isinstance(shape[d], int) and shape[d] == 1})


@converter(aten.squeeze.dim, aten.squeeze.dims)
def squeeze(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    dims = _squeeze_dims(node, a.get("dim"))
    if len(ctx.out_shape()) == ctx.rank(x):
        return x
    return ctx.add("squeeze", [x], dims=dims)


@converter(aten.unsqueeze.default)
def unsqueeze(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    dim = int(a.dim)
    if dim < 0:
        dim += ctx.rank(x) + 1
    return ctx.add("unsqueeze", [x], dim=dim)


def _pad_validator(node: Node) -> bool | str:
    if not is_static(node.args[1]):
        return "symbolic padding"
    return True


@converter(aten.constant_pad_nd.default, validator=_pad_validator)
def constant_pad_nd(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    pads = [int(p) for p in a.pad]
    if not any(pads):
        return x
    return ctx.add("pad", [x], pads=pads, mode="constant", value=float(a.value))


def _pad_mode(mode: str):
    def convert(ctx: ConversionContext, node: Node, a: Args) -> int:
        x = ctx.tensor(a.self)
        return ctx.add("pad", [x], pads=[int(p) for p in a.padding], mode=mode)

    return convert


for _n in (1, 2, 3):
    converter(op(f"aten.reflection_pad{_n}d.default"), validator=_pad_validator)(
        _pad_mode("reflect")
    )
    converter(op(f"aten.replication_pad{_n}d.default"), validator=_pad_validator)(
        _pad_mode("replicate")
    )


@converter(aten.flip.default)
def flip(ctx: ConversionContext, node: Node, a: Args) -> int:
    x = ctx.tensor(a.self)
    rank = ctx.rank(x)
    dims = sorted({int(d) % rank for d in a.dims}) if rank else []
    if not dims:
        return x
    return ctx.add("flip", [x], dims=dims)


def _repeat_validator(node: Node) -> bool | str:
    return True if is_static(node.args[1]) else "symbolic repeat counts"


@converter(aten.repeat.default, validator=_repeat_validator)
def repeat(ctx: ConversionContext, node: Node, a: Args) -> int:
    """repeat = reshape to [1, d0, 1, d1, ...], expand to [r0, d0, r1, d1, ...], reshape."""
    x = ctx.tensor(a.self)
    reps = [int(r) for r in a.repeats]
    dims = [1] * (len(reps) - ctx.rank(x)) + ctx.dims(list(val(a.self).shape))
    interleaved: list[Any] = []
    expanded: list[Any] = []
    for r, d in zip(reps, dims):
        interleaved += [1, d]
        expanded += [r, -1]
    y = ctx.add("reshape", [x], shape=reshape_target(interleaved))
    y = ctx.add("expand", [y], shape=expanded)
    return ctx.add("reshape", [y], shape=reshape_target(ctx.out_shape()))
