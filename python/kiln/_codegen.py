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


def _direct_call(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
    if (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks
            or self._backward_pre_hooks or _hooks._global_forward_hooks
            or _hooks._global_forward_pre_hooks or _hooks._global_backward_hooks
            or _hooks._global_backward_pre_hooks or self._compiled_call_impl is not None
            or torch._C._get_tracing_state()):
        return type(self)._kiln_fx_call(self, *args, **kwargs)
    return self.forward(*args, **kwargs)


def direct_call(gm: torch.fx.GraphModule) -> None:
    """Gives gm's own class the direct ``__call__`` (module docstring)."""
    cls = type(gm)
    if cls is torch.fx.GraphModule or not issubclass(cls, torch.fx.GraphModule):
        return  # a class other modules share: leave it alone
    if cls.__dict__.get("__call__") is _direct_call:
        return
    cls._kiln_fx_call = cls.__call__
    cls.__call__ = _direct_call


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
