#!/usr/bin/env bash
# GPU benchmark of DDPM CIFAR-10's training step: genjax float32 vs bfloat16 and the PyTorch
# reference (diffusers UNet2DModel), img/s, MFU, peak memory. WAITING FOR A GPU: no numbers yet.
#   bash experiments/device_benchmark/device.sh            # a GPU machine, ~5 minutes
#   bash experiments/device_benchmark/device.sh --smoke    # CPU check, tiny U-Net, 2 steps
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
if [[ "${1:-}" == "--smoke" ]]; then
  JAX_PLATFORMS=cpu exec "$PY" experiments/device_benchmark/benchmark.py --smoke
fi
nvidia-smi --query-gpu=name,memory.total --format=csv || true
"$PY" experiments/device_benchmark/benchmark.py --steps=300 --warmup=20 --batch_size=128 \
    --out=experiments/device_benchmark/results_b128.json
