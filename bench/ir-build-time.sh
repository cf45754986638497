#!/usr/bin/env bash
# How long aimc takes to build the forward IR of each preset, and to emit the whole
# training step (forward IR + aim-autodiff + aim-build-train-step), from aimc's own
# --mlir-timing report: the median of RUNS runs. Not a test.
# Usage: bench/ir-build-time.sh [BUILD_DIR] (default build/); RUNS=N (default 7).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build}/bin
RUNS=${RUNS:-7}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timer NAME REPORT: the wall seconds of the line NAME in a --mlir-timing report, in ms.
timer() { awk -v name="$1" '$0 ~ name {print $1 * 1000; exit}' <<<"$2"; }

printf "%-10s %6s %14s %12s %14s %16s %14s\n" preset batch "forward (ms)" "verify (ms)" \
  "autodiff (ms)" "train step (ms)" "train IR ops"
for model in $("$BIN/aimc" --list-presets | awk 'NR>1 && /^aim-/ {print $1}'); do
  build=() verify=() autodiff=() total=()
  for _ in $(seq "$RUNS"); do
    report=$("$BIN/aimc" --model "$model" --batch 64 --emit=train --mlir-timing -o /dev/null 2>&1)
    build+=("$(timer "build forward IR" "$report")")
    verify+=("$(timer "verify forward IR" "$report")")
    autodiff+=("$(timer "AutodiffPass" "$report")")
    total+=("$(timer "Total$" "$report")")
  done
  ops=$("$BIN/aimc" --model "$model" --batch 64 --emit=train | grep -c " = aim\.")
  printf "%-10s %6s %14s %12s %14s %16s %14s\n" "$model" 64 \
    "$(printf '%s\n' "${build[@]}" | median)" "$(printf '%s\n' "${verify[@]}" | median)" \
    "$(printf '%s\n' "${autodiff[@]}" | median)" "$(printf '%s\n' "${total[@]}" | median)" "$ops"
done
