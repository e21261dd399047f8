"""The PyTorch peer of bench_conv: conv2d at ResNet-50's shapes (bench/conv_shapes.txt), batch 8, in two memory layouts:
NCHW (fwd_gflops, fwd_bwd_gflops) and channels_last (x, w and the output gradient in torch.channels_last:
fwd_gflops_cl, fwd_bwd_gflops_cl, and their _seconds), one JSON line per shape. Flops as bench_conv counts them.
"isa" is the widest ISA oneDNN may use (ONEDNN_MAX_CPU_ISA limits it); --variant NAME adds "variant":"NAME".
Usage: peer_conv.py [--only NAME,NAME] [--batch 8] [--threads 2] [--seconds 1] [--variant NAME]
(--only: those rows of conv_shapes.txt alone; --seconds: each figure's least timed total, 0 for a quick check)"""
import argparse
import json
import os
import sys

try:
    import torch
except ImportError:
    print("peer_conv.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)
from peer import median_seconds, peer_isa, with_variant


def time_layout(x, w, gy, stride, pad, input_grad, seconds):
    """Median seconds of the forward (no grad) and of forward+backward, for tensors already in their layout."""
    def fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, None, stride, pad)

    def fwd_bwd():
        y = torch.nn.functional.conv2d(x, w, None, stride, pad)
        y.backward(gy)
        w.grad = None
        x.grad = None

    return median_seconds(fwd, 5, seconds), median_seconds(fwd_bwd, 5, seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--variant", default="")
    args = ap.parse_args()
    threads, batch = args.threads, args.batch
    only = set(filter(None, args.only.split(",")))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv_shapes.txt")) as f:
        rows = [line.split() for line in f if line.strip() and not line.startswith("#")]
    cl = torch.channels_last
    for name, cin, cout, k, stride, pad, size in rows:
        if only and name not in only:
            continue
        cin, cout, k, stride, pad, size = map(int, (cin, cout, k, stride, pad, size))
        x = torch.randn(batch, cin, size, size)
        w = (torch.randn(cout, cin, k, k) * 0.05).requires_grad_()
        input_grad = cin != 3
        x.requires_grad_(input_grad)
        out = (size + 2 * pad - k) // stride + 1
        macs = batch * cout * out * out * cin * k * k
        gy = torch.randn(batch, cout, out, out)
        factor = 3 if input_grad else 2
        tf, tfb = time_layout(x, w, gy, stride, pad, input_grad, args.seconds)
        # The same tensors in channels_last: leaves of their own, so the gradients land in that layout too.
        x_cl = x.detach().contiguous(memory_format=cl).requires_grad_(input_grad)
        w_cl = w.detach().contiguous(memory_format=cl).requires_grad_()
        tf_cl, tfb_cl = time_layout(x_cl, w_cl, gy.contiguous(memory_format=cl), stride, pad, input_grad, args.seconds)
        print(json.dumps(with_variant({"bench": "conv", "impl": "pytorch", "shape": name, "batch": batch,
                          "threads": threads, "isa": peer_isa(),
                          "fwd_seconds": round(tf, 6), "fwd_gflops": round(2 * macs / tf / 1e9, 1),
                          "fwd_bwd_seconds": round(tfb, 6), "fwd_bwd_gflops": round(factor * 2 * macs / tfb / 1e9, 1),
                          "fwd_seconds_cl": round(tf_cl, 6), "fwd_gflops_cl": round(2 * macs / tf_cl / 1e9, 1),
                          "fwd_bwd_seconds_cl": round(tfb_cl, 6),
                          "fwd_bwd_gflops_cl": round(factor * 2 * macs / tfb_cl / 1e9, 1)}, args.variant)),
              flush=True)


if __name__ == "__main__":
    main()
