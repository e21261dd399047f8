#!/usr/bin/env python3
"""tools/experiment.sh's tables from the files tinyvid wrote, standard library only.

For each row of tools/experiment_rows.txt: top-1 on the validation set, mean (min-max) over seeds, top-1 of each
class family of the hard synthetic preset (order, drift, local_motion; README "The benchmark"), parameters and
multiply-adds per clip (tinyvid summary), training time (iterations x the fastest logged iteration time) and
test throughput with 10 x 3 views (1 / the eval forward time of 30 clips, the median of experiment.sh's
interleaved bench_models rounds). Then
DNR's cost per backbone. --chart FILE.png writes the top-1 bars with min-max error bars through `tinyvid chart`
(its CSV next to it).
usage: python3 tools/experiment_table.py work_dirs/ablation [--chart FILE.png] [--save DIR] [--tinyvid BIN]
"""
import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The hard preset's families (include/tinyvid/data/synth.hpp, synth_hard_classes()).
FAMILIES = {
    "order": {"flash_then_jump", "jump_then_flash", "flash_then_swell", "swell_then_flash", "jump_then_swell",
              "swell_then_jump"},
    "drift": {"brighten", "darken", "warm", "cool", "zoom_in", "zoom_out"},
    "local_motion": {"target_right", "target_left", "target_down", "target_up", "target_orbit_clockwise",
                     "target_orbit_counterclockwise"},
}
# The chart's group names (its font has letters, digits and a few signs: no commas or quotes)
CHART_NAMES = {"tsn": "TSN", "dnr": "TSN+DNR", "tsm": "TSM", "tsm_dnr": "TSM+DNR", "tanet": "TANet",
               "tanet_dnr": "TANet+DNR", "tdn": "TDN", "tdn_dnr": "TDN+DNR", "dnr_cl": "TSN+CL only",
               "dnr_ct": "TSN+CT only", "dnr_d2": "DNR d=2", "dnr_bi": "DNR bi", "dnr_d2_bi": "DNR d=2 bi",
               "dnr_no_interlace": "DNR no interlace"}
# (backbone row, its DNR row) for the cost table
DNR_PAIRS = [("tsn", "dnr"), ("tsm", "tsm_dnr"), ("tanet", "tanet_dnr"), ("tdn", "tdn_dnr")]


def read_rows(path=os.path.join(HERE, "experiment_rows.txt")):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            table, name, label, model, sets = (p.strip() for p in line.split("|"))
            rows.append({"tables": table.split(","), "name": name, "label": label, "model": model, "sets": sets})
    return rows


def train_seconds(log_path):
    """Iterations x the fastest logged iteration time (each log line: the mean over the 25 iterations since the
    one before). A shared machine slows down for minutes at a time (on this project's, by up to 1.8x, in every
    model alike), never speeds up: the fastest window is the model's own speed, as timeit's minimum is."""
    times, iters = [], 0
    with open(log_path) as f:
        for line in f:
            d = json.loads(line)
            if d.get("mode") == "train":
                times.append(d["time"])
                iters = max(iters, d["global_iter"])
    return min(times) * iters if times else float("nan")


def family_accuracy(per_class_csv):
    hits, counts = {k: 0.0 for k in FAMILIES}, {k: 0 for k in FAMILIES}
    with open(per_class_csv) as f:
        for row in csv.DictReader(f):
            family = [k for k, names in FAMILIES.items() if row["name"] in names]
            if len(family) != 1:
                sys.exit(f"{per_class_csv}: class '{row['name']}' is not a class of the hard preset")
            counts[family[0]] += int(row["videos"])
            hits[family[0]] += float(row["top1"]) * int(row["videos"])
    return {k: hits[k] / counts[k] if counts[k] else float("nan") for k in FAMILIES}


