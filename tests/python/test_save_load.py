"""kiln.save / kiln.load round trips checked in a fresh process (which must not rebuild),
and kiln.convert_to_engine's standalone engine file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from kiln_testing import engines_of
from torch import nn

import kiln


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        return self.fc(y.amax((2, 3)))


INPUTS = [kiln.Input((1, 3, 6, 6), (2, 3, 6, 6), (4, 3, 6, 6))]

# Runs in a fresh process: loads the module with builds disabled (so nothing recompiles),
# runs it on saved inputs and saves the outputs.
LOADER = textwrap.dedent(
    """
    import sys, torch, kiln

    def no_build(*args, **kwargs):
        raise AssertionError("kiln.load must not rebuild engines")

    kiln._C.build = no_build
    model = kiln.load(sys.argv[1])
    xs = torch.load(sys.argv[2])
    with torch.no_grad():
        torch.save([model(x) for x in xs], sys.argv[3])
    """
)


def _run_fresh(tmp_path: Path, saved: Path, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    torch.save(xs, tmp_path / "xs.pt")
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    env = dict(os.environ)
    subprocess.run(
        [sys.executable, str(script), str(saved), str(tmp_path / "xs.pt"), str(tmp_path / "ys.pt")],
        check=True,
        env=env,
        timeout=300,
    )
    return torch.load(tmp_path / "ys.pt")


@pytest.mark.parametrize("fmt", ["exported_program", "torchscript"])
def test_save_load_round_trip_in_fresh_process(tmp_path: Path, fmt: str) -> None:
    model = Net().eval()
    compiled = kiln.compile(model, inputs=INPUTS, require_full_compilation=True)
    path = tmp_path / ("model.pt2" if fmt == "exported_program" else "model.ts")
    kiln.save(compiled, path, inputs=INPUTS, output_format=fmt)
    xs = [torch.randn(b, 3, 6, 6) for b in (1, 3)]
    if fmt == "torchscript":
        xs = xs[:1] + [torch.randn(2, 3, 6, 6)]
    ys = _run_fresh(tmp_path, path, xs)
    with torch.no_grad():
        for x, y in zip(xs, ys):
            torch.testing.assert_close(y, model(x), atol=1e-5, rtol=1e-5)


def test_loaded_program_still_calls_engines(tmp_path: Path) -> None:
    compiled = kiln.compile(Net().eval(), inputs=INPUTS, require_full_compilation=True)
    kiln.save(compiled, tmp_path / "m.pt2", inputs=INPUTS)
    loaded = kiln.load(tmp_path / "m.pt2")
    assert len(engines_of(loaded)) == 1


def test_convert_to_engine_writes_standalone_file(tmp_path: Path) -> None:
    path = tmp_path / "net.kiln"
    data = kiln.convert_to_engine(Net().eval(), INPUTS, path)
    assert path.read_bytes() == data
    info = kiln._C.engine_info(data)
    names = [b["name"] for b in info["bindings"]]
    assert names[0] == "x"
    assert len(names) == 2
