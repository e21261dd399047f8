#!/usr/bin/env python3
"""The first experiment's table from the files tinyvid wrote (tools/experiment.sh), standard library only.

For each model: top-1 on the validation set (mean and min-max over seeds), top-1 on the two kinds of class
pair of the synthetic dataset, and training time (the logged iteration times). The kinds:
  - "stats change": pairs whose whole-frame statistics change over time in opposite orders
    (rotate clockwise / counter-clockwise, grow / shrink, fade in / out);
  - "stats same": translations (move left / right, up / down), whose frames have the same statistics.
usage: python3 tools/experiment_table.py work_dirs/experiment
"""
import csv
import json
import os
import sys

ORDER = ["tsn", "tsn_dnr", "tsn_dnr_no_interlace", "tsm", "tsm_dnr"]
KINDS = {
    "stats change": {"rotate_clockwise", "rotate_counterclockwise", "grow", "shrink", "fade_in", "fade_out"},
    "stats same": {"move_left", "move_right", "move_up", "move_down"},
}


def train_seconds(log_path):
    total, last_iter = 0.0, 0
    with open(log_path) as f:
        for line in f:
            d = json.loads(line)
            if d.get("mode") != "train":
                continue
            n = d["iter"] - last_iter if d["iter"] > last_iter else d["iter"]
            total += d["time"] * n
            last_iter = d["iter"]
    return total


def kind_accuracy(per_class_csv):
    hits = {k: 0.0 for k in KINDS}
    counts = {k: 0 for k in KINDS}
    with open(per_class_csv) as f:
        for row in csv.DictReader(f):
            for kind, names in KINDS.items():
                if row["name"] in names:
                    counts[kind] += int(row["videos"])
                    hits[kind] += float(row["top1"]) * int(row["videos"])
    return {k: hits[k] / counts[k] if counts[k] else float("nan") for k in KINDS}


def spread(values):
    m = sum(values) / len(values)
    return f"{100 * m:.1f} ({100 * min(values):.1f}-{100 * max(values):.1f})"


def main(root):
    print(f"| model | seeds | top-1 % | {' | '.join(k + ' top-1 %' for k in KINDS)} | training time (s) |")
    print("|---|---|---|" + "---|" * len(KINDS) + "---|")
    for name in ORDER + sorted(set(os.listdir(root)) - set(ORDER)):
        d = os.path.join(root, name)
        if not os.path.isdir(d):
            continue
        top1, kinds, secs = [], {k: [] for k in KINDS}, []
        for seed in sorted(os.listdir(d)):
            res = os.path.join(d, seed, "test", "results.json")
            if not os.path.exists(res):
                continue
            with open(res) as f:
                top1.append(json.load(f)["top1"])
            for k, v in kind_accuracy(os.path.join(d, seed, "test", "per_class.csv")).items():
                kinds[k].append(v)
            secs.append(train_seconds(os.path.join(d, seed, "log.json")))
        if not top1:
            continue
        cols = " | ".join(spread(kinds[k]) for k in KINDS)
        print(f"| {name} | {len(top1)} | {spread(top1)} | {cols} | {sum(secs) / len(secs):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "work_dirs/experiment")
