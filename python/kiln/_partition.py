"""Capability-based partitioning: which nodes Kiln converts, grouped into blocks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from kiln import _dtypes
from kiln._lowering import is_getitem
from kiln._settings import CompilationSettings
from kiln._symbols import SymbolTable, expr_of, free_symbols_of_value
from kiln.converters._registry import ConverterEntry, candidates, run_validator

Node = torch.fx.Node


@dataclasses.dataclass
class Verdict:
    entry: ConverterEntry | None
    reason: str | None  # why the node stays in PyTorch (None when supported)
    tensor_op: bool = True  # False for shape arithmetic (SymInt results)


def op_name(node: Node) -> str:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return getattr(target, "__name__", str(target))


def _matches_op(node: Node, patterns: Iterable[Any]) -> bool:
    target = node.target
    names = {str(target)}
    if isinstance(target, torch._ops.OpOverload):
        packet = str(target.overloadpacket)  # "aten.relu"
        names |= {packet, f"torch.ops.{target}", f"torch.ops.{packet}"}
        names.add(target.name())  # "aten::relu"
        names.add(target.name().split(".")[0])
    for p in patterns:
        if p is target or (
            isinstance(p, torch._ops.OpOverloadPacket)
            and getattr(target, "overloadpacket", None) is p
        ):
            return True
        if isinstance(p, str) and p.replace("::", ".") in {n.replace("::", ".") for n in names}:
            return True
    return False


def _module_match(node: Node, patterns: Iterable[Any]) -> str | None:
    stack = node.meta.get("nn_module_stack") or {}
    for path, mtype in stack.values():
        qualified = mtype if isinstance(mtype, str) else f"{mtype.__module__}.{mtype.__qualname__}"
        short = qualified.rsplit(".", 1)[-1]
        for p in patterns:
            if isinstance(p, type):
                hit = (not isinstance(mtype, str) and issubclass(mtype, p)) or qualified == (
                    f"{p.__module__}.{p.__qualname__}"
                )
            else:
                p = str(p)
                clean = str(path).replace("L['self'].", "").replace("L['self']", "")
                hit = p in (qualified, short, clean) or clean.startswith(p + ".")
            if hit:
                return f"{clean_path(path)} ({short})"
    return None


def clean_path(path: Any) -> str:
    return str(path).replace("L['self'].", "") or "<root>"


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _arg_values(node: Node) -> list[Any]:
    out: list[Any] = []

    def visit(a: Any) -> Any:
        out.append(a.meta.get("val") if isinstance(a, Node) else a)
        return a

    torch.fx.node.map_aggregate((node.args, node.kwargs), visit)
    return out


class SupportChecker:
    """Decides per node whether Kiln converts it, and with which converter."""

    def __init__(
        self,
        settings: CompilationSettings,
        symbols: SymbolTable,
        rejected: dict[Node, str] | None = None,
    ) -> None:
        self.settings = settings
        self.symbols = symbols
        self.rejected = rejected if rejected is not None else {}
        self.verdicts: dict[Node, Verdict] = {}
        self.device_type = torch.device(settings.device).type

    def verdict(self, node: Node) -> Verdict:
        if node not in self.verdicts:
            self.verdicts[node] = self._check(node)
        return self.verdicts[node]

    def supported(self, node: Node) -> bool:
        return self.verdict(node).reason is None

    def _check(self, node: Node) -> Verdict:
        if node.op != "call_function":
            return Verdict(None, f"{node.op} node", tensor_op=False)
        if is_getitem(node):
            src = node.args[0]
            ok = isinstance(src, Node) and self.supported(src)
            return Verdict(None, None if ok else "reads an output of a PyTorch op", False)
        val = node.meta.get("val")
        outs = _tensors(val)
        if not outs:
            return Verdict(None, "shape arithmetic (non-tensor result)", tensor_op=False)
        if node in self.rejected:
            return Verdict(None, self.rejected[node])
        if _matches_op(node, self.settings.torch_executed_ops):
            return Verdict(None, "listed in torch_executed_ops")
        where = _module_match(node, self.settings.torch_executed_modules)
        if where is not None:
            return Verdict(None, f"inside torch_executed_modules: {where}")
        entries = candidates(node.target)
        if not entries:
            return Verdict(None, "no converter")
        reason = self._check_values(node, _read_outputs(node, val, outs))
        if reason is not None:
            return Verdict(None, reason)
        dynamic = self._is_dynamic(node)
        reasons = []
        for entry in entries:
            if dynamic and not entry.supports_dynamic_shapes:
                reasons.append(f"{entry.name} does not support dynamic shapes")
                continue
            why = run_validator(entry, node)
            if why is None:
                return Verdict(entry, None)
            reasons.append(why)
        return Verdict(None, "; ".join(reasons))

    def _check_values(self, node: Node, outs: list[torch.Tensor]) -> str | None:
        args = _arg_values(node)
        for t in outs + _tensors(args):
            if not _dtypes.is_supported(t.dtype):
                return f"dtype {_dtypes.name(t.dtype)} (Kiln has no such dtype)"
            if t.device.type not in (self.device_type, "meta"):
                return f"tensor on {t.device} while compiling for {self.settings.device}"
        syms = free_symbols_of_value(outs) | free_symbols_of_value(_tensors(args))
        for a in args:
            if isinstance(a, torch.SymInt):
                syms |= expr_of(a).free_symbols
            elif isinstance(a, (torch.SymFloat, torch.SymBool)):
                return "symbolic float/bool argument"
        syms = {s for e in syms for s in self.symbols.canon(e).free_symbols}
        bad = sorted(str(s) for s in syms if self.symbols.range(s) is None)
        unbacked = [s for s in bad if s.startswith("u")]
        if unbacked:
            return f"data-dependent size {', '.join(unbacked)}"
        if bad:
            return (
                f"dynamic dim {', '.join(bad)} without an upper bound (Kiln needs a range: "
                "kiln.Input min/max, or torch._dynamo.mark_dynamic(x, dim, min=, max=))"
            )
        return None

    @staticmethod
    def _is_dynamic(node: Node) -> bool:
        vals = [node.meta.get("val")] + _arg_values(node)
        return any(free_symbols_of_value(v) for v in vals) or any(
            isinstance(v, torch.SymInt) for v in vals
        )


def _read_outputs(node: Node, val: Any, outs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The outputs of `node` that something reads. A multi-output op read only through getitem
    (flash attention's philox seed and offset are uint64 tensors nobody reads) is judged by the
    outputs taken from it."""
    if not isinstance(val, (tuple, list)) or not node.users:
        return outs
    if not all(is_getitem(u) and isinstance(u.args[1], int) for u in node.users):
        return outs
    return _tensors([val[u.args[1]] for u in node.users])


