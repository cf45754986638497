#!/usr/bin/env bash
# The CPU race (issue 6): aim-fmnist, batch 64, float32, on this machine's cores,
# trained by aim-run (aimc's host code) and by the peers a user would pick instead:
# PyTorch eager, torch.compile (inductor) and JAX jit (XLA CPU), same math
# (bench/train-race/peers.py). Each peer runs with 1 and with 2 compute threads and
# keeps its better; aim-run runs with --threads 2 (its GEMM threads) and one data
# thread. Prints images/s, aimc's ratio to the best peer, and compile times.
#
# Usage: bash bench/train-race/run.sh [BUILD_DIR]   (STEPS=20 timed steps each)
# Needs the peers in bench/.venv: bash bench/train-race/setup-peers.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# OpenBLAS' core-type and L2 overrides slow current builds here: unset for every
# contestant (aim-run links OpenBLAS too).
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
BUILD=${1:-build}
STEPS=${STEPS:-20}
BATCH=64
VENV=bench/.venv
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -x "$VENV/bin/python" ] || { echo "no $VENV: run bash bench/train-race/setup-peers.sh"; exit 1; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
start=$(date +%s.%N)
"$BUILD/bin/aimc" --model aim-fmnist --batch $BATCH --target host -o "$WORK/m.aimx" > /dev/null
aimc_compile=$(echo "$(date +%s.%N) - $start" | bc)
# Warm-up step excluded the same way as the peers: 3 steps, then STEPS timed.
"$BUILD/bin/aim-run" train "$WORK/m.aimx" --steps $((STEPS + 3)) --threads 2 --eval-images 0 \
  --out "$WORK/run" > "$WORK/aim-run.log"
aimc_ips=$(/usr/bin/python3 - "$WORK/run/metrics.jsonl" "$STEPS" $BATCH <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
steps, batch = int(sys.argv[2]), int(sys.argv[3])
# images_per_second is cumulative: recover the time of steps 3.. from it.
t = lambda r: (r["step"] + 1) * batch / r["images_per_second"]
print(f"{steps * batch / (t(rows[-1]) - t(rows[2])):.2f}")
PY
)
printf '%-14s %8s %12s %10s\n' contestant threads images/s compile_s
printf '%-14s %8s %12s %10.1f\n' aimc 2 "$aimc_ips" "$aimc_compile"
best=0; best_name=""
for peer in torch-eager torch-compile jax-jit; do
  peer_best=0; peer_line=""
  for threads in 1 2; do
    if [ "$peer" = jax-jit ] && [ "$threads" = 1 ]; then
      export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else
      unset XLA_FLAGS
    fi
    # A fresh inductor cache: torch.compile's time is a cold compile's.
    line=$(OMP_NUM_THREADS=$threads TORCHINDUCTOR_CACHE_DIR="$WORK/inductor-$peer-$threads" \
           "$VENV/bin/python" bench/train-race/peers.py "$peer" \
           --threads "$threads" --batch $BATCH --steps "$STEPS" 2> "$WORK/$peer-$threads.err" | tail -1) || {
      echo "$peer ($threads threads) failed:"; tail -5 "$WORK/$peer-$threads.err"; continue; }
    ips=$(echo "$line" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])')
    if (( $(echo "$ips > $peer_best" | bc) )); then peer_best=$ips; peer_line=$line; fi
  done
  unset XLA_FLAGS
  [ -n "$peer_line" ] || continue
  echo "$peer_line" | /usr/bin/python3 -c 'import json, sys
r = json.load(sys.stdin)
print("%-14s %8d %12.2f %10.1f" % (r["peer"], r["threads"], r["images_per_second"], r["compile_seconds"]))'
  if (( $(echo "$peer_best > $best" | bc) )); then best=$peer_best; best_name=$peer; fi
done
echo "aimc / best peer ($best_name): $(echo "scale=3; $aimc_ips / $best" | bc)"
