#!/usr/bin/env bash
# The GPU check (README, "CUDA"): one script for a machine with an NVIDIA GPU, under 10 minutes on 16 cores.
# Builds with the CUDA backend, runs the backend table and the device tests on the GPU against the CPU in
# double (float: rtol 1.3e-6, atol 1e-5 times each case's factor; double: 1e-12), once with cuDNN's
# convolutions and once with the backend's own im2col + GEMM, trains and tests the demo DNR model for
# 2 epochs on the GPU, and runs bench_gpu. Everything goes to the screen and to $OUT/gpu_check.log
# (or gpu_check.log here).
#   bash tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-.}/gpu_check.log"
: >"$log"
say() { echo "$@" | tee -a "$log"; }
run() {  # run CMD...: prints it, its output and its exit status; the script goes on either way
  say "\$ $*"
  local t0=$SECONDS
  "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  say "-> exit $rc after $((SECONDS - t0)) s"
  status=$((status | (rc != 0)))
}
status=0
command -v nvidia-smi >/dev/null && run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
command -v cmake >/dev/null || bash tools/install_deps.sh
run cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DTINYVID_CUDA=ON -DTINYVID_BUILD_EXAMPLES=OFF
run cmake --build build-gpu -j"$(nproc)" --target tinyvid_tests tinyvid_cli bench_gpu
tests=(--test-case="backend*,*device*,*Philox*")
run env TINYVID_CUDNN=1 ./build-gpu/tests/tinyvid_tests "${tests[@]}"
run env TINYVID_CUDNN=0 ./build-gpu/tests/tinyvid_tests "${tests[@]}"
tv=./build-gpu/tools/tinyvid
run "$tv" synth --out data/synth
for m in tsn_r18_dnr; do
  run "$tv" train "configs/demo_$m.conf" --work-dir "work_dirs/gpu_$m" --set epochs=2 --set device=cuda --no-progress
  run "$tv" test "configs/demo_$m.conf" --checkpoint "work_dirs/gpu_$m/latest.safetensors" --out "work_dirs/gpu_$m/test" \
    --set epochs=2 --set device=cuda --no-progress
done
run ./build-gpu/bench/bench_gpu
say "gpu_check: $([[ $status == 0 ]] && echo "every step passed" || echo "a step failed (see above)")"
exit $status
