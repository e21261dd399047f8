#!/usr/bin/env bash
# The paper's two tables at small scale, on the hard synthetic benchmark (README "The paper's tables at small
# scale"): Table 1, DNR's parts on TSN; Table 2, TSN, TSM, TANet and TDN with and without DNR. The rows are in
# tools/experiment_rows.txt; each trains configs/hard_tsn_r18.conf with its model and switches, for each seed, and
# is tested with 1 view (accuracy). Then the throughput phase: the eval forward of 30 clips (a 10 x 3-view test
# of one video) of every row's model, timed by bench_models in 3 interleaved rounds (the table takes the
# fastest). Prints tools/experiment_table.py's tables and writes its chart. Resumable: finished runs and rounds
# are kept.
#   bash tools/experiment.sh                          # both tables, seeds 0 1 2 (about 3.5 hours on 2 cores)
#   bash tools/experiment.sh --quick                  # 1 seed, 2 epochs, 5 rows, no throughput (about 15 minutes)
#   bash tools/experiment.sh --seeds "0 1" --rows "tsn dnr tsm"   # a part; --out DIR (default work_dirs/ablation)
#   bash tools/experiment.sh --phase train|throughput # one phase only (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="0 1 2" rows="" out="" quick=0 phase=all
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=1; shift ;;
    --seeds) seeds=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --phase) phase=$2; shift 2 ;;
    *) echo "experiment.sh: unknown argument '$1' (expected --quick, --seeds \"S ...\", --rows \"NAME ...\"," \
            "--out DIR, --phase train|throughput)" >&2; exit 2 ;;
  esac
done
if [[ $phase != all && $phase != train && $phase != throughput ]]; then
  echo "experiment.sh: --phase must be train or throughput, got '$phase'" >&2; exit 2
fi
extra=()
if [[ $quick == 1 ]]; then
  seeds=${seeds%% *} phase=train
  rows=${rows:-"tsn dnr dnr_no_interlace tsm tsm_dnr"}
  out=${out:-work_dirs/ablation_quick}
  extra=(--set epochs=2)
fi
out=${out:-work_dirs/ablation}
config=configs/hard_tsn_r18.conf

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target tinyvid_cli bench_models
tv=./build/tools/tinyvid
$tv synth --preset hard --out data/synth_hard
mkdir -p "$out"
{ date -u '+%Y-%m-%d %H:%M UTC'; grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'; echo "$(nproc) cores";
  git rev-parse --short HEAD 2>/dev/null || true; } >> "$out/machine.txt"

# Calls `$1 name model sets...` for every selected row of tools/experiment_rows.txt.
for_rows() {
  local fn=$1 table name label model sets
  while IFS='|' read -r table name label model sets; do
    name=$(echo $name) model=$(echo $model)
    [[ -z $name || $table == \#* ]] && continue
    if [[ -n $rows && " $rows " != *" $name "* ]]; then continue; fi
    mkdir -p "$out/$name"
    # shellcheck disable=SC2086
    $fn "$name" "$model" $sets < /dev/null  # stdin is the rows file
  done < tools/experiment_rows.txt
}

# name model sets...: trains and tests one row for $seed.
train_row() {
  local name=$1 model=$2
  shift 2
  local sets=(--set "model=$model")
  for kv in "$@"; do sets+=(--set "$kv"); done
  local dir=$out/$name/seed$seed
  if [[ -f $dir/test/results.json ]]; then echo "== $name seed $seed: done before"; return; fi
  echo "== $name seed $seed ($(date -u +%H:%M:%S))"
  if [[ ! -f $out/$name/summary.json ]]; then  # parameters and multiply-adds, with the row's model switches
    local switches=(--set width=16)
    for kv in "$@"; do [[ $kv == model.* ]] && switches+=(--set "${kv#model.}"); done
    $tv summary --model "$model" --num-classes 18 --size 112 "${switches[@]}" \
      --frames "$([[ $model == tdn* ]] && echo 40 || echo 8)" --json > "$out/$name/summary.json"
  fi
  $tv train $config --work-dir "$dir" --resume --no-progress --quiet --set "seed=$seed" "${sets[@]}" "${extra[@]}"
  $tv test $config --checkpoint "$dir/latest.safetensors" --out "$dir/test" --no-progress \
    --set "seed=$seed" "${sets[@]}" "${extra[@]}" > /dev/null
}

# name model sets...: one round of the throughput: bench_models' eval forward of 30 clips (the 10 x 3 views of
# one video) of the row's model, random weights and input (the time does not depend on them), no decoding.
throughput_row() {
  local name=$1 model=$2
  shift 2
  local result=$out/$name/throughput/round$round.json
  if [[ -f $result ]]; then return; fi
  echo "== $name throughput round $round ($(date -u +%H:%M:%S))"
  local switches=(--set width=16)
  for kv in "$@"; do [[ $kv == model.* ]] && switches+=(--set "${kv#model.}"); done
  mkdir -p "$out/$name/throughput"
  ./build/bench/bench_models --model "$model" --size 112 --frames 8 --num-classes 18 --clips 30 "${switches[@]}" \
    > "$result.part"
  mv "$result.part" "$result"
}

if [[ $phase != throughput ]]; then
  for seed in $seeds; do for_rows train_row; done  # seed by seed: a stopped run leaves whole tables of fewer seeds
fi
if [[ $phase != train ]]; then
  for round in 1 2 3; do for_rows throughput_row; done
fi
python3 tools/experiment_table.py "$out" --chart "$out/ablation.png"
