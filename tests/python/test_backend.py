"""torch.compile(model, backend="kiln"): results, engines, and no recompilation inside a
dim range marked dynamic."""

from __future__ import annotations

import pytest
import torch
from kiln_testing import assert_close
from torch import nn

import kiln
import kiln._backend


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return self.fc(y.mean((2, 3))).softmax(-1)


@pytest.fixture
def compile_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records the graphs the Kiln backend compiles (one entry per compilation)."""
    torch._dynamo.reset()
    calls: list = []
    real = kiln._backend.compile_graph

    def spy(gm, settings, table):
        out = real(gm, settings, table)
        calls.append(out[0])
        return out

    monkeypatch.setattr(kiln._backend, "compile_graph", spy)
    yield calls
    torch._dynamo.reset()


def test_backend_matches_eager(compile_calls: list) -> None:
    model = Net().eval()
    compiled = torch.compile(model, backend="kiln", options={"min_block_size": 1})
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-4, 1e-4)
    assert len(compile_calls) == 1
    gm = compile_calls[0]
    engines = [n for n in gm.graph.nodes if n.target == torch.ops.kiln.execute_engine.default]
    assert len(engines) == 1


def test_marked_dynamic_batch_compiles_once(compile_calls: list) -> None:
    model = Net().eval()
    compiled = torch.compile(model, backend="kiln")
    x = torch.randn(4, 3, 8, 8)
    torch._dynamo.mark_dynamic(x, 0, min=2, max=12)
    with torch.no_grad():
        for b in (4, 2, 7, 12):
            x = torch.randn(b, 3, 8, 8)
            if b == 4:
                torch._dynamo.mark_dynamic(x, 0, min=2, max=12)
            assert_close(compiled(x), model(x), 1e-4, 1e-4)
    assert len(compile_calls) == 1
    report = compile_calls[0].kiln_report
    assert len(report.blocks) == 1 and not report.unsupported


def test_backend_options_reach_the_pipeline(compile_calls: list) -> None:
    model = Net().eval()
    compiled = torch.compile(
        model, backend="kiln", options={"torch_executed_ops": ["aten.relu.default"]}
    )
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-4, 1e-4)
    assert "aten.relu.default" in compile_calls[0].kiln_report.unsupported


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown options"):
        kiln.CompilationSettings.from_options({"min_blok_size": 2})


def test_compile_ir_torch_compile(compile_calls: list) -> None:
    model = Net().eval()
    compiled = kiln.compile(model, ir="torch_compile", min_block_size=1)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-4, 1e-4)
    assert len(compile_calls) == 1


def test_unbounded_dynamic_dim_runs_in_torch(compile_calls: list) -> None:
    """Automatic dynamic shapes (no range) recompile; Kiln leaves those graphs to PyTorch."""
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    compiled = torch.compile(model, backend="kiln")
    with torch.no_grad():
        for b in (2, 3, 5):
            x = torch.randn(b, 8)
            assert_close(compiled(x), model(x), 1e-5, 1e-5)
    assert len(compile_calls) == 2  # static first, then dynamic without a range
    reasons = compile_calls[1].kiln_report.unsupported["aten.relu.default"].reasons
    assert "without an upper bound" in next(iter(reasons))
