"""Reads a tinyvid log.json the way MMAction2's tools/analysis/analyze_logs.py does (written here from its
documented behaviour): the file name must end in .json; each line is a JSON object, lines without "epoch" are
skipped, the rest grouped by epoch; plot_curve takes the "iter" values of each epoch (dropping the last one
when the epoch ends with a "val" line), uses the last as the epoch's iteration count to place the points on a
global iteration axis, and plots the metric's first len(iters) values; cal_train_time averages "time".

usage: check_log_json.py LOG_JSON   (exit 1 with a message when analyze_logs.py would fail or misplace points)
"""
import json
import sys
from collections import defaultdict


def main(path):
    assert path.endswith(".json"), f"analyze_logs.py asserts a .json name, got {path}"
    epochs = {}
    with open(path) as f:
        for line in f:
            entry = json.loads(line.strip())
            if "epoch" not in entry:
                continue
            epoch = entry.pop("epoch")
            epochs.setdefault(epoch, defaultdict(list))
            for k, v in entry.items():
                epochs[epoch][k].append(v)
    assert epochs, "no line with an epoch"
    first = next(iter(epochs.values()))
    for metric in ("top1_acc", "top5_acc", "loss", "loss_cls", "lr", "time", "data_time"):
        assert metric in first, f"the first epoch has no {metric} (plot_curve --keys {metric} raises KeyError)"
    for epoch, d in epochs.items():
        iters = list(d["iter"])
        if d["mode"][-1] == "val":
            iters = iters[:-1]
        per_epoch = iters[-1]
        xs = [i + (epoch - 1) * per_epoch for i in iters]
        train_global = [g for g, m in zip(d["global_iter"], d["mode"]) if m == "train"]
        assert xs == train_global, f"epoch {epoch}: plot_curve places points at {xs}, the log says {train_global}"
        for metric in ("top1_acc", "loss"):
            ys = d[metric][: len(iters)]
            assert len(ys) == len(iters) and all(isinstance(y, float) for y in ys), f"epoch {epoch}: {metric} {ys}"
        assert len(d["time"]) == len(iters), f"epoch {epoch}: cal_train_time needs a time per train line"
    vals = [e for e, d in epochs.items() if d["mode"][-1] == "val"]
    assert vals, "no validation line"
    print(f"{path}: {len(epochs)} epochs, validations after {vals}: readable by analyze_logs.py")


if __name__ == "__main__":
    main(sys.argv[1])
