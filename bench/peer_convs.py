"""PyTorch's best inference path (peer_models.py's forward_best_s: traced, optimize_for_inference, channels_last),
op by op: oneDNN's own timing of each primitive it runs in one forward (its verbose log), as JSON lines:
- per conv shape (bench_conv's names: conv_shapes.txt, 1x1_<cin>_<cout>_<input size>, 3x3s2_..., stem_7x7s2_...):
  {"bench": "model_conv", "impl": "pytorch", "model", "shape", "calls", "ms_each", "ms"} in the order first run
  (convs of one shape are one line: ResNet-50's first downsample is 1x1_64_256_56, as layer1's three conv3s);
- per primitive kind (convolution, eltwise, sum, pooling, reorder): {"bench": "model_primitives", ...}.
Where tinyvid's forward loses or wins against the peer's, conv by conv (docs/cpu_kernels.md compares them with a
timed build of tinyvid). The forward is timed after the peer's warm-up runs, median of --runs forwards' totals.
Usage: peer_convs.py [--model tsn_r50] [--frames 8] [--size 224] [--threads 2] [--runs 3]"""
import argparse
import collections
import ctypes
import json
import os
import re
import sys
import tempfile

try:
    import torch
except ImportError:
    print("peer_convs.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)

from peer_models import add_model_args, best_path, input_frames, torch_twin  # noqa: E402 (the same path, built alike)

DESC = re.compile(r"mb(\d+)_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)sh(\d+)dh\d+ph\d+_iw(\d+)ow(\d+)kw(\d+)sw(\d+)")


def shape_name(desc):
    """bench_conv's name of a conv from oneDNN's problem descriptor, or the descriptor itself."""
    m = DESC.search(desc)
    if not m:
        return desc
    _, ic, oc, ih, _, kh, sh, _, _, kw, _ = (int(v) for v in m.groups())
    if ic == 3:
        return f"stem_{kh}x{kw}s{sh}_{ic}_{oc}"
    stride = f"s{sh}" if sh > 1 else ""
    return f"{kh}x{kw}{stride}_{ic}_{oc}_{ih}"


def verbose_lines(run):
    """oneDNN's executions while run() runs, each as its verbose line's fields from "exec" on (the log goes to the
    process's stdout through C's stdio, below Python's: both are flushed around the redirection)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as log:
        os.dup2(log.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                run()
        finally:
            sys.stdout.flush()
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        # onednn_verbose[,timestamp],exec,cpu,KIND,...,PROBLEM,MS (2.x; 3.x adds ",primitive" before exec)
        fields = (line.strip().split(",") for line in log if line.startswith("onednn_verbose"))
        return [f[f.index("exec"):] for f in fields if "exec" in f]


def main():
    ap = argparse.ArgumentParser()
    add_model_args(ap)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frames = input_frames(args.model, args.frames)
    model = torch_twin.build_model(args.model, frames=frames, num_classes=400)
    with torch.no_grad():
        fast, x, _ = best_path(model, torch.randn(frames, 3, args.size, args.size))
        runs = [verbose_lines(lambda: fast(x)) for _ in range(args.runs)]
    # The run whose primitives' total is the median.
    runs.sort(key=lambda lines: sum(float(line[-1]) for line in lines))
    lines = runs[len(runs) // 2]
    convs = collections.OrderedDict()
    kinds = collections.Counter()
    for line in lines:
        kind, ms = line[2], float(line[-1])
        kinds[kind] += ms
        if kind == "convolution":
            name = shape_name(line[-2])
            calls, total = convs.get(name, (0, 0.0))
            convs[name] = (calls + 1, total + ms)
    if not convs:
        print(f"peer_convs.py: no convolution in oneDNN's log of {args.model}'s forward (is PyTorch built with oneDNN, "
              "and its verbose format one this script reads?)", file=sys.stderr)
        sys.exit(1)
    common = {"impl": "pytorch", "model": args.model, "frames": args.frames, "size": args.size, "threads": args.threads,
              "torch": torch.__version__}
    for name, (calls, total) in convs.items():
        print(json.dumps({"bench": "model_conv", **common, "shape": name, "calls": calls,
                          "ms_each": round(total / calls, 3), "ms": round(total, 3)}))
    print(json.dumps({"bench": "model_primitives", **common, **{k: round(v, 3) for k, v in kinds.items()},
                      "total_ms": round(sum(kinds.values()), 3)}), flush=True)


if __name__ == "__main__":
    main()
