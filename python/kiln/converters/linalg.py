"""Matrix products: mm, bmm, matmul, addmm, linear, baddbmm."""

from __future__ import annotations

import torch

from kiln import _dtypes
from kiln.converters._args import Args, dtype_of, rank_of
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter

aten = torch.ops.aten
Node = torch.fx.Node


def _float_operands(node: Node) -> bool | str:
    for arg in node.args[:3]:
        if isinstance(arg, Node):
            dt = dtype_of(arg)
            if dt is not None and dt not in _dtypes.FLOAT_DTYPES:
                return f"matrix product of {dt} tensors"
    return True


def matmul_of(ctx: ConversionContext, a: int, b: int) -> int:
    """torch.matmul semantics: 1-D operands get a dim added and removed again."""
    ra, rb = ctx.rank(a), ctx.rank(b)
    if ra == 1:
        a = ctx.add("unsqueeze", [a], dim=0)
    if rb == 1:
        b = ctx.add("unsqueeze", [b], dim=1)
    out = ctx.add("matmul", [a, b])
    squeeze = []
    r = ctx.rank(out)
    if ra == 1:
        squeeze.append(r - 2)
    if rb == 1:
        squeeze.append(r - 1)
    if squeeze:
        out = ctx.add("squeeze", [out], dims=squeeze)
    return out


@converter(aten.mm.default, aten.bmm.default, aten.matmul.default, validator=_float_operands)
def matmul(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = node.meta["val"].dtype
    other = a.other if "other" in a else a.mat2
    return matmul_of(ctx, ctx.tensor(a.self, dt), ctx.tensor(other, dt))


def _addmm_validator(node: Node) -> bool | str:
    return _float_operands(node)


def _linear_weight(mat2: object) -> Node | None:
    """The get_attr W when mat2 is W.t() (how linear decomposes): W is already [N, K]."""
    if not isinstance(mat2, Node) or mat2.op != "call_function":
        return None
    src = mat2.args[0] if mat2.args else None
    if not isinstance(src, Node) or src.op != "get_attr" or rank_of(src) != 2:
        return None
    if mat2.target == aten.t.default:
        return src
    if mat2.target == aten.permute.default and list(mat2.args[1]) in ([1, 0], [-1, -2]):
        return src
    if mat2.target == aten.transpose.int and sorted(int(d) % 2 for d in mat2.args[1:3]) == [0, 1]:
        return src
    return None


@converter(aten.addmm.default, validator=_addmm_validator)
def addmm(ctx: ConversionContext, node: Node, a: Args) -> int:
    """beta * input + alpha * (mat1 @ mat2). With a constant weight (mat2 = W.t() or a
    constant [K, N]) and a [N] bias it becomes a linear op, so the builder sees a gemm with
    a bias epilogue."""
    dt = node.meta["val"].dtype
    mat2 = a.mat2
    x = ctx.tensor(a.mat1, dt)
    bias_val = a.self.meta.get("val") if isinstance(a.self, Node) else None
    n_out = node.meta["val"].shape[-1]
    if a.beta == 1 and a.alpha == 1 and bias_val is not None and bias_val.dim() == 1:
        weight = _linear_weight(mat2)
        w = None
        if weight is not None:
            w = ctx.tensor(weight, dt)
        elif isinstance(mat2, Node) and mat2.op == "get_attr":
            weight_t = ctx.constant_value(mat2).t().contiguous().to(dt)
            w = ctx.constant(weight_t, name=mat2.name + "_t")
        if w is not None and bias_val.shape[0] == n_out:
            return ctx.add("linear", [x, w, ctx.tensor(a.self, dt)])
    out = ctx.add("matmul", [x, ctx.tensor(mat2, dt)])
    if a.alpha != 1:
        out = ctx.binary("mul", out, ctx.scalar(a.alpha, dt))
    if a.beta == 0:
        return out
    bias = ctx.tensor(a.self, dt)
    if a.beta != 1:
        bias = ctx.binary("mul", bias, ctx.scalar(a.beta, dt))
    return ctx.binary("add", out, bias)


def _linear_validator(node: Node) -> bool | str:
    ok = _float_operands(node)
    if ok is not True:
        return ok
    if rank_of(node.args[1]) != 2:
        return "linear weight is not 2-D"
    if rank_of(node.args[0]) == 0:
        return "linear of a 0-dim input"
    return True


@converter(aten.linear.default, validator=_linear_validator)
def linear(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = node.meta["val"].dtype
    x = ctx.tensor(a.input, dt)
    squeeze = ctx.rank(x) == 1
    if squeeze:
        x = ctx.add("unsqueeze", [x], dim=0)
    inputs = [x, ctx.tensor(a.weight, dt)]
    if a.bias is not None:
        inputs.append(ctx.tensor(a.bias, dt))
    out = ctx.add("linear", inputs)
    if squeeze:
        out = ctx.add("squeeze", [out], dims=[0])
    return out
