#!/usr/bin/env bash
# The main job. Until the trainer lands it builds and runs the examples; then it will train and
# test TSN and TSN+DNR on the built-in synthetic dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target autograd_basics module_tour
./build/examples/autograd_basics
./build/examples/module_tour
