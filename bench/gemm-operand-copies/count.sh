#!/usr/bin/env bash
# Where bfloat16 GEMM operands are copied, counted on a machine without a GPU:
# aim-600m's shapes in 3 blocks (2 of the trunk, 1 of the head:
# aim-600m-slice.json) at batch 32, compiled with the copies made once a value
# (aimc's default, aim-bf16-gemm-operands) and once a GEMM
# (--gemm-operand-copies per-gemm), one step replayed on the test driver
# (test/fake-cuda; the fake cuBLASLt checks but does not multiply), each
# kernel's launches and roofline time a step (the h100-sxm description's
# bandwidth) summed by family. The time on a GPU: scripts/gpu-check.
#
# Usage: bench/gemm-operand-copies/count.sh [BUILD_DIR]   (about 2 minutes, 16 GB)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for copies in per-value per-gemm; do
  "$build/bin/aimc" --model "$here/aim-600m-slice.json" --batch 32 --target sm_90a \
    --gemm-operand-copies "$copies" -o "$work/$copies.aimx" > /dev/null &
done
wait
for copies in per-value per-gemm; do
  env AIMC_CUDA_DRIVER="$build/lib/libfakecuda.so" AIMC_CUBLASLT="$build/lib/libfakecublaslt.so" \
    FAKE_CUBLASLT_SKIP_COMPUTE=1 "$build/bin/aim-run" bench "$work/$copies.aimx" --device cuda \
    --steps 1 --warmup 1 --per-kernel --csv "$work/$copies.csv" > /dev/null
done
python3 "$here/compare.py" per-gemm "$work/per-gemm.csv" per-value "$work/per-value.csv"
