"""The PyTorch peer of bench_dist: the same training step (forward, cross-entropy, backward, gradient clipping at
40, SGD with momentum) with one global batch split over 1 or 2 processes, under DistributedDataParallel with the
gloo backend (PyTorch's CPU all-reduce, buckets overlapping backward as ours), 8 frames per clip. One JSON line
per setting: 1 process x 2 threads and 2 processes x 1 thread, for the demo's TSN-R18 (width 16, 8 x 112, batch
8) and TSN-R50 (8 x 224, batch 2).
Usage: peer_dist.py [--case demo|r50|all] [--iters 20 (demo) / 4 (r50)]"""
import argparse
import json
import os
import sys
import time

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
except ImportError:
    print("peer_dist.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch_twin  # noqa: E402


def TSN50(frames):  # noqa: N802 (TSN-R50 as peer_models.py runs it: tinyvid's PyTorch twin)
    return torch_twin.build_model("tsn_r50", frames=frames, num_classes=400)


class Basic(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class TSN18(nn.Module):
    """ResNet-18 of base width `width` with TSN's head (average over frames, dropout 0.4, fc)."""

    def __init__(self, frames, width=16, classes=400):
        super().__init__()
        self.frames = frames
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, inplanes = [], width
        for i in range(4):
            planes = width * 2 ** i
            layers.append(nn.Sequential(Basic(inplanes, planes, 1 if i == 0 else 2), Basic(planes, planes, 1)))
            inplanes = planes
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        f = self.layers(x).mean((2, 3))
        return self.fc(self.dropout(f.view(-1, self.frames, f.shape[1]).mean(1)))


CASES = {"demo": ("tsn_r18", 16, 112, 8, 20), "r50": ("tsn_r50", 64, 224, 2, 4)}


def worker(rank, world, case, iters, port, out):
    model_name, width, size, global_batch, _ = CASES[case]
    torch.set_num_threads(2 // world)
    torch.manual_seed(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model = TSN18(8, width) if model_name == "tsn_r18" else TSN50(8)
    model.train()
    ddp = DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    n = global_batch // world
    x = torch.randn(n * 8, 3, size, size)
    y = torch.tensor([(i * 37 + rank * 11) % 400 for i in range(n)])

    def step():
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 40.0)
        opt.step()
    for _ in range(2):
        step()
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    if world > 1:
        dist.barrier()
    per_iter = (time.perf_counter() - t0) / iters
    if rank == 0:
        out.put(json.dumps({"bench": "dist_train_step", "impl": "pytorch", "model": model_name, "width": width,
                            "frames": 8, "size": size, "global_batch": global_batch, "ranks": world,
                            "threads_per_rank": 2 // world, "backend": "gloo" if world > 1 else "none",
                            "s_per_iter": round(per_iter, 4), "clips_per_s": round(global_batch / per_iter, 2)}))
    if world > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="all")
    ap.add_argument("--iters", type=int, default=0)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    for case in (["demo", "r50"] if args.case == "all" else [args.case]):
        iters = args.iters or CASES[case][4]
        for world in (1, 2):
            out = ctx.Queue()
            mp.start_processes(worker, args=(world, case, iters, 29500 + world, out), nprocs=world, join=True,
                               start_method="spawn")
            print(out.get(), flush=True)


if __name__ == "__main__":
    main()
