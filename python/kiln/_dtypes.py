"""torch dtypes <-> Kiln DTypes."""

from __future__ import annotations

from typing import Any

import torch

from kiln._ops import _C

_TO_KILN: dict[torch.dtype, Any] = {
    torch.float32: _C.DType.float32,
    torch.float16: _C.DType.float16,
    torch.bfloat16: _C.DType.bfloat16,
    torch.int64: _C.DType.int64,
    torch.int32: _C.DType.int32,
    torch.int8: _C.DType.int8,
    torch.uint8: _C.DType.uint8,
    torch.bool: _C.DType.bool_,
}
_TO_TORCH = {v: k for k, v in _TO_KILN.items()}

SUPPORTED_DTYPES = frozenset(_TO_KILN)
FLOAT_DTYPES = frozenset({torch.float32, torch.float16, torch.bfloat16})


def is_supported(dtype: torch.dtype) -> bool:
    return dtype in _TO_KILN


def to_kiln(dtype: torch.dtype) -> Any:
    """The Kiln DType of a torch dtype; NotImplementedError for dtypes Kiln lacks."""
    try:
        return _TO_KILN[dtype]
    except KeyError:
        raise NotImplementedError(f"Kiln has no dtype for {dtype}") from None


def to_torch(dtype: Any) -> torch.dtype:
    return _TO_TORCH[dtype]


def name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
