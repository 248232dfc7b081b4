"""kiln.replace_module: run a whole submodule as one custom op (with its own converter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class CustomOpModule(torch.nn.Module):
    """Calls ``op(*inputs, *state)`` where state is the replaced module's parameters and
    buffers (named_parameters() then named_buffers() order), or ``op(*make_args(module,
    *inputs))`` when make_args is given. The original module stays as ``.original`` so its
    weights keep their names (and export sees them as parameters)."""

    def __init__(
        self,
        original: torch.nn.Module,
        op: Any,
        make_args: Callable[..., tuple[Any, ...]] | None = None,
    ) -> None:
        super().__init__()
        self.original = original
        self.op = op
        self.make_args = make_args

    def forward(self, *inputs: Any) -> Any:
        if self.make_args is not None:
            return self.op(*self.make_args(self.original, *inputs))
        state = [p for _, p in self.original.named_parameters()]
        state += [b for _, b in self.original.named_buffers()]
        return self.op(*inputs, *state)


def replace_module(
    model: torch.nn.Module,
    module_type: type[torch.nn.Module],
    op: Any,
    make_args: Callable[..., tuple[Any, ...]] | None = None,
) -> int:
    """Replaces (in place) every submodule of `module_type` by a CustomOpModule calling
    `op`; register a Kiln converter for `op` and the whole submodule runs inside an engine.
    Returns how many submodules were replaced."""
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, module_type):
            setattr(model, name, CustomOpModule(child, op, make_args))
            count += 1
        else:
            count += replace_module(child, module_type, op, make_args)
    return count
