"""Reads the JSON lines of tinyvid's benchmarks and the peer's on stdin, prints them, then:
- one line per figure both measured: {"bench", "key", "figure", "tinyvid", "pytorch", "ratio"}; ratio > 1 means
  tinyvid is faster (for times, the ratio is pytorch / tinyvid). The decode peer is PyAV, listed as "pytorch".
  Against PyTorch's best path, the same kind of line with "pytorch_path": conv "fwd_gflops_best_layout" and
  "fwd_bwd_gflops_best_layout" (PyTorch's faster of NCHW and channels_last), model "forward_s_best" (PyTorch's
  forward_best_s: traced, optimize_for_inference, channels_last) and "train_step_s_best_eager" (the faster of
  PyTorch's eager NCHW and channels_last steps).
- per conv row of each implementation, its share of the machine's measured FMA peak (bench_peak, at the row's thread
  count and the ISA of tinyvid's kernels, "isa" (TINYVID_ISA chooses it), else the widest one measured): {"bench": "conv_pct_peak", "impl",
  "shape", "threads", "peak_isa", "peak_gflops", "fwd_pct_peak", "fwd_bwd_pct_peak"} (PyTorch: also "fwd_cl_pct_peak",
  "fwd_bwd_cl_pct_peak"). The flops are bench_conv's (2 per multiply-add of the direct method), so Winograd's
  3x3 rows can pass 100%.
- DNR's cost on each backbone, per implementation: {"bench": "dnr_cost", "impl", "model" (the backbone without
  DNR), "figure", "base", "dnr", "cost" (dnr / base - 1), "goal_met" (cost under 10%)}.
- a second run of a model under other OpenBLAS settings (bench_models --variant openblas_..., run.sh:
  OPENBLAS_CORETYPE=SkylakeX) against the plain run: {"bench": "variant", "model", "variant", "openblas_coretype",
  "figure", "base", "value", "rel_diff" (value / base - 1)}.
- runs of both implementations under the same limits ("variant": "avx2", run.sh: TINYVID_ISA=avx2 against
  ONEDNN_MAX_CPU_ISA=AVX2): conv lines keyed "shape=...,variant=avx2", model lines keyed "model=...,variant=avx2"
  (forward_s and train_step_s against PyTorch's eager, best and channels_last figures, named in "pytorch_path").
- rounds: run.sh measures the goal model again, tinyvid and PyTorch alternating ("variant": "round1", ...); each
  side's figures over the rounds, and their medians: {"bench": "model_rounds", "model", "impl", "rounds", "forward_s",
  "train_step_s" (lists), "forward_s_median", "train_step_s_median"} (PyTorch: its best path's forward and its best eager
  step). tinyvid's rounds under OpenBLAS settings ("variant": "openblas_skylakex_round1", ...) are the implementation
  "tinyvid openblas_skylakex". Where both sides of a TSN-R50 goal line have rounds, the line's value is the median
  over the rounds of each round's own ratio (the two sides measured a minute apart; the machine's speed drifts by
  tens of percent over minutes, which a ratio of the two sides' medians would read as a difference); the ratio of
  the medians comes beside it: {"bench": "round_ratios", "goal", "ratios", "median", "ratio_of_medians"}. Else the
  single runs. The conv goal rows likewise ("variant": "convround1", ...: bench_conv and peer_conv.py alternating): a
  1x1 or stem goal line with rounds on both sides is the median of the rounds' own ratios against PyTorch's faster
  layout of that round, with {"bench": "conv_round_ratios", "shape", "figure", "ratios", "median"}.
- the goal lines of issue 18, {"bench": "goal", "goal", "target", "value", "status"}, status PASS, MISS or n/a (a
  figure missing, named in "missing"), then {"bench": "goal_summary", "PASS", "MISS", "n/a"}. A missed goal never
  fails the script."""
import json
import math
import re
import statistics
import sys

