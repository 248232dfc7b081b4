"""ConversionContext: what a converter sees while one block becomes a Kiln network."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND, elementwise_dtypes

from kiln import _dtypes
from kiln._ops import _C
from kiln._symbols import SymbolTable, expr_of, to_sym_expr

Node = torch.fx.Node
TensorId = int


class ConversionError(RuntimeError):
    """A converter could not express a node it had accepted (the block falls back)."""


class ConversionContext:
    """Holds the Network being built, the fx node -> Kiln tensor id map, the torch symbol ->
    Kiln symbol map, and helpers for constants, casts and dtype promotion."""

    def __init__(
        self,
        network: Any,
        symbol_table: SymbolTable,
        fetch_constant: Callable[[Node], torch.Tensor],
    ) -> None:
        self.network = network
        self.symbol_table = symbol_table
        self.symbols: dict[sympy.Symbol, Any] = {}
        self.values: dict[Node, Any] = {}
        self.node: Node | None = None
        self._fetch_constant = fetch_constant
        self._scalar_cache: dict[tuple[Any, ...], TensorId] = {}
        self.constant_ids: set[TensorId] = set()
        self._name_count = 0

    # -- names ------------------------------------------------------------------------------
    def name(self, suffix: str = "") -> str:
        """A unique name for an op of the current node."""
        base = self.node.name if self.node is not None else "kiln"
        self._name_count += 1
        return f"{base}_{suffix}{self._name_count}" if suffix else base

    # -- ops --------------------------------------------------------------------------------
    def add_ops(
        self, op: str, inputs: Sequence[TensorId], attrs: dict[str, Any] | None = None
    ) -> list[TensorId]:
        """Adds a Kiln op (attributes that are None are left out); returns its outputs."""
        attrs = {k: v for k, v in (attrs or {}).items() if v is not None}
        return self.network.add_op(op, list(inputs), attrs, self.name(op))

    def add(self, op: str, inputs: Sequence[TensorId], /, **attrs: Any) -> TensorId:
        """Adds an op with one output and returns that output's id."""
        return self.add_ops(op, inputs, attrs)[0]

    def unary(self, fn: str, x: TensorId, **attrs: Any) -> TensorId:
        return self.add("unary", [x], fn=fn, **attrs)

    def binary(self, fn: str, a: TensorId, b: TensorId) -> TensorId:
        return self.add("binary", [a, b], fn=fn)

    def cast(self, x: TensorId, dtype: torch.dtype) -> TensorId:
        if self.dtype(x) == dtype:
            return x
        return self.add("cast", [x], dtype=_dtypes.to_kiln(dtype))

    # -- tensors ----------------------------------------------------------------------------
    def tensor(self, arg: Any, dtype: torch.dtype | None = None) -> TensorId:
        """The Kiln tensor of an fx argument: a node, a real tensor, or a Python scalar
        (scalars need `dtype`). With `dtype`, the result is cast to it."""
        if isinstance(arg, Node):
            if arg not in self.values:
                if arg.op != "get_attr":
                    raise ConversionError(f"node '{arg.name}' has no Kiln value yet")
                self.values[arg] = self.constant(self._fetch_constant(arg), name=arg.name)
            tid = self.values[arg]
            if not isinstance(tid, int):
                raise ConversionError(f"node '{arg.name}' is not a single tensor")
        elif isinstance(arg, torch.Tensor):
            tid = self.constant(arg)
        else:
            if dtype is None:
                raise ConversionError(f"scalar {arg!r} needs a dtype")
            return self.scalar(arg, dtype)
        return self.cast(tid, dtype) if dtype is not None else tid

    def constant_value(self, node: Node) -> torch.Tensor:
        """The real tensor behind a get_attr node."""
        return self._fetch_constant(node)

    def constant(self, value: torch.Tensor, name: str | None = None) -> TensorId:
        t = value.detach().contiguous().cpu()
        data = t.reshape(-1).view(torch.uint8).numpy()
        tid = self.network.add_constant(
            name or self.name("const"), _dtypes.to_kiln(t.dtype), list(t.shape), data
        )
        self.constant_ids.add(tid)
        return tid

    def scalar(self, value: Any, dtype: torch.dtype, shape: Sequence[int] = ()) -> TensorId:
        """A constant holding one value (rank len(shape), all ones), cached per block."""
        if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool, Node)):
            return self.sym_scalar(value, dtype)
        key = (type(value), value, dtype, tuple(shape))
        if key not in self._scalar_cache:
            t = torch.full(tuple(shape), value, dtype=dtype)
            self._scalar_cache[key] = self.constant(t, name=self.name("scalar"))
        return self._scalar_cache[key]

    def sym_scalar(self, value: Any, dtype: torch.dtype) -> TensorId:
        """A 0-d tensor whose value is a symbolic int, known only when the engine runs:
        arange(v, v + 1) reshaped to []."""
        v = self.sym(value)
        ar = self.add("arange", [], start=v, end=v + 1, step=1, dtype=_dtypes.to_kiln(torch.int64))
        out = self.add("reshape", [ar], shape=[])
        return self.cast(out, dtype)

    def dtype(self, x: TensorId) -> torch.dtype:
        return _dtypes.to_torch(self.network.dtype(x))

    def shape(self, x: TensorId) -> list[Any]:
        return list(self.network.shape(x))

    def rank(self, x: TensorId) -> int:
        return len(self.network.shape(x))

    # -- symbolic shapes --------------------------------------------------------------------
    def sym(self, value: Any) -> Any:
        """A Kiln SymExpr for an int, a SymInt, or an fx node whose value is a SymInt."""
        if isinstance(value, Node):
            value = value.meta.get("val")
        if isinstance(value, _C.SymExpr):
            return value
        expr = self.symbol_table.canon(expr_of(value))
        try:
            return to_sym_expr(expr, self.symbols)
        except NotImplementedError as e:
            raise ConversionError(str(e)) from e

    def dims(self, values: Sequence[Any]) -> list[Any]:
        """sym() of each entry, with plain ints kept as ints."""
        out = []
        for v in values:
            s = self.sym(v)
            out.append(s.constant() if s.is_constant() else s)
        return out

    def out_shape(self, node: Node | None = None, index: int | None = None) -> list[Any]:
        """The output shape of `node` (default: the current node) as ints/SymExprs."""
        val = self.val(node or self.node)
        if index is not None:
            val = val[index]
        return self.dims(list(val.shape))

    # -- meta -------------------------------------------------------------------------------
    @staticmethod
    def val(arg: Any) -> Any:
        """The traced value (fake tensor, SymInt, ...) of a node, or the argument itself."""
        if isinstance(arg, Node):
            return arg.meta.get("val")
        return arg

    def out_dtype(self, node: Node | None = None) -> torch.dtype:
        val = self.val(node or self.node)
        if isinstance(val, (list, tuple)):
            val = val[0]
        return val.dtype

    def result_dtype(self, *args: Any, kind: str = "DEFAULT") -> torch.dtype:
        """torch's elementwise type promotion over tensors (nodes) and Python scalars."""
        return promote_dtype(*args, kind=kind)

    def promote(self, *args: Any, dtype: torch.dtype | None = None) -> list[TensorId]:
        """Kiln tensors of `args`, all cast to `dtype` (default: torch's promoted dtype)."""
        if dtype is None:
            dtype = self.result_dtype(*args)
        return [self.tensor(a, dtype=dtype) for a in args]


