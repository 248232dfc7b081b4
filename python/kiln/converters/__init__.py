"""Converters from aten ops (and user custom ops) to Kiln ops, one module per op family."""

from kiln.converters import (  # noqa: F401 - importing a family registers its converters
    activation,
    attention,
    conv_pool,
    creation,
    elementwise,
    indexing,
    linalg,
    norm,
    reduce,
    shape,
)
from kiln.converters._args import Args, bind_args
from kiln.converters._context import ConversionContext, ConversionError
from kiln.converters._registry import (
    ConverterEntry,
    candidates,
    converter,
    has_converter,
    registered_targets,
    unregister,
)

__all__ = [
    "Args",
    "ConversionContext",
    "ConversionError",
    "ConverterEntry",
    "bind_args",
    "candidates",
    "converter",
    "has_converter",
    "registered_targets",
    "unregister",
]
