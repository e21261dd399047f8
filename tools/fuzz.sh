#!/usr/bin/env bash
# Fuzzes the safetensors reader with libFuzzer (ASan + UBSan) for the given seconds (default 30):
#   bash tools/fuzz.sh [seconds]
# Builds tests/fuzz/fuzz_safetensors with clang in build-fuzz/ (or $TINYVID_FUZZ_BUILD), seeds the
# corpus with the reference fixture, and stops at the first crash, leaving its input as crash-* there.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
build="${TINYVID_FUZZ_BUILD:-build-fuzz}"

# clang, the OpenMP runtime clang links (the tinyvid target uses OpenMP) and the fuzzer/sanitizer
# runtimes (only recommended by clang, so asked for by name).
bash tools/install_deps.sh clang libomp-dev libclang-rt-dev

CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTINYVID_BUILD_EXAMPLES=OFF \
  -DTINYVID_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_safetensors

corpus="$build/fuzz-corpus"
mkdir -p "$corpus"
cp tests/fixtures/io_reference.safetensors "$corpus/"
# The header's tokens, so mutations reach the checks past the JSON syntax.
cat >"$build/safetensors.dict" <<'EOF'
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F64\""
"\"F32\""
"\"F16\""
"\"BF16\""
"\"I64\""
"\"U8\""
"\"BOOL\""
"\\u"
"\\ud83d\\ude00"
EOF
"$build/tests/fuzz_safetensors" -max_total_time="$seconds" -dict="$build/safetensors.dict" \
  -artifact_prefix="$build/" -print_final_stats=1 "$corpus"
