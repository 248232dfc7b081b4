"""Torch shape symbols (sympy) -> Kiln SymExprs, and the ranges of those symbols."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import sympy
import torch
import torch.utils._sympy.functions as symfn

from kiln._ops import _C

# A symbol whose upper bound passes this is unbounded for Kiln: engines plan memory at max.
MAX_DIM = 1 << 31


@dataclasses.dataclass(frozen=True)
class SymbolRange:
    min: int
    opt: int
    max: int


def shape_env_of(values: Iterable[Any]) -> Any:
    """The ShapeEnv behind the first fake tensor or SymInt in `values`, or None."""
    for v in values:
        if isinstance(v, (list, tuple)):
            env = shape_env_of(v)
            if env is not None:
                return env
        elif isinstance(v, torch.SymInt):
            return v.node.shape_env
        elif isinstance(v, torch.Tensor):
            mode = getattr(v, "fake_mode", None)
            if mode is not None and mode.shape_env is not None:
                return mode.shape_env
            for d in v.shape:
                if isinstance(d, torch.SymInt):
                    return d.node.shape_env
    return None


def graph_shape_env(gm: torch.fx.GraphModule) -> Any:
    return shape_env_of(n.meta.get("val") for n in gm.graph.nodes)


def expr_of(value: Any, shape_env: Any = None) -> sympy.Expr:
    """The sympy expression of an int or SymInt, with the env's replacements applied."""
    if isinstance(value, torch.SymInt):
        expr = value.node.expr
        env = shape_env or value.node.shape_env
        if env is not None:
            expr = env.replace(expr)
        return expr
    if isinstance(value, (bool, float)):
        raise TypeError(f"expected an int or SymInt, got {value!r}")
    return sympy.Integer(int(value))


class SymbolTable:
    """Ranges (min, opt, max) of the symbols of one graph's shape env, with user overrides
    (kiln.Input ranges) winning over what tracing recorded."""

    def __init__(
        self,
        shape_env: Any,
        overrides: Mapping[sympy.Symbol, SymbolRange] | None = None,
    ) -> None:
        self.shape_env = shape_env
        self.overrides = dict(overrides or {})

    def canon(self, expr: sympy.Expr) -> sympy.Expr:
        if self.shape_env is not None:
            return self.shape_env.replace(expr)
        return expr

    def range(self, sym: sympy.Symbol) -> SymbolRange | None:
        """The range of `sym`, or None when it has no finite upper bound."""
        if sym in self.overrides:
            return self.overrides[sym]
        env = self.shape_env
        if env is None:
            return None
        vr = env.var_to_range.get(sym)
        if vr is None:
            return None
        if not (isinstance(vr.lower, sympy.Integer) and isinstance(vr.upper, sympy.Integer)):
            return None  # int_oo (unbounded) or not an integer range
        lo, hi = int(vr.lower), int(vr.upper)
        if hi >= MAX_DIM:
            return None
        lo = max(lo, 0)
        hints = getattr(env, "backed_var_to_val", None)
        if hints is None:
            hints = env.var_to_val
        hint = hints.get(sym)
        opt = hi if hint is None else min(max(int(hint), lo), hi)
        return SymbolRange(lo, opt, hi)

    def unbounded(self, expr: sympy.Expr) -> list[sympy.Symbol]:
        """The free symbols of `expr` without a finite range."""
        return [s for s in expr.free_symbols if self.range(s) is None]


def free_symbols_of_value(value: Any) -> set[sympy.Symbol]:
    """Free symbols in the shape of a (fake) tensor, a SymInt, or a list of those."""
    out: set[sympy.Symbol] = set()
    if isinstance(value, torch.SymInt):
        out |= value.node.expr.free_symbols
    elif isinstance(value, torch.Tensor):
        for d in value.shape:
            if isinstance(d, torch.SymInt):
                out |= d.node.expr.free_symbols
    elif isinstance(value, (list, tuple)):
        for v in value:
            out |= free_symbols_of_value(v)
    return out


def to_sym_expr(expr: sympy.Expr, symbols: Mapping[sympy.Symbol, Any]) -> Any:
    """A kiln SymExpr for a sympy integer expression over `symbols` (sympy -> SymExpr)."""
    if expr.is_Integer:
        return _C.SymExpr(int(expr))
    if expr.is_Symbol:
        if expr not in symbols:
            raise NotImplementedError(f"shape symbol {expr} is not an input symbol of the engine")
        return symbols[expr]
    args = [to_sym_expr(a, symbols) if _is_int_expr(a) else None for a in expr.args]
    if isinstance(expr, sympy.Add):
        return _fold(args, lambda a, b: a + b, expr)
    if isinstance(expr, sympy.Mul):
        return _fold(args, lambda a, b: a * b, expr)
    if isinstance(expr, (symfn.FloorDiv, symfn.CleanDiv)):
        return _binary(args, lambda a, b: a // b, expr)
    if isinstance(expr, (symfn.Mod, symfn.PythonMod, sympy.Mod)):
        return _binary(args, lambda a, b: a % b, expr)
    if isinstance(expr, symfn.CeilDiv):
        return _binary(args, lambda a, b: (a + b - 1) // b, expr)
    if isinstance(expr, symfn.ModularIndexing):
        x, div, mod = _all(args, expr)
        return (x // div) % mod
    if isinstance(expr, (symfn.Max, sympy.Max)):
        return _fold(args, _C.sym_max, expr)
    if isinstance(expr, (symfn.Min, sympy.Min)):
        return _fold(args, _C.sym_min, expr)
    if isinstance(expr, (sympy.Pow, symfn.PowByNatural)):
        base, exp = expr.args
        if exp.is_Integer and int(exp) >= 0:
            out = _C.SymExpr(1)
            b = to_sym_expr(base, symbols)
            for _ in range(int(exp)):
                out = out * b
            return out
    if isinstance(expr, symfn.Identity):
        return to_sym_expr(expr.args[0], symbols)
    raise NotImplementedError(f"shape expression {expr} ({type(expr).__name__}) has no SymExpr")


def _is_int_expr(a: sympy.Expr) -> bool:
    return not (a.is_Number and not a.is_Integer)


def _all(args: list[Any], expr: sympy.Expr) -> list[Any]:
    if any(a is None for a in args):
        raise NotImplementedError(f"shape expression {expr} has a non-integer term")
    return args


def _fold(args: list[Any], fn: Any, expr: sympy.Expr) -> Any:
    args = _all(args, expr)
    out = args[0]
    for a in args[1:]:
        out = fn(out, a)
    return out


def _binary(args: list[Any], fn: Any, expr: sympy.Expr) -> Any:
    a, b = _all(args, expr)
    return fn(a, b)
