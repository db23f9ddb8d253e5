#!/usr/bin/env bash
# Download the wheels a GPU machine without network needs to run genbench's train and
# sample stages: the machine already has PyTorch, torchvision, numpy, scipy, pandas,
# matplotlib, PyYAML, tqdm, huggingface-hub, safetensors, regex and requests; it lacks
# diffusers (image diffusion and score U-Nets) and zuko (2D flow).
#
# Usage (where pip has network):  scripts/gpu_wheels.sh [python-version, default 3.12] [dest, default .whl]
# There:  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail
PYVER="${1:-3.12}"
DEST="${2:-.whl}"
mkdir -p "$DEST"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$DEST" \
  diffusers==0.42.1 zuko==1.6.0 importlib_metadata==10.2.0
ls -l "$DEST"
