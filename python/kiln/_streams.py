"""Inserts kiln::enter_compute_stream / exit_compute_stream into a compiled graph (DESIGN.md 6):
enter once after the graph's inputs, exit once before its output, so every engine and every
PyTorch segment between them runs on one stream and the graph synchronizes once, not once per
engine (on the default stream; on a user stream both ops do nothing).

A graph that is one engine call and nothing else gets no pair: there is nothing to order, the
engine runs on the caller's stream (the default stream included), and the pair would only add
two dispatcher calls, two events and two cross-stream waits to every call (about 17 us of a
GPT-2 batch-1 call's latency on the H100)."""

from __future__ import annotations

import operator

import torch
from torch.utils._pytree import tree_leaves

EXECUTE = torch.ops.kiln.execute_engine.default

ENTER = torch.ops.kiln.enter_compute_stream.default
EXIT = torch.ops.kiln.exit_compute_stream.default


def _is_tensor(node: torch.fx.Node) -> bool:
    return isinstance(node, torch.fx.Node) and isinstance(node.meta.get("val"), torch.Tensor)


def is_single_engine(graph: torch.fx.Graph) -> bool:
    """True when the graph's only work is one engine call (its outputs taken by getitem)."""
    calls = [n for n in graph.nodes if n.op in ("call_function", "call_method", "call_module")]
    work = [n for n in calls if n.target not in (operator.getitem, torch.ops.aten.sym_size.int)]
    return len(work) == 1 and work[0].target is EXECUTE


def insert_stream_ops(gm: torch.fx.GraphModule) -> bool:
    """Adds the pair to a graph that calls engines; returns False (graph unchanged) when the
    graph has no tensor input to place them by, already has them, or is one engine call."""
    graph = gm.graph
    nodes = list(graph.nodes)
    if any(n.target in (ENTER, EXIT) for n in nodes) or is_single_engine(graph):
        return False
    inputs = [n for n in nodes if n.op == "placeholder" and _is_tensor(n)]
    if not inputs:
        return False
    first_compute = next(n for n in nodes if n.op != "placeholder")
    with graph.inserting_before(first_compute):
        graph.call_function(ENTER, (inputs,))
    output = next(n for n in reversed(nodes) if n.op == "output")
    outs = list(dict.fromkeys(n for n in tree_leaves(output.args) if _is_tensor(n)))
    with graph.inserting_before(output):
        graph.call_function(EXIT, (outs, inputs[:1]))
    return True
