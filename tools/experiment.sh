#!/usr/bin/env bash
# The first experiment (README): on the synthetic dataset, TSN, TSN+DNR, TSN+DNR without channel interlacing,
# TSM and TSM+DNR, each trained with the demo's budget (configs/demo_tsn_r18*.conf: 12 epochs) for 3 seeds,
# then tested (1 view). Prints the table of tools/experiment_table.py. Resumable: finished runs are kept.
#   bash tools/experiment.sh [seeds...]        # default seeds 0 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
if [[ ${#seeds[@]} -eq 0 ]]; then seeds=(0 1 2); fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target tinyvid_cli
tv=./build/tools/tinyvid
$tv synth --out data/synth
out=work_dirs/experiment

run() {  # name config seed [--set ...]
  local name=$1 config=$2 seed=$3
  shift 3
  local dir=$out/$name/seed$seed
  if [[ -f $dir/test/results.json ]]; then echo "== $name seed $seed: done before"; return; fi
  echo "== $name seed $seed"
  $tv train "$config" --work-dir "$dir" --resume --no-progress --quiet --set "seed=$seed" "$@"
  $tv test "$config" --checkpoint "$dir/latest.safetensors" --out "$dir/test" --no-progress --set "seed=$seed" "$@"
}

for seed in "${seeds[@]}"; do
  run tsn configs/demo_tsn_r18.conf "$seed"
  run tsn_dnr configs/demo_tsn_r18_dnr.conf "$seed"
  run tsn_dnr_no_interlace configs/demo_tsn_r18_dnr.conf "$seed" --set model.interlace=false
  run tsm configs/demo_tsn_r18.conf "$seed" --set model=tsm_r18
  run tsm_dnr configs/demo_tsn_r18_dnr.conf "$seed" --set model=tsm_r18_dnr
done
python3 tools/experiment_table.py "$out"
