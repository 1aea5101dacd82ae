#!/usr/bin/env bash
# Train the release model on one GPU in at most 9 minutes and write its model folder (model.json + weights).
#
#   bash tools/gpu_release.sh [OUTPUT_MODEL_DIR] [more 'dccseg train release' options]
#
# Runs in the repository root of a checkout that carries .device-wheels/ (tools/fetch_device_wheels.sh). The machine
# needs Python with torch (CUDA), numpy and scipy; SimpleITK, MONAI and network are not needed. OUTPUT_MODEL_DIR
# defaults to $OUT/dccseg-abdomen-gpu (the device tool's output folder) or ./dccseg-abdomen-gpu; the card's version is the recipe's (--version). PYTHON picks the interpreter (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${1:-${OUT:-.}/dccseg-abdomen-gpu}
shift || true
PYTHON=${PYTHON:-python3}
SITE=$(mktemp -d)
"$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" .device-wheels/*.whl
export PYTHONPATH="$PWD:$SITE" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
start=$(date +%s)
"$PYTHON" -m dccseg train release "$MODEL_DIR" --minutes 9 --device cuda "$@"
echo "wall time: $(( $(date +%s) - start )) s"
ls -la "$MODEL_DIR"
