#!/usr/bin/env bash
# Fetch, into the git-ignored .device-wheels/, the wheels that 'tools/gpu_release.sh' installs on a GPU machine that has
# torch, numpy and scipy but no network: MONAI, nibabel (with what it needs), safetensors and tqdm. About 5 MB.
# dccseg itself runs from the checkout. Run it once, with network, in the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.10 --dest .device-wheels \
    monai==1.6.1 nibabel==5.4.2 packaging importlib-resources typing-extensions safetensors==0.8.0 tqdm==4.70.1
ls -la .device-wheels
