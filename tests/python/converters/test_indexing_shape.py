"""Indexing, shape/data-movement and creation converters against eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kiln_testing import Case, check_case
from torch import nn

aten = torch.ops.aten


def x3(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 4, 6),)


def x4(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 3, 4, 5),)


class IndexSelect(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("idx", torch.tensor([5, 0, 2, 2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, 2, self.idx)


class Index2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rows", torch.tensor([[0], [3], [-1]]))
        self.register_buffer("cols", torch.tensor([1, -2, 5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.rows, self.cols]


CASES = [
    Case("embedding", nn.Embedding(10, 4), lambda b: (torch.randint(0, 10, (b, 5)),),
         aten.embedding.default),
    Case("index_select", IndexSelect(), x3, aten.index_select.default),
    Case("gather", lambda x, i: torch.gather(x, 2, i),
         lambda b: (torch.randn(b, 4, 6), torch.randint(0, 6, (b, 4, 3))), aten.gather.default),
    Case("index_tensor", lambda x, i: x[i],
         lambda b: (torch.randn(10, 3), torch.randint(-10, 10, (b, 2))),
         aten.index.Tensor, batched=[1]),
    Case("index_two_tensors", Index2(), x3, aten.index.Tensor),
    Case("index_bool_table", lambda x, i: (x > 0)[i],
         lambda b: (torch.randn(10, 3), torch.randint(0, 10, (b,))), aten.index.Tensor,
         batched=[1]),
    Case("view", lambda x: x.view(x.shape[0], -1), x3, aten.view.default),
    Case("reshape_split_dim", lambda x: x.reshape(-1, 2, 3, 4), x3, aten.view.default),
    Case("flatten", lambda x: torch.flatten(x, 1), x4),
    Case("permute", lambda x: x.permute(2, 0, 1), x3, aten.permute.default),
    Case("transpose", lambda x: x.transpose(1, 2).contiguous(), x3, aten.transpose.int),
    Case("t", lambda x: x.t() * 2, lambda b: (torch.randn(b, 3),), aten.t.default),
    Case("expand", lambda x: x[:, :1].expand(-1, 5, 6), x3, aten.expand.default),
    Case("expand_new_dims", lambda x: x.expand(2, -1, 4, 6), x3, aten.expand.default),
    Case("slice", lambda x: x[:, 1:3], x3, aten.slice.Tensor),
    Case("slice_step", lambda x: x[:, :, 1::2], x3, aten.slice.Tensor),
    Case("slice_negative", lambda x: x[:, -3:-1], x3, aten.slice.Tensor),
    Case("slice_batch", lambda x: x[1:], lambda b: (torch.randn(b + 1, 4),), aten.slice.Tensor),
    Case("select", lambda x: x[:, 2], x3, aten.select.int),
    Case("select_negative", lambda x: x[:, :, -1], x3, aten.select.int),
    Case("cat", lambda x, y: torch.cat([x, y], 1),
         lambda b: (torch.randn(b, 2, 3), torch.randn(b, 4, 3)), aten.cat.default),
    Case("cat_promote", lambda x, y: torch.cat([x, y], -1),
         lambda b: (torch.randn(b, 2, 3), torch.randint(0, 5, (b, 2, 2))), aten.cat.default),
    Case("stack", lambda x, y: torch.stack([x, y], 1),
         lambda b: (torch.randn(b, 3), torch.randn(b, 3))),
    Case("split", lambda x: [t * 2 for t in x.split(2, dim=2)], x3, aten.split.Tensor),
    Case("split_with_sizes", lambda x: [t + 1 for t in x.split([1, 3], dim=1)], x3,
         aten.split_with_sizes.default),
    Case("chunk", lambda x: [t - 1 for t in x.chunk(3, dim=-1)], x3),
    Case("unbind", lambda x: [t * 3 for t in x.unbind(1)], x3),
    Case("squeeze", lambda x: x[:, :1].squeeze(1), x3),
    # torch.squeeze() of a batch of 1 would drop the batch dim too: static shapes only.
    Case("squeeze_all", lambda x: torch.squeeze(x), lambda b: (torch.randn(b, 1, 4, 1),),
         dynamic=False),
    Case("unsqueeze", lambda x: x.unsqueeze(-1) * 2, x3, aten.unsqueeze.default),
    Case("constant_pad", lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), x3,
         aten.constant_pad_nd.default),
    Case("constant_pad_crop", lambda x: F.pad(x, (-1, 2)), x3, aten.constant_pad_nd.default),
    Case("reflection_pad", lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"), x4),
    Case("replication_pad", lambda x: F.pad(x, (1, 2, 2, 1), mode="replicate"), x4),
    Case("flip", lambda x: torch.flip(x, (1, 2)), x3, aten.flip.default),
    Case("repeat", lambda x: x.repeat(1, 2, 3), x3, aten.repeat.default),
    Case("arange", lambda x: x + torch.arange(x.shape[-1]), x3, aten.arange.default),
    Case("arange_start_step", lambda x: x[:, 0] * torch.arange(1, 13, 2), x3),
    Case("arange_batch", lambda x: x * torch.arange(x.shape[0]).view(-1, 1, 1), x3),
    Case("full", lambda x: x + torch.full((4, 6), 2.5), x3, aten.full.default),
    Case("zeros", lambda x: x + torch.zeros(6), x3),
    Case("ones_like", lambda x: torch.ones_like(x) - x, x3),
    Case("zeros_like_int", lambda x: torch.zeros_like(x, dtype=torch.int64) + 3, x3),
    Case("full_like", lambda x: torch.full_like(x, 7.0) * x, x3, aten.full_like.default),
    Case("new_ones_batch", lambda x: x.new_ones(x.shape[0], 6) + x[:, 0], x3),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)
