#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds Release, runs every test,
# then fuzzes each reader (safetensors, video, frame image) for 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure
# A short fuzzing run of each reader (libFuzzer + ASan/UBSan, clang; tools/fuzz.sh): 3 x 20 s.
bash tools/fuzz.sh 20
