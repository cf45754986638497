#!/usr/bin/env bash
# Builds the libFuzzer targets of the file readers and the model-config parser with
# clang, ASan and UBSan, and runs each briefly (FUZZ_SECONDS each, default 10) from a seed of valid files.
# Usage: scripts/fuzz.sh BUILD_DIR WORK_DIR. Any crash, leak or UB report fails; a
# finding goes into test/fuzz/regressions/TARGET/ once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "$1")
WORK=$2
SECONDS_EACH=${FUZZ_SECONDS:-10}
# A fixed seed makes a CI run repeatable; FUZZ_SEED=0 lets libFuzzer pick one.
SEED=${FUZZ_SEED:-1}
CXX=${FUZZ_CXX:-clang++-14}
mkdir -p "$WORK"
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -I. -I"$BUILD")
COMMON=(common/FileIO.cpp common/HostTensor.cpp common/MiniJson.cpp common/Npy.cpp
        common/Safetensors.cpp common/Philox.cpp)

build() { # name sources...
  local name=$1; shift
  "$CXX" "${FLAGS[@]}" "$@" -o "$WORK/$name"
}
build fuzz-safetensors test/fuzz/FuzzSafetensors.cpp "${COMMON[@]}"
build fuzz-npy test/fuzz/FuzzNpy.cpp "${COMMON[@]}"
build fuzz-artifact test/fuzz/FuzzArtifact.cpp runtime/Artifact.cpp "${COMMON[@]}"
# The config parser is built on LLVM's YAML and JSON parsers: instrumented here,
# linked against Debian's (uninstrumented) libLLVM.
LLVM_DIR=${LLVM_DIR:-/usr/lib/llvm-22}
build fuzz-config test/fuzz/FuzzConfig.cpp frontends/ConfigParser.cpp \
  frontends/Presets.cpp common/ModelConfig.cpp -I"$LLVM_DIR/include" \
  -L"$LLVM_DIR/lib" -lLLVM -Wl,-rpath,"$LLVM_DIR/lib"

# Seeds: valid files written by the tools.
mkdir -p "$WORK/seeds-safetensors" "$WORK/seeds-npy" "$WORK/seeds-artifact" \
  "$WORK/seeds-config"
"$BUILD/bin/aim-interp" --model test/lit/aimc/Inputs/tiny.yaml \
  --init-params "$WORK/seeds-safetensors/tiny.safetensors" --seed 0 > /dev/null
/usr/bin/python3 -c "import numpy as np; np.save('$WORK/seeds-npy/x.npy', np.zeros((2,3), np.float32)); np.save('$WORK/seeds-npy/k.npy', np.arange(4, dtype=np.int64))"
printf 'AIMX' > "$WORK/seeds-artifact/tiny"
# A config seed's first byte picks the syntax (even: YAML, odd: JSON).
for f in tiny.yaml invalid-rules.yaml typo.yaml tiny.json; do
  case $f in *.json) selector='\001' ;; *) selector='\000' ;; esac
  { printf "$selector"; cat "test/lit/aimc/Inputs/$f"; } > "$WORK/seeds-config/$f"
done

for target in safetensors npy artifact config; do
  # Inputs that once failed run first: a fixed bug stays fixed.
  regressions=(test/fuzz/regressions/$target/*)
  if [ -e "${regressions[0]}" ]; then
    "$WORK/fuzz-$target" "${regressions[@]}" > "$WORK/regress-$target.log" 2>&1 || {
      tail -20 "$WORK/regress-$target.log"; echo "fuzz-$target regression FAILED"; exit 1; }
    echo "$target: ${#regressions[@]} earlier finding(s) still handled"
  fi
  echo "fuzzing the $target parser for ${SECONDS_EACH}s (seed $SEED)"
  "$WORK/fuzz-$target" -seed="$SEED" -max_total_time="$SECONDS_EACH" -max_len=4096 \
    "$WORK/seeds-$target" > "$WORK/fuzz-$target.log" 2>&1 || {
    tail -40 "$WORK/fuzz-$target.log"; echo "fuzz-$target FAILED"; exit 1; }
  grep -E "^Done|#[0-9]+.*DONE" "$WORK/fuzz-$target.log" | tail -1 || true
done
echo "fuzzing: no crash, leak or undefined behaviour"
