"""kiln.compile: torch.export with the Input ranges, then the Kiln pipeline."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch.export import Dim

from kiln._codegen import drop_per_call_hooks, lean_codegen
from kiln._decompositions import decomposition_table
from kiln._input import Input, as_inputs
from kiln._pipeline import compile_graph
from kiln._report import CompilationReport
from kiln._settings import CompilationSettings
from kiln._symbols import SymbolRange, SymbolTable, expr_of, graph_shape_env

logger = logging.getLogger("kiln")


def _dynamic_shapes(inputs: list[Input], auto: bool) -> list[dict[int, Any]] | None:
    specs: list[dict[int, Any]] = []
    for i, inp in enumerate(inputs):
        dims: dict[int, Any] = {}
        base = inp.name or f"input{i}"
        for d in inp.dynamic_dims():
            lo, hi = inp.min_shape[d], inp.max_shape[d]
            if auto:
                dims[d] = Dim.AUTO(min=lo, max=hi)
            else:
                dims[d] = Dim(_identifier(f"{base}_d{d}"), min=lo, max=hi)
        specs.append(dims)
    return specs if any(specs) else None


def fit_signature(module: Any, specs: list[Any] | None) -> Any:
    """dynamic_shapes shaped like forward's parameters: a *args parameter takes the specs of
    the remaining inputs as one tuple (torch.export matches specs to bound arguments)."""
    if specs is None:
        return None
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return specs
    out: list[Any] = []
    rest = list(specs)
    for p in params:
        if not rest:
            break
        if p.kind == inspect.Parameter.VAR_POSITIONAL:
            out.append(tuple(rest))
            rest = []
        elif p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            out.append(rest.pop(0))
    return out + rest


def _identifier(name: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return out if out and not out[0].isdigit() else f"d_{out}"


def export_program(
    module: torch.nn.Module, inputs: list[Input], device: str
) -> torch.export.ExportedProgram:
    """torch.export of `module` at the inputs' example shapes, decomposed with Kiln's table."""
    args = tuple(inp.example(device) for inp in inputs)
    return export_with_ranges(module, args, inputs).run_decompositions(decomposition_table())


def export_with_ranges(
    module: torch.nn.Module, args: tuple[Any, ...], inputs: list[Input]
) -> torch.export.ExportedProgram:
    """torch.export with one Dim per dynamic input dim; when the model relates dims (x + y
    with both batches dynamic), export again with Dim.AUTO so torch infers the relations."""
    separate = fit_signature(module, _dynamic_shapes(inputs, auto=False))
    try:
        return torch.export.export(module, args, dynamic_shapes=separate)
    except Exception as first:
        if separate is None:
            raise
        logger.info("kiln: export with separate dims failed (%s); retrying with Dim.AUTO", first)
        auto = fit_signature(module, _dynamic_shapes(inputs, auto=True))
        try:
            return torch.export.export(module, args, dynamic_shapes=auto)
        except Exception:  # noqa: BLE001 - the first error is the informative one
            raise first from None


def input_overrides(
    gm: torch.fx.GraphModule, inputs: Sequence[Input], table: SymbolTable
) -> dict[Any, SymbolRange]:
    """Ranges of the symbols of the user inputs' dynamic dims, from the kiln.Inputs (where
    several dims share a symbol, the intersection of their ranges)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    out: dict[Any, SymbolRange] = {}
    for node, inp in zip(placeholders, inputs):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            continue
        for d, size in enumerate(val.shape):
            if not isinstance(size, torch.SymInt) or d >= len(inp.min_shape):
                continue
            expr = table.canon(expr_of(size))
            if not expr.is_Symbol:
                continue
            lo, opt, hi = inp.min_shape[d], inp.opt_shape[d], inp.max_shape[d]
            if expr in out:
                prev = out[expr]
                lo, hi = max(lo, prev.min), min(hi, prev.max)
                opt = min(max(prev.opt, lo), hi)
            out[expr] = SymbolRange(lo, opt, hi)
    return out


def _trains_differently(module: torch.nn.Module) -> bool:
    """True when `module` is in training mode and has layers that behave differently then."""
    kinds = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
    return module.training and any(isinstance(m, kinds) for m in module.modules())


def compile(
    module: torch.nn.Module | torch.export.ExportedProgram,
    inputs: Sequence[Any] | None = None,
    *,
    device: str | torch.device = "cpu",
    min_block_size: int = 3,
    torch_executed_ops: Sequence[Any] = (),
    torch_executed_modules: Sequence[Any] = (),
    require_full_compilation: bool = False,
    dryrun: bool = False,
    optimization_level: int = 1,
    enabled_precisions: Any = None,
    ir: str = "export",
    timing_cache_path: str = "",
) -> torch.fx.GraphModule | CompilationReport | Any:
    """Compiles `module` for Kiln. Returns a GraphModule whose supported blocks run as Kiln
    engines (``torch.ops.kiln.execute_engine``) and the rest in PyTorch; with dryrun=True,
    the CompilationReport instead. ``ir="torch_compile"`` returns
    ``torch.compile(module, backend="kiln", options=...)``."""
    settings = CompilationSettings(
        device=device,
        min_block_size=min_block_size,
        torch_executed_ops=tuple(torch_executed_ops),
        torch_executed_modules=tuple(torch_executed_modules),
        require_full_compilation=require_full_compilation,
        dryrun=dryrun,
        optimization_level=optimization_level,
        enabled_precisions=enabled_precisions,
        timing_cache_path=timing_cache_path,
    )
    if ir in ("torch_compile", "dynamo"):
        from kiln._backend import options_of

        return torch.compile(module, backend="kiln", options=options_of(settings))
    if ir != "export":
        raise ValueError(f"kiln.compile: unknown ir {ir!r} (expected 'export' or 'torch_compile')")
    kiln_inputs = as_inputs(inputs or [])
    if isinstance(module, torch.export.ExportedProgram):
        ep = module.run_decompositions(decomposition_table())
    else:
        if _trains_differently(module):
            logger.warning("kiln.compile: the module is in training mode; call .eval() first")
        ep = export_program(module, kiln_inputs, settings.device)
    gm = ep.module()
    drop_per_call_hooks(gm)
    table = SymbolTable(graph_shape_env(gm))
    table.overrides = input_overrides(gm, kiln_inputs, table)
    gm, report = compile_graph(gm, settings, table)
    if dryrun:
        print(report)
        return report
    gm.kiln_report = report
    lean_codegen(gm)
    return gm
