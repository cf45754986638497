#!/usr/bin/env bash
# The peers of bench/train-race in bench/.venv (PyPI): torch 2.x, JAX with jaxlib
# (XLA CPU), numpy. Idempotent. PyPI's torch wheel links CUDA's libraries at import
# even on the CPU, so its nvidia-* dependencies come too (about 5 GB); the CPU-only
# index (download.pytorch.org) is not reachable from these machines.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=bench/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import torch, jax" 2> /dev/null; then
  "$VENV/bin/pip" install -q "torch==2.*" numpy jax jaxlib
fi
"$VENV/bin/python" -c "import torch, jax; print('peers: torch', torch.__version__, '/ jax', jax.__version__)"
