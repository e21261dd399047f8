#!/usr/bin/env bash
# The main job (README): installs what is missing, builds, writes the synthetic action dataset, trains TSN and
# TSN+DNR on it (configs/demo_tsn_r18.conf, configs/demo_tsn_r18_dnr.conf), tests both and prints a table.
#   bash tools/demo.sh            # everything; an interrupted run resumes where it stopped
#   DEMO_EPOCHS=2 bash tools/demo.sh   # a shorter run (the table is then not the README's)
# Outputs: data/synth/, work_dirs/demo_tsn_r18{,_dnr}/ (log.json, curves.png, checkpoints, test/ with
# results.json, per_class.csv, confusion.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target tinyvid_cli
tv=./build/tools/tinyvid

$tv synth --out data/synth

extra=()
if [[ -n "${DEMO_EPOCHS:-}" ]]; then extra=(--set "epochs=${DEMO_EPOCHS}"); fi
for m in tsn_r18 tsn_r18_dnr; do
  echo "== train $m"
  # --resume: continues an interrupted run, and starts fresh when there is nothing to resume.
  $tv train "configs/demo_$m.conf" --work-dir "work_dirs/demo_$m" --resume "${extra[@]}"
  echo "== test $m"
  $tv test "configs/demo_$m.conf" --checkpoint "work_dirs/demo_$m/latest.safetensors" --out "work_dirs/demo_$m/test" \
    --no-progress "${extra[@]}"
done

# The table: one row per model, from the files the commands wrote.
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"; }
train_seconds() {  # the sum of the logged iteration times x iterations per log line
  awk -F'[,:]' '/"mode":"train"/ { for (i = 1; i < NF; i++) { if ($i == "\"time\"") t = $(i + 1); if ($i == "\"iter\"") it = $(i + 1) }
                                    d = it - last; if (d <= 0) d = it; s += t * d; last = it }
                 END { printf "%.0f", s }' "$1"
}
echo
printf '%-14s %10s %8s %8s %12s %10s\n' model params top-1 top-5 "mean class" "train (s)"
for m in tsn_r18 tsn_r18_dnr; do
  r="work_dirs/demo_$m/test/results.json"
  params=$($tv summary --model "$m" --num-classes 10 --set width=16 --size 112 --json | grep -o '"params":[0-9]*' | head -1 | cut -d: -f2)
  printf '%-14s %10s %8s %8s %12s %10s\n' "$m" "$params" "$(field "$r" top1)" "$(field "$r" top5)" \
    "$(field "$r" mean_class_accuracy)" "$(train_seconds "work_dirs/demo_$m/log.json")"
done
echo "curves: work_dirs/demo_*/curves.png; confusion matrices: work_dirs/demo_*/test/confusion.png"
