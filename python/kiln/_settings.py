"""CompilationSettings: the options kiln.compile and the torch.compile backend share."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch


@dataclasses.dataclass
class CompilationSettings:
    device: str = "cpu"
    min_block_size: int = 3
    torch_executed_ops: tuple[Any, ...] = ()
    torch_executed_modules: tuple[Any, ...] = ()
    require_full_compilation: bool = False
    dryrun: bool = False
    optimization_level: int = 1
    enabled_precisions: frozenset[torch.dtype] = frozenset({torch.float32})
    timing_cache_path: str = ""
    # Inputs of kiln.compile (kiln.Input); the torch.compile backend reads ranges from dynamo.
    inputs: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        self.device = normalize_device(self.device)
        self.torch_executed_ops = tuple(_as_tuple(self.torch_executed_ops))
        self.torch_executed_modules = tuple(_as_tuple(self.torch_executed_modules))
        if self.enabled_precisions is None:
            self.enabled_precisions = frozenset({torch.float32})
        self.enabled_precisions = frozenset(_as_tuple(self.enabled_precisions))
        extra = self.enabled_precisions - {torch.float32}
        if extra:
            # Kiln networks are strongly typed: a model runs in the dtypes it was written in.
            logging.getLogger("kiln").warning(
                "kiln: enabled_precisions %s ignored; cast the model (e.g. model.half()) to run "
                "in reduced precision",
                sorted(str(d) for d in extra),
            )
        if self.min_block_size < 1:
            raise ValueError(f"min_block_size must be >= 1, got {self.min_block_size}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> CompilationSettings:
        """Settings from torch.compile's ``options={...}`` (unknown keys are errors)."""
        options = dict(options or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(f"kiln: unknown options {unknown}; known: {sorted(names)}")
        return cls(**options)


def normalize_device(device: Any) -> str:
    """"cpu" or "cuda:N" (a bare "cuda" means the current CUDA device)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        index = dev.index
        if index is None:
            index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return f"cuda:{index}"
    raise ValueError(f"kiln: unsupported device {device!r} (expected 'cpu' or 'cuda:N')")


def _as_tuple(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, (str, type)) or callable(value) and not isinstance(value, (list, set)):
        return (value,)
    return tuple(value)
