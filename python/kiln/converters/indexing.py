"""Indexing: embedding, index_select, gather, index.Tensor (integer index tensors)."""

from __future__ import annotations

from typing import Any

import torch

from kiln.converters._args import Args, dtype_of, rank_of, val
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter

aten = torch.ops.aten
Node = torch.fx.Node
_INDEX_DTYPES = (torch.int64, torch.int32)


def _embedding_validator(node: Node) -> bool | str:
    if rank_of(node.args[0]) != 2:
        return "embedding weight is not 2-D"
    if dtype_of(node.args[1]) not in _INDEX_DTYPES:
        return f"embedding indices of dtype {dtype_of(node.args[1])}"
    return True


@converter(aten.embedding.default, validator=_embedding_validator)
def embedding(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.add("embedding", [ctx.tensor(a.weight), ctx.tensor(a.indices)])


def _index_select_validator(node: Node) -> bool | str:
    index = node.args[2] if len(node.args) > 2 else node.kwargs["index"]
    if dtype_of(index) not in _INDEX_DTYPES:
        return f"index of dtype {dtype_of(index)}"
    if rank_of(index) > 1:
        return "index_select index of rank > 1"
    return True


@converter(aten.index_select.default, validator=_index_select_validator)
def index_select(ctx: ConversionContext, node: Node, a: Args) -> int:
    index = ctx.tensor(a.index)
    if ctx.rank(index) == 0:
        index = ctx.add("unsqueeze", [index], dim=0)
    x = ctx.tensor(a.self)
    if ctx.rank(x) == 0:
        return x
    return ctx.add("index_select", [x, index], dim=int(a.dim))


def _gather_validator(node: Node) -> bool | str:
    if dtype_of(node.args[2]) not in _INDEX_DTYPES:
        return f"gather index of dtype {dtype_of(node.args[2])}"
    return True


@converter(aten.gather.default, validator=_gather_validator)
def gather(ctx: ConversionContext, node: Node, a: Args) -> int:
    return ctx.add("gather", [ctx.tensor(a.self), ctx.tensor(a.index)], dim=int(a.dim))


def _present(indices: list[Any]) -> list[int]:
    return [i for i, t in enumerate(indices) if t is not None]


def _index_validator(node: Node) -> bool | str:
    indices = node.args[1]
    present = _present(indices)
    if not present:
        return "index without index tensors"
    if present != list(range(present[0], present[-1] + 1)):
        return "index tensors separated by slices"
    for i in present:
        dt = dtype_of(indices[i])
        if dt not in _INDEX_DTYPES:
            return f"index tensor of dtype {dt} (a boolean mask has a data-dependent shape)"
    if rank_of(node.args[0]) == 0:
        return "indexing a 0-dim tensor"
    return True


def _size_scalar(ctx: ConversionContext, dim: Any) -> int:
    if isinstance(dim, int):
        return ctx.scalar(dim, torch.int64)
    return ctx.sym_scalar(dim, torch.int64)


def _known_nonnegative(arg: Any, ctx: ConversionContext) -> bool:
    if isinstance(arg, Node) and arg.op == "get_attr":
        t = ctx.constant_value(arg)
        return t.numel() == 0 or bool(t.min() >= 0)
    return False


@converter(aten.index.Tensor, validator=_index_validator)
def index(ctx: ConversionContext, node: Node, a: Args) -> int:
    """x[i0, i1, ...] with adjacent integer index tensors: the indexed dims are moved to the
    front and flattened, the indices become one linear index, and an embedding lookup on
    x viewed as [V, D] gathers the rows."""
    indices = list(a.indices)
    present = _present(indices)
    p, k = present[0], len(present)
    x = ctx.tensor(a.self)
    rank = ctx.rank(x)
    sizes = ctx.dims(list(val(a.self).shape))
    linear = None
    for j, i in enumerate(present):
        idx = ctx.tensor(indices[i], torch.int64)
        size = sizes[i]
        if not _known_nonnegative(indices[i], ctx):
            zero = ctx.scalar(0, torch.int64)
            wrapped = ctx.binary("add", idx, _size_scalar(ctx, size))
            idx = ctx.add("where", [ctx.binary("lt", idx, zero), wrapped, idx])
        if linear is None:
            linear = idx
        else:
            linear = ctx.binary("add", ctx.binary("mul", linear, _size_scalar(ctx, size)), idx)
    indexed = list(range(p, p + k))
    rest = [d for d in range(rank) if d not in indexed]
    if p > 0:
        x = ctx.add("permute", [x], perm=indexed + rest)
    vocab = _product(sizes[d] for d in indexed)
    row = _product(sizes[d] for d in rest)
    bool_input = ctx.dtype(x) == torch.bool
    if bool_input:
        x = ctx.cast(x, torch.uint8)
    table = ctx.add("reshape", [x], shape=_one_dynamic([vocab, row]))
    rows = ctx.add("embedding", [table, linear])
    out_shape = ctx.out_shape()
    s_rank = len(out_shape) - len(rest)
    s_shape = out_shape[p : p + s_rank]
    rest_shape = [sizes[d] for d in rest]
    out = ctx.add("reshape", [rows], shape=_one_dynamic(s_shape + rest_shape))
    if p > 0:
        # [S..., pre..., post...] -> [pre..., S..., post...]
        perm = list(range(s_rank, s_rank + p)) + list(range(s_rank)) + list(
            range(s_rank + p, s_rank + len(rest))
        )
        out = ctx.add("permute", [out], perm=perm)
    if bool_input:
        out = ctx.cast(out, torch.bool)
    return out


def _product(dims: Any) -> Any:
    out: Any = 1
    for d in dims:
        out = d * out if not isinstance(out, int) or not isinstance(d, int) else out * d
    return out


def _one_dynamic(shape: list[Any]) -> list[Any]:
    """A reshape target with its first symbolic dim replaced by -1 (Kiln infers it from the
    element count, so no symbolic equality has to be proven)."""
    out = list(shape)
    for i, d in enumerate(out):
        if not isinstance(d, int):
            out[i] = -1
            break
    return out
