"""The compilation report: operator coverage and the blocks formed (kiln.compile(dryrun=True))."""

from __future__ import annotations

import collections
import dataclasses

import torch

from kiln._lowering import is_getitem
from kiln._partition import Block, SupportChecker, op_name

Node = torch.fx.Node


@dataclasses.dataclass
class UnsupportedOp:
    """One operator that runs in PyTorch: how often, and why (reason -> count)."""

    op: str
    count: int = 0
    reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def __str__(self) -> str:
        many = len(self.reasons) > 1
        why = "; ".join(f"{r} (x{c})" if many else r for r, c in self.reasons.items())
        return f"{self.op} x{self.count}: {why}"


@dataclasses.dataclass
class BlockInfo:
    name: str
    num_nodes: int
    ops: collections.Counter
    inputs: int = 0
    outputs: int = 0
    engine_bytes: int = 0
    build_seconds: float = 0.0
    status: str = "planned"  # planned, built, fell back: <why>

    def __str__(self) -> str:
        top = ", ".join(f"{_short(op)} x{n}" for op, n in self.ops.most_common(6))
        more = " ..." if len(self.ops) > 6 else ""
        return f"{self.name}: {self.num_nodes} nodes [{top}{more}] ({self.status})"


def _short(op: str) -> str:
    """"aten.convolution.default" -> "convolution"."""
    parts = op.split(".")
    return parts[-2] if len(parts) >= 3 else op


@dataclasses.dataclass
class CompilationReport:
    """What kiln.compile did or would do. ``unsupported`` maps op name -> UnsupportedOp for
    tensor ops that run in PyTorch; ``blocks`` lists the Kiln blocks."""

    unsupported: dict[str, UnsupportedOp] = dataclasses.field(default_factory=dict)
    blocks: list[BlockInfo] = dataclasses.field(default_factory=list)
    small_blocks: list[BlockInfo] = dataclasses.field(default_factory=list)
    shape_ops: int = 0  # SymInt arithmetic nodes (always in PyTorch)
    total_ops: int = 0  # tensor-producing call_function nodes
    converted_ops: int = 0

    @property
    def fully_converted(self) -> bool:
        return not self.unsupported and not self.small_blocks and len(self.blocks) <= 1

    def add_unsupported(self, node: Node, reason: str) -> None:
        name = op_name(node)
        entry = self.unsupported.setdefault(name, UnsupportedOp(name))
        entry.count += 1
        entry.reasons[reason] += 1

    def summary(self) -> str:
        pct = 100.0 * self.converted_ops / self.total_ops if self.total_ops else 100.0
        return (
            f"kiln: {self.converted_ops}/{self.total_ops} ops ({pct:.1f}%) in "
            f"{len(self.blocks)} Kiln block(s); {sum(u.count for u in self.unsupported.values())}"
            f" op(s) in PyTorch"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.blocks:
            lines.append("Kiln blocks:")
            lines += [f"  {b}" for b in self.blocks]
        if self.unsupported:
            lines.append("Ops running in PyTorch (op x count: reason):")
            items = sorted(self.unsupported.values(), key=lambda u: (-u.count, u.op))
            lines += [f"  {u}" for u in items]
        if self.small_blocks:
            lines.append("Blocks left in PyTorch (below min_block_size):")
            lines += [f"  {b}" for b in self.small_blocks]
        return "\n".join(lines)


def block_info(block: Block) -> BlockInfo:
    ops = collections.Counter(op_name(n) for n in block.nodes if not is_getitem(n))
    return BlockInfo(block.name, block.size, ops)


def build_report(
    gm: torch.fx.GraphModule,
    checker: SupportChecker,
    blocks: list[Block],
    dropped: list[Block],
    min_block_size: int,
) -> CompilationReport:
    report = CompilationReport()
    in_blocks = {n for b in blocks for n in b.nodes}
    in_dropped = {n: b for b in dropped for n in b.nodes}
    for node in gm.graph.nodes:
        if node.op != "call_function" or is_getitem(node):
            continue
        verdict = checker.verdict(node)
        if not verdict.tensor_op:
            report.shape_ops += 1
            continue
        report.total_ops += 1
        if node in in_blocks:
            report.converted_ops += 1
        elif node in in_dropped:
            size = in_dropped[node].size
            report.add_unsupported(node, f"in a block of {size} < min_block_size={min_block_size}")
        else:
            report.add_unsupported(node, verdict.reason or "not converted")
    report.blocks = [block_info(b) for b in blocks]
    report.small_blocks = [block_info(b) for b in dropped]
    return report
