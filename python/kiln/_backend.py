"""torch.compile(model, backend="kiln", options={...}): Kiln as a dynamo backend.

Dynamo hands over a GraphModule with parameters and buffers as inputs. They become
constants of the aten graph (Kiln folds them into its engines), aot_autograd lowers the graph
to functional aten with Kiln's decomposition table, and the shared pipeline partitions,
converts and builds. Symbolic dims keep dynamo's symbols: a dim marked with
``torch._dynamo.mark_dynamic(x, 0, min=..., max=...)`` becomes an engine symbol with that
range, so sizes inside it reuse the same engines without recompiling.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch._dynamo.backends.common import aot_autograd
from torch._subclasses.fake_tensor import unset_fake_temporarily

from kiln._decompositions import dynamo_decompositions
from kiln._pipeline import compile_graph
from kiln._settings import CompilationSettings
from kiln._symbols import SymbolTable, graph_shape_env, shape_env_of

logger = logging.getLogger("kiln")

_STATE_SOURCES = ("_parameters[", "_buffers[")


def options_of(settings: CompilationSettings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def _is_state(node: torch.fx.Node, example: Any) -> bool:
    """True for dynamo inputs that are module parameters or buffers."""
    if isinstance(example, torch.nn.Parameter):
        return True
    source = getattr(node.meta.get("grapharg"), "source", None)
    name = getattr(source, "name", "")
    if callable(name):
        name = name()
    return isinstance(example, torch.Tensor) and any(s in str(name) for s in _STATE_SOURCES)


def _freeze(
    gm: torch.fx.GraphModule, constants: dict[int, torch.Tensor]
) -> torch.fx.GraphModule:
    """Replaces uses of the placeholders at `constants`' positions by get_attr constants; the
    placeholders stay (dynamo still passes those arguments) but nothing reads them."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    last = placeholders[-1] if placeholders else None
    for i, tensor in constants.items():
        node = placeholders[i]
        name = f"_kiln_const_{i}"
        gm.register_buffer(name, tensor, persistent=False)
        with gm.graph.inserting_after(last):
            attr = gm.graph.get_attr(name)
        attr.meta = dict(node.meta)
        node.replace_all_uses_with(attr)
    gm.recompile()
    return gm


def kiln_backend(
    gm: torch.fx.GraphModule,
    example_inputs: Sequence[Any],
    options: dict[str, Any] | None = None,
) -> Any:
    options = dict(options or {})
    if "device" not in options:
        # Without an explicit device, engines go where the inputs are.
        devices = [t.device for t in example_inputs if isinstance(t, torch.Tensor)]
        if devices:
            options["device"] = str(devices[0])
    settings = CompilationSettings.from_options(options)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    state = {
        i: ex.detach()
        for i, (n, ex) in enumerate(zip(placeholders, example_inputs))
        if _is_state(n, ex)
    }

    def fw_compiler(fw_gm: torch.fx.GraphModule, fw_inputs: Sequence[Any]) -> Any:
        # aot_autograd calls this under its fake mode; Kiln reads real weights.
        with unset_fake_temporarily():
            fw_placeholders = [n for n in fw_gm.graph.nodes if n.op == "placeholder"]
            if len(fw_placeholders) == len(example_inputs) and state:
                _freeze(fw_gm, state)
            env = graph_shape_env(fw_gm) or shape_env_of(fw_inputs)
            compiled, report = compile_graph(fw_gm, settings, SymbolTable(env))
            compiled.kiln_report = report
            return compiled

    with torch.no_grad():
        return aot_autograd(
            fw_compiler=fw_compiler,
            decompositions=dynamo_decompositions(),
            keep_inference_input_mutations=True,
        )(gm, example_inputs)


def register() -> None:
    from torch._dynamo.backends.registry import _BACKENDS, register_backend

    if "kiln" not in _BACKENDS:
        register_backend(name="kiln")(kiln_backend)
