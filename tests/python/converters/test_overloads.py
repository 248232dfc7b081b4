"""Overloads torch.export keeps only when a model calls them by name (they reach Kiln from
custom code, other tracers and torch.compile), each converted and compared with eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kiln_testing import Case, Fn, assert_close, check_case

import kiln
import kiln._backend

aten = torch.ops.aten


def x3(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 4, 6),)


def x4(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 3, 4, 5),)


def x5(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(b, 2, 4, 4, 4),)


def ints(b: int) -> tuple[torch.Tensor, ...]:
    return (torch.randint(-8, 8, (b, 6)),)


CASES = [
    Case("add.Scalar", lambda x: aten.add.Scalar(x, 2.5), x3, aten.add.Scalar),
    Case("sub.Scalar", lambda x: aten.sub.Scalar(x, 2.5, alpha=2), x3, aten.sub.Scalar),
    Case("mul.Scalar", lambda x: aten.mul.Scalar(x, -1.5), x3, aten.mul.Scalar),
    Case("div.Scalar", lambda x: aten.div.Scalar(x, 4.0), x3, aten.div.Scalar),
    Case("div.Scalar_mode", lambda x: aten.div.Scalar_mode(x, 3, rounding_mode="floor"), ints,
         aten.div.Scalar_mode),
    Case("rsub.Tensor", lambda x: aten.rsub.Tensor(x, x * 2, alpha=3), x3, aten.rsub.Tensor),
    Case("pow.Scalar", lambda x: aten.pow.Scalar(2.0, x), x3, aten.pow.Scalar),
    Case("relu6", lambda x: aten.relu6.default(x * 8), x3, aten.relu6.default),
    Case("bitwise_and.Scalar", lambda x: aten.bitwise_and.Scalar(x, 5), ints,
         aten.bitwise_and.Scalar),
    Case("bitwise_or.Scalar", lambda x: aten.bitwise_or.Scalar(x, 5), ints,
         aten.bitwise_or.Scalar),
    Case("bitwise_xor.Scalar", lambda x: aten.bitwise_xor.Scalar(x, 5), ints,
         aten.bitwise_xor.Scalar),
    Case("masked_fill.Tensor", lambda x: aten.masked_fill.Tensor(x, x > 0, torch.tensor(2.0)),
         x3, aten.masked_fill.Tensor),
    Case("clone", lambda x: aten.clone.default(x.transpose(1, 2)) * 2, x3, aten.clone.default),
    Case("native_dropout", lambda x: aten.native_dropout.default(x, 0.3, False)[0] + 1, x3,
         aten.native_dropout.default),
    Case("min.default", lambda x: aten.min.default(x), x3, aten.min.default),
    Case("any.dim", lambda x: aten.any.dim(x > 1, 1), x3, aten.any.dim),
    Case("any.dims", lambda x: aten.any.dims(x > 1, [1, 2], True), x3, aten.any.dims),
    Case("any.default", lambda x: aten.any.default(x > 2), x3, aten.any.default),
    Case("_softmax", lambda x: aten._softmax.default(x, -1, False), x3, aten._softmax.default),
    Case("_log_softmax", lambda x: aten._log_softmax.default(x, 1, False), x3,
         aten._log_softmax.default),
    Case("matmul", lambda x: aten.matmul.default(x, x.transpose(1, 2)), x3, aten.matmul.default,
         atol=1e-4, rtol=1e-4),
    Case("_unsafe_view", lambda x: aten._unsafe_view.default(x * 2, [x.shape[0], 24]), x3,
         aten._unsafe_view.default),
    Case("squeeze.dim", lambda x: aten.squeeze.dim(x[:, :1], 1), x3, aten.squeeze.dim),
    Case("squeeze.dims", lambda x: aten.squeeze.dims(x[:, :1, :1], [1, 2]), x3,
         aten.squeeze.dims),
    Case("native_layer_norm",
         lambda x: aten.native_layer_norm.default(x, [6], None, None, 1e-5)[0], x3,
         aten.native_layer_norm.default, atol=1e-4, rtol=1e-4),
    Case("native_group_norm",
         lambda x: aten.native_group_norm.default(x, None, None, x.shape[0], 3, 20, 3, 1e-5)[0],
         x4, aten.native_group_norm.default, atol=1e-4, rtol=1e-4),
    Case("rms_norm", lambda x: aten.rms_norm.default(x, [6], None, 1e-5), x3,
         aten.rms_norm.default, atol=1e-4, rtol=1e-4),
    Case("max_pool2d_with_indices",
         lambda x: aten.max_pool2d_with_indices.default(x, [2, 2])[0], x4,
         aten.max_pool2d_with_indices.default),
    Case("max_pool3d_with_indices",
         lambda x: aten.max_pool3d_with_indices.default(x, [2, 2, 2])[0], x5,
         aten.max_pool3d_with_indices.default),
    Case("avg_pool3d", lambda x: aten.avg_pool3d.default(x, [2, 2, 2]), x5,
         aten.avg_pool3d.default, atol=1e-4, rtol=1e-4),
    Case("_adaptive_avg_pool2d", lambda x: aten._adaptive_avg_pool2d.default(x, [2, 2]), x4,
         aten._adaptive_avg_pool2d.default, atol=1e-4, rtol=1e-4),
    Case("_adaptive_avg_pool3d", lambda x: aten._adaptive_avg_pool3d.default(x, [1, 2, 1]), x5,
         aten._adaptive_avg_pool3d.default, atol=1e-4, rtol=1e-4),
    Case("reflection_pad1d", lambda x: F.pad(x, (2, 1), mode="reflect"), x3,
         aten.reflection_pad1d.default),
    Case("reflection_pad2d", lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"), x4,
         aten.reflection_pad2d.default),
    Case("reflection_pad3d", lambda x: F.pad(x, (1, 1, 2, 1, 1, 0), mode="reflect"), x5,
         aten.reflection_pad3d.default),
    Case("replication_pad1d", lambda x: F.pad(x, (2, 1), mode="replicate"), x3,
         aten.replication_pad1d.default),
    Case("replication_pad2d", lambda x: F.pad(x, (1, 2, 2, 1), mode="replicate"), x4,
         aten.replication_pad2d.default),
    Case("replication_pad3d", lambda x: F.pad(x, (1, 1, 2, 1, 1, 0), mode="replicate"), x5,
         aten.replication_pad3d.default),
    Case("arange.start", lambda x: x + aten.arange.start(-2, 4), x3, aten.arange.start),
    Case("arange.start_step", lambda x: x + aten.arange.start_step(10, -2, -2), x3,
         aten.arange.start_step),
    Case("zeros", lambda x: x + aten.zeros.default([6]), x3, aten.zeros.default),
    Case("ones", lambda x: x + aten.ones.default([4, 6]), x3, aten.ones.default),
    Case("zeros_like", lambda x: aten.zeros_like.default(x) - x, x3, aten.zeros_like.default),
    Case("ones_like", lambda x: aten.ones_like.default(x) - x, x3, aten.ones_like.default),
    Case("scalar_tensor", lambda x: x * aten.scalar_tensor.default(3.0), x3,
         aten.scalar_tensor.default),
    Case("empty.memory_format", lambda x: torch.empty(6).fill_(2.0) * x, x3,
         aten.empty.memory_format),
    Case("empty_permuted", lambda x: torch.empty_like(x).fill_(2.0) * x, x3,
         aten.empty_permuted.default),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_static(case: Case) -> None:
    check_case(case, dynamic=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.dynamic], ids=str)
def test_dynamic_batch(case: Case) -> None:
    """The batch is a symbol in [1, 8]; one engine runs batches 1, 3 and 6."""
    check_case(case, dynamic=True)


def _qkv(b: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(b, 2, 5, 8) for _ in range(3))


def _converted_by_backend(fn, args, monkeypatch: pytest.MonkeyPatch) -> tuple:
    # The backend builds for the inputs' device (CPU here, CUDA in the gpu tests).
    """Runs fn through torch.compile(backend="kiln"); returns (output, converted op counts)."""
    torch._dynamo.reset()
    reports = []
    real = kiln._backend.compile_graph

    def spy(gm, settings, table):
        out = real(gm, settings, table)
        reports.append(out[1])
        return out

    monkeypatch.setattr(kiln._backend, "compile_graph", spy)
    options = {"require_full_compilation": True, "min_block_size": 1}
    compiled = torch.compile(Fn(fn), backend="kiln", options=options)
    with torch.no_grad():
        out = compiled(*args)
    torch._dynamo.reset()
    return out, reports[0].blocks[0].ops


def test_sdpa_flash_for_cpu_from_torch_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _qkv(2)
    out, ops = _converted_by_backend(F.scaled_dot_product_attention, args, monkeypatch)
    assert "aten._scaled_dot_product_flash_attention_for_cpu.default" in ops
    assert_close(out, F.scaled_dot_product_attention(*args), 1e-4, 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["efficient", "flash", "cudnn"])
def test_sdpa_cuda_kernels_from_torch_compile(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = {
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }[backend]
    args = tuple(t.cuda().half() for t in _qkv(2))
    with sdpa_kernel(chosen):
        out, ops = _converted_by_backend(F.scaled_dot_product_attention, args, monkeypatch)
        ref = F.scaled_dot_product_attention(*args)
    assert any("_scaled_dot_product" in op for op in ops)
    assert_close(out, ref, 2e-3, 2e-3)


def _flash_graph(read: list[int]) -> tuple[torch.fx.Graph, torch.fx.Node]:
    """A graph calling CUDA flash attention on fake CUDA tensors (no GPU needed) that reads the
    outputs listed in `read` (6 and 7 are the uint64 philox seed and offset)."""
    import operator

    from torch._subclasses.fake_tensor import FakeTensorMode

    g = torch.fx.Graph()
    mode = FakeTensorMode()
    with mode:
        q = torch.empty(2, 2, 16, 64, dtype=torch.float16, device="cuda")
    args = []
    for name in "qkv":
        p = g.placeholder(name)
        p.meta["val"] = q
        args.append(p)
    flash = torch.ops.aten._scaled_dot_product_flash_attention.default
    node = g.call_function(flash, tuple(args))
    with mode:
        node.meta["val"] = flash(q, q, q)
    outs = []
    for i in read:
        item = g.call_function(operator.getitem, (node, i))
        item.meta["val"] = node.meta["val"][i]
        outs.append(item)
    g.output(tuple(outs))
    return g, node


def test_flash_attention_unread_uint64_outputs_do_not_block_conversion() -> None:
    from kiln._partition import SupportChecker
    from kiln._settings import CompilationSettings
    from kiln._symbols import SymbolTable

    _, node = _flash_graph([0])
    assert torch.uint64 in [getattr(v, "dtype", None) for v in node.meta["val"]]
    checker = SupportChecker(CompilationSettings(device="cuda:0"), SymbolTable(None))
    assert checker.verdict(node).reason is None
    _, node = _flash_graph([0, 6])  # the seed is read: Kiln cannot produce it
    checker = SupportChecker(CompilationSettings(device="cuda:0"), SymbolTable(None))
    assert "uint64" in checker.verdict(node).reason
