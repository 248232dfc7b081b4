"""User converters for custom ops, and whole submodules replaced by a custom op."""

from __future__ import annotations

import kiln
from kiln_testing import assert_close, engines_of

import torch
from torch import nn


@torch.library.custom_op("kiln_test::scaled_tanh", mutates_args=())
def scaled_tanh(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.tanh(x) * scale


@scaled_tanh.register_fake
def _(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.empty_like(x)


@kiln.converter(torch.ops.kiln_test.scaled_tanh.default)
def _convert_scaled_tanh(ctx: kiln.ConversionContext, node: torch.fx.Node, args) -> int:
    x = ctx.tensor(args.x)
    y = ctx.unary("tanh", x)
    return ctx.binary("mul", y, ctx.scalar(args.scale, ctx.dtype(x)))


class UsesScaledTanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(scaled_tanh(self.fc1(x), 1.5))


def _calls(gm: torch.fx.GraphModule, op) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target == op)


def test_user_converter_runs_custom_op_in_engine() -> None:
    model = UsesScaledTanh().eval()
    inputs = [kiln.Input((1, 8), (4, 8), (8, 8))]
    compiled = kiln.compile(model, inputs=inputs, require_full_compilation=True)
    assert _calls(compiled, torch.ops.kiln_test.scaled_tanh.default) == 0
    assert len(engines_of(compiled)) == 1
    assert "kiln_test.scaled_tanh.default" in compiled.kiln_report.blocks[0].ops
    for b in (1, 6):
        x = torch.randn(b, 8)
        with torch.no_grad():
            assert_close(compiled(x), model(x), 1e-5, 1e-5)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.gelu(self.up(x)))


@torch.library.custom_op("kiln_test::fused_mlp", mutates_args=())
def fused_mlp(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    h = torch.nn.functional.gelu(torch.nn.functional.linear(x, w1, b1))
    return torch.nn.functional.linear(h, w2, b2)


@fused_mlp.register_fake
def _(x, w1, b1, w2, b2):
    return x.new_empty(x.shape)


@kiln.converter(torch.ops.kiln_test.fused_mlp.default)
def _convert_fused_mlp(ctx: kiln.ConversionContext, node: torch.fx.Node, args) -> int:
    h = ctx.add("linear", [ctx.tensor(args.x), ctx.tensor(args.w1), ctx.tensor(args.b1)])
    h = ctx.unary("gelu", h)
    return ctx.add("linear", [h, ctx.tensor(args.w2), ctx.tensor(args.b2)])


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.mlp1 = MLP(8, 32)
        self.mlp2 = MLP(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mlp1(self.norm(x))
        return x + self.mlp2(x)


def test_replace_module_with_custom_op() -> None:
    model = Block().eval()
    with torch.no_grad():
        x = torch.randn(3, 5, 8)
        ref = model(x)
    assert kiln.replace_module(model, MLP, torch.ops.kiln_test.fused_mlp) == 2
    inputs = [kiln.Input((1, 5, 8), (2, 5, 8), (4, 5, 8))]
    compiled = kiln.compile(model, inputs=inputs, require_full_compilation=True)
    assert _calls(compiled, torch.ops.kiln_test.fused_mlp.default) == 0
    assert compiled.kiln_report.blocks[0].ops["kiln_test.fused_mlp.default"] == 2
    with torch.no_grad():
        assert_close(compiled(x), ref, 1e-4, 1e-4)
