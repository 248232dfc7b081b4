"""Loads kiln._C and registers what torch tracing needs for Kiln engines.

- ``_load_native()``: imports torch (whose libraries kiln._C links against), then kiln._C,
  whose load registers ``torch.classes.kiln.Engine`` and ``torch.ops.kiln.execute_engine``.
- A fake class for ``kiln::Engine``, rebuilt from the engine's ``__obj_flatten__`` (name and
  info JSON, no engine bytes), so torch.export and torch.compile can carry engines.
- The fake (meta) kernel of ``kiln::execute_engine``: it binds each input symbol from the input
  sizes (SymInts under tracing) and evaluates the engine's symbolic output shapes.

``Engine.info_json()`` is a JSON object: ``name``, ``device`` (torch spelling, "cpu"),
``device_info``, ``abi_version``, ``symbols`` ([{name, min, opt, max}], indexed by symbol id),
``inputs`` / ``outputs`` in execute_engine order ([{name, dtype, shape, shape_str}]) and
``metadata`` (the frontend's metadata JSON, as a string). A ``shape`` dim is an int, ``["sym",
id]``, or ``[op, lhs, rhs]`` with op in add sub mul floordiv mod max min (Python semantics).
"""

from __future__ import annotations

import base64
import functools
import json
from types import ModuleType
from typing import Any

import torch

from kiln._codegen import skip_torch_function_lookup


def _load_native() -> ModuleType:
    from kiln import _C

    return _C


_C = _load_native()
skip_torch_function_lookup()

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


@functools.lru_cache(maxsize=256)
def _parse_info(info_json: str) -> dict[str, Any]:
    return json.loads(info_json)


@torch._library.register_fake_class("kiln::Engine")
class FakeEngine:
    """What tracing sees of a torch.classes.kiln.Engine: its names and symbolic shapes."""

    def __init__(self, name: str, info_json: str) -> None:
        self._name = name
        self._info_json = info_json
        self.info = _parse_info(info_json)

    @classmethod
    def __obj_unflatten__(cls, flattened: Any) -> FakeEngine:
        fields = dict(flattened)
        return cls(fields["name"], fields["info_json"])

    def name(self) -> str:
        return self._name

    def input_names(self) -> list[str]:
        return [b["name"] for b in self.info["inputs"]]

    def output_names(self) -> list[str]:
        return [b["name"] for b in self.info["outputs"]]

    def device(self) -> str:
        return self.info["device"]

    def device_info(self) -> str:
        return self.info["device_info"]

    def metadata(self) -> str:
        return self.info["metadata"]

    def info_json(self) -> str:
        return self._info_json

    # Runtime state is the real engine's; tracing sees it switched off and unused.
    def set_pre_allocated_outputs(self, enabled: bool, owned: list[bool]) -> None:
        pass

    def pre_allocated_outputs(self) -> bool:
        return False

    def runtime_stats(self) -> list[tuple[str, int]]:
        return []

    def cuda_graph_failure(self) -> str:
        return ""

    def l2_prefetch(self) -> str:
        return ""

    def serialized(self) -> str:
        raise NotImplementedError(
            f"Kiln engine '{self._name}': the serialized engine is not available while tracing"
        )


def engine_info(engine: Any) -> dict[str, Any]:
    """info_json() of a real engine, a FakeEngine, or the FakeScriptObject tracing wraps one in."""
    if isinstance(engine, FakeEngine):
        return engine.info
    wrapped = getattr(engine, "wrapped_obj", None)
    if isinstance(wrapped, FakeEngine):
        return wrapped.info
    return _parse_info(engine.info_json())


def engine_bytes(engine: Any) -> bytes:
    """The serialized engine of a torch.classes.kiln.Engine (serialized() is base64 text)."""
    return base64.b64decode(engine.serialized())


def _eval_dim(expr: Any, symbols: dict[int, Any], engine: str, output: str) -> Any:
    if isinstance(expr, int):
        return expr
    op = expr[0]
    if op == "sym":
        if expr[1] not in symbols:
            raise NotImplementedError(
                f"execute_engine '{engine}': output '{output}' depends on symbol {expr[1]}, "
                "which no input dim gives directly"
            )
        return symbols[expr[1]]
    a = _eval_dim(expr[1], symbols, engine, output)
    b = _eval_dim(expr[2], symbols, engine, output)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "floordiv":
        return a // b
    if op == "mod":
        return a % b
    if op == "max":
        return torch.sym_max(a, b)
    if op == "min":
        return torch.sym_min(a, b)
    raise ValueError(f"execute_engine '{engine}': unknown shape op {op!r}")


def output_shapes(info: dict[str, Any], sizes: list[Any]) -> list[list[Any]]:
    """Output shapes of an engine (info_json as a dict) for inputs of the given sizes."""
    name = info["name"]
    if len(sizes) != len(info["inputs"]):
        raise ValueError(
            f"execute_engine '{name}': got {len(sizes)} inputs, engine expects "
            f"{len(info['inputs'])}"
        )
    symbols: dict[int, Any] = {}
    for size, binding in zip(sizes, info["inputs"]):
        if len(size) != len(binding["shape"]):
            raise ValueError(
                f"execute_engine '{name}': input '{binding['name']}' has {len(size)} dims, "
                f"engine expects {len(binding['shape'])}"
            )
        for dim, expr in zip(size, binding["shape"]):
            if isinstance(expr, list) and expr[0] == "sym":
                symbols.setdefault(expr[1], dim)
    return [
        [_eval_dim(e, symbols, name, out["name"]) for e in out["shape"]]
        for out in info["outputs"]
    ]


@torch.library.register_fake("kiln::execute_engine")
def _execute_engine_fake(inputs: list[torch.Tensor], engine: Any) -> list[torch.Tensor]:
    info = engine_info(engine)
    shapes = output_shapes(info, [list(x.shape) for x in inputs])
    device = torch.device(info["device"])
    return [
        torch.empty(shape, dtype=_DTYPES[out["dtype"]], device=device)
        for shape, out in zip(shapes, info["outputs"])
    ]


# kiln::enter_compute_stream / exit_compute_stream switch streams and return nothing: FX must not
# drop them as dead code (torch.export's and the graph module's own dead-code passes ask this).
for _op in (torch.ops.kiln.enter_compute_stream.default, torch.ops.kiln.exit_compute_stream.default):
    torch.fx.node.has_side_effect(_op)
