"""One block of fx nodes -> a Kiln network (conversion) -> an engine (build)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import sympy
import torch

from kiln import _dtypes
from kiln._lowering import is_getitem
from kiln._ops import _C
from kiln._partition import Block, SupportChecker
from kiln._settings import CompilationSettings
from kiln._symbols import SymbolTable, expr_of
from kiln.converters._args import bind_args
from kiln.converters._context import ConversionContext, ConversionError

logger = logging.getLogger("kiln")
Node = torch.fx.Node


class NodeConversionError(ConversionError):
    """Converting `node` failed; the caller sends that node to PyTorch and re-partitions."""

    def __init__(self, node: Node, message: str) -> None:
        super().__init__(f"{node.name} ({node.target}): {message}")
        self.node = node
        self.reason = message


@dataclasses.dataclass
class ConvertedBlock:
    block: Block
    network: Any
    inputs: list[Node]  # tensor inputs, in engine order
    carriers: list[sympy.Symbol]  # symbols passed as uint8[sym] tensors after the inputs
    outputs: list[Node]  # in engine order
    profile: dict[str, tuple[int, int, int]]
    input_names: list[str]
    output_names: list[str]


def _tensor_val(node: Node) -> torch.Tensor | None:
    v = node.meta.get("val")
    return v if isinstance(v, torch.Tensor) else None


def block_boundary(block: Block) -> tuple[list[Node], list[Node]]:
    """External tensor inputs (not constants) and the nodes read outside the block."""
    inside = set(block.nodes)
    inputs: dict[Node, None] = {}
    for node in block.nodes:
        for arg in node.all_input_nodes:
            if arg in inside or arg.op == "get_attr":
                continue
            if _tensor_val(arg) is not None:
                inputs[arg] = None
    outputs = [n for n in block.nodes if any(u not in inside for u in n.users)]
    return list(inputs), outputs


def _block_symbols(block: Block, inputs: list[Node], table: SymbolTable) -> set[sympy.Symbol]:
    syms: set[sympy.Symbol] = set()

    def add(value: Any) -> None:
        if isinstance(value, torch.SymInt):
            syms.update(table.canon(expr_of(value)).free_symbols)
        elif isinstance(value, torch.Tensor):
            for d in value.shape:
                add(d)
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(v)

    for node in list(block.nodes) + inputs:
        add(node.meta.get("val"))
        for arg in node.all_input_nodes:
            add(arg.meta.get("val"))
        torch.fx.node.map_aggregate((node.args, node.kwargs), lambda a: add(a) or a)
    return syms


def convert_block(
    gm: torch.fx.GraphModule,
    block: Block,
    checker: SupportChecker,
    table: SymbolTable,
) -> ConvertedBlock:
    """Builds the Kiln network of `block`. A converter failure raises NodeConversionError."""
    inputs, outputs = block_boundary(block)
    network = _C.Network(block.name)
    ctx = ConversionContext(network, table, lambda n: fetch_attr(gm, n))

    profile: dict[str, tuple[int, int, int]] = {}
    for sym in sorted(_block_symbols(block, inputs, table), key=str):
        r = table.range(sym)
        if r is None:
            raise NodeConversionError(block.nodes[0], f"symbol {sym} has no finite range")
        ctx.symbols[sym] = network.add_symbol(str(sym), r.min, r.opt, r.max)
        profile[str(sym)] = (r.min, r.opt, r.max)

    bound: set[sympy.Symbol] = set()
    input_names = []
    for node in inputs:
        val = _tensor_val(node)
        exprs = [table.canon(expr_of(d)) for d in val.shape]
        bound.update(e for e in exprs if e.is_Symbol)
        shape = [ctx.sym(d) for d in val.shape]
        ctx.values[node] = network.add_input(node.name, _dtypes.to_kiln(val.dtype), shape)
        input_names.append(node.name)
    carriers = sorted((s for s in ctx.symbols if s not in bound), key=str)
    for sym in carriers:
        name = f"_shape_{sym}"
        network.add_input(name, _dtypes.to_kiln(torch.uint8), [ctx.symbols[sym]])
        input_names.append(name)
    input_ids = set(ctx.values.values())

    for node in block.nodes:
        ctx.node = node
        try:
            _convert_node(ctx, node, checker)
        except NodeConversionError:
            raise
        except Exception as e:
            raise NodeConversionError(node, f"{type(e).__name__}: {e}") from e

    output_names = []
    marked: set[int] = set()
    for node in outputs:
        tid = ctx.values.get(node)
        if not isinstance(tid, int):
            raise NodeConversionError(node, "block output is not a single tensor")
        if tid in input_ids or tid in marked or tid in ctx.constant_ids:
            ctx.node = node
            tid = ctx.add("copy", [tid])
        network.mark_output(tid, node.name)
        marked.add(tid)
        output_names.append(node.name)
    return ConvertedBlock(
        block, network, inputs, carriers, outputs, profile, input_names, output_names
    )


def _convert_node(ctx: ConversionContext, node: Node, checker: SupportChecker) -> None:
    if is_getitem(node):
        src, index = node.args
        outs = ctx.values.get(src)
        if not isinstance(outs, (list, tuple)) or outs[index] is None:
            raise NodeConversionError(node, f"output {index} of '{src.name}' was not converted")
        ctx.values[node] = outs[index]
        return
    entry = checker.verdict(node).entry
    if entry is None:
        raise NodeConversionError(node, "no converter chose this node")
    result = entry.fn(ctx, node, bind_args(node))
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        if isinstance(result, (list, tuple)):
            raise NodeConversionError(node, f"converter {entry.name} returned several tensors")
        ctx.values[node] = _check_output(ctx, node, result, val, entry.name)
    else:
        result = list(result)
        if len(result) != len(val):
            raise NodeConversionError(
                node, f"converter {entry.name} returned {len(result)} outputs, expected {len(val)}"
            )
        ctx.values[node] = [
            None if r is None else _check_output(ctx, node, r, v, entry.name)
            for r, v in zip(result, val)
        ]


def _check_output(
    ctx: ConversionContext, node: Node, tid: int, val: torch.Tensor, who: str
) -> int:
    """Checks a converter's result against the traced value: rank and constant dims must
    agree; a dtype difference gets a cast (Kiln is strongly typed, torch promotes)."""
    if not isinstance(tid, int):
        raise NodeConversionError(node, f"converter {who} returned {tid!r}")
    shape = ctx.shape(tid)
    if len(shape) != val.dim():
        raise NodeConversionError(
            node, f"converter {who} made rank {len(shape)}, torch has {val.dim()}"
        )
    for i, (k, t) in enumerate(zip(shape, val.shape)):
        if k.is_constant() and isinstance(t, int) and k.constant() != t:
            raise NodeConversionError(
                node, f"converter {who} made dim {i} = {k.constant()}, torch has {t}"
            )
    if ctx.dtype(tid) != val.dtype:
        tid = ctx.cast(tid, val.dtype)
    return tid


def fetch_attr(gm: torch.fx.GraphModule, node: Node) -> torch.Tensor:
    obj: Any = gm
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, torch.Tensor):
        raise ConversionError(f"get_attr '{node.target}' is not a tensor")
    return obj


def build_engine(
    converted: ConvertedBlock,
    settings: CompilationSettings,
    owned: list[bool],
    index: int,
    total: int,
) -> tuple[Any, int, float]:
    """Builds one engine; returns (torch.classes.kiln.Engine, engine bytes, build seconds).
    `owned[i]` says output i never reaches the user (the engine may reuse its buffer)."""
    name = converted.block.name
    logger.info(
        "kiln: building block %d/%d '%s' (%d nodes, %d Kiln ops) for %s",
        index + 1,
        total,
        name,
        converted.block.size,
        converted.network.num_ops(),
        settings.device,
    )
    start = time.perf_counter()

    def progress(stage: str, done: int, total_steps: int) -> None:
        logger.debug("kiln: %s: %s %d/%d", name, stage, done, total_steps)

    serialized = _C.build(
        converted.network,
        device=settings.device,
        profile=converted.profile,
        optimization_level=settings.optimization_level,
        timing_cache_path=settings.timing_cache_path,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    metadata = {
        "frontend": "kiln.compile",
        "block": name,
        "nodes": converted.block.size,
        "symbols": {k: list(v) for k, v in converted.profile.items()},
        "shape_carriers": [str(s) for s in converted.carriers],
        "outputs": [
            {"name": n, "owned": o} for n, o in zip(converted.output_names, owned)
        ],
    }
    engine = _C.make_engine(
        name,
        serialized,
        converted.input_names,
        converted.output_names,
        json.dumps(metadata),
        settings.device,
    )
    logger.info("kiln: built '%s' in %.2f s (%d bytes)", name, seconds, len(serialized))
    return engine, len(serialized), seconds
