"""scaled_dot_product_attention -> Kiln's fused attention op."""

from __future__ import annotations

from typing import Any

import torch

from kiln import _dtypes
from kiln.converters._args import Args, bind_args, dtype_of, rank_of, unused_outputs_ok
from kiln.converters._context import ConversionContext
from kiln.converters._registry import converter, op

aten = torch.ops.aten
Node = torch.fx.Node


def _sdpa_validator(node: Node) -> bool | str:
    q, k, v = node.args[:3]
    dts = {dtype_of(q), dtype_of(k), dtype_of(v)}
    if len(dts) != 1 or not dts <= _dtypes.FLOAT_DTYPES:
        return f"attention over dtypes {sorted(str(d) for d in dts)}"
    if min(rank_of(q), rank_of(k), rank_of(v)) < 2:
        return "attention operands of rank < 2"
    args = list(node.args) + [None] * 8
    dropout = node.kwargs.get("dropout_p", args[4]) or 0.0
    if dropout != 0.0:
        return f"attention with dropout_p={dropout}"
    mask = node.kwargs.get("attn_mask", args[3])
    causal = node.kwargs.get("is_causal", args[5]) or False
    if mask is not None:
        mdt = dtype_of(mask)
        if mdt != torch.bool and mdt not in _dtypes.FLOAT_DTYPES:
            return f"attention mask of dtype {mdt}"
        if causal:
            return "attention with both a mask and is_causal"
    return True


@converter(aten.scaled_dot_product_attention.default, validator=_sdpa_validator)
def scaled_dot_product_attention(ctx: ConversionContext, node: Node, a: Args) -> int:
    dt = node.meta["val"].dtype
    inputs = [ctx.tensor(a.query, dt), ctx.tensor(a.key, dt), ctx.tensor(a.value, dt)]
    if a.attn_mask is not None:
        mask = ctx.tensor(a.attn_mask)
        if ctx.dtype(mask) != torch.bool:
            mask = ctx.cast(mask, dt)
        inputs.append(mask)
    scale = None if a.scale is None else float(a.scale)
    return ctx.add("attention", inputs, causal=bool(a.is_causal), scale=scale)


# The backend-specific forms torch.compile's tracing produces (SDPA is CompositeImplicit).
_FUSED_SDPA = [
    op("aten._scaled_dot_product_flash_attention_for_cpu.default"),
    op("aten._scaled_dot_product_efficient_attention.default"),
    op("aten._scaled_dot_product_flash_attention.default"),
    op("aten._scaled_dot_product_cudnn_attention.default"),
]


def _fused_validator(node: Node) -> bool | str:
    a = bind_args(node)
    q, k, v = a.query, a.key, a.value
    dts = {dtype_of(q), dtype_of(k), dtype_of(v)}
    if len(dts) != 1 or not dts <= _dtypes.FLOAT_DTYPES:
        return f"attention over dtypes {sorted(str(d) for d in dts)}"
    if (a.get("dropout_p") or 0.0) != 0.0:
        return "attention with dropout"
    if a.get("dropout_mask") is not None:
        return "attention with a dropout mask"
    mask = a.get("attn_mask", a.get("attn_bias"))
    if mask is not None and a.get("is_causal"):
        return "attention with both a mask and is_causal"
    mdt = dtype_of(mask)
    if mask is not None and mdt != torch.bool and mdt not in _dtypes.FLOAT_DTYPES:
        return f"attention mask of dtype {mdt}"
    if not unused_outputs_ok(node, {0}):
        return "attention statistics (logsumexp) are used"
    return True


@converter(*_FUSED_SDPA, validator=_fused_validator)
def fused_attention(ctx: ConversionContext, node: Node, a: Args) -> list[Any]:
    dt = node.meta["val"][0].dtype
    inputs = [ctx.tensor(a.query, dt), ctx.tensor(a.key, dt), ctx.tensor(a.value, dt)]
    mask_arg = a.get("attn_mask", a.get("attn_bias"))
    if mask_arg is not None:
        mask = ctx.tensor(mask_arg)
        if ctx.dtype(mask) != torch.bool:
            mask = ctx.cast(mask, dt)
        inputs.append(mask)
    scale = a.get("scale")
    out = ctx.add(
        "attention",
        inputs,
        causal=bool(a.get("is_causal", False)),
        scale=None if scale is None else float(scale),
    )
    return [out] + [None] * (len(node.meta["val"]) - 1)
