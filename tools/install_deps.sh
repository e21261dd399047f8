#!/usr/bin/env bash
# Installs the Debian packages tinyvid needs, only those missing. `--peer` adds PyTorch and ONNX
# (python3-torch, python3-onnx), used by bench/ to measure the peer, by fixture scripts and by tools/torch_twin.py
# (the PyTorch twin, ONNX export; ctest torch_twin), never by the library.
# Further package names on the command line are installed too (tools/fuzz.sh asks for clang).
set -euo pipefail
packages=(g++ cmake make ccache libeigen3-dev libopenblas-openmp-dev doctest-dev python3 python3-numpy
  pkg-config libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libjpeg-dev libpng-dev libcli11-dev
  libopenmpi-dev openmpi-bin)
for arg in "$@"; do
  if [[ "$arg" == "--peer" ]]; then packages+=(python3-torch python3-onnx); else packages+=("$arg"); fi
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
