"""Activation and softmax converters against eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kiln_testing import Case, check_case

aten = torch.ops.aten


def one(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 3, 8) * 3,)


CASES = [
    Case("gelu", torch.nn.GELU(), one, aten.gelu.default),
    Case("gelu_tanh", torch.nn.GELU(approximate="tanh"), one, aten.gelu.default),
    Case("silu", torch.nn.SiLU(), one, aten.silu.default),
    Case("hardswish", torch.nn.Hardswish(), one, aten.hardswish.default),
    Case("hardsigmoid", torch.nn.Hardsigmoid(), one, aten.hardsigmoid.default),
    Case("leaky_relu", torch.nn.LeakyReLU(0.2), one, aten.leaky_relu.default),
    Case("elu", torch.nn.ELU(0.7), one, aten.elu.default),
    Case("softplus", torch.nn.Softplus(), one, aten.softplus.default),
    Case("softplus_threshold", torch.nn.Softplus(threshold=2.0), one, aten.softplus.default),
    Case("softmax_last", lambda x: torch.softmax(x, -1), one, aten.softmax.int),
    Case("softmax_dim1", lambda x: F.softmax(x, dim=1), one, aten.softmax.int),
    Case("log_softmax", lambda x: F.log_softmax(x, dim=-1), one, aten.log_softmax.int),
    Case(
        "softmax_half",
        lambda x: torch.softmax(x.half(), -1).float(),
        one,
        aten.softmax.int,
        atol=2e-3,
        rtol=2e-3,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)