class _Support(OperatorSupportBase):
    def __init__(self, checker: SupportChecker) -> None:
        super().__init__()
        self.checker = checker

    def is_node_supported(self, submodules: Any, node: Node) -> bool:
        return self.checker.supported(node)


@dataclasses.dataclass
class Block:
    name: str
    nodes: list[Node]

    @property
    def size(self) -> int:
        """Nodes that compute something (getitems do not count)."""
        return sum(1 for n in self.nodes if not is_getitem(n))


def partition(
    gm: torch.fx.GraphModule, checker: SupportChecker, min_block_size: int
) -> tuple[list[Block], list[Block]]:
    """Blocks of supported nodes (in graph order), and the blocks dropped for being smaller
    than min_block_size."""
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    partitioner = CapabilityBasedPartitioner(
        gm, _Support(checker), allows_single_node_partition=True
    )
    parts = partitioner.propose_partitions()
    blocks = []
    for p in parts:
        nodes = sorted(p.nodes, key=order.__getitem__)
        nodes = [n for n in nodes if checker.supported(n)]
        if any(not is_getitem(n) for n in nodes):
            blocks.append(Block("", nodes))
    blocks.sort(key=lambda b: order[b.nodes[0]])
    kept, dropped = [], []
    for b in blocks:
        (kept if b.size >= min_block_size else dropped).append(b)
    for i, b in enumerate(kept):
        b.name = f"_run_on_kiln_{i}"
    for i, b in enumerate(dropped):
        b.name = f"small_block_{i}"
    return kept, dropped
