"""kiln.Input: the shape range and dtype of one model input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

Shape = Sequence[int]


class Input:
    """One model input: a static shape, or min/opt/max shapes where dims with min != max are
    dynamic (TensorRT's optimization profile). Kiln tunes kernels at ``opt``."""

    def __init__(
        self,
        min_shape: Shape | None = None,
        opt_shape: Shape | None = None,
        max_shape: Shape | None = None,
        dtype: torch.dtype = torch.float32,
        name: str | None = None,
        shape: Shape | None = None,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> None:
        if shape is not None:
            if min_shape is not None or max_shape is not None:
                raise ValueError("Input: give either shape or min_shape/max_shape, not both")
            min_shape = opt_shape = max_shape = shape
        elif min_shape is None and max_shape is None:
            if opt_shape is None:
                raise ValueError("Input: needs shape, or min_shape and max_shape")
            min_shape = max_shape = opt_shape
        elif min_shape is None or max_shape is None:
            raise ValueError("Input: min_shape and max_shape go together")
        if opt_shape is None:
            opt_shape = max_shape
        self.min_shape = tuple(int(d) for d in min_shape)
        self.opt_shape = tuple(int(d) for d in opt_shape)
        self.max_shape = tuple(int(d) for d in max_shape)
        self.dtype = dtype
        self.name = name
        # Value range of the example tensor tracing uses (ints: [low, high)).
        self.low = low
        self.high = high
        self._check()

    def _check(self) -> None:
        what = f"Input '{self.name}'" if self.name else "Input"
        if not len(self.min_shape) == len(self.opt_shape) == len(self.max_shape):
            raise ValueError(
                f"{what}: min/opt/max shapes have different ranks: {self.min_shape}, "
                f"{self.opt_shape}, {self.max_shape}"
            )
        for i, (lo, opt, hi) in enumerate(zip(self.min_shape, self.opt_shape, self.max_shape)):
            if not 0 <= lo <= opt <= hi:
                raise ValueError(
                    f"{what}: dim {i} needs 0 <= min <= opt <= max, got {lo}, {opt}, {hi}"
                )

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor, name: str | None = None) -> Input:
        return cls(shape=tuple(tensor.shape), dtype=tensor.dtype, name=name)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.opt_shape

    @property
    def is_dynamic(self) -> bool:
        return self.min_shape != self.max_shape

    def dynamic_dims(self) -> list[int]:
        return [i for i, (a, b) in enumerate(zip(self.min_shape, self.max_shape)) if a != b]

    def example_shape(self) -> tuple[int, ...]:
        """The opt shape, with dynamic dims of size 0 or 1 moved to 2 where the range allows:
        torch.export specializes a dim it traces at 0 or 1."""
        dims = list(self.opt_shape)
        for i in self.dynamic_dims():
            if dims[i] < 2 <= self.max_shape[i]:
                dims[i] = 2
        return tuple(dims)

    def example(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """A tensor of example_shape() for tracing (values only matter to data-dependent code)."""
        shape = self.example_shape()
        if self.dtype.is_floating_point:
            t = torch.rand(shape, device=device).to(self.dtype)
            low = 0.0 if self.low is None else self.low
            high = 1.0 if self.high is None else self.high
            return t * (high - low) + low
        if self.dtype == torch.bool:
            return torch.ones(shape, dtype=torch.bool, device=device)
        low = 0 if self.low is None else int(self.low)
        high = low + 1 if self.high is None else int(self.high)
        return torch.randint(low, max(high, low + 1), shape, dtype=self.dtype, device=device)

    def __repr__(self) -> str:
        name = f"name={self.name!r}, " if self.name else ""
        if not self.is_dynamic:
            return f"Input({name}shape={self.opt_shape}, dtype={self.dtype})"
        return (
            f"Input({name}min_shape={self.min_shape}, opt_shape={self.opt_shape}, "
            f"max_shape={self.max_shape}, dtype={self.dtype})"
        )


def as_inputs(inputs: Sequence[Any]) -> list[Input]:
    """Inputs given as kiln.Input, tensors (static shapes) or shape tuples (float32)."""
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, Input):
            out.append(x)
        elif isinstance(x, torch.Tensor):
            out.append(Input.from_tensor(x))
        elif isinstance(x, (tuple, list, torch.Size)):
            out.append(Input(shape=tuple(x)))
        else:
            raise TypeError(f"inputs[{i}]: expected kiln.Input, a tensor or a shape, got {x!r}")
    return out
