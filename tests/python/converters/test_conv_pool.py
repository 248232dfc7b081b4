"""Convolution and pooling converters against eager."""

from __future__ import annotations

import pytest
import torch
from kiln_testing import Case, check_case
from torch import nn

aten = torch.ops.aten
TOL = {"atol": 1e-4, "rtol": 1e-4}


def img(c: int, *sp: int):
    return lambda b: (torch.randn(b, c, *sp),)


CASES = [
    Case("conv1d", nn.Conv1d(3, 4, 3, padding=1), img(3, 10), aten.convolution.default, **TOL),
    Case("conv2d", nn.Conv2d(3, 8, 3), img(3, 9, 9), aten.convolution.default, **TOL),
    Case("conv2d_stride_pad_dil", nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2),
         img(4, 11, 10), aten.convolution.default, **TOL),
    Case("conv2d_groups", nn.Conv2d(4, 8, 3, groups=2, bias=False), img(4, 7, 7),
         aten.convolution.default, **TOL),
    Case("conv2d_depthwise", nn.Conv2d(4, 4, 3, padding=1, groups=4), img(4, 7, 7),
         aten.convolution.default, **TOL),
    Case("conv3d", nn.Conv3d(2, 3, 3, padding=1), img(2, 5, 5, 5), aten.convolution.default,
         **TOL),
    Case("conv_transpose1d", nn.ConvTranspose1d(3, 2, 4, stride=2, padding=1), img(3, 6),
         aten.convolution.default, **TOL),
    Case("conv_transpose2d", nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
         img(4, 5, 5), aten.convolution.default, **TOL),
    Case("max_pool2d", nn.MaxPool2d(2), img(3, 8, 8), aten.max_pool2d.default),
    Case("max_pool2d_ceil", nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), img(3, 8, 9),
         aten.max_pool2d.default),
    Case("max_pool2d_dilation", nn.MaxPool2d(2, dilation=2), img(3, 8, 8), aten.max_pool2d.default),
    Case("max_pool1d", nn.MaxPool1d(2), img(3, 8), aten.max_pool2d_with_indices.default),
    Case("max_pool3d", nn.MaxPool3d(2), img(2, 4, 4, 4), aten.max_pool3d_with_indices.default),
    Case("avg_pool2d", nn.AvgPool2d(2), img(3, 8, 8), aten.avg_pool2d.default, **TOL),
    Case("avg_pool2d_pad", nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
         img(3, 8, 8), aten.avg_pool2d.default, **TOL),
    Case("avg_pool2d_ceil", nn.AvgPool2d(3, stride=2, ceil_mode=True), img(3, 8, 8),
         aten.avg_pool2d.default, **TOL),
    Case("avg_pool1d", nn.AvgPool1d(2), img(3, 8), aten.avg_pool2d.default, **TOL),
    Case("avg_pool3d", nn.AvgPool3d(2), img(2, 4, 4, 4), aten.avg_pool3d.default, **TOL),
    Case("adaptive_avg_pool2d_1", nn.AdaptiveAvgPool2d(1), img(3, 7, 7),
         aten.adaptive_avg_pool2d.default, **TOL),
    Case("adaptive_avg_pool2d_23", nn.AdaptiveAvgPool2d((2, 3)), img(3, 7, 8),
         aten.adaptive_avg_pool2d.default, **TOL),
    Case("adaptive_avg_pool1d", nn.AdaptiveAvgPool1d(3), img(3, 10),
         aten.adaptive_avg_pool2d.default, **TOL),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)
