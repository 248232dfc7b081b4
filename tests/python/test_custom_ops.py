"""User converters for custom ops, and whole submodules replaced by a custom op."""

from __future__ import annotations

import torch
from kiln_testing import assert_close, engines_of
from torch import nn

import kiln


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


@torch.library.custom_op("kiln_test::shifted", mutates_args=())
def shifted(x: torch.Tensor, amount: float) -> torch.Tensor:
    return x + amount


@shifted.register_fake
def _(x: torch.Tensor, amount: float) -> torch.Tensor:
    return torch.empty_like(x)


class UsesShifted(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(shifted(x * 2, 0.5)) - 1


def _shift_by(ctx: kiln.ConversionContext, node: torch.fx.Node, args) -> int:
    x = ctx.tensor(args.x)
    return ctx.binary("add", x, ctx.scalar(args.amount, ctx.dtype(x)))


def _static_only_report(inputs: list) -> kiln.CompilationReport:
    return kiln.compile(UsesShifted(), inputs=inputs, dryrun=True, min_block_size=1)


def test_converter_without_dynamic_support_falls_back_on_dynamic_shapes() -> None:
    kiln.converter(torch.ops.kiln_test.shifted.default, supports_dynamic_shapes=False)(_shift_by)
    try:
        dynamic = _static_only_report([kiln.Input((1, 4), (2, 4), (8, 4))])
        reasons = dynamic.unsupported["kiln_test.shifted.default"].reasons
        assert "does not support dynamic shapes" in next(iter(reasons))
        static = _static_only_report([kiln.Input(shape=(2, 4))])
        assert "kiln_test.shifted.default" not in static.unsupported
    finally:
        kiln.converters.unregister(torch.ops.kiln_test.shifted.default)


def test_highest_priority_converter_whose_validator_accepts_wins() -> None:
    target = torch.ops.kiln_test.shifted.default
    used: list[str] = []

    def make(tag: str):
        def convert(ctx, node, args):
            used.append(tag)
            return _shift_by(ctx, node, args)

        return convert

    kiln.converter(target, priority=0)(make("low"))
    kiln.converter(target, priority=5, validator=lambda n: "never")(make("picky"))
    kiln.converter(target, priority=3)(make("high"))
    try:
        model = UsesShifted()
        compiled = kiln.compile(model, inputs=[kiln.Input(shape=(2, 4))], min_block_size=1)
        assert used == ["high"]
        x = torch.randn(2, 4)
        assert_close(compiled(x), model(x), 1e-6, 1e-6)
    finally:
        kiln.converters.unregister(target)
