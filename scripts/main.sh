#!/usr/bin/env bash
# The main job on the embedded default (aim-fmnist on Debian's Fashion-MNIST):
#  1. install dependencies (idempotent) and build;
#  2. the reference: the float64 loss of one real batch at initialisation, from the
#     forward IR, with the interpreter (about 2.9);
#  3. compile the whole training step for the host (aimc --target host, about 30 s)
#     and train it with aim-run on the Fashion-MNIST stream, with progress lines,
#     metrics, checkpoints and the validation loss (1024 t10k images) every 200
#     steps in $OUT/run (about 5 min for the default 600 steps on 2 cores);
#  4. the validation loss of the final checkpoint on 2048 t10k images, and the run's
#     pictures: $OUT/run/loss.png (the loss curves) and $OUT/run/predictions.png
#     (images next to the model's predictions of their later patches).
#
# Environment: BATCH (default 16), STEPS (default 600), SEED (default 0), OUT (out/).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-16}
STEPS=${STEPS:-600}
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

echo "aimc: compiling the aim-fmnist training step for the host (batch $BATCH)..."
build/bin/aimc --model aim-fmnist --batch "$BATCH" --target host -o "$OUT/aim-fmnist.aimx"
echo "aim-run: $STEPS steps on Fashion-MNIST (AIM's schedule, peak lr 1e-3)"
build/bin/aim-run train "$OUT/aim-fmnist.aimx" --steps "$STEPS" --seed "$SEED" \
  --init-params "$OUT/aim-fmnist.init.safetensors" --out "$OUT/run" --checkpoint-every 200
echo "aim-run: the trained model on held-out images"
build/bin/aim-run eval-loss "$OUT/aim-fmnist.aimx" --params "$OUT/run/model.safetensors" \
  --images 2048
