#!/usr/bin/env bash
# aim-schedule's overlap on the CPU: aim-fmnist at batch 64 on dp=2 ranks
# (mpirun -np 2, one compute thread each), the per-rank program with the
# gradient sums after the backward (--bucket-bytes 0) against the same with
# them started in buckets during the backward (BUCKET bytes, default 1 MiB).
# Also the whole step in one process with 2 threads, for scale. Prints
# images/s of the timed steps (after 3 warm-up steps) and the ratio.
#
# Usage: bash bench/overlap/run.sh [BUILD_DIR]   (STEPS=20, BUCKET=1048576)
set -euo pipefail
cd "$(dirname "$0")/../.."
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
BUILD=${1:-build}
STEPS=${STEPS:-20}
BUCKET=${BUCKET:-1048576}
BATCH=64
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2)

rate() { # metrics.jsonl -> images/s of the steps after the first 3
  /usr/bin/python3 - "$1" "$STEPS" $BATCH <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
steps, batch = int(sys.argv[2]), int(sys.argv[3])
t = lambda r: (r["step"] + 1) * batch / r["images_per_second"]
print(f"{steps * batch / (t(rows[-1]) - t(rows[2])):.2f}")
PY
}
train() { # name, launcher..., artifact, threads
  local name=$1 artifact=$2 threads=$3; shift 3
  "$@" "$BUILD/bin/aim-run" train "$artifact" --data synthetic --steps $((STEPS + 3)) \
    --threads "$threads" --eval-images 0 --out "$WORK/$name" > "$WORK/$name.log"
  rate "$WORK/$name/metrics.jsonl"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
"$BUILD/bin/aimc" --model aim-fmnist --batch $BATCH --target host -o "$WORK/whole.aimx" > /dev/null
"$BUILD/bin/aimc" --model aim-fmnist --batch $BATCH --mesh dp=2 --bucket-bytes 0 \
  --target host -o "$WORK/sync.aimx" > /dev/null
"$BUILD/bin/aimc" --model aim-fmnist --batch $BATCH --mesh dp=2 --bucket-bytes "$BUCKET" \
  --target host -o "$WORK/overlap.aimx" > /dev/null
buckets=$("$BUILD/bin/aimc" --model aim-fmnist --batch $BATCH --mesh dp=2 \
  --bucket-bytes "$BUCKET" --emit=train | grep -o 'aim.bucket = [0-9]*' | sort -u | wc -l)
whole=$(train whole "$WORK/whole.aimx" 2)
sync=$(train sync "$WORK/sync.aimx" 1 "${MPIRUN[@]}")
overlap=$(train overlap "$WORK/overlap.aimx" 1 "${MPIRUN[@]}")
printf '%-44s %10s\n' run images/s
printf '%-44s %10s\n' "one process, whole step, 2 threads" "$whole"
printf '%-44s %10s\n' "dp=2, sums after the backward" "$sync"
printf '%-44s %10s\n' "dp=2, sums in $buckets buckets during the backward" "$overlap"
echo "overlap / after: $(echo "scale=3; $overlap / $sync" | bc)"
