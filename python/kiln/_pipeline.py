"""The compile pipeline shared by kiln.compile and the torch.compile backend:
lower -> partition -> convert each block -> build each engine -> splice into the graph."""

from __future__ import annotations

import logging

import torch

from kiln._block import ConvertedBlock, NodeConversionError, build_engine, convert_block
from kiln._causal import replace_causal_masks
from kiln._lowering import lower
from kiln._partition import SupportChecker, partition
from kiln._report import CompilationReport, build_report
from kiln._settings import CompilationSettings
from kiln._splice import drop_unused_state, escapes, sort_graph, splice
from kiln._streams import insert_stream_ops
from kiln._symbols import SymbolTable

logger = logging.getLogger("kiln")
Node = torch.fx.Node


class FullCompilationError(RuntimeError):
    """require_full_compilation=True and some tensor ops would run in PyTorch."""


def _convert_all(
    gm: torch.fx.GraphModule,
    settings: CompilationSettings,
    table: SymbolTable,
) -> tuple[CompilationReport, list[ConvertedBlock]]:
    """Partitions and converts until every block converts: a node whose converter fails is
    sent to PyTorch (with the failure as its reason) and the graph is partitioned again."""
    rejected: dict[Node, str] = {}
    min_block = 1 if settings.require_full_compilation else settings.min_block_size
    while True:
        checker = SupportChecker(settings, table, rejected)
        blocks, dropped = partition(gm, checker, min_block)
        report = build_report(gm, checker, blocks, dropped, min_block)
        try:
            converted = [convert_block(gm, b, checker, table) for b in blocks]
        except NodeConversionError as e:
            if e.node in rejected:
                raise
            logger.info("kiln: %s; it runs in PyTorch", e)
            rejected[e.node] = f"conversion failed: {e.reason}"
            continue
        return report, converted


def _check_full(report: CompilationReport) -> None:
    problems = [str(u) for u in report.unsupported.values()]
    if len(report.blocks) > 1:
        problems.append(f"the graph splits into {len(report.blocks)} Kiln blocks")
    if problems:
        raise FullCompilationError(
            "require_full_compilation=True but these ops would run in PyTorch:\n  "
            + "\n  ".join(problems)
        )


def compile_graph(
    gm: torch.fx.GraphModule,
    settings: CompilationSettings,
    table: SymbolTable,
) -> tuple[torch.fx.GraphModule, CompilationReport]:
    """Compiles an aten-level GraphModule in place; returns it with its report."""
    lower(gm)
    replace_causal_masks(gm, table)
    report, converted = _convert_all(gm, settings, table)
    logger.info("%s", report.summary())
    for line in str(report).splitlines()[1:]:
        logger.info("%s", line)
    if settings.require_full_compilation:
        _check_full(report)
    if settings.dryrun:
        return gm, report

    owned = [[not escapes(n) for n in c.outputs] for c in converted]
    engines = []
    for i, (c, info) in enumerate(zip(converted, report.blocks)):
        try:
            engine, nbytes, seconds = build_engine(c, settings, owned[i], i, len(converted))
        except Exception as e:
            if settings.require_full_compilation:
                raise
            logger.warning("kiln: building '%s' failed, it runs in PyTorch: %s", c.block.name, e)
            info.status = f"fell back: {e}"
            continue
        info.status = "built"
        info.inputs, info.outputs = len(c.input_names), len(c.output_names)
        info.engine_bytes, info.build_seconds = nbytes, seconds
        engines.append((c, engine))

    replaced: dict[Node, Node] = {}
    for c, engine in engines:
        splice(gm, c, engine, table, settings.device, replaced)
    sort_graph(gm)
    gm.graph.eliminate_dead_code()
    if engines:
        insert_stream_ops(gm)
    drop_unused_state(gm)
    gm.recompile()
    return gm, report
