"""Runtime switches of compiled modules.

``kiln.runtime.enable_pre_allocated_outputs(module)`` (DESIGN.md 6, seed 002): each engine of
`module` then allocates the outputs of its next call right after enqueueing the current one, and
outputs that never reach the caller ("owned", found at compile time by an escape analysis
through getitem, views and PyTorch segments) keep one buffer across calls, reallocated only when
their shape changes. Outputs that reach the caller are fresh tensors every call, so results a
user kept are never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import torch


def _is_engine(obj: Any) -> bool:
    return isinstance(obj, torch.ScriptObject) and hasattr(obj, "set_pre_allocated_outputs")


def engines(module: torch.nn.Module) -> Iterator[tuple[str, Any]]:
    """(qualified name, engine) for every Kiln engine held by `module` or its submodules."""
    for prefix, sub in module.named_modules():
        for name, value in vars(sub).items():
            if _is_engine(value):
                yield (f"{prefix}.{name}" if prefix else name), value


def _owned_flags(engine: Any) -> list[bool]:
    metadata = json.loads(engine.metadata() or "{}")
    owned = {o["name"]: bool(o.get("owned", False)) for o in metadata.get("outputs", [])}
    return [owned.get(name, False) for name in engine.output_names()]


def stats(module: torch.nn.Module) -> dict[str, dict[str, Any]]:
    """What each engine of `module` did so far, by qualified name: calls, CUDA graph replays,
    captures, staged copies, plain (kernel by kernel) launches, the nodes of the graph captured
    last, the host time (ns) spent in ``execute_engine``, in the runtime's enqueue and in graph
    launches, and ``cuda_graph_failure``, the reason graphs went off for its context ("" while
    they are on); ``cuda_graph_prefetch_nodes`` and ``l2_prefetch``, the L2 weight prefetch of
    its last graph and why it is on or off."""
    out: dict[str, dict[str, Any]] = {}
    for name, engine in engines(module):
        entry: dict[str, Any] = dict(engine.runtime_stats())
        entry["cuda_graph_failure"] = engine.cuda_graph_failure()
        entry["l2_prefetch"] = engine.l2_prefetch()
        out[name] = entry
    return out


def enable_pre_allocated_outputs(module: torch.nn.Module, enabled: bool = True) -> int:
    """Turns pre-allocated outputs on (or off) for every engine of `module`; returns how many
    engines it set. A module with no Kiln engine is an error, not a silent no-op."""
    found = list(engines(module))
    if not found:
        raise ValueError(
            f"enable_pre_allocated_outputs: {type(module).__name__} holds no Kiln engine "
            "(pass what kiln.compile or kiln.load returned)"
        )
    for _, engine in found:
        engine.set_pre_allocated_outputs(enabled, _owned_flags(engine) if enabled else [])
    return len(found)
