"""Causal masks built in the graph (as Hugging Face decoders build them) become is_causal."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kiln

REWRITTEN = "attention mask(s) are the causal mask"


class MaskedAttention(nn.Module):
    """sdpa over x's heads with a mask from `make_mask(batch, length, x)`."""

    def __init__(self, make_mask) -> None:
        super().__init__()
        self.make_mask = make_mask
        self.proj = nn.Linear(16, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        q, k, v = self.proj(x).view(b, length, 3, 2, 8).permute(2, 0, 3, 1, 4)
        mask = self.make_mask(b, length, x)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def hf_causal(b: int, length: int, x: torch.Tensor) -> torch.Tensor:
    # GPT-2's shape of it: positions compared through arange, expanded over the batch.
    pos = torch.arange(length, device=x.device)
    allowed = pos[None, None, None, :] <= pos[None, None, :, None]
    ones = torch.ones((), dtype=torch.bool, device=x.device)
    return (ones & allowed).expand(b, 1, length, length)


def upper(b: int, length: int, x: torch.Tensor) -> torch.Tensor:
    pos = torch.arange(length, device=x.device)
    return (pos[None, :] >= pos[:, None]).expand(b, 1, length, length)


def from_data(b: int, length: int, x: torch.Tensor) -> torch.Tensor:
    return (x[:, None, :, :1] > -10).expand(b, 1, length, length)


def _compile(model: nn.Module, max_batch: int, caplog: pytest.LogCaptureFixture):
    inp = kiln.Input(min_shape=(1, 6, 16), opt_shape=(2, 6, 16), max_shape=(max_batch, 6, 16))
    with caplog.at_level(logging.INFO, logger="kiln"):
        return kiln.compile(model, inputs=[inp], min_block_size=1)


@pytest.mark.parametrize("make_mask, rewritten", [(hf_causal, True), (upper, False),
                                                  (from_data, False)])
def test_mask_becomes_is_causal_only_when_it_is_the_causal_mask(
        make_mask, rewritten: bool, caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    model = MaskedAttention(make_mask).eval()
    compiled = _compile(model, 5, caplog)
    assert (REWRITTEN in caplog.text) == rewritten, caplog.text
    for b in (1, 3, 5):
        x = torch.randn(b, 6, 16)
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


def test_a_batch_range_too_wide_to_check_keeps_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    model = MaskedAttention(hf_causal).eval()
    compiled = _compile(model, 100, caplog)
    assert REWRITTEN not in caplog.text
    assert "shape combinations are too many to check" in caplog.text
    x = torch.randn(7, 6, 16)
    torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
