#!/usr/bin/env bash
# The main job on a fresh machine: install what Kiln needs, build the Python package (with the
# CUDA backend when a CUDA toolkit and GPU are present), compile a torchvision ResNet-50 with
# Kiln, check it against PyTorch eager, print the speedup, save it, reload it, and run the saved
# engine with the `kiln` command line.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null; then
  export KILN_CUDA=1
fi
echo "main job: building the kiln package${KILN_CUDA:+ (with CUDA)}"
python3 -m pip install -q --no-build-isolation -e . 2>&1 | tail -20
python3 examples/resnet50.py "$@"
