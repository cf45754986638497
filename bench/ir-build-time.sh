#!/usr/bin/env bash
# How long aimc takes to build (and verify) the forward IR of each preset, from
# aimc's own --mlir-timing report: the median of RUNS runs. Not a test.
# Usage: bench/ir-build-time.sh [BUILD_DIR] (default build/); RUNS=N (default 7).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build}/bin
RUNS=${RUNS:-7}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf "%-10s %6s %16s %16s %14s\n" preset batch "build IR (ms)" "verify IR (ms)" "IR ops"
for model in $("$BIN/aimc" --list-presets | awk 'NR>1 && /^aim-/ {print $1}'); do
  build=() verify=()
  for _ in $(seq "$RUNS"); do
    report=$("$BIN/aimc" --model "$model" --batch 64 --mlir-timing -o /dev/null 2>&1)
    build+=("$(awk '/build forward IR/ {print $1 * 1000}' <<<"$report")")
    verify+=("$(awk '/verify forward IR/ {print $1 * 1000}' <<<"$report")")
  done
  ops=$("$BIN/aimc" --model "$model" --batch 64 | grep -c " = aim\.")
  printf "%-10s %6s %16s %16s %14s\n" "$model" 64 \
    "$(printf '%s\n' "${build[@]}" | median)" "$(printf '%s\n' "${verify[@]}" | median)" "$ops"
done