# bench -> (field (or fields) naming the case, [(figure, higher is better)])
KEYS = {
    "matmul": ("n", [("gflops", True)]),
    "elementwise": ("op", [("gbps", True)]),
    "conv": ("shape", [("fwd_gflops", True), ("fwd_bwd_gflops", True)]),
    "batch_norm": ("shape", [("gbps", True)]),
    "batch_norm_relu": ("shape", [("ms", False)]),
    "lstm_cell": ("shape", [("ms", False)]),
    "decode": ("file", [("fps", True)]),
    "model": ("model", [("forward_s", False), ("train_step_s", False), ("peak_rss_mb", False)]),
    "dist_train_step": (("model", "ranks"), [("clips_per_s", True)]),
}
DNR_GOAL = 0.10
GOAL_MODEL = "tsn_r50"
FORWARD_GOAL = 0.9  # tinyvid forward_s / PyTorch forward_best_s
STEP_GOAL = 0.6  # tinyvid train_step_s / PyTorch's best eager step
CONV_GOAL = 1.0  # tinyvid GFLOP/s / PyTorch's faster layout, each 1x1 and stem row
VARIANT_GOAL = 0.05  # |a variant run / the plain run - 1|


# The kinds of line this script prints besides the ones it reads; its ratio lines carry the bench's own name with
# "key", "figure" and "ratio" (a measurement names its implementation, "impl", instead).
DERIVED_BENCHES = {"conv_pct_peak", "dnr_cost", "model_rounds", "variant", "round_ratios", "conv_round_ratios", "goal",
                   "goal_summary"}


def is_derived(r):
    """Whether line r is one of this script's own (run.sh appends them to the results file it writes)."""
    return isinstance(r, dict) and (r.get("bench") in DERIVED_BENCHES or ("ratio" in r and "impl" not in r))


