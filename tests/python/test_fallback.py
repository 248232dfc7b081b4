"""Unsupported never fails: data-dependent ops, custom ops without converters and user
exclusions run in PyTorch; the report and the compile log name them."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from kiln_testing import assert_close, engines_of, torch_ops_of
from torch import nn

import kiln


@torch.library.custom_op("kiln_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.sin() * 2


@mystery.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class WithNonzero(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(self.fc1(x))
        idx = torch.nonzero(y > 0.2)
        return self.fc2(y).softmax(-1), idx


class WithMystery(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.fc1(x)) * 0.5 + 0.25
        return torch.tanh(self.fc2(mystery(y)) + 1)


def _input() -> kiln.Input:
    return kiln.Input(min_shape=(1, 8), opt_shape=(4, 8), max_shape=(8, 8))


def test_nonzero_runs_in_torch_and_matches_eager() -> None:
    model = WithNonzero().eval()
    compiled = kiln.compile(model, inputs=[_input()], min_block_size=1)
    report = compiled.kiln_report
    assert "aten.nonzero.default" in report.unsupported
    assert "aten.nonzero.default" in torch_ops_of(compiled)
    assert engines_of(compiled)
    for b in (1, 5):
        x = torch.randn(b, 8)
        with torch.no_grad():
            assert_close(compiled(x), model(x), 1e-5, 1e-5)


def test_custom_op_without_converter_runs_in_torch() -> None:
    model = WithMystery().eval()
    compiled = kiln.compile(model, inputs=[_input()], min_block_size=1)
    report = compiled.kiln_report
    assert report.unsupported["kiln_test.mystery.default"].reasons == {"no converter": 1}
    assert len(report.blocks) == 2
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-5, 1e-5)


def test_dryrun_returns_report() -> None:
    report = kiln.compile(WithMystery().eval(), inputs=[_input()], dryrun=True, min_block_size=1)
    assert isinstance(report, kiln.CompilationReport)
    assert "kiln_test.mystery.default" in report.unsupported
    assert [b.num_nodes for b in report.blocks] == [4, 3]
    text = str(report)
    assert "kiln_test.mystery.default x1: no converter" in text
    assert "_run_on_kiln_0" in text


def test_small_blocks_stay_in_torch() -> None:
    report = kiln.compile(WithMystery().eval(), inputs=[_input()], dryrun=True, min_block_size=4)
    assert [b.num_nodes for b in report.blocks] == [4]
    assert [b.num_nodes for b in report.small_blocks] == [3]


def test_compile_logs_coverage(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kiln"):
        kiln.compile(WithMystery().eval(), inputs=[_input()], min_block_size=1)
    text = caplog.text
    assert "ops (" in text and "Kiln block(s)" in text
    assert "kiln_test.mystery.default x1: no converter" in text


def test_require_full_compilation_lists_unsupported_ops() -> None:
    with pytest.raises(kiln.FullCompilationError, match="aten.nonzero.default"):
        kiln.compile(WithNonzero().eval(), inputs=[_input()], require_full_compilation=True)


def test_torch_executed_ops() -> None:
    model = WithMystery().eval()
    compiled = kiln.compile(
        model, inputs=[_input()], min_block_size=1, torch_executed_ops=["aten.tanh.default"]
    )
    assert compiled.kiln_report.unsupported["aten.tanh.default"].reasons == {
        "listed in torch_executed_ops": 1
    }
    assert "aten.tanh.default" in torch_ops_of(compiled)
    x = torch.randn(2, 8)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-5, 1e-5)


def test_torch_executed_modules() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8), nn.ReLU()).eval()
    compiled = kiln.compile(
        model, inputs=[_input()], min_block_size=1, torch_executed_modules=[nn.GELU]
    )
    unsupported = compiled.kiln_report.unsupported
    assert list(unsupported) == ["aten.gelu.default"]
    assert "torch_executed_modules" in next(iter(unsupported["aten.gelu.default"].reasons))
    x = torch.randn(2, 8)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-5, 1e-5)


def test_float64_falls_back() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU()).eval()

    class Double(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.body(x).double() * 3).exp().float() + 1

    m = Double().eval()
    compiled = kiln.compile(m, inputs=[_input()], min_block_size=1)
    assert any("float64" in r for u in compiled.kiln_report.unsupported.values() for r in u.reasons)
    x = torch.randn(2, 8)
    with torch.no_grad():
        assert_close(compiled(x), m(x), 1e-5, 1e-5)


class SizeOnlyBlock(nn.Module):
    """The first Kiln block reads the batch size but no tensor carrying it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = mystery(x)
        pos = (torch.arange(x.shape[0]) * 2 + 1).float().unsqueeze(1)
        return y + mystery(pos)


def test_block_gets_a_symbol_from_a_shape_carrier() -> None:
    model = SizeOnlyBlock().eval()
    compiled = kiln.compile(model, inputs=[_input()], min_block_size=1)
    carriers = [n for n in compiled.graph.nodes if n.target == torch.ops.aten.empty.memory_format]
    assert len(carriers) == 1
    for b in (1, 3, 8):
        x = torch.randn(b, 8)
        with torch.no_grad():
            assert_close(compiled(x), model(x), 1e-5, 1e-5)


def _owned(engine) -> list[bool]:
    metadata = json.loads(json.loads(engine.info_json())["metadata"])
    return [o["owned"] for o in metadata["outputs"]]


def test_engine_metadata_marks_outputs_the_user_never_sees() -> None:
    compiled = kiln.compile(WithMystery().eval(), inputs=[_input()], min_block_size=1)
    assert _owned(compiled._run_on_kiln_0) == [True]  # feeds mystery only
    assert _owned(compiled._run_on_kiln_1) == [False]  # the model's output
