"""Matrix product converters against eager."""

from __future__ import annotations

import pytest
import torch
from kiln_testing import Case, check_case

aten = torch.ops.aten
TOL = {"atol": 1e-4, "rtol": 1e-4}


class Addmm(torch.nn.Module):
    def __init__(self, beta: float = 1.0, alpha: float = 1.0) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(6, 5))
        self.b = torch.nn.Parameter(torch.randn(5))
        self.beta, self.alpha = beta, alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, x, self.w, beta=self.beta, alpha=self.alpha)


CASES = [
    Case("mm", lambda x, y: torch.mm(x, y), lambda b: (torch.randn(b, 6), torch.randn(6, 4)),
         aten.mm.default, batched=[0], **TOL),
    Case("bmm", torch.bmm, lambda b: (torch.randn(b, 3, 6), torch.randn(b, 6, 4)),
         aten.bmm.default, **TOL),
    Case("matmul_3d_2d", torch.matmul, lambda b: (torch.randn(b, 3, 6), torch.randn(6, 4)),
         aten.matmul.default, batched=[0], **TOL),
    Case("matmul_4d", torch.matmul, lambda b: (torch.randn(b, 2, 3, 6), torch.randn(b, 2, 6, 4)),
         **TOL),
    Case("matmul_vec", torch.matmul, lambda b: (torch.randn(b, 3, 6), torch.randn(6)),
         batched=[0], **TOL),
    Case("linear", torch.nn.Linear(6, 5), lambda b: (torch.randn(b, 6),), aten.linear.default,
         **TOL),
    Case("linear_3d", torch.nn.Linear(6, 5), lambda b: (torch.randn(b, 4, 6),),
         aten.linear.default, **TOL),
    Case("linear_nobias", torch.nn.Linear(6, 5, bias=False), lambda b: (torch.randn(b, 6),),
         aten.linear.default, **TOL),
    Case("addmm", Addmm(), lambda b: (torch.randn(b, 6),), aten.addmm.default, **TOL),
    Case("addmm_scaled", Addmm(0.5, 2.0), lambda b: (torch.randn(b, 6),), aten.addmm.default,
         **TOL),
    Case("baddbmm", lambda c, x, y: torch.baddbmm(c, x, y, beta=0.5, alpha=2.0),
         lambda b: (torch.randn(b, 3, 4), torch.randn(b, 3, 6), torch.randn(b, 6, 4)),
         aten.bmm.default, **TOL),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)