def collect(root, row):
    d = os.path.join(root, row["name"])
    r = {"top1": [], "families": {k: [] for k in FAMILIES}, "train_s": [], "videos_per_s": None,
         "params": None, "macs": None}
    if not os.path.isdir(d):
        return r
    summary = os.path.join(d, "summary.json")
    if os.path.exists(summary):
        with open(summary) as f:
            s = json.load(f)
        r["params"], r["macs"] = s["params"], s["macs"]
    rounds = os.path.join(d, "throughput")  # bench_models lines: 30 clips = one video's 10 x 3 views
    if os.path.isdir(rounds):
        times = []
        for name in os.listdir(rounds):
            if name.endswith(".json"):
                with open(os.path.join(rounds, name)) as f:
                    times += [json.loads(line)["forward_s"] for line in f if line.strip()]
        # The median round: the machine's speed changes by minutes, and a round can catch a fast spell that the next
        # model's misses (2026-12-04: TSN+DNR's rounds 0.20, 0.31, 0.31 s against TSN's 0.28-0.30), so the fastest
        # round of each model compares spells rather than models.
        if times:
            r["videos_per_s"] = 1 / statistics.median(times)
    for seed in sorted(os.listdir(d)):
        res = os.path.join(d, seed, "test", "results.json")
        if not seed.startswith("seed") or not os.path.exists(res):
            continue
        with open(res) as f:
            r["top1"].append(json.load(f)["top1"])
        for k, v in family_accuracy(os.path.join(d, seed, "test", "per_class.csv")).items():
            r["families"][k].append(v)
        if seed == "seed0":  # the cost figures come from seed 0's runs, which experiment.sh runs first
            r["train_s"].append(train_seconds(os.path.join(d, seed, "log.json")))
    return r


def mean(v):
    return sum(v) / len(v)


def spread(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * mean(values):.1f} ({100 * min(values):.1f}-{100 * max(values):.1f})"


def print_table(title, rows, results):
    print(f"\n{title}\n")
    fam = " | ".join(f"{k} %" for k in FAMILIES)
    print(f"| row | seeds | top-1 % | {fam} | params | MACs/clip | training s (seed 0, fastest window) | test videos/s (10x3) |")
    print("|---|---|---|" + "---|" * len(FAMILIES) + "---|---|---|---|")
    for row in rows:
        r = results[row["name"]]
        if not r["top1"]:
            continue
        cols = " | ".join(spread(r["families"][k]) for k in FAMILIES)
        params = f"{r['params']:,}" if r["params"] else "-"
        macs = f"{r['macs'] / 1e6:.0f} M" if r["macs"] else "-"
        vps = f"{r['videos_per_s']:.1f}" if r["videos_per_s"] else "-"
        train = f"{r['train_s'][0]:.0f}" if r["train_s"] else "-"
        print(f"| {row['label']} | {len(r['top1'])} | {spread(r['top1'])} | {cols} | {params} | {macs} | {train} | {vps} |")


def print_cost(results):
    print("\nDNR's cost per backbone (the paper: 30-36% more time)\n")
    print("| backbone | top-1 gain (points) | params | MACs | training time | test throughput |")
    print("|---|---|---|---|---|---|")
    for base, dnr in DNR_PAIRS:
        a, b = results.get(base), results.get(dnr)
        if not a or not b or not a["top1"] or not b["top1"] or not a["train_s"] or not b["train_s"]:
            continue
        def more(x, y):
            return f"{100 * (y / x - 1):+.0f}%" if x and y else "-"
        gain = 100 * (mean(b["top1"]) - mean(a["top1"]))
        slower = (f"{100 * (b['videos_per_s'] / a['videos_per_s'] - 1):+.0f}%"
                  if a["videos_per_s"] and b["videos_per_s"] else "-")
        print(f"| {base} | {gain:+.1f} | {more(a['params'], b['params'])} | {more(a['macs'], b['macs'])} | "
              f"{more(mean(a['train_s']), mean(b['train_s']))} | {slower} |")


