"""kiln.save / kiln.load (ExportedProgram or TorchScript with the engines embedded) and
kiln.convert_to_engine (a standalone engine file for the C++ runtime and the CLI)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from kiln._codegen import drop_per_call_hooks, lean_codegen
from kiln._compile import compile, export_with_ranges
from kiln._input import as_inputs
from kiln._ops import engine_bytes

Pathish = str | os.PathLike


def _engines(module: torch.nn.Module) -> list[Any]:
    out = []
    for name in dir(module):
        if name.startswith("_run_on_kiln_"):
            out.append(getattr(module, name))
    return out


def save(
    module: torch.nn.Module,
    path: Pathish,
    inputs: Sequence[Any] | None = None,
    *,
    output_format: str = "exported_program",
) -> None:
    """Saves a kiln.compile'd module. "exported_program" (default) re-exports it with the
    inputs' dynamic dims and writes it with torch.export.save; "torchscript" scripts (or
    traces) it. The engines travel inside, pickled through their torchbind class."""
    kiln_inputs = as_inputs(inputs or [])
    if not kiln_inputs:
        raise ValueError("kiln.save needs inputs (kiln.Input or example tensors)")
    device = _device_of(module)
    args = tuple(inp.example(device) for inp in kiln_inputs)
    if output_format == "exported_program":
        ep = export_with_ranges(module, args, kiln_inputs)
        torch.export.save(ep, os.fspath(path))
    elif output_format == "torchscript":
        try:
            scripted = torch.jit.script(module)
        except Exception:  # noqa: BLE001 - fx code is not always scriptable; tracing is
            scripted = torch.jit.trace(module, args, check_trace=False)
        torch.jit.save(scripted, os.fspath(path))
    else:
        raise ValueError(
            f"kiln.save: unknown output_format {output_format!r} "
            "(expected 'exported_program' or 'torchscript')"
        )


def load(path: Pathish) -> Any:
    """Loads what kiln.save wrote; runs without recompiling (engines deserialize as-is)."""
    path = os.fspath(path)
    try:
        module = torch.export.load(path).module()
        drop_per_call_hooks(module)
        lean_codegen(module)
        return module
    except Exception as export_error:  # noqa: BLE001 - maybe a TorchScript file
        try:
            return torch.jit.load(path)
        except Exception:  # noqa: BLE001
            raise export_error from None


def convert_to_engine(
    module: torch.nn.Module,
    inputs: Sequence[Any],
    path: Pathish | None = None,
    **settings: Any,
) -> bytes:
    """Compiles `module` fully into one engine and returns its serialized bytes (written to
    `path` when given): the file `kiln inspect/run/bench` and the C++ runtime read."""
    settings["require_full_compilation"] = True
    compiled = compile(module, inputs, **settings)
    engines = _engines(compiled)
    if len(engines) != 1:
        raise RuntimeError(
            f"convert_to_engine: expected one engine, the graph has {len(engines)}"
        )
    data = engine_bytes(engines[0])
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


def _device_of(module: torch.nn.Module) -> torch.device:
    for engine in _engines(module):
        return torch.device(engine.device())
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")
