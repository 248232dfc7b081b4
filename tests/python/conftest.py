"""Shared pytest setup for the Python tests: the `gpu` marker, seeding, import path."""

from __future__ import annotations

import os
import sys

import pytest
import torch

# kiln_testing.py (the shared helpers) sits beside this file.
sys.path.insert(0, os.path.dirname(__file__))
# bench/models.py builds the reference models for the benchmark and the model tests.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "slow: a whole model; deselect with -m 'not slow'")
    # torch.export's own pytree code warns about itself on every export.
    config.addinivalue_line(
        "filterwarnings", r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
