"""Attention masks that are the causal mask, found and replaced by ``is_causal``.

Hugging Face decoders (GPT-2 among them) build their causal mask in the graph from ``arange``
comparisons and pass it to ``scaled_dot_product_attention`` as a boolean ``attn_mask``. The
attention then reads a [B, 1, L, L] mask and computes every block, where ``is_causal`` skips the
blocks above the diagonal and reads nothing. When the mask's inputs are only shapes (no tensor
data) and constants, the mask is evaluated here, on the CPU, for every value its shape symbols
can take; if it is the lower-triangular mask each time, the call becomes ``is_causal=True`` and
the mask's ops die with it. Anything else (a mask that reads data, a symbol range too wide to
check exhaustively, a sequence length that is not static) is left as it was.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import torch

from kiln._block import fetch_attr
from kiln._symbols import SymbolTable
from kiln.converters._context import ConversionError

aten = torch.ops.aten
logger = logging.getLogger("kiln")

_SDPA = aten.scaled_dot_product_attention.default
# Checking a mask evaluates its ops once per combination of symbol values; past this many the
# mask is left alone.
MAX_EVALUATIONS = 64
# Ops whose results are not a function of their arguments.
_NONDETERMINISTIC = ("rand", "bernoulli", "dropout", "empty", "normal", "uniform", "multinomial")


def _ancestors(node: torch.fx.Node) -> list[torch.fx.Node] | None:
    """The nodes `node` depends on (itself included), in graph order; None when one of them
    reads tensor data from a graph input or is not a plain function of its arguments."""
    seen: set[torch.fx.Node] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op == "placeholder":
            return None  # its data, not its shape: sym_size nodes stop the walk below
        if n.op == "get_attr":
            continue
        if n.op != "call_function":
            return None
        if n.target is aten.sym_size.int:
            continue
        name = str(n.target)
        if any(word in name for word in _NONDETERMINISTIC):
            return None
        stack.extend(n.all_input_nodes)
    order = {n: i for i, n in enumerate(node.graph.nodes)}
    return sorted(seen, key=order.__getitem__)


def _symbol_of(node: torch.fx.Node) -> Any:
    val = node.meta.get("val")
    expr = getattr(getattr(val, "node", None), "expr", None)
    return expr if expr is not None and getattr(expr, "is_Symbol", False) else None


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.device):
        return torch.device("cpu")
    if isinstance(value, torch.Tensor):
        return value.cpu()
    return value


def _evaluate(gm: torch.fx.GraphModule, nodes: list[torch.fx.Node],
              sizes: dict[torch.fx.Node, int]) -> torch.Tensor | None:
    env: dict[torch.fx.Node, Any] = {}
    for n in nodes:
        if n.op == "get_attr":
            env[n] = _on_cpu(fetch_attr(gm, n))
        elif n.target is aten.sym_size.int:
            env[n] = sizes[n]
        else:
            args = torch.fx.node.map_arg(n.args, env.__getitem__)
            kwargs = {k: _on_cpu(v) for k, v in
                      torch.fx.node.map_arg(n.kwargs, env.__getitem__).items()}
            env[n] = n.target(*args, **kwargs)
    out = env[nodes[-1]]
    return out if isinstance(out, torch.Tensor) else None


def _is_causal(mask: torch.Tensor, length: int) -> bool:
    if mask.dtype != torch.bool or mask.dim() < 2 or mask.shape[-2:] != (length, length):
        return False
    tril = torch.ones(length, length, dtype=torch.bool).tril()
    return bool(torch.equal(mask, tril.expand_as(mask)))


def _static_length(node: Any) -> int | None:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    if val is None or val.dim() < 2 or not isinstance(val.shape[-2], int):
        return None
    return val.shape[-2]


def _mask_is_causal(gm: torch.fx.GraphModule, sdpa: torch.fx.Node, mask: torch.fx.Node,
                    table: SymbolTable) -> bool:
    lq, lk = _static_length(sdpa.args[0]), _static_length(sdpa.args[1])
    if lq is None or lq != lk:
        return False
    nodes = _ancestors(mask)
    if nodes is None:
        return False
    size_nodes = [n for n in nodes if n.target is aten.sym_size.int]
    symbols = {n: _symbol_of(n) for n in size_nodes}
    if any(s is None for s in symbols.values()):
        return False
    distinct = sorted(set(symbols.values()), key=str)
    ranges = []
    for s in distinct:
        r = table.range(s)
        if r is None:
            return False
        ranges.append(range(r.min, r.max + 1))
    combos = 1
    for r in ranges:
        combos *= len(r)
    if combos > MAX_EVALUATIONS:
        logger.info("kiln: the mask of '%s' may be causal; %d shape combinations are too many "
                    "to check", sdpa.name, combos)
        return False
    for values in itertools.product(*ranges):
        binding = dict(zip(distinct, values))
        try:
            with torch.no_grad():
                m = _evaluate(gm, nodes, {n: binding[s] for n, s in symbols.items()})
        except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError,
                ConversionError):
            # an op that does not run on these shapes: not provably causal
            return False
        if m is None or not _is_causal(m, lq):
            return False
    return True


def replace_causal_masks(gm: torch.fx.GraphModule, table: SymbolTable) -> int:
    """Rewrites each scaled_dot_product_attention whose boolean mask is provably the causal mask
    to ``is_causal=True`` without the mask; returns how many it rewrote."""
    rewritten = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not _SDPA:
            continue
        names = ("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        extra = dict(zip(names, node.args[3:]))
        extra.update(node.kwargs)
        mask = extra.get("attn_mask")
        if not isinstance(mask, torch.fx.Node) or extra.get("is_causal") or extra.get("dropout_p"):
            continue
        if not _mask_is_causal(gm, node, mask, table):
            continue
        extra["attn_mask"] = None
        extra["is_causal"] = True
        node.args = tuple(node.args[:3])
        node.kwargs = extra
        rewritten += 1
    if rewritten:
        gm.graph.eliminate_dead_code()
        gm.recompile()
        logger.info("kiln: %d attention mask(s) are the causal mask: is_causal instead", rewritten)
    return rewritten
