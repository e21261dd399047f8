"""tools/experiment_table.py on a made-up results tree: means and min-max over seeds, the class families,
training time from the fastest logged window, throughput from the median round, DNR's cost, the chart's CSV
and PNG (through the tinyvid binary given as argv[1]), and a clear error for a class the preset lacks.
usage: python3 tests/tools/test_experiment_table.py path/to/tinyvid"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SCRIPT = os.path.join(ROOT, "tools", "experiment_table.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import experiment_table  # noqa: E402  (its FAMILIES name the hard preset's classes)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make_run(root, row, seed, top1, family_top1, times, rounds=()):
    d = os.path.join(root, row, f"seed{seed}")
    write(os.path.join(d, "test", "results.json"), json.dumps({"top1": top1, "videos": 360, "seconds": 4.0}))
    lines = ["class,name,videos,top1"]
    k = 0
    for family, names in experiment_table.FAMILIES.items():
        for name in sorted(names):
            lines.append(f"{k},{name},20,{family_top1[family]}")
            k += 1
    write(os.path.join(d, "test", "per_class.csv"), "\n".join(lines) + "\n")
    log = [json.dumps({"mode": "train", "epoch": 1, "iter": 25 * (i + 1), "global_iter": 25 * (i + 1), "time": t})
           for i, t in enumerate(times)]
    log.insert(1, json.dumps({"mode": "val", "epoch": 1, "top1_acc": 0.5}))
    write(os.path.join(d, "log.json"), "\n".join(log) + "\n")
    for i, seconds in enumerate(rounds):  # bench_models lines: the eval forward of 30 clips
        write(os.path.join(root, row, "throughput", f"round{i + 1}.json"),
              json.dumps({"bench": "model", "forward_s": seconds, "clips": 30}) + "\n")


def run(args):
    return subprocess.run([sys.executable, "-B", SCRIPT] + args, capture_output=True, text=True)


def main(tinyvid):
    with tempfile.TemporaryDirectory() as root:
        fam = {"order": 1.0, "drift": 0.5, "local_motion": 0.0}
        # TSN: 4 windows of 25 iterations, the fastest 0.1 s: 100 x 0.1 = 10 s; rounds: median 0.25 s = 4 videos/s.
        make_run(root, "tsn", 0, 0.2, fam, [0.3, 0.1, 0.25, 0.2], rounds=[0.3, 0.2, 0.25])
        make_run(root, "tsn", 1, 0.4, {"order": 0.5, "drift": 0.5, "local_motion": 0.5}, [0.5, 0.5, 0.5, 0.5])
        # TSN+DNR: one round in a fast spell (0.1 s) must not decide: the median 0.4 s = 2.5 videos/s.
        make_run(root, "dnr", 0, 0.5, fam, [0.12, 0.4, 0.4, 0.4], rounds=[0.8, 0.4, 0.1])
        write(os.path.join(root, "tsn", "summary.json"), json.dumps({"params": 1000, "macs": 2e8}))
        write(os.path.join(root, "dnr", "summary.json"), json.dumps({"params": 1250, "macs": 2e8}))
        chart = os.path.join(root, "chart.png")
        has_chart = "chart" in subprocess.run([tinyvid, "help"], capture_output=True, text=True).stdout
        r = run([root, "--tinyvid", tinyvid] + (["--chart", chart] if has_chart else []))
        print(r.stdout, r.stderr)
        check(r.returncode == 0, "the script runs")
        out = r.stdout
        check("| TSN (batch norm) | 2 | 30.0 (20.0-40.0) | 75.0 (50.0-100.0) | 50.0 (50.0-50.0) | 25.0 (0.0-50.0) | "
              "1,000 | 200 M | 10 | 4.0 |" in out, "TSN's row: means, min-max, families, fastest window and median round")
        check("| CL+CT, d=4, uni (DNR's default) | 1 | 50.0 | 100.0 | 50.0 | 0.0 | 1,250 | 200 M | 12 | 2.5 |" in out,
              "the DNR row with one seed")
        check("| tsn | +20.0 | +25% | +0% | +20% | -38% |" in out, "DNR's cost against TSN")
        check("TSM" not in out.split("Table 2")[1].split("DNR's cost")[0], "a row without runs is left out")
        if has_chart:
            check(os.path.getsize(chart) > 1000, "the chart's PNG")
            with open(os.path.join(root, "chart.csv")) as f:
                text = f.read()
            check("TSN,all,0.3,0.2,0.4" in text,
                  "the chart's CSV: mean, min and max of TSN's top-1")
            check("TSN+DNR,drift,0.5,0.5,0.5" in text, "the chart's short group names")
        # --save: the finished runs' small files, from which the same tables print; an unfinished run stays out.
        write(os.path.join(root, "dnr", "seed1", "log.json"), "")
        saved = os.path.join(root, "..", os.path.basename(root) + "_saved")
        r = run([root, "--save", saved])
        check(r.returncode == 0 and "saved 3 finished runs" in r.stdout, "--save copies the 3 finished runs")
        check(not os.path.exists(os.path.join(saved, "dnr", "seed1")), "--save leaves an unfinished run out")
        check(os.path.exists(os.path.join(saved, "tsn", "throughput", "round2.json")),
              "--save keeps the throughput rounds")
        r2 = run([saved])
        check(r2.stdout == run([root]).stdout and "| tsn | +20.0 |" in r2.stdout, "the saved runs print the same tables")
        shutil.rmtree(saved)
        # A class the hard preset does not have: a clear error naming the file and the class.
        with open(os.path.join(root, "tsn", "seed1", "test", "per_class.csv"), "a") as f:
            f.write("18,move_left,20,0.5\n")
        r = run([root])
        check(r.returncode != 0 and "per_class.csv: class 'move_left' is not a class of the hard preset" in r.stderr,
              "an unknown class is an error naming the file")
    if failures:
        sys.exit(f"{len(failures)} checks failed")
    print("all checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
