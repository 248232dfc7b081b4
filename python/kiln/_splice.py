"""Graph surgery: replace a converted block by one ``kiln::execute_engine`` call."""

from __future__ import annotations

import operator
import warnings
from typing import Any

import sympy
import torch
from torch.fx.passes.tools_common import stable_topological_sort

from kiln._block import ConvertedBlock
from kiln._symbols import SymbolTable, expr_of

Node = torch.fx.Node


def _aliases_input(node: Node) -> bool:
    """True when the op's first output may alias an input (views, getitem, no-ops)."""
    if node.op != "call_function":
        return False
    if node.target is operator.getitem:
        return True
    schema = getattr(node.target, "_schema", None)
    if schema is None or not schema.returns:
        return False
    return schema.returns[0].alias_info is not None


def escapes(node: Node) -> bool:
    """True when `node`'s tensor (or a view of it) reaches the graph's outputs, so the user
    may keep it; an engine may only reuse buffers of outputs that do not escape."""
    seen: set[Node] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        for user in n.users:
            if user.op == "output":
                return True
            if _aliases_input(user):
                stack.append(user)
    return False


def _symint_node(gm: torch.fx.GraphModule, sym: sympy.Symbol, table: SymbolTable) -> Node:
    """A node whose value is the SymInt `sym`: an existing one, or sym_size of an input."""
    for node in gm.graph.nodes:
        val = node.meta.get("val")
        if isinstance(val, torch.SymInt) and table.canon(expr_of(val)) == sym:
            return node
    for node in gm.graph.nodes:
        val = node.meta.get("val")
        if node.op != "placeholder" or not isinstance(val, torch.Tensor):
            continue
        for d, size in enumerate(val.shape):
            if isinstance(size, torch.SymInt) and table.canon(expr_of(size)) == sym:
                with gm.graph.inserting_after(node):
                    out = gm.graph.call_function(torch.ops.aten.sym_size.int, (node, d))
                out.meta["val"] = size
                return out
    raise RuntimeError(f"no graph input gives the size {sym}")


def splice(
    gm: torch.fx.GraphModule,
    converted: ConvertedBlock,
    engine: Any,
    table: SymbolTable,
    device: str,
    replaced: dict[Node, Node],
) -> Node:
    """Replaces the block's nodes by execute_engine(inputs, engine) and getitems.
    `replaced` maps outputs of blocks spliced before to their getitems (updated here). The
    graph may be out of order until sort_graph() runs after the last splice."""
    graph = gm.graph
    name = converted.block.name
    setattr(gm, name, engine)
    last = converted.block.nodes[-1]
    args: list[Node] = [replaced.get(n, n) for n in converted.inputs]
    with graph.inserting_before(last):
        for sym in converted.carriers:
            size = _symint_node(gm, sym, table)
            carrier = graph.call_function(
                torch.ops.aten.empty.memory_format,
                ([size],),
                {"dtype": torch.uint8, "device": torch.device(device)},
            )
            args.append(carrier)
        with warnings.catch_warnings():
            # FX only knows modules, parameters and buffers as attributes; engines are
            # torchbind objects, which get_attr handles all the same.
            warnings.simplefilter("ignore", UserWarning)
            engine_node = graph.get_attr(name)
        call = graph.call_function(torch.ops.kiln.execute_engine.default, (args, engine_node))
        call.meta["val"] = [n.meta.get("val") for n in converted.outputs]
        getitems = []
        for i, out in enumerate(converted.outputs):
            g = graph.call_function(operator.getitem, (call, i))
            g.meta["val"] = out.meta.get("val")
            getitems.append(g)
    for out, g in zip(converted.outputs, getitems):
        out.replace_all_uses_with(g)
        replaced[out] = g
    for node in reversed(converted.block.nodes):
        graph.erase_node(node)
    return call


def drop_unused_state(gm: torch.fx.GraphModule) -> None:
    """Removes parameters, buffers and submodules nothing in the graph reads any more: the
    weights now live inside the engines, and a saved program should not carry them twice."""
    used = {str(n.target) for n in gm.graph.nodes if n.op in ("get_attr", "call_module")}

    def is_used(name: str) -> bool:
        return any(u == name or u.startswith(name + ".") for u in used)

    for name, _ in list(gm.named_parameters(remove_duplicate=False)) + list(
        gm.named_buffers(remove_duplicate=False)
    ):
        if is_used(name):
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_name) if owner_name else gm
        owner._parameters.pop(attr, None)
        owner._buffers.pop(attr, None)
    gm.delete_all_unused_submodules()


def sort_graph(gm: torch.fx.GraphModule) -> None:
    """Restores a topological order after splicing (keeps the original order where free)."""
    stable_topological_sort(gm)
    gm.graph.lint()
    gm.recompile()
