#!/usr/bin/env bash
# The main job on the embedded default: install dependencies (idempotent), build,
# compile the aim-fmnist preset to aim IR, initialise its parameters, and print
# the loss of one real Fashion-MNIST batch as the reference interpreter computes it.
#
# Environment: BATCH (default 64), SEED (default 0), OUT (default out/).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-64}
SEED=${SEED:-0}
OUT=${OUT:-out}

bash scripts/setup.sh
cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build

mkdir -p "$OUT"
build/bin/aimc --model aim-fmnist --batch "$BATCH" --emit=aim -o "$OUT/aim-fmnist.forward.mlir"
echo "aimc: wrote $OUT/aim-fmnist.forward.mlir"
build/bin/aim-interp --model aim-fmnist --init-params "$OUT/aim-fmnist.init.safetensors" --seed "$SEED"
echo "aim-interp: loss of $BATCH Fashion-MNIST training images (antithetic prefix lengths, seed $SEED), float64:"
build/bin/aim-interp --ir "$OUT/aim-fmnist.forward.mlir" --entry forward \
  --params "$OUT/aim-fmnist.init.safetensors" \
  --images fashion-mnist:train --batch "$BATCH" --prefix antithetic --seed "$SEED"
