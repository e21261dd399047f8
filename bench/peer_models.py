"""The PyTorch peer of bench_models: the same model as PyTorch modules (tools/torch_twin.py, tinyvid's PyTorch twin,
whose scores are tinyvid's) on one clip of 8 frames at 224, 2 threads: eval forward, training step (forward,
backward, SGD step) and the process's peak RSS, one JSON line as bench_models writes it.
Usage: peer_models.py [--model tsn_r50] [--frames 8] [--size 224] [--threads 2]
(--frames counts segments, as bench_models: a TDN clip of 8 segments has 40 input frames)"""
import argparse
import json
import os
import resource
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("peer_models.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)
from peer import median_seconds

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch_twin  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tsn_r50")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tdn = args.model.startswith("tdn_")
    input_frames = args.frames * torch_twin.TDN_SEGMENT_FRAMES if tdn else args.frames
    model = torch_twin.build_model(args.model, frames=input_frames, num_classes=400)
    x = torch.randn(input_frames, 3, args.size, args.size)
    label = torch.tensor([3])
    model.eval()
    with torch.no_grad():
        fwd = median_seconds(lambda: model(x), 3, 3.0)
    model.train()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        sgd.zero_grad()
        F.cross_entropy(model(x), label).backward()
        sgd.step()
    step_s = median_seconds(step, 3, 5.0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"bench": "model", "impl": "pytorch", "model": args.model, "frames": args.frames,
                      "input_frames": input_frames, "size": args.size, "threads": args.threads,
                      "torch": torch.__version__, "forward_s": round(fwd, 4), "train_step_s": round(step_s, 4),
                      "peak_rss_mb": round(rss)}))


if __name__ == "__main__":
    main()
