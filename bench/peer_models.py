"""The PyTorch peer of bench_models: TSN-R50 (torchvision's ResNet-50 structure, written out here since
Debian has no python3-torchvision) on one clip of 8 frames at 224, 2 threads: eval forward, training
step (forward, backward, SGD step) and the process's peak RSS. Usage: peer_models.py [--frames 8]"""
import argparse
import json
import resource
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("peer_models.py: torch is not installed; no peer figures", file=sys.stderr)
    sys.exit(0)
from peer import median_seconds


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class TSN(nn.Module):
    def __init__(self, frames, classes=400):
        super().__init__()
        self.frames = frames
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, inplanes = [], 64
        for i, n in enumerate((3, 4, 6, 3)):
            planes = 64 * 2 ** i
            blocks = [Bottleneck(inplanes, planes, 1 if i == 0 else 2)]
            inplanes = planes * 4
            blocks += [Bottleneck(inplanes, planes, 1) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        f = self.layers(x).mean((2, 3))
        return self.fc(self.dropout(f.view(-1, self.frames, f.shape[1]).mean(1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = TSN(args.frames)
    x = torch.randn(args.frames, 3, args.size, args.size)
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
    print(json.dumps({"bench": "model", "impl": "pytorch", "model": "tsn_r50", "frames": args.frames, "size": args.size,
                      "threads": 2, "forward_s": round(fwd, 4), "train_step_s": round(step_s, 4),
                      "peak_rss_mb": round(rss)}))


if __name__ == "__main__":
    main()
