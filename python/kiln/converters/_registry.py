"""The converter registry: aten overload (or custom op) -> function that emits Kiln ops.

A converter is ``fn(ctx, node, args) -> tensor id | list of tensor ids`` where ``ctx`` is the
ConversionContext, ``node`` the fx node and ``args`` its arguments bound by schema name
(defaults filled in). A validator is ``fn(node) -> bool | str``: True accepts the node, False
or a string (the reason) sends it to PyTorch. Among the converters of one target, the highest
priority whose validator accepts wins; on a tie the latest registration wins, so a user
converter replaces a built-in one.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import torch

Validator = Callable[[torch.fx.Node], Any]
ConverterFn = Callable[..., Any]

_counter = itertools.count()


@dataclasses.dataclass(frozen=True)
class ConverterEntry:
    target: Any
    fn: ConverterFn
    validator: Validator | None
    supports_dynamic_shapes: bool
    priority: int
    order: int

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


_REGISTRY: dict[Any, list[ConverterEntry]] = {}


def converter(
    *targets: Any,
    validator: Validator | None = None,
    supports_dynamic_shapes: bool = True,
    priority: int = 0,
) -> Callable[[ConverterFn], ConverterFn]:
    """Registers the decorated function as the converter of each target (OpOverloads, or
    OpOverloadPackets meaning every overload, or ``operator.getitem``-like callables)."""
    if not targets:
        raise ValueError("kiln.converter needs at least one target")

    def register(fn: ConverterFn) -> ConverterFn:
        for target in targets:
            if target is None:  # an overload this torch version lacks (see op())
                continue
            for t in _expand(target):
                entry = ConverterEntry(
                    t, fn, validator, supports_dynamic_shapes, priority, next(_counter)
                )
                _REGISTRY.setdefault(t, []).append(entry)
        return fn

    return register


def op(qualified: str) -> Any:
    """The OpOverload named like "aten.where.ScalarSelf", or None if torch lacks it."""
    namespace, *rest = qualified.split(".")
    obj: Any = getattr(torch.ops, namespace)
    for part in rest:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def unregister(target: Any, fn: ConverterFn | None = None) -> None:
    """Removes the converters of `target` (only `fn` when given)."""
    for t in _expand(target):
        entries = _REGISTRY.get(t, [])
        _REGISTRY[t] = [e for e in entries if fn is not None and e.fn is not fn]
        if not _REGISTRY[t]:
            del _REGISTRY[t]


def _expand(target: Any) -> list[Any]:
    if isinstance(target, torch._ops.OpOverloadPacket):
        return [getattr(target, name) for name in target.overloads()]
    return [target]


def candidates(target: Any) -> list[ConverterEntry]:
    """Converters of `target`, best first."""
    entries = _REGISTRY.get(target, [])
    return sorted(entries, key=lambda e: (e.priority, e.order), reverse=True)


def has_converter(target: Any) -> bool:
    return bool(_REGISTRY.get(target))


def registered_targets() -> list[Any]:
    return list(_REGISTRY)


def run_validator(entry: ConverterEntry, node: torch.fx.Node) -> str | None:
    """None when the entry accepts `node`, else the reason it does not."""
    if entry.validator is None:
        return None
    try:
        verdict = entry.validator(node)
    except Exception as e:  # noqa: BLE001 - a broken validator means "not supported"
        return f"validator {entry.name} raised {type(e).__name__}: {e}"
    if verdict is True or verdict is None:
        return None
    if isinstance(verdict, str):
        return verdict
    return f"arguments not supported by {entry.name}"
