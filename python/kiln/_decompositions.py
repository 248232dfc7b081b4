"""The decomposition table Kiln lowers exported programs with.

It is torch.export's default (Core ATen) table minus the ops Kiln runs whole: a fused
layer_norm or attention is faster and numerically closer than the chain of primitives the
default table would turn it into, and an op kept here that Kiln cannot convert still runs
in PyTorch.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

aten = torch.ops.aten

# Ops that stay whole. Entries missing from the default table are ignored.
KEPT_OPS: tuple[Any, ...] = (
    aten.layer_norm.default,
    aten.native_layer_norm.default,
    aten.group_norm.default,
    aten.native_group_norm.default,
    aten.rms_norm.default,
    aten._native_batch_norm_legit_no_training.default,
    aten.scaled_dot_product_attention.default,
    # What SDPA dispatches to under torch.compile (CPU, then CUDA).
    aten._scaled_dot_product_flash_attention_for_cpu.default,
    aten._scaled_dot_product_efficient_attention.default,
    aten._scaled_dot_product_flash_attention.default,
    aten._scaled_dot_product_cudnn_attention.default,
    aten.gelu.default,
    aten.silu.default,
    aten.hardswish.default,
    aten.hardsigmoid.default,
    aten.hardtanh.default,
    aten.relu6.default,
    aten.leaky_relu.default,
    aten.elu.default,
    aten.softplus.default,
    aten.softmax.int,
    aten._softmax.default,
    aten.log_softmax.int,
    aten._log_softmax.default,
    aten.linear.default,
    aten.matmul.default,
    aten.addmm.default,
    aten.convolution.default,
    aten.max_pool2d.default,
    aten.avg_pool2d.default,
    aten.adaptive_avg_pool2d.default,
    aten._adaptive_avg_pool2d.default,
    aten.embedding.default,
    aten.index_select.default,
    aten.rsub.Scalar,
    aten.rsub.Tensor,
    aten.clamp_min.default,
    aten.clamp_max.default,
    aten.masked_fill.Scalar,
    aten.masked_fill.Tensor,
    aten.split.Tensor,
    aten.zeros.default,
    aten.ones.default,
    aten.zeros_like.default,
    aten.ones_like.default,
    aten.arange.default,
    aten.arange.start,
    aten.arange.start_step,
    aten.t.default,
    aten.transpose.int,
    aten.squeeze.dim,
    aten._unsafe_view.default,
    aten.floor_divide.default,
    aten.reflection_pad1d.default,
    aten.reflection_pad2d.default,
    aten.reflection_pad3d.default,
    aten.replication_pad1d.default,
    aten.replication_pad2d.default,
    aten.replication_pad3d.default,
)


@functools.lru_cache(maxsize=1)
def _base_table() -> Any:
    # Materializing torch's table takes about a second; build it once per process.
    table = torch.export.default_decompositions()
    for op in KEPT_OPS:
        if op in table:
            table.pop(op)
    return table


def decomposition_table() -> Any:
    """torch.export's default table without KEPT_OPS (a fresh copy on every call)."""
    return _base_table().copy()


def dynamo_decompositions() -> dict[Any, Any]:
    """The same table as a plain dict, for make_fx / aot_autograd (torch.compile path)."""
    table = decomposition_table()
    return {op: table[op] for op in list(table.keys())}
