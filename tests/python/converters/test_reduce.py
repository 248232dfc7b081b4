"""Reduction converters against eager."""

from __future__ import annotations

import pytest
import torch
from kiln_testing import Case, Fn, assert_close, check_case

import kiln

aten = torch.ops.aten


def one(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 3, 5),)


def small(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.rand(b, 3, 4) + 0.5,)


def positions(b: int) -> tuple[torch.Tensor, ...]:
    """int64 position ids of packed sequences: runs 0, 1, 2... restarting at random places."""
    restart = torch.rand(b, 16) < 0.25
    pos = torch.zeros(b, 16, dtype=torch.int64)
    for j in range(1, 16):
        pos[:, j] = torch.where(restart[:, j], 0, pos[:, j - 1] + 1)
    return (pos,)


def _packed_sequence_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """transformers.masking_utils.find_packed_sequence_indices (what gpt2 traces)."""
    first = position_ids[:, :1] - 1
    diff = torch.diff(position_ids, prepend=first, dim=-1)
    return (diff != 1).cumsum(-1)


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
    Case("cumsum", lambda x: x.cumsum(1), one, aten.cumsum.default),
    Case("cumsum_neg_dim", lambda x: x.cumsum(-1), one, aten.cumsum.default),
    Case("cumsum_batch_dim", lambda x: x.cumsum(0), one, aten.cumsum.default),
    Case("cumsum_bool", lambda x: (x > 0).cumsum(-1), one, aten.cumsum.default),
    Case("cumsum_int64", lambda x: (x * 4).long().cumsum(-2), one, aten.cumsum.default),
    Case(
        "cumsum_int32_keeps_int32",
        lambda x: (x * 4).int().cumsum(-1, dtype=torch.int32),
        one,
        aten.cumsum.default,
    ),
    Case(
        "cumsum_int_to_float",
        lambda x: (x * 4).int().cumsum(1, dtype=torch.float32),
        one,
        aten.cumsum.default,
    ),
    Case(
        "cumsum_to_half",
        lambda x: x.cumsum(-1, dtype=torch.float16),
        one,
        aten.cumsum.default,
        atol=2e-3,
        rtol=2e-3,
    ),
    Case("cumsum_packed_sequences", _packed_sequence_ids, positions, aten.cumsum.default),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)


def test_cumsum_into_int8_runs_in_torch_with_a_reason() -> None:
    """Kiln's cumsum has no int8 output: the validator says so and PyTorch runs it."""
    module = Fn(lambda x: (x * 4).cumsum(-1, dtype=torch.int8).float() + x).eval()
    x = torch.randn(2, 3, 5)
    compiled = kiln.compile(module, inputs=[x], min_block_size=1)
    reasons = compiled.kiln_report.unsupported["aten.cumsum.default"].reasons
    assert any("int8" in r for r in reasons), reasons
    with torch.no_grad():
        assert_close(compiled(x), module(x), 1e-5, 1e-5)
