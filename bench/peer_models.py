"""The PyTorch peer of bench_models: the same model as PyTorch modules (tools/torch_twin.py, tinyvid's PyTorch twin,
whose scores are tinyvid's) on one clip of 8 frames at 224, 2 threads, one JSON line as bench_models writes it:
- forward_s, train_step_s: eager, NCHW: eval forward under no_grad, and a training step (forward, backward, SGD step);
- peak_rss_mb: the process's peak RSS after those two (before the figures below);
- forward_best_s: PyTorch's best inference path: on a fresh copy (same weights) in eval mode, model and input in channels_last,
  torch.jit.optimize_for_inference(torch.jit.trace(m, x)) under no_grad (frozen, conv+BN folded, oneDNN where
  built), warmed up; its output is checked against the eager copy's. null when tracing or the check fails, with the
  reason in forward_best_error (null when it ran);
- train_step_cl_s: the eager training step on a fresh copy with model and input in channels_last (null and
  train_step_cl_error when it fails).
--variant NAME adds "variant":"NAME" (run.sh: PyTorch limited to AVX2, against tinyvid's AVX2 kernels).
Usage: peer_models.py [--model tsn_r50] [--frames 8] [--size 224] [--threads 2] [--quick] [--variant NAME]
(--frames counts segments, as bench_models: a TDN clip of 8 segments has 40 input frames; --quick times 2 runs of
each figure after the warm-ups, to check that the script works, not for figures)"""
import argparse
import json
import os
import resource
import sys
import warnings

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("peer_models.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)
from peer import median_seconds, with_variant

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch_twin  # noqa: E402


def reason(e):
    """A short one-line reason for a failed figure."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160] if text else ''}"


def train_step_seconds(model, x, label, reps, seconds):
    model.train()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        sgd.zero_grad()
        F.cross_entropy(model(x), label).backward()
        sgd.step()
    return median_seconds(step, reps, seconds)


def best_path(model, x):
    """PyTorch's best inference path for model (converted in place; call under no_grad): (the module
    torch.jit.optimize_for_inference makes of its trace in channels_last, warmed up; x in channels_last; the eager
    model's output, which the module's must match). peer_convs.py times the same module op by op."""
    m = model.eval().to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it takes as constants
        reference = m(xc)
        fast = torch.jit.optimize_for_inference(torch.jit.trace(m, xc, check_trace=False))
        for _ in range(3):  # the profiling executor specializes the graph in its first runs
            fast(xc)
    return fast, xc, reference


def best_forward_seconds(model, x, reps, seconds):
    """(seconds, None) of PyTorch's best inference path for model (converted in place), or (None, reason)."""
    try:
        with torch.no_grad():
            fast, xc, reference = best_path(model, x)
            err = (fast(xc) - reference).abs().max().item()
            scale = reference.abs().max().item()
            if not err <= 1e-3 * scale + 1e-5:
                return None, f"the optimized model's output differs from eager's by {err:.3g} (max |y| {scale:.3g})"
            return median_seconds(lambda: fast(xc), reps, seconds), None
    except Exception as e:  # noqa: BLE001 (any failure of the tracer or the optimizer is reported, not raised)
        return None, reason(e)


def add_model_args(ap):
    """The flags naming the clip and the threads, shared with peer_convs.py."""
    ap.add_argument("--model", default="tsn_r50")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)


def input_frames(model, frames):
    """A clip's input frames: TDN's segments hold torch_twin.TDN_SEGMENT_FRAMES each."""
    return frames * torch_twin.TDN_SEGMENT_FRAMES if model.startswith("tdn_") else frames


def main():
    ap = argparse.ArgumentParser()
    add_model_args(ap)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--variant", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fwd_timing = (2, 0.0) if args.quick else (3, 3.0)
    step_timing = (2, 0.0) if args.quick else (3, 5.0)
    frames = input_frames(args.model, args.frames)

    def build():
        """The model with the same weights each time (kept by none, so the peak RSS is the NCHW runs' alone)."""
        torch.manual_seed(0)
        return torch_twin.build_model(args.model, frames=frames, num_classes=400)
    model = build()
    x = torch.randn(frames, 3, args.size, args.size)
    label = torch.tensor([3])
    model.eval()
    with torch.no_grad():
        fwd = median_seconds(lambda: model(x), *fwd_timing)
    step_s = train_step_seconds(model, x, label, *step_timing)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    del model
    try:
        cl_model = build().to(memory_format=torch.channels_last)
        step_cl, step_cl_error = train_step_seconds(cl_model, x.contiguous(memory_format=torch.channels_last), label,
                                                    *step_timing), None
        del cl_model
    except Exception as e:  # noqa: BLE001
        step_cl, step_cl_error = None, reason(e)
    best, best_error = best_forward_seconds(build(), x, *fwd_timing)
    print(json.dumps(with_variant({"bench": "model", "impl": "pytorch", "model": args.model, "frames": args.frames,
                      "input_frames": frames, "size": args.size, "threads": args.threads,
                      "torch": torch.__version__, "forward_s": round(fwd, 4), "train_step_s": round(step_s, 4),
                      "peak_rss_mb": round(rss),
                      "forward_best_s": None if best is None else round(best, 4), "forward_best_error": best_error,
                      "train_step_cl_s": None if step_cl is None else round(step_cl, 4),
                      "train_step_cl_error": step_cl_error}, args.variant)), flush=True)


if __name__ == "__main__":
    main()
