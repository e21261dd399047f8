"""Reads the JSON lines of tinyvid's benchmarks and the peer's on stdin, prints them, then one line per
figure both measured: {"bench", "key", "figure", "tinyvid", "pytorch", "ratio"}; ratio > 1 means
tinyvid is faster (for times, the ratio is pytorch / tinyvid). The decode peer is PyAV, listed as "pytorch".
Then DNR's cost on each backbone, per implementation: {"bench": "dnr_cost", "impl", "model" (the backbone without
DNR), "figure", "base", "dnr", "cost" (dnr / base - 1), "goal_met" (cost under 10%)}."""
import json
import sys

# bench -> (field (or fields) naming the case, [(figure, higher is better)])
KEYS = {
    "matmul": ("n", [("gflops", True)]),
    "elementwise": ("op", [("gbps", True)]),
    "conv": ("shape", [("fwd_gflops", True), ("fwd_bwd_gflops", True)]),
    "batch_norm": ("shape", [("gbps", True)]),
    "lstm_cell": ("shape", [("ms", False)]),
    "decode": ("file", [("fps", True)]),
    "model": ("model", [("forward_s", False), ("train_step_s", False), ("peak_rss_mb", False)]),
    "dist_train_step": (("model", "ranks"), [("clips_per_s", True)]),
}
figures = {}
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    print(line)
    r = json.loads(line)
    if r["bench"] not in KEYS:
        continue
    key_field, values = KEYS[r["bench"]]
    for name, higher_better in values:
        fields = key_field if isinstance(key_field, tuple) else (key_field,)
        key = ",".join(f"{f}={r[f]}" for f in fields)
        slot = figures.setdefault((r["bench"], key, name, higher_better), {})
        slot[r["impl"]] = r[name]
for (bench, key, name, higher_better), v in figures.items():
    if "tinyvid" in v and "pytorch" in v:
        ratio = v["tinyvid"] / v["pytorch"] if higher_better else v["pytorch"] / v["tinyvid"]
        print(json.dumps({"bench": bench, "key": key, "figure": name, "tinyvid": v["tinyvid"], "pytorch": v["pytorch"],
                          "ratio": round(ratio, 3)}))
DNR_GOAL = 0.10
for (bench, key, name, higher_better), v in figures.items():
    if bench != "model" or name == "peak_rss_mb" or key.endswith("_dnr"):
        continue
    dnr = figures.get((bench, key + "_dnr", name, higher_better), {})
    for impl in ("tinyvid", "pytorch"):
        if impl in v and impl in dnr and v[impl] > 0:
            cost = dnr[impl] / v[impl] - 1
            print(json.dumps({"bench": "dnr_cost", "impl": impl, "model": key.split("=", 1)[1], "figure": name,
                              "base": v[impl], "dnr": dnr[impl], "cost": round(cost, 3), "goal_met": cost < DNR_GOAL}))
