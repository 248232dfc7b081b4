"""Normalization and attention converters against eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kiln_testing import Case, check_case
from torch import nn

aten = torch.ops.aten
TOL = {"atol": 1e-4, "rtol": 1e-4}


def bn(channels: int, affine: bool = True) -> nn.Module:
    m = nn.BatchNorm2d(channels, affine=affine)
    m.running_mean.uniform_(-1, 1)
    m.running_var.uniform_(0.5, 2)
    if affine:
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.uniform_(-0.5, 0.5)
    return m.eval()


def ln(*shape: int, **kw) -> nn.Module:
    m = nn.LayerNorm(list(shape), **kw)
    if kw.get("elementwise_affine", True):
        m.weight.data.uniform_(0.5, 1.5)
        if m.bias is not None:
            m.bias.data.uniform_(-0.5, 0.5)
    return m


def qkv(b: int, heads: int = 2, lq: int = 5, lk: int = 7, e: int = 8):
    q = torch.randn(b, heads, lq, e)
    return q, torch.randn(b, heads, lk, e), torch.randn(b, heads, lk, e)


CASES = [
    Case("batch_norm", bn(4), lambda b: (torch.randn(b, 4, 5, 5),),
         aten._native_batch_norm_legit_no_training.default, **TOL),
    Case("batch_norm_no_affine", bn(4, affine=False), lambda b: (torch.randn(b, 4, 5, 5),),
         aten._native_batch_norm_legit_no_training.default, **TOL),
    Case("batch_norm_1d", nn.BatchNorm1d(6).eval(), lambda b: (torch.randn(b, 6),), **TOL),
    Case("layer_norm", ln(8), lambda b: (torch.randn(b, 3, 8),), aten.layer_norm.default, **TOL),
    Case("layer_norm_2d", ln(3, 8), lambda b: (torch.randn(b, 3, 8),), aten.layer_norm.default,
         **TOL),
    Case("layer_norm_no_affine", ln(8, elementwise_affine=False), lambda b: (torch.randn(b, 8),),
         aten.layer_norm.default, **TOL),
    Case("layer_norm_no_bias", ln(8, bias=False), lambda b: (torch.randn(b, 8),),
         aten.layer_norm.default, **TOL),
    Case("group_norm", nn.GroupNorm(2, 6), lambda b: (torch.randn(b, 6, 4, 4),),
         aten.group_norm.default, **TOL),
    Case("rms_norm", nn.RMSNorm(8, eps=1e-6), lambda b: (torch.randn(b, 3, 8),),
         aten.rms_norm.default, **TOL),
    Case("sdpa", F.scaled_dot_product_attention, qkv, aten.scaled_dot_product_attention.default,
         **TOL),
    Case("sdpa_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
         lambda b: qkv(b, lq=6, lk=6), aten.scaled_dot_product_attention.default, **TOL),
    Case("sdpa_scale", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3), qkv,
         aten.scaled_dot_product_attention.default, **TOL),
    Case("sdpa_bool_mask",
         lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
         lambda b: (*qkv(b), torch.rand(b, 1, 5, 7) > 0.3),
         aten.scaled_dot_product_attention.default, **TOL),
    # Query row 2 sees no key: torch (2.5 and later) gives zeros there, not NaN.
    Case("sdpa_fully_masked_row",
         lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
         lambda b: (*qkv(b), torch.arange(5).view(1, 1, 5, 1).ne(2).expand(b, 1, 5, 7).clone()),
         aten.scaled_dot_product_attention.default, **TOL),
    Case("sdpa_float_mask",
         lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
         lambda b: (*qkv(b), torch.randn(b, 2, 5, 7)),
         aten.scaled_dot_product_attention.default, **TOL),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)
