#!/usr/bin/env bash
# Runs tinyvid's benchmarks and, when Debian's python3-torch is installed, the PyTorch peer in the
# same run; prints every JSON line and then the ratios.
# Usage: bash bench/run.sh [build-dir] [--sizes 256,1024] [--numel N] [--threads N]
# (the flags go to the matmul and elementwise benchmarks and their peer; conv and layers use their defaults)
# First the machine's FMA peak (bench_peak, on 1 and 2 threads), the yardstick of compare.py's "% of peak" lines;
# tsn_r50 runs a second time with OPENBLAS_CORETYPE=SkylakeX (only that process; the rest keep the environment as
# it is), and compare.py sets its times against the plain run's. On a CPU with AVX-512, the conv shapes and tsn_r50
# run again on tinyvid's AVX2 kernels (TINYVID_ISA=avx2) and on PyTorch limited the same way (ONEDNN_MAX_CPU_ISA=AVX2,
# ATEN_CPU_CAPABILITY=avx2), as "variant":"avx2". peer_convs.py adds PyTorch's TSN-R50 forward conv by conv (oneDNN's
# own timing). At the end, the goal model and the goal conv rows again, tinyvid and PyTorch alternating in rounds
# (the goal lines' figures). compare.py ends with the goal lines (PASS/MISS).
set -euo pipefail
# A relative build dir is taken from where run.sh is called; the default is the repo's build/.
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$root/build}")
cd "$root"
shift $(( $# > 0 ? 1 : 0 ))
# The models of bench_models and its peer (tools/torch_twin.py), each with and without DNR.
models=(tsn_r50 tsn_r50_dnr tanet_r50 tanet_r50_dnr tdn_r50 tdn_r50_dnr)
avx2_variant=0
if grep -qw avx512f /proc/cpuinfo && grep -qw avx2 /proc/cpuinfo; then avx2_variant=1; fi
for b in bench_peak bench_matmul bench_elementwise bench_conv bench_layers bench_models; do
  [[ -x "$build/bench/$b" ]] || { echo "run.sh: $build/bench/$b not built (cmake --build $build)" >&2; exit 1; }
done
{
  "$build/bench/bench_peak"
  "$build/bench/bench_matmul" "$@"
  "$build/bench/bench_elementwise" "$@"
  "$build/bench/bench_conv"
  if [[ $avx2_variant == 1 ]]; then TINYVID_ISA=avx2 "$build/bench/bench_conv" --variant avx2; fi
  "$build/bench/bench_layers"
  # Whole models, each in a process of its own (its peak RSS): 8 frames (TDN: 8 segments of 5) at 224, 2 threads.
  for m in "${models[@]}"; do
    "$build/bench/bench_models" --model "$m"
    if [[ $m == tsn_r50 ]]; then  # OpenBLAS's AVX-512 kernels forced, against its own choice just above
      OPENBLAS_CORETYPE=SkylakeX "$build/bench/bench_models" --model "$m" --variant openblas_skylakex
      if [[ $avx2_variant == 1 ]]; then TINYVID_ISA=avx2 "$build/bench/bench_models" --model "$m" --variant avx2; fi
    fi
  done
  if [[ -x "$build/bench/bench_data" ]]; then "$build/bench/bench_data"; fi
  if [[ -x "$build/bench/bench_train" ]]; then "$build/bench/bench_train"; fi
  # Data-parallel steps: 1 process x 2 threads, then 2 x 1 under mpirun (a build with MPI).
  if [[ -x "$build/bench/bench_dist" ]] && command -v mpirun >/dev/null; then
    mpi=(mpirun -np 2 --oversubscribe); [[ $(id -u) -eq 0 ]] && mpi+=(--allow-run-as-root)
    "$build/bench/bench_dist" --iters 20 --threads 2
    "${mpi[@]}" "$build/bench/bench_dist" --iters 20 --threads 1
    "$build/bench/bench_dist" --model tsn_r50 --batch 2 --iters 4 --threads 2
    "${mpi[@]}" "$build/bench/bench_dist" --model tsn_r50 --batch 2 --iters 4 --threads 1
  fi
  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    /usr/bin/python3 bench/peer.py "$@"
    (cd bench && /usr/bin/python3 peer_conv.py && /usr/bin/python3 peer_layers.py &&
     for m in "${models[@]}"; do /usr/bin/python3 peer_models.py --model "$m"; done &&
     { /usr/bin/python3 peer_convs.py --model tsn_r50 || echo "run.sh: peer_convs.py failed (a diagnostic: the run goes on)" >&2; } &&
     if [[ $avx2_variant == 1 ]]; then
       ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 /usr/bin/python3 peer_conv.py --variant avx2 &&
       ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 /usr/bin/python3 peer_models.py --model tsn_r50 --variant avx2
     fi &&
     /usr/bin/python3 peer_data.py && /usr/bin/python3 peer_dist.py)
    # The goal model again, tinyvid and PyTorch alternating, in rounds: the machine's speed drifts by tens of percent
    # over minutes, and the runs above measure the two sides minutes apart. compare.py's TSN-R50 goal lines take the
    # median over these rounds of each round's ratio.
    # (tinyvid under OPENBLAS_CORETYPE=SkylakeX in each round too, for the goal that the BLAS's kernel choice not matter;
    # which of the two runs first alternates from round to round). compare.py takes the median of the rounds' ratios.
    for round in 1 2 3 4 5; do
      plain=("$build/bench/bench_models" --model tsn_r50 --variant "round$round")
      skylakex=(env OPENBLAS_CORETYPE=SkylakeX "$build/bench/bench_models" --model tsn_r50 --variant "openblas_skylakex_round$round")
      if (( round % 2 )); then "${plain[@]}"; "${skylakex[@]}"; else "${skylakex[@]}"; "${plain[@]}"; fi
      (cd bench && /usr/bin/python3 peer_models.py --model tsn_r50 --variant "round$round")
    done
    # The conv goal rows (the 1x1 shapes and the stem) in five rounds too, shape by shape: bench_conv and peer_conv.py
    # on one shape seconds apart, which side runs first alternating from round to round (each side over all shapes in
    # turn put a shape's two figures a minute apart, and an unchanged row's round ratios moved by 0.82-1.18);
    # compare.py's conv goal lines take the median of the rounds' ratios.
    goal_convs=$(awk '!/^#/ && ($1 ~ /^1x1/ || $1 ~ /^stem/) {print $1}' bench/conv_shapes.txt)
    for round in 1 2 3 4 5; do
      for shape in $goal_convs; do
        ours=("$build/bench/bench_conv" --only "$shape" --seconds 0.5 --variant "convround$round")
        if (( round % 2 )); then "${ours[@]}"; fi
        (cd bench && /usr/bin/python3 peer_conv.py --only "$shape" --seconds 0.5 --variant "convround$round")
        if (( round % 2 == 0 )); then "${ours[@]}"; fi
      done
    done
  else
    echo "run.sh: python3-torch not installed; no peer figures (bash tools/install_deps.sh --peer)" >&2
  fi
} | python3 bench/compare.py
