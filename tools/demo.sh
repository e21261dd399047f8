#!/usr/bin/env bash
# The main job. Until the trainer lands it builds and runs the examples (the DNR math step by step) and
# prints the TSN-R50 and TSN-R50-DNR model summaries; then it will train and test TSN and TSN+DNR on
# the built-in synthetic dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target autograd_basics module_tour dnr_step_by_step tinyvid_cli
./build/examples/autograd_basics
./build/examples/module_tour
./build/examples/dnr_step_by_step
./build/tools/tinyvid summary --model tsn_r50 | tail -2
./build/tools/tinyvid summary --model tsn_r50_dnr | tail -2