def finite(v):
    """v where it is a finite number (json reads NaN and Infinity too), else None."""
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def main():
    figures = {}
    peaks = {}  # (isa, threads) -> gflops
    convs = {}  # impl -> shape -> row
    models = {}  # (impl, model) -> row of the plain run
    variants = []  # rows of bench_models --variant
    conv_rounds = {}  # (shape, impl) -> round number -> row (bench_conv / peer_conv.py --variant convroundN)
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except ValueError:
            print(line)
            continue
        if is_derived(r):  # a results file read again: its comparisons are made anew below
            continue
        print(line)
        bench = r.get("bench")
        if bench == "peak":
            peaks[(r["isa"], r["threads"])] = r["gflops"]
            continue
        if bench == "model" and r.get("variant"):
            variants.append(r)
            continue
        if bench == "conv":
            m = re.fullmatch(r"convround(\d+)", r.get("variant") or "")
            if m:  # a round of the conv goal rows (run.sh): kept for the goal lines, no ratio lines of their own
                conv_rounds.setdefault((r["shape"], r["impl"]), {})[int(m.group(1))] = r
                continue
            # a variant's rows (run.sh: the AVX2 kernels) apart, as SHAPE@VARIANT
            convs.setdefault(r["impl"], {})[r["shape"] + (f"@{r['variant']}" if r.get("variant") else "")] = r
        if bench == "model":
            models[(r["impl"], r["model"])] = r
        if bench not in KEYS:
            continue
        key_field, values = KEYS[bench]
        for name, higher_better in values:
            if r.get(name) is None:
                continue
            fields = key_field if isinstance(key_field, tuple) else (key_field,)
            if r.get("variant"):
                fields += ("variant",)
            key = ",".join(f"{f}={r[f]}" for f in fields)
            slot = figures.setdefault((bench, key, name, higher_better), {})
            slot[r["impl"]] = r[name]

    for (bench, key, name, higher_better), v in figures.items():
        if "tinyvid" in v and "pytorch" in v and v["tinyvid"] and v["pytorch"]:
            ratio = v["tinyvid"] / v["pytorch"] if higher_better else v["pytorch"] / v["tinyvid"]
            print(json.dumps({"bench": bench, "key": key, "figure": name, "tinyvid": v["tinyvid"], "pytorch": v["pytorch"],
                              "ratio": round(ratio, 3)}))

    # Against PyTorch's best path.
    best_conv = {}  # (shape, figure) -> (tinyvid, pytorch best, layout)
    for shape, p in convs.get("pytorch", {}).items():
        t = convs.get("tinyvid", {}).get(shape)
        for name in ("fwd_gflops", "fwd_bwd_gflops"):
            options = [(p.get(name), "nchw"), (p.get(name + "_cl"), "channels_last")]
            options = [o for o in options if o[0]]
            if not options:
                continue
            best, layout = max(options)
            best_conv[(shape, name)] = (t.get(name) if t else None, best, layout)
            if t and t.get(name):
                key = "shape=" + shape.replace("@", ",variant=")
                print(json.dumps({"bench": "conv", "key": key, "figure": name + "_best_layout",
                                  "tinyvid": t[name], "pytorch": best, "pytorch_path": layout,
                                  "ratio": round(t[name] / best, 3)}))
    best_model = {}  # model -> (forward best, (step best, layout))
    for (impl, model), p in models.items():
        if impl != "pytorch":
            continue
        steps = [(s, layout) for s, layout in ((p.get("train_step_s"), "eager_nchw"),
                                               (p.get("train_step_cl_s"), "eager_channels_last")) if s]
        best_model[model] = (p.get("forward_best_s"), min(steps) if steps else (None, None))
        t = models.get(("tinyvid", model))
        if not t:
            continue
        fwd_best, (step_best, step_layout) = best_model[model]
        if fwd_best and t.get("forward_s"):
            print(json.dumps({"bench": "model", "key": f"model={model}", "figure": "forward_s_best",
                              "tinyvid": t["forward_s"], "pytorch": fwd_best, "pytorch_path": "jit_optimized_channels_last",
                              "ratio": round(fwd_best / t["forward_s"], 3)}))
        if step_best and t.get("train_step_s"):
            print(json.dumps({"bench": "model", "key": f"model={model}", "figure": "train_step_s_best_eager",
                              "tinyvid": t["train_step_s"], "pytorch": step_best, "pytorch_path": step_layout,
                              "ratio": round(step_best / t["train_step_s"], 3)}))

    # Share of the measured FMA peak.
    def peak_for(threads, isa):
        if (isa, threads) in peaks:
            return isa, peaks[(isa, threads)]
        for widest in ("avx512", "avx2"):
            if (widest, threads) in peaks:
                return widest, peaks[(widest, threads)]
        return None, None

    kernel_isa = next((r.get("isa") for r in convs.get("tinyvid", {}).values() if r.get("isa")), None)
    if convs and not peaks:
        print("compare.py: no bench_peak lines; no % of peak", file=sys.stderr)
    for impl in ("tinyvid", "pytorch"):
        for shape, r in convs.get(impl, {}).items():
            isa, peak = peak_for(r.get("threads"), r.get("isa") or kernel_isa)
            if not peak:
                continue
            out = {"bench": "conv_pct_peak", "impl": impl, "shape": shape, "threads": r.get("threads"), "peak_isa": isa,
                   "peak_gflops": peak}
            names = [("fwd_gflops", "fwd_pct_peak"), ("fwd_bwd_gflops", "fwd_bwd_pct_peak"),
                     ("fwd_gflops_cl", "fwd_cl_pct_peak"), ("fwd_bwd_gflops_cl", "fwd_bwd_cl_pct_peak")]
            for src, dst in names:
                if r.get(src):
                    out[dst] = round(100.0 * r[src] / peak, 1)
            print(json.dumps(out))

    for (bench, key, name, higher_better), v in figures.items():
        if bench != "model" or name == "peak_rss_mb" or key.endswith("_dnr"):
            continue
        dnr = figures.get((bench, key + "_dnr", name, higher_better), {})
        for impl in ("tinyvid", "pytorch"):
            if impl in v and impl in dnr and v[impl] > 0:
                cost = dnr[impl] / v[impl] - 1
                print(json.dumps({"bench": "dnr_cost", "impl": impl, "model": key.split("=", 1)[1], "figure": name,
                                  "base": v[impl], "dnr": dnr[impl], "cost": round(cost, 3), "goal_met": cost < DNR_GOAL}))

    goals = []  # (goal, target, value, passed or None, missing)

    def goal(text, target, value, passed, missing=None):
        goals.append((text, target, value, passed, missing))

    paired = {}  # (model, variant) -> impl -> row: both implementations under the same limits (AVX2)
    for r in variants:
        paired.setdefault((r["model"], r["variant"]), {})[r["impl"]] = r
    for (model, variant), rows in paired.items():
        t, p = rows.get("tinyvid"), rows.get("pytorch")
        if not (t and p):
            continue
        for name, peer_name, path in (("forward_s", "forward_s", "eager_nchw"), ("train_step_s", "train_step_s", "eager_nchw"),
                                      ("forward_s", "forward_best_s", "jit_optimized_channels_last"),
                                      ("train_step_s", "train_step_cl_s", "eager_channels_last")):
            if t.get(name) and p.get(peer_name):
                print(json.dumps({"bench": "model", "key": f"model={model},variant={variant}", "figure": name,
                                  "tinyvid": t[name], "pytorch": p[peer_name], "pytorch_path": path,
                                  "ratio": round(p[peer_name] / t[name], 3)}))

    # Interleaved rounds of the goal model: each side's figures and medians, which the goal lines prefer. tinyvid's
    # rounds under OPENBLAS_CORETYPE=SkylakeX count as an implementation of their own ("tinyvid openblas_skylakex").
    rounds = {}  # impl -> {"forward_s": [...], "train_step_s": [...]}
    for r in variants:
        m = re.fullmatch(r"(?:(openblas_\w+?)_)?round(\d+)", r["variant"])
        if r["model"] != GOAL_MODEL or not m:
            continue
        impl = r["impl"] + (f" {m.group(1)}" if m.group(1) else "")
        if r["impl"] == "pytorch":
            steps = [s for s in (r.get("train_step_s"), r.get("train_step_cl_s")) if s]
            fwd, step = r.get("forward_best_s"), min(steps) if steps else None
        else:
            fwd, step = r.get("forward_s"), r.get("train_step_s")
        if fwd and step:
            slot = rounds.setdefault(impl, {"forward_s": [], "train_step_s": [], "round": []})
            slot["forward_s"].append(fwd)
            slot["train_step_s"].append(step)
            slot["round"].append(int(m.group(2)))
    for impl, slot in rounds.items():
        print(json.dumps({"bench": "model_rounds", "model": GOAL_MODEL, "impl": impl, "rounds": len(slot["forward_s"]),
                          **slot, "forward_s_median": statistics.median(slot["forward_s"]),
                          "train_step_s_median": statistics.median(slot["train_step_s"])}))
    for r in variants:
        # the OpenBLAS kernel choice must not matter (issue 18); its rounds are below
        if not r["variant"].startswith("openblas") or re.search(r"_round\d+$", r["variant"]):
            continue
        base = models.get((r["impl"], r["model"]))
        for name in ("forward_s", "train_step_s"):
            b, v = (base or {}).get(name), r.get(name)
            diff = v / b - 1 if b and v else None
            if diff is not None:
                print(json.dumps({"bench": "variant", "impl": r["impl"], "model": r["model"], "variant": r["variant"],
                                  "openblas_coretype": r.get("openblas_coretype"), "figure": name, "base": b, "value": v,
                                  "rel_diff": round(diff, 3)}))
            if r["model"] == GOAL_MODEL and f"{r['impl']} {r['variant']}" in rounds:
                continue  # the goal line comes from the rounds below
            goal(f"{r['impl']} {r['model']} {name}: |{r['variant']} / plain run - 1|", f"< {VARIANT_GOAL}",
                 None if diff is None else round(abs(diff), 3), None if diff is None else abs(diff) < VARIANT_GOAL,
                 None if diff is not None else "the plain run's line" if base is None else name)

    # The median of the rounds' own ratios a / b (the two sides' runs of the same round number), printed with the ratio
    # of the medians; None without a round on both sides.
    def round_ratio(text, a, b, name):
        of = {impl: dict(zip(rounds[impl]["round"], rounds[impl][name])) for impl in (a, b) if impl in rounds}
        ratios = [of[a][n] / of[b][n] for n in sorted(of.get(a, {})) if n in of.get(b, {})]
        if not ratios:
            return None, ""
        value = statistics.median(ratios)
        print(json.dumps({"bench": "round_ratios", "goal": text, "ratios": [round(r, 3) for r in ratios],
                          "median": round(value, 3),
                          "ratio_of_medians": round(statistics.median(rounds[a][name]) / statistics.median(rounds[b][name]), 3)}))
        return value, f" (median of {len(ratios)} interleaved rounds' ratios)"

    for impl in [i for i in rounds if i.startswith("tinyvid ") and "tinyvid" in rounds]:
        variant = impl.split(" ", 1)[1]
        for name in ("forward_s", "train_step_s"):
            text = f"tinyvid {GOAL_MODEL} {name}: |{variant} / plain run - 1|"
            ratio, how = round_ratio(text, impl, "tinyvid", name)
            if ratio is None:  # both sides have rounds, but no round number in common
                goal(text, f"< {VARIANT_GOAL}", None, None, "rounds of the same number on both sides")
            else:
                goal(text + how, f"< {VARIANT_GOAL}", round(abs(ratio - 1), 3), abs(ratio - 1) < VARIANT_GOAL)
    t = models.get(("tinyvid", GOAL_MODEL), {})
    fwd_best, (step_best, _) = best_model.get(GOAL_MODEL, (None, (None, None)))
    for name, peer_value, text, target, missing in (
            ("forward_s", fwd_best, f"{GOAL_MODEL} forward_s / PyTorch forward_best_s", FORWARD_GOAL, "pytorch forward_best_s"),
            ("train_step_s", step_best, f"{GOAL_MODEL} train_step_s / PyTorch's best eager step (NCHW, channels_last)",
             STEP_GOAL, "pytorch train_step_s")):
        value, how = round_ratio(text, "tinyvid", "pytorch", name)
        if value is None:  # no rounds: the single runs
            value = t.get(name) / peer_value if t.get(name) and peer_value else None
            missing = None if value is not None else f"tinyvid {name}" if not t.get(name) else missing
        else:
            missing = None
        goal(text + how, f"<= {target}", None if value is None else round(value, 3),
             None if value is None else value <= target, missing)
    shapes = list(convs.get("tinyvid", {})) + [s for s in convs.get("pytorch", {}) if s not in convs.get("tinyvid", {})]
    shapes += sorted({shape for shape, _ in conv_rounds if shape not in shapes})
    for shape in shapes:
        if "@" in shape or not (shape.startswith("1x1") or shape.startswith("stem")):
            continue
        for name in ("fwd_gflops", "fwd_bwd_gflops"):
            tv_value = convs.get("tinyvid", {}).get(shape, {}).get(name)
            _, best, layout = best_conv.get((shape, name), (None, None, None))
            value = tv_value / best if tv_value and best else None
            missing = None if value is not None else "tinyvid" if not tv_value else "pytorch"
            # The rounds, where both sides have them: each round's ratio against PyTorch's faster layout of that round.
            t_rounds, p_rounds = conv_rounds.get((shape, "tinyvid"), {}), conv_rounds.get((shape, "pytorch"), {})
            ratios = []
            for n in sorted(set(t_rounds) & set(p_rounds)):
                ours = finite(t_rounds[n].get(name))
                best_peer = max([v for v in (finite(p_rounds[n].get(name)), finite(p_rounds[n].get(name + "_cl"))) if v],
                                default=None)
                if ours and best_peer:
                    ratios.append(ours / best_peer)
            how = ""
            if ratios:
                value, missing = statistics.median(ratios), None
                how = f" (median of {len(ratios)} interleaved rounds' ratios)"
                print(json.dumps({"bench": "conv_round_ratios", "shape": shape, "figure": name,
                                  "ratios": [round(r, 3) for r in ratios], "median": round(value, 3)}))
            elif t_rounds and p_rounds:  # both sides have rounds, but none of the same number: not the single runs
                value, missing = None, "rounds of the same number on both sides"
            elif value is None and t_rounds:
                missing = "pytorch"
            goal(f"conv {shape} {name}: tinyvid / PyTorch's faster layout" + (f" ({layout})" if layout and not how else "") + how,
                 f">= {CONV_GOAL}", None if value is None else round(value, 3),
                 None if value is None else value >= CONV_GOAL, missing)
    counts = {"PASS": 0, "MISS": 0, "n/a": 0}
    for text, target, value, passed, missing in goals:
        status = "n/a" if passed is None else "PASS" if passed else "MISS"
        counts[status] += 1
        out = {"bench": "goal", "goal": text, "target": target, "value": value, "status": status}
        if missing:
            out["missing"] = missing
        print(json.dumps(out))
    print(json.dumps({"bench": "goal_summary", **counts}))


if __name__ == "__main__":
    main()
