"""Host overhead of a compiled module's call, on the Python side.

- ``lean_codegen(gm)``: ``ep.module()`` generates a forward that flattens its arguments with
  ``fx_pytree.tree_flatten_spec`` and rebuilds the outputs with ``pytree.tree_unflatten`` on every
  call, a few microseconds of Python. Where the input spec is plain positional leaves and the
  output spec one leaf or a flat tuple/list of leaves, the same forward is generated without
  them: the same signature, the same result, less Python. Other specs (keyword arguments,
  nested inputs, HF ModelOutput results) keep torch's code.
- Engine calls skip the dispatcher: the generated forward calls ``execute_engine`` below instead
  of ``torch.ops.kiln.execute_engine.default``. The graph keeps the op (export, save, inspection
  and stream insertion see no difference); only the Python source differs. ``execute_engine``
  asks ``kiln._C.execute_engine_fast`` first, which runs the engine directly for a plain eager
  call and answers None whenever the dispatcher's path could differ (tracing, dispatch or
  function modes, tensor subclasses, inputs needing grad; fast_execute.cpp), and takes the op
  then. Under torch.compile (is_compiling) it takes the op at once, so Dynamo traces the op.
- ``direct_call(gm)``: a GraphModule's call goes through two wrappers of its own (for error
  messages that quote the generated code) and nn.Module's hook dispatch before ``forward``: about
  2 us per call. gm's class (FX makes one per instance) gets a ``__call__`` that calls
  ``forward`` at once while nothing would run in between: no hooks, no ``module.compile()``, no
  TorchScript tracing; otherwise it takes the original path. A later ``gm.recompile()`` puts
  FX's own ``__call__`` back (still correct, only slower).
- ``EngineCall``: where the whole forward is one engine call on the module's positional
  arguments (a model that compiles whole), the direct ``__call__`` hands the arguments to
  ``kiln._C.EngineCall``, which runs the engine and returns its outputs in the forward's
  structure: no generated forward, input list, output list or indexing in Python. It declines
  (None) wherever ``execute_engine_fast`` would, and the forward runs then. There the class's
  ``__call__`` is a ``kiln._C.DirectCall``, which makes ``_direct_call``'s checks and the
  EngineCall in C (no Python frame, no pybind argument dispatch) and hands any other call to
  ``_direct_call``.
- ``drop_per_call_hooks(gm)``: ``ep.module()`` registers forward hooks (an input-constraint check,
  and nn.Module-input pytree hooks that do nothing for tensor inputs); any hook sends every call
  through nn.Module's slow path.
- ``skip_torch_function_lookup()``: before dispatching an op, torch asks every argument that is
  not a tensor for ``__torch_function__``. A ``torch.ScriptObject`` (the engine argument of
  ``kiln::execute_engine``) answers through its ``__getattr__``, which raises a C++ exception that
  becomes an AttributeError: about 8 us of a 12 us call (measured on this project's CI-class CPU).
  Giving the type the attribute torch itself uses to mean "no override"
  (``torch._C._disabled_torch_function_impl``) answers the same, without the exception. A
  ScriptObject cannot define ``__torch_function__`` (TorchScript classes have no such hook), so
  no ScriptObject's behaviour changes.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch.fx.graph import PythonCode, _PyTreeCodeGen

from kiln import _C

EXECUTE = torch.ops.kiln.execute_engine.default
_EXECUTE_SOURCE = "torch.ops.kiln.execute_engine.default("
_FAST_NAME = "_kiln_execute_engine"


def execute_engine(inputs: list[torch.Tensor], engine: Any) -> list[torch.Tensor]:
    """``torch.ops.kiln.execute_engine.default(inputs, engine)``, without the dispatcher where
    that changes nothing (module docstring)."""
    if not torch.compiler.is_compiling():
        outputs = _C.execute_engine_fast(inputs, engine)
        if outputs is not None:
            return outputs
    return EXECUTE(inputs, engine)


def skip_torch_function_lookup() -> None:
    script_object = torch._C.ScriptObject
    if "__torch_function__" not in script_object.__dict__:
        script_object.__torch_function__ = torch._C._disabled_torch_function_impl


def _flat_leaves(spec: Any) -> bool:
    return spec.type in (tuple, list) and all(spec.child(i).is_leaf() for i in range(spec.num_children))


def _positional_only(in_spec: Any) -> int | None:
    """The argument count when in_spec is (args, {}) with args a tuple of leaves, else None."""
    if not (in_spec.type is tuple and in_spec.num_children == 2):
        return None
    args, kwargs = in_spec.child(0), in_spec.child(1)
    if args.type is not tuple or kwargs.type is not dict or kwargs.num_children != 0:
        return None
    return args.num_children if _flat_leaves(args) else None


class LeanPyTreeCodeGen(_PyTreeCodeGen):
    """_PyTreeCodeGen that binds plain positional leaves, returns flat results directly and calls
    engines through ``execute_engine``."""

    def gen_var_bindings(self, fn_args: list[str], free_vars: list[str], expanded_def: bool) -> str:
        count = _positional_only(self.pytree_info.in_spec)
        if "self" in fn_args:
            return super().gen_var_bindings(fn_args, free_vars, expanded_def)
        names = [v.split(":")[0].split("#")[0].strip() for v in free_vars]
        args = [a for a in fn_args if a != "self"]
        if count is None or count != len(names) or count != len(args) or any(":" in v for v in free_vars):
            return super().gen_var_bindings(fn_args, free_vars, expanded_def)
        if names == args:
            return ""
        return f"\n    {', '.join(names)}, = {', '.join(args)},"

    def _gen_python_code(self, *args: Any, **kwargs: Any) -> PythonCode:
        code = super()._gen_python_code(*args, **kwargs)
        if _EXECUTE_SOURCE in code.src:
            code.src = code.src.replace(_EXECUTE_SOURCE, f"{_FAST_NAME}(")
            code.globals[_FAST_NAME] = execute_engine
        return code

    def generate_output(self, output_args: Any, *, descs: Any | None = None) -> str:
        spec = self.pytree_info.out_spec if self.pytree_info else None
        if spec is not None and isinstance(output_args, (list, tuple)):
            if spec.is_leaf() and len(output_args) == 1:
                return f"return {output_args[0]!r}"
            if _flat_leaves(spec) and spec.num_children == len(output_args):
                items = "".join(f"{a!r}, " for a in output_args)
                return f"return ({items})" if spec.type is tuple else f"return [{items}]"
        return super().generate_output(output_args, descs=descs)


def lean_codegen(gm: torch.fx.GraphModule) -> None:
    """Switches gm to LeanPyTreeCodeGen (in place) where its code is torch's pytree codegen, and
    to ``direct_call``."""
    codegen = gm.graph._codegen
    if type(codegen) is _PyTreeCodeGen and codegen.pytree_info is not None:
        gm.graph._codegen = LeanPyTreeCodeGen(codegen.pytree_info)
        gm.recompile()
    direct_call(gm)


_hooks = torch.nn.modules.module
_is_compiling = torch.compiler.is_compiling
_tracing_state = torch._C._get_tracing_state


def _direct_call(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
    cls = type(self)
    if (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks
            or self._backward_pre_hooks or _hooks._global_forward_hooks
            or _hooks._global_forward_pre_hooks or _hooks._global_backward_hooks
            or _hooks._global_backward_pre_hooks or self._compiled_call_impl is not None
            or _tracing_state()):
        return cls._kiln_fx_call(self, *args, **kwargs)
    engine_call = cls._kiln_engine_call
    if engine_call is not None and not kwargs and not _is_compiling():
        result = engine_call(self, args)
        if result is not None:
            return result
    return self.forward(*args, **kwargs)


def _getitem_index(node: Any, call: torch.fx.Node) -> int | None:
    if (isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target is operator.getitem
            and node.args[0] is call and isinstance(node.args[1], int)):
        return node.args[1]
    return None


def engine_call_of(gm: torch.fx.GraphModule) -> Any:
    """A ``kiln._C.EngineCall`` for gm when its forward is exactly one engine call on its
    positional arguments in order, returning engine outputs as one value or a flat tuple/list
    (what kiln.compile makes of a model that compiles whole); None otherwise. Anything else in
    the graph (another op, a second engine, an input or constant returned as it is, nested
    outputs) keeps the generated forward."""
    codegen = gm.graph._codegen
    if type(codegen) is not LeanPyTreeCodeGen or codegen.pytree_info is None:
        return None
    count = _positional_only(codegen.pytree_info.in_spec)
    out_spec = codegen.pytree_info.out_spec
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    calls = [n for n in nodes if n.op == "call_function" and n.target is EXECUTE]
    if count is None or count != len(placeholders) or len(calls) != 1 or out_spec is None:
        return None
    call = calls[0]
    inputs, engine = call.args
    if (not isinstance(inputs, (list, tuple)) or list(inputs) != placeholders
            or not isinstance(engine, torch.fx.Node) or engine.op != "get_attr" or "." in engine.target):
        return None
    output = nodes[-1]
    leaves = output.args[0] if output.op == "output" else None
    if not isinstance(leaves, (list, tuple)):
        return None
    indices = [_getitem_index(leaf, call) for leaf in leaves]
    if any(i is None for i in indices):
        return None
    known = {*placeholders, engine, call, output, *leaves}
    if any(n not in known and _getitem_index(n, call) is None for n in nodes):
        return None
    if out_spec.is_leaf() and len(indices) == 1:
        shape = 0
    elif _flat_leaves(out_spec) and out_spec.num_children == len(indices):
        shape = 1 if out_spec.type is tuple else 2
    else:
        return None
    return _C.EngineCall(engine.target, count, indices, shape)


def direct_call(gm: torch.fx.GraphModule) -> None:
    """Gives gm's own class the direct ``__call__`` (module docstring), and the ``EngineCall``
    that module calls take where the forward is one engine call (``engine_call_of``). There the
    ``__call__`` is a ``kiln._C.DirectCall``: ``_direct_call``'s checks and the EngineCall in C,
    ``_direct_call`` itself for any call that is not plain."""
    cls = type(gm)
    if cls is torch.fx.GraphModule or not issubclass(cls, torch.fx.GraphModule):
        return  # a class other modules share: leave it alone
    # On the class, not the module: it holds no reference to the engine, and copies and pickles
    # of the module do not carry it (a copy gets a class of its own, and FX's call).
    cls._kiln_engine_call = engine_call_of(gm)
    current = cls.__dict__.get("__call__")
    if current is not _direct_call and not isinstance(current, _C.DirectCall):
        cls._kiln_fx_call = cls.__call__
    engine_call = cls._kiln_engine_call
    cls.__call__ = (_direct_call if engine_call is None
                    else _C.DirectCall(engine_call, _direct_call, _hooks, _is_compiling))


def _is_noop_module_input_hook(hook: Any) -> bool:
    """ep.module() also registers a pre and a post hook that make nn.Module inputs pytree nodes
    for the call. With no nn.Module among the inputs (their closure's `module_types` is empty)
    they do nothing, but any hook sends every call through nn.Module's slow path."""
    if "_create_stateful_graph_module" not in getattr(hook, "__qualname__", ""):
        return False
    code = getattr(hook, "__code__", None)
    cells = dict(zip(code.co_freevars, hook.__closure__ or ())) if code else {}
    types = cells.get("module_types")
    try:
        return types is not None and len(types.cell_contents) == 0
    except (ValueError, TypeError):  # an empty cell, or not a collection
        return False


def drop_per_call_hooks(gm: torch.nn.Module) -> None:
    """ep.module() re-checks inputs against the export's ranges before every call (kiln.compile's
    and kiln.load's modules alike). Kiln's engines check their bindings themselves (against the
    kiln.Input ranges, which may be wider than what export inferred), and the hook keeps the
    module from being traced or scripted. The no-op nn.Module-input hooks go too
    (_is_noop_module_input_hook)."""
    for key, hook in list(gm._forward_pre_hooks.items()):
        if "constraints" in getattr(hook, "__name__", "") or _is_noop_module_input_hook(hook):
            del gm._forward_pre_hooks[key]
            gm._forward_pre_hooks_with_kwargs.pop(key, None)
    for key, hook in list(gm._forward_hooks.items()):
        if _is_noop_module_input_hook(hook):
            del gm._forward_hooks[key]
            gm._forward_hooks_with_kwargs.pop(key, None)
            gm._forward_hooks_always_called.pop(key, None)
