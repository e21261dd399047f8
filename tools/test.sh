#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds Release, runs every test,
# then fuzzes the safetensors reader for 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure
# A short fuzzing run of the safetensors reader (libFuzzer + ASan/UBSan, clang; tools/fuzz.sh).
bash tools/fuzz.sh 20