def write_chart(path, rows, results, tinyvid):
    csv_path = os.path.splitext(path)[0] + ".csv"
    with open(csv_path, "w") as f:
        f.write("group,series,value,lo,hi\n")
        for row in rows:
            r = results[row["name"]]
            if not r["top1"]:
                continue
            group = CHART_NAMES.get(row["name"], row["name"])
            for series, values in [("all", r["top1"])] + [(k, v) for k, v in r["families"].items()]:
                values = [v for v in values if not math.isnan(v)]
                if values:
                    f.write(f"{group},{series},{mean(values):.6g},{min(values):.6g},{max(values):.6g}\n")
    subprocess.run([tinyvid, "chart", "--csv", csv_path, "--out", path, "--percent", "--y-range", "0,1", "--title",
                    "top-1 on the hard synthetic benchmark (mean, min-max over seeds)", "--y-label", "top-1"],
                   check=True)
    print(f"\nchart: {path} (data: {csv_path})")


def save_runs(root, dest):
    """Copies what the tables read (no checkpoints) of every finished run, and the throughput rounds, into dest
    (e.g. docs/results/ablation): the tables print from there, and copied back into experiment.sh's --out, its
    runs count as done."""
    keep = ["log.json", "config.txt", os.path.join("test", "results.json"), os.path.join("test", "per_class.csv")]
    copied = 0
    for name in ["machine.txt"] + sorted(os.listdir(root)):
        src = os.path.join(root, name)
        if name == "machine.txt":
            if os.path.exists(src):
                os.makedirs(dest, exist_ok=True)
                shutil.copy2(src, os.path.join(dest, name))
            continue
        if not os.path.isdir(src):
            continue
        files = ["summary.json"] if os.path.exists(os.path.join(src, "summary.json")) else []
        if os.path.isdir(os.path.join(src, "throughput")):
            files += [os.path.join("throughput", r) for r in sorted(os.listdir(os.path.join(src, "throughput")))
                      if r.endswith(".json")]
        for seed in sorted(os.listdir(src)):
            run = os.path.join(src, seed)
            if not seed.startswith("seed") or not os.path.exists(os.path.join(run, "test", "results.json")):
                continue  # an unfinished run
            files += [os.path.join(seed, f) for f in keep if os.path.exists(os.path.join(run, f))]
            copied += 1
        for f in files:
            os.makedirs(os.path.dirname(os.path.join(dest, name, f)), exist_ok=True)
            shutil.copy2(os.path.join(src, f), os.path.join(dest, name, f))
    print(f"saved {copied} finished runs into {dest}")


def main(argv):
    p = argparse.ArgumentParser(description="tools/experiment.sh's tables (README: The paper's tables at small scale)")
    p.add_argument("root", nargs="?", default="work_dirs/ablation", help="experiment.sh's --out directory")
    p.add_argument("--chart", metavar="FILE.png", help="also draw the top-1 bars (tinyvid chart)")
    p.add_argument("--save", metavar="DIR", help="first copy the finished runs' small files (no checkpoints) into DIR")
    p.add_argument("--tinyvid", default=os.path.join(HERE, "..", "build", "tools", "tinyvid"),
                   help="the tinyvid binary that draws the chart (default: build/tools/tinyvid)")
    a = p.parse_args(argv)
    if a.save:
        save_runs(a.root, a.save)
    rows = read_rows()
    results = {row["name"]: collect(a.root, row) for row in rows}
    machine = os.path.join(a.root, "machine.txt")
    if os.path.exists(machine):
        with open(machine) as f:
            print("runs:", "; ".join(line.strip() for line in f if line.strip()))
    print_table("Table 1: DNR's parts on TSN", [r for r in rows if "1" in r["tables"]], results)
    print_table("Table 2: backbones with and without DNR", [r for r in rows if "2" in r["tables"]], results)
    print_cost(results)
    if a.chart:
        order = [r for r in rows if "2" in r["tables"]] + [r for r in rows if "1" in r["tables"] and "2" not in r["tables"]]
        write_chart(a.chart, order, results, a.tinyvid)


if __name__ == "__main__":
    main(sys.argv[1:])
