"""The PyTorch peer of bench_conv: conv2d at ResNet-50's shapes (bench/conv_shapes.txt), batch 8."""
import json
import os
import sys

try:
    import torch
except ImportError:
    print("peer_conv.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)
from peer import median_seconds


def main():
    threads, batch = 2, 8
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open(os.path.join(os.path.dirname(__file__), "conv_shapes.txt")) as f:
        rows = [line.split() for line in f if line.strip() and not line.startswith("#")]
    for name, cin, cout, k, stride, pad, size in rows:
        cin, cout, k, stride, pad, size = map(int, (cin, cout, k, stride, pad, size))
        x = torch.randn(batch, cin, size, size)
        w = (torch.randn(cout, cin, k, k) * 0.05).requires_grad_()
        input_grad = cin != 3
        x.requires_grad_(input_grad)
        out = (size + 2 * pad - k) // stride + 1
        macs = batch * cout * out * out * cin * k * k
        gy = torch.randn(batch, cout, out, out)

        def fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(x, w, None, stride, pad)

        def fwd_bwd():
            y = torch.nn.functional.conv2d(x, w, None, stride, pad)
            y.backward(gy)
            w.grad = None
            x.grad = None

        tf, tfb = median_seconds(fwd), median_seconds(fwd_bwd)
        factor = 3 if input_grad else 2
        print(json.dumps({"bench": "conv", "impl": "pytorch", "shape": name, "batch": batch, "threads": threads,
                          "fwd_seconds": round(tf, 6), "fwd_gflops": round(2 * macs / tf / 1e9, 1),
                          "fwd_bwd_seconds": round(tfb, 6), "fwd_bwd_gflops": round(factor * 2 * macs / tfb / 1e9, 1)}),
              flush=True)


if __name__ == "__main__":
    main()