def stand_in(arg: Any) -> Any:
    """A meta tensor (or number) with the dtype and 0-d-ness that type promotion looks at."""
    val = arg.meta.get("val") if isinstance(arg, Node) else arg
    if isinstance(val, torch.Tensor):
        return torch.empty((1,) * min(val.dim(), 1), dtype=val.dtype, device="meta")
    if isinstance(val, (bool, torch.SymBool)):
        return True
    if isinstance(val, (int, torch.SymInt)):
        return 1
    if isinstance(val, (float, torch.SymFloat)):
        return 1.0
    raise ConversionError(f"cannot promote an argument of type {type(val).__name__}")


def promote_dtype(*args: Any, kind: str = "DEFAULT") -> torch.dtype:
    kinds = {
        "DEFAULT": ELEMENTWISE_TYPE_PROMOTION_KIND.DEFAULT,
        "INT_TO_FLOAT": ELEMENTWISE_TYPE_PROMOTION_KIND.INT_TO_FLOAT,
        "NO_OPMATH": ELEMENTWISE_TYPE_PROMOTION_KIND.NO_OPMATH,
        "ALWAYS_BOOL": ELEMENTWISE_TYPE_PROMOTION_KIND.ALWAYS_BOOL,
    }
    stand_ins = [stand_in(a) for a in args if a is not None]
    _, result = elementwise_dtypes(*stand_ins, type_promotion_kind=kinds[kind])
    return result
