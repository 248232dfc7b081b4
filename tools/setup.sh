#!/usr/bin/env bash
# Installs what Kiln needs to build and test on a fresh Debian/Ubuntu machine: compilers and
# libraries from apt, PyTorch 2.11.0 and the test tools from PyPI. Idempotent.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

apt_packages=(build-essential cmake ninja-build ccache clang libclang-rt-dev
              libopenblas-dev flatbuffers-compiler libflatbuffers-dev libgtest-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
pip_packages=(torch==2.11.0 torchvision==0.26.0 "transformers>=4.45" numpy pytest
              "scikit-build-core>=0.10" ruff==0.17.6 matplotlib)
if ! $PY -c "import torch, torchvision, transformers, numpy, pytest, scikit_build_core; assert torch.__version__.startswith('2.11.0')" 2>/dev/null ||
   ! command -v ruff >/dev/null; then
  echo "setup: pip install ${pip_packages[*]}"
  $PY -m pip install -q "${pip_packages[@]}"
fi
# CUTLASS's headers (the fused Hopper GEMMs) for a CUDA build; CMake finds them in the package.
if command -v nvcc >/dev/null && ! $PY -c "import cutlass_library" 2>/dev/null; then
  echo "setup: pip install nvidia-cutlass==4.2.0.0"
  $PY -m pip install -q nvidia-cutlass==4.2.0.0
fi
echo "setup: ok ($($PY -c 'import torch; print("torch", torch.__version__)'), $(cmake --version | head -1))"
