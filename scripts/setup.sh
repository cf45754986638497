#!/usr/bin/env bash
# Installs every system dependency of aimc from Debian's packages. Idempotent: packages
# already present are left alone, so running it twice costs only the check.
set -euo pipefail

packages=(
  cmake ninja-build g++
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  libflatbuffers-dev flatbuffers-compiler
  libgtest-dev libgmock-dev
  libopenmpi-dev openmpi-bin libopenblas-dev
  dataset-fashion-mnist
  zlib1g-dev libpng-dev libjpeg-dev
  clang-14 libclang-rt-14-dev
  python3-numpy python3-torch
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
