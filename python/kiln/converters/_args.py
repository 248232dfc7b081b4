"""Binding an fx node's arguments to its op schema, and small helpers validators share."""

from __future__ import annotations

from typing import Any

import torch

from kiln import _dtypes

Node = torch.fx.Node


class Args(dict):
    """Arguments by schema name (``args.input``, ``args["self"]``), defaults filled in."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def bind_args(node: Node) -> Args:
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        out = Args({f"arg{i}": a for i, a in enumerate(node.args)})
        out.update(node.kwargs)
        return out
    out = Args()
    positional = list(node.args)
    for i, arg in enumerate(schema.arguments):
        if not arg.kwarg_only and i < len(positional):
            out[arg.name] = positional[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
        else:
            out[arg.name] = None
    if "self" in out and "input" not in out:
        out["input"] = out["self"]
    return out


def val(arg: Any) -> Any:
    return arg.meta.get("val") if isinstance(arg, Node) else arg


def is_tensor(arg: Any) -> bool:
    return isinstance(val(arg), torch.Tensor)


def dtype_of(arg: Any) -> torch.dtype | None:
    v = val(arg)
    return v.dtype if isinstance(v, torch.Tensor) else None


def rank_of(arg: Any) -> int:
    return val(arg).dim()


def is_float(arg: Any) -> bool:
    return dtype_of(arg) in _dtypes.FLOAT_DTYPES


def is_static(values: Any) -> bool:
    """True when no dim of the tensor (or entry of the list) is symbolic."""
    v = val(values)
    if isinstance(v, torch.Tensor):
        v = list(v.shape)
    if isinstance(v, (list, tuple)):
        return all(is_static(x) for x in v)
    return not isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool))


def only_first_output_used(node: Node) -> bool:
    """True when the only users of a multi-output node read output 0 through getitem."""
    import operator

    return all(u.target is operator.getitem and u.args[1] == 0 for u in node.users)


def unused_outputs_ok(node: Node, used: set[int]) -> bool:
    """True when only the outputs listed in `used` are read (through getitem)."""
    import operator

    return all(u.target is operator.getitem and u.args[1] in used for u in node.users)


def concrete_int(value: Any) -> int | None:
    """The int value of an int or a SymInt whose expression is a constant, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, torch.SymInt):
        expr = value.node.expr
        return int(expr) if expr.is_Integer else None
    if isinstance(value, Node):
        return concrete_int(value.meta.get("val"))
    return None
