"""The PyTorch peer of bench_layers: BatchNorm2d training fwd+bwd at batch 8 on ResNet-50's four stages' widest maps, BatchNorm2d
then ReLU at a bottleneck's inner widths, LSTMCell 512 step fwd+bwd."""
import json
import sys

try:
    import torch
except ImportError:
    print("peer_layers.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)
from peer import median_seconds


def main():
    threads = 2
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for channels, size in ((256, 56), (512, 28), (1024, 14), (2048, 7)):  # ResNet-50's widest map of each stage
        bn = torch.nn.BatchNorm2d(channels)
        x = torch.randn(8, channels, size, size, requires_grad=True)
        gy = torch.randn_like(x)

        def bn_step():
            y = bn(x)
            y.backward(gy)
            x.grad = None
            bn.zero_grad(set_to_none=True)

        s = median_seconds(bn_step)
        print(json.dumps({"bench": "batch_norm", "impl": "pytorch", "shape": f"8x{channels}x{size}x{size}", "threads": threads,
                          "seconds": round(s, 6), "gbps": round(7 * x.numel() * 4 / s / 1e9, 2)}), flush=True)
    for channels, size in ((64, 56), (128, 28), (256, 14), (512, 7)):  # a bottleneck's inner widths: batch norm, ReLU
        bn = torch.nn.BatchNorm2d(channels)
        x = torch.randn(8, channels, size, size, requires_grad=True)
        gy = torch.randn_like(x)

        def bn_relu_step():
            y = torch.relu(bn(x))
            y.backward(gy)
            x.grad = None
            bn.zero_grad(set_to_none=True)

        s = median_seconds(bn_relu_step)
        print(json.dumps({"bench": "batch_norm_relu", "impl": "pytorch", "shape": f"8x{channels}x{size}x{size}",
                          "threads": threads, "seconds": round(s, 6), "ms": round(s * 1e3, 3)}), flush=True)
    cell = torch.nn.LSTMCell(512, 512)
    xin, h, c = torch.randn(8, 512), torch.randn(8, 512), torch.randn(8, 512)

    def lstm_step():
        h2, c2 = cell(xin, (h, c))
        (h2 + c2).sum().backward()
        cell.zero_grad(set_to_none=True)

    s = median_seconds(lstm_step)
    print(json.dumps({"bench": "lstm_cell", "impl": "pytorch", "shape": "8x512", "threads": threads,
                      "seconds": round(s, 6), "ms": round(s * 1e3, 3)}), flush=True)


if __name__ == "__main__":
    main()
