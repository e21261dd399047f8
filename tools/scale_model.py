#!/usr/bin/env python3
"""The scale model of docs/DISTRIBUTED.md: time per iteration of data-parallel training on N machines and what
a recipe then takes, from a measured compute time per clip and the all-reduce volume of the model.

  t_iter(N)   = b * t_clip + t_exposed(N)
  t_ar(S, N)  = 2 (N-1)/N * S / B + 2 (N-1) * alpha        (ring all-reduce of S bytes, bandwidth B, latency alpha)
  t_exposed   between t_ar(S_last, N) (backward hides every bucket but the last) and t_ar(S, N) (it hides none)
  recipe time = clips / (N * b) * t_iter(N)

Usage: scale_model.py --clip-seconds T [--params 28366864] [--clips-per-node 8] [--gbits 25,100]
                      [--latency-us 25] [--bucket-mb 25] [--nodes 1,2,4,8,16,32,64]
Prints a Markdown table, each figure as a range: all but the last bucket hidden by backward .. none hidden."""
import argparse
import math


def ring_allreduce_seconds(nbytes, nodes, bytes_per_s, latency_s):
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes / bytes_per_s + 2 * (nodes - 1) * latency_s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clip-seconds", type=float, required=True, help="measured training compute per clip on one machine")
    p.add_argument("--params", type=int, default=28366864, help="parameters (TSN-R50-DNR, 400 classes)")
    p.add_argument("--clips-per-node", type=int, default=8)
    p.add_argument("--gbits", default="25,100")
    p.add_argument("--latency-us", type=float, default=25.0)
    p.add_argument("--bucket-mb", type=float, default=25.0)
    p.add_argument("--nodes", default="1,2,4,8,16,32,64")
    p.add_argument("--recipes", default="Kinetics-200:9600000,Kinetics-400:47088000",
                   help="name:clips (K200: 120 epochs x 1,250 iterations x 64; K400: 196 x 3,757 x 64)")
    a = p.parse_args()
    nbytes = 4 * a.params
    bucket = a.bucket_mb * 2**20
    last_bucket = nbytes - (math.ceil(nbytes / bucket) - 1) * bucket
    compute = a.clips_per_node * a.clip_seconds
    recipes = [(r.split(":")[0], float(r.split(":")[1])) for r in a.recipes.split(",")]
    print(f"all-reduce volume S = {nbytes / 1e6:.1f} MB ({a.params:,} float parameters), last bucket "
          f"{last_bucket / 1e6:.1f} MB; compute per iteration b * t_clip = {a.clips_per_node} x {a.clip_seconds:.3f} s "
          f"= {compute:.2f} s; latency {a.latency_us:g} us per ring step\n")
    head = "| Gbit/s | N | t_ar(S) | t_iter (all but the last bucket hidden .. none) | efficiency |"
    head += "".join(f" {name} days |" for name, _ in recipes)
    print(head)
    print("|" + "---|" * (5 + len(recipes)))
    for g in [float(x) for x in a.gbits.split(",")]:
        bw = g * 1e9 / 8
        for n in [int(x) for x in a.nodes.split(",")]:
            full = ring_allreduce_seconds(nbytes, n, bw, a.latency_us * 1e-6)
            tail = ring_allreduce_seconds(last_bucket, n, bw, a.latency_us * 1e-6)
            hi, lo = compute + full, compute + tail
            days = "".join(f" {clips / (n * a.clips_per_node) * lo / 86400:.1f} .. "
                           f"{clips / (n * a.clips_per_node) * hi / 86400:.1f} |" for _, clips in recipes)
            print(f"| {g:g} | {n} | {full * 1e3:.1f} ms | {lo:.3f} .. {hi:.3f} s | {compute / lo:.3f} .. "
                  f"{compute / hi:.3f} |{days}")


if __name__ == "__main__":
    main()
