"""Lowering passes run on the aten graph before partitioning."""

from __future__ import annotations

import operator

import torch

aten = torch.ops.aten

# Nodes that only check things tracing already proved (or that Kiln's bindings check at run
# time); nothing reads their results.
_ASSERTS = {
    aten._assert_tensor_metadata.default,
    aten._assert_scalar.default,
    aten.sym_constrain_range.default,
    aten.sym_constrain_range_for_size.default,
    aten._assert_async.msg,
    aten._assert_async.default,
}

# Ops that return their input (or an alias of it) in a functional graph.
_NO_OPS = {
    aten.detach.default,
    aten.alias.default,
    aten.lift_fresh_copy.default,
}


def remove_guard_calls(gm: torch.fx.GraphModule) -> None:
    """torch.export's ``_guards_fn`` call re-checks input shapes in Python on every call."""
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and str(node.target).startswith("_guards"):
            gm.graph.erase_node(node)
            if hasattr(gm, str(node.target)):
                delattr(gm, str(node.target))


def remove_asserts(gm: torch.fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in _ASSERTS and not node.users:
            gm.graph.erase_node(node)


def remove_no_ops(gm: torch.fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in _NO_OPS or _is_eval_dropout(node):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)


def _is_eval_dropout(node: torch.fx.Node) -> bool:
    if node.target != aten.dropout.default:
        return False
    train = node.args[2] if len(node.args) > 2 else node.kwargs.get("train", True)
    return train is False


def remove_dead_code(gm: torch.fx.GraphModule) -> None:
    gm.graph.eliminate_dead_code()


def lower(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    remove_guard_calls(gm)
    remove_asserts(gm)
    remove_no_ops(gm)
    remove_dead_code(gm)
    gm.recompile()
    return gm


def is_getitem(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target is operator.getitem
