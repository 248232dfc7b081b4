"""Reduction converters against eager."""

from __future__ import annotations

import pytest
from kiln_testing import Case, check_case

import torch

aten = torch.ops.aten


def one(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 3, 5),)


def small(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.rand(b, 3, 4) + 0.5,)


CASES = [
    Case("sum_dim", lambda x: x.sum(-1), one, aten.sum.dim_IntList),
    Case("sum_dims_keepdim", lambda x: x.sum((1, 2), keepdim=True), one, aten.sum.dim_IntList),
    Case("sum_all", lambda x: x.sum(), one, aten.sum.dim_IntList),
    Case("sum_bool", lambda x: (x > 0).sum(1), one, aten.sum.dim_IntList),
    Case("sum_int", lambda x: (x * 4).int().sum(-1), one, aten.sum.dim_IntList),
    Case("mean_dim", lambda x: x.mean(1), one, aten.mean.dim),
    Case("mean_keepdim", lambda x: x.mean(-1, keepdim=True), one, aten.mean.dim),
    Case("mean_all", lambda x: x.mean(), one, aten.mean.default),
    Case("amax", lambda x: x.amax(-1), one, aten.amax.default),
    Case("amin", lambda x: x.amin((1, 2)), one, aten.amin.default),
    Case("max_dim_values", lambda x: x.max(dim=1).values, one, aten.max.dim),
    Case("min_dim_values", lambda x: x.min(dim=-1, keepdim=True)[0], one, aten.min.dim),
    Case("max_all", lambda x: x.max(), one, aten.max.default),
    Case("prod_dim", lambda x: x.prod(-1), small, aten.prod.dim_int),
    Case("prod_all", lambda x: x.prod(), small, aten.prod.default, rtol=1e-4),
    Case("var", lambda x: x.var(-1), one, aten.var.correction),
    Case("var_biased", lambda x: x.var(1, unbiased=False), one, aten.var.correction),
    Case("std", lambda x: x.std(-1), one, aten.var.correction),
    Case("var_mean", lambda x: torch.var_mean(x, -1), one, aten.var_mean.correction),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)
