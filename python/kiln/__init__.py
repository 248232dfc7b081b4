"""Kiln: compiles PyTorch models into inference engines.

    import kiln
    compiled = kiln.compile(model.eval(), inputs=[kiln.Input((1, 3, 224, 224), (8, 3, 224, 224),
                                                             (16, 3, 224, 224))])
    out = compiled(x)

or ``torch.compile(model, backend="kiln", options={...})``. Importing kiln loads kiln._C (the
torch ops and the Engine class), registers the built-in converters and the "kiln" backend.
"""

from kiln import _ops, converters, runtime
from kiln._backend import kiln_backend
from kiln._backend import register as _register_backend
from kiln._compile import compile
from kiln._input import Input
from kiln._ops import _C
from kiln._pipeline import FullCompilationError
from kiln._replace import CustomOpModule, replace_module
from kiln._report import CompilationReport
from kiln._save import convert_to_engine, load, save
from kiln._settings import CompilationSettings
from kiln.converters import ConversionContext, converter

_register_backend()

__all__ = [
    "_C",
    "CompilationReport",
    "CompilationSettings",
    "ConversionContext",
    "CustomOpModule",
    "FullCompilationError",
    "Input",
    "_ops",
    "compile",
    "convert_to_engine",
    "converter",
    "converters",
    "kiln_backend",
    "load",
    "replace_module",
    "runtime",
    "save",
]

# Whether execute_engine runs CUDA engines from PyTorch: true when this build has the CUDA
# backend (KILN_CUDA=ON); a CPU-only build refuses device="cuda:N" with a clear error.
CUDA_EXECUTION = bool(_C.HAS_CUDA)
