#!/usr/bin/env python3
"""Compares two runs' log.json (tinyvid's JSON lines): the same lines in the same order, their losses and
accuracies within 1e-5 relative (times, data times and ETAs aside).  Usage: compare_logs.py A B"""
import json
import sys

FIELDS = ("mode", "epoch", "iter", "global_iter", "lr", "loss", "top1_acc", "top5_acc", "mean_class_accuracy", "videos")


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    a, b = lines(sys.argv[1]), lines(sys.argv[2])
    if len(a) != len(b):
        print(f"{len(a)} lines against {len(b)}")
        return 1
    for i, (x, y) in enumerate(zip(a, b)):
        for k in FIELDS:
            if (k in x) != (k in y):
                print(f"line {i + 1}: '{k}' in one log only")
                return 1
            if k not in x:
                continue
            u, v = x[k], y[k]
            same = u == v if isinstance(u, str) else abs(u - v) <= 1e-5 * max(abs(v), 1e-3)
            if not same:
                print(f"line {i + 1}: {k} {u} against {v}")
                return 1
    print(f"{len(a)} lines agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
