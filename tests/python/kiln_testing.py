"""Shared helpers for Kiln's Python tests (in the spirit of Torch-TensorRT's DispatchTestCase):
compile a tiny module with require_full_compilation=True, check the expected aten op went
into the engine, and compare with eager at one or several batch sizes."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch

import kiln

EXECUTE_ENGINE = torch.ops.kiln.execute_engine.default
# Nodes that may stay in PyTorch in a fully converted graph: shape arithmetic and glue.
GLUE = {
    operator.getitem,
    operator.add,
    operator.sub,
    operator.mul,
    operator.floordiv,
    operator.mod,
    torch.ops.aten.sym_size.int,
    torch.ops.aten.empty.memory_format,
    EXECUTE_ENGINE,
    torch.ops.kiln.enter_compute_stream.default,
    torch.ops.kiln.exit_compute_stream.default,
}


class Fn(torch.nn.Module):
    """A module whose forward is `fn` (so one op can be exported on its own)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


@dataclasses.dataclass
class Case:
    """One converter test: `fn` over inputs made by `make(batch)`; `op` must be converted."""

    name: str
    fn: Callable[..., Any] | torch.nn.Module
    make: Callable[[int], tuple[torch.Tensor, ...]]
    op: Any = None
    dynamic: bool = True
    atol: float = 1e-5
    rtol: float = 1e-5
    # Which inputs have the batch as dim 0 (default: every input of rank >= 1).
    batched: Sequence[int] | None = None

    def __str__(self) -> str:
        return self.name

    def module(self) -> torch.nn.Module:
        m = self.fn if isinstance(self.fn, torch.nn.Module) else Fn(self.fn)
        return m.eval()


def engines_of(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target == EXECUTE_ENGINE]


def torch_ops_of(gm: torch.fx.GraphModule) -> list[str]:
    """call_function targets of `gm` that are neither engines nor shape glue."""
    return [
        str(n.target)
        for n in gm.graph.nodes
        if n.op == "call_function" and n.target not in GLUE
    ]


def assert_close(out: Any, ref: Any, atol: float, rtol: float, where: str = "output") -> None:
    if isinstance(ref, torch.Tensor):
        assert isinstance(out, torch.Tensor), f"{where}: got {type(out).__name__}"
        assert out.shape == ref.shape, f"{where}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
        assert out.dtype == ref.dtype, f"{where}: dtype {out.dtype} != {ref.dtype}"
        if ref.dtype.is_floating_point:
            torch.testing.assert_close(
                out, ref, atol=atol, rtol=rtol, msg=lambda m: f"{where}: {m}"
            )
        else:
            assert torch.equal(out, ref), f"{where}: values differ\n{out}\n{ref}"
    elif isinstance(ref, (list, tuple)):
        assert len(out) == len(ref), f"{where}: {len(out)} outputs, expected {len(ref)}"
        for i, (o, r) in enumerate(zip(out, ref)):
            assert_close(o, r, atol, rtol, f"{where}[{i}]")
    elif hasattr(ref, "to_tuple"):
        assert_close(out.to_tuple(), ref.to_tuple(), atol, rtol, where)
    else:
        assert out == ref, f"{where}: {out!r} != {ref!r}"


def kiln_inputs(
    examples: Sequence[torch.Tensor],
    dynamic: bool,
    batched: Sequence[int] | None,
    lo: int,
    hi: int,
) -> list[kiln.Input]:
    out = []
    for i, t in enumerate(examples):
        is_batched = t.dim() >= 1 and (batched is None or i in batched)
        if dynamic and is_batched:
            shape = list(t.shape)
            out.append(
                kiln.Input(
                    min_shape=[lo] + shape[1:],
                    opt_shape=shape,
                    max_shape=[hi] + shape[1:],
                    dtype=t.dtype,
                )
            )
        else:
            out.append(kiln.Input.from_tensor(t))
    return out


def check_case(case: Case, dynamic: bool, sizes: Sequence[int] = (1, 3, 6)) -> None:
    """Compiles case.fn fully into one engine and compares with eager."""
    module = case.module()
    batch = 2
    examples = case.make(batch)
    compiled = kiln.compile(
        module,
        inputs=kiln_inputs(examples, dynamic, case.batched, 1, 8),
        require_full_compilation=True,
        min_block_size=1,
    )
    assert len(engines_of(compiled)) == 1, compiled.graph
    assert not torch_ops_of(compiled), f"ops left in PyTorch: {torch_ops_of(compiled)}"
    if case.op is not None:
        converted = compiled.kiln_report.blocks[0].ops
        assert str(case.op) in converted, f"{case.op} not among converted ops {dict(converted)}"
    for b in sizes if dynamic else (batch,):
        args = examples if b == batch else case.make(b)
        with torch.no_grad():
            ref = module(*args)
            out = compiled(*args)
        assert_close(out, ref, case.atol, case.rtol, f"{case.name} (batch {b})")


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))
