#!/usr/bin/env python3
"""tinyvid's models as PyTorch modules: every registered model, (tsn|tsm|tanet|tdn)_r(18|34|50|101|152)[_dnr],
as a torch.nn.Module with tinyvid's parameter names, that loads the safetensors files tinyvid writes
(io::save_weights, `tinyvid train`'s *.safetensors, tools/convert_checkpoint.py's output) and gives tinyvid's
scores; and its export to ONNX. This is how a model trained with tinyvid reaches deployment tools.

    python3 tools/torch_twin.py --model NAME [--weights W.safetensors] [--frames 8] [--num-classes 400]
                                [--set key=value ...] [--input X.safetensors --output Y.safetensors]
                                [--onnx OUT.onnx [--batch 1] [--size 224] [--opset 14]] [--double]
                                [--save-weights W2.safetensors]

Needs PyTorch (Debian: python3-torch) and numpy; --onnx also python3-onnx (the graph is checked with
onnx.checker and its shapes inferred; when onnxruntime is importable the graph is also run and compared with the
module's scores, else the tool says that it was not run).

The options are those of `tinyvid forward`: --frames counts every input frame of a clip (TDN: 5 per segment, so
40 for 8 segments), --num-classes the head's classes, --set a model switch (include/tinyvid/models/registry.hpp,
docs/DNR.md "Switches"; the same names and defaults). The weights load strictly: every tensor of the file is used
and every parameter and buffer of the module is loaded, with the same shapes, else the error names the missing,
unexpected and misshapen keys. Without --weights the module keeps its own random initialization (tinyvid's
scheme, not its random numbers).

--input X.safetensors (a tensor 'input', N*F x 3 x H x W, the F frames of a clip adjacent) runs the model in eval
mode and writes the scores (N x K) as 'output' to --output, as `tinyvid forward` does. --onnx exports the model in
eval mode for a fixed input of --batch clips of --size x --size (or the shape of --input when given), input
'input', output 'output'. --double computes in float64 (tinyvid computes in float32).

What the modules compute is what tinyvid's C++ computes (include/tinyvid/models/*.hpp, include/tinyvid/dnr/*.hpp),
in training mode too: batch statistics (also per group of clips: stats_group_clips), running-statistics updates
(DNR's cross-temporal norm updates them once per group of frames, counts the batch once; TDN's long-term
difference module applies three of its batch norms twice), dropout at the same places with the same rates (its
masks are torch's). Use it from Python:

    sys.path.insert(0, "tools"); import torch_twin
    model = torch_twin.build_model("tanet_r50_dnr", frames=8, num_classes=400)
    torch_twin.load_weights(model, "latest.safetensors")
    model.eval(); scores = model(x)
"""
import argparse
import json
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - the message is the point
    print(f"torch_twin.py: {e.name} is not installed (Debian: python3-torch, python3-numpy)", file=sys.stderr)
    sys.exit(2)

ARCHS = ("tsn", "tsm", "tanet", "tdn")
DEPTHS = (18, 34, 50, 101, 152)
TDN_SEGMENT_FRAMES = 5  # a TDN segment's frames (models/tdn.hpp, kTdnSegmentFrames)

# The model switches in registry.hpp's order: name -> (default, kind, minimum for whole numbers).
SWITCHES = {
    "width": (64, int, 1),
    "shift_div": (8, int, 1),
    "tam_alpha": (2, int, 1),
    "tam_beta": (4, int, 1),
    "tam_adaptive_kernel_size": (3, int, 1),
    "tam_conv1d_kernel_size": (3, int, 1),
    "cross_layer": (True, bool, None),
    "cross_temporal": (True, bool, None),
    "ct_group_frames": (4, int, 1),
    "ct_bidirectional": (False, bool, None),
    "ct_shared_direction_cell": (False, bool, None),
    "interlace": (True, bool, None),
    "reduction": (4, int, 1),
    "stats_group_clips": (0, int, 0),
}


class TwinError(Exception):
    """A user error (bad name, switch, file or shape), reported in one line."""


def model_names():
    return [f"{a}_r{d}{s}" for a in ARCHS for d in DEPTHS for s in ("", "_dnr")]


def _parse_bool(key, v):
    v = str(v).lower()
    if v in ("1", "true", "on", "yes"):
        return True
    if v in ("0", "false", "off", "no"):
        return False
    raise TwinError(f"model switch {key}: expected true or false, got '{v}'")


class TwinConfig:
    """What registry.hpp's recognizer_options makes of a name, the classes, the input frames and the switches."""

    def __init__(self, name, num_classes=400, frames=8, dropout=-1.0, sets=None):
        if name not in model_names():
            raise TwinError(f"unknown model '{name}'; known models: {', '.join(model_names())}")
        if frames < 1:
            raise TwinError(f"model {name}: frames must be at least 1, got {frames}")
        self.name = name
        self.arch, rest = name.split("_r", 1)
        self.depth = int(rest.split("_")[0])
        self.dnr = name.endswith("_dnr")
        self.tdn = self.arch == "tdn"
        if self.tdn and frames % TDN_SEGMENT_FRAMES:
            raise TwinError(f"model {name}: frames counts every input frame, {TDN_SEGMENT_FRAMES} per TDN segment, so it "
                            f"must be a multiple of {TDN_SEGMENT_FRAMES} (40 for 8 segments), got {frames}")
        self.input_frames = frames
        self.segments = frames // TDN_SEGMENT_FRAMES if self.tdn else frames  # the frames the network works on
        self.num_classes = num_classes
        if num_classes < 1:
            raise TwinError(f"model {name}: num_classes must be at least 1, got {num_classes}")
        self.consensus_after_fc = self.arch in ("tsm", "tanet", "tdn")
        self.init_std = 0.001 if self.arch in ("tanet", "tdn") else 0.01
        self.dropout = dropout if dropout >= 0 else (0.5 if self.consensus_after_fc else 0.4)
        self.switches = {k: d for k, (d, _, _) in SWITCHES.items()}
        for key, value in (sets or {}).items():
            if key not in SWITCHES:
                raise TwinError(f"model {name}: unknown switch '{key}'; known switches: {', '.join(SWITCHES)}")
            _, kind, lo = SWITCHES[key]
            if kind is bool:
                self.switches[key] = _parse_bool(key, value)
            else:
                try:
                    v = int(str(value))
                except ValueError:
                    raise TwinError(f"model switch {key}: expected a whole number, got '{value}'") from None
                if v < lo:
                    raise TwinError(f"model switch {key}: expected at least {lo}, got {v}")
                self.switches[key] = v
        s = self.switches
        if self.dnr and s["cross_temporal"] and self.segments % s["ct_group_frames"]:
            raise TwinError(f"model {name}: {self.segments} {'segments' if self.tdn else 'frames'} do not split into "
                            f"groups of ct_group_frames = {s['ct_group_frames']}")

    def __getattr__(self, key):  # the switches as attributes: cfg.width, cfg.interlace, ...
        switches = self.__dict__.get("switches", {})
        if key in switches:
            return switches[key]
        raise AttributeError(key)

    @property
    def shift(self):
        """Each block's residual input shifted in time: TSM, or DNR's channel interlacing."""
        return self.arch == "tsm" or (self.dnr and self.interlace)

    @property
    def shift_div(self):
        return self.switches["shift_div"] if self.arch == "tsm" else 8

    def describe(self):
        return {"model": self.name, "frames": self.input_frames, "segments": self.segments,
                "num_classes": self.num_classes, "switches": self.switches}


# ---------------------------------------------------------------------------------------------------------------
# Batch norm with tinyvid's statistics groups (ops/batch_norm.hpp): in training, `stats_group_clips` > 0 takes the
# statistics over groups of that many clips (rows_per_clip entries of dim 0 each; the last group may be smaller), and
# the running statistics get one update with the groups' statistics averaged, weighted by their sizes (each group's
# variance unbiased). Otherwise it is F.batch_norm.

def batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, group_rows=0, count=None):
    """x: channels in dim 1. count: num_batches_tracked to increment (training), or None."""
    batch = x.shape[0]
    if training and count is not None:
        count.add_(1)
    if not training or group_rows <= 0 or group_rows >= batch:
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    outs, means, vars_, sizes = [], [], [], []
    for part in x.split(group_rows, 0):
        m = part.mean(dims)
        v = part.var(dims, unbiased=False)
        z = (part - m.view(shape)) * torch.rsqrt(v.view(shape) + eps)
        if weight is not None:
            z = z * weight.view(shape)
        if bias is not None:
            z = z + bias.view(shape)
        outs.append(z)
        means.append(m.detach())
        vars_.append(v.detach())
        sizes.append(part.numel() // x.shape[1])
    if running_mean is not None:
        with torch.no_grad():
            total = float(sum(sizes))
            bm = sum(n / total * m for n, m in zip(sizes, means))
            bv = sum(n / total * v * n / (n - 1) for n, v in zip(sizes, vars_))
            running_mean.mul_(1 - momentum).add_(momentum * bm.to(running_mean.dtype))
            running_var.mul_(1 - momentum).add_(momentum * bv.to(running_var.dtype))
    return torch.cat(outs, 0)


class _GroupStats:
    """nn.BatchNorm*d with tinyvid's statistics groups: group_rows = stats_group_clips * rows_per_clip."""
    group_rows = 0

    def forward(self, x):
        if not self.training or self.group_rows <= 0 or self.group_rows >= x.shape[0]:
            return super().forward(x)
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps,
                          self.group_rows, self.num_batches_tracked)


class BatchNorm2d(_GroupStats, nn.BatchNorm2d):
    def __init__(self, c, group_rows=0, affine=True):
        super().__init__(c, affine=affine)
        self.group_rows = group_rows


class BatchNorm1d(_GroupStats, nn.BatchNorm1d):
    def __init__(self, c, group_rows=0):
        super().__init__(c)
        self.group_rows = group_rows


def temporal_shift(x, frames, fold_div=8):
    """TSM's shift, DNR's interlacing (ops/index.hpp): of C / fold_div channels the first group takes frame t + 1,
    the second frame t - 1, zero where there is none. x: N*T x C x ..."""
    nt, c = x.shape[:2]
    fold = c // fold_div
    if fold == 0:
        return x
    v = x.reshape(nt // frames, frames, c, -1)
    zero = torch.zeros_like(v[:, :1, :fold])
    a = torch.cat([v[:, 1:, :fold], zero], 1)
    b = torch.cat([zero, v[:, :-1, fold:2 * fold]], 1)
    return torch.cat([a, b, v[:, :, 2 * fold:]], 2).reshape(x.shape)


def shift_frames(v, steps):
    """out[:, t] = v[:, t - steps], zero outside the clip (ops/index.hpp's shift along dim 1)."""
    n = v.shape[1]
    k = min(abs(steps), n)
    if k == 0:
        return v
    zero = torch.zeros_like(v[:, :k])
    if k == n:
        return torch.zeros_like(v)
    return torch.cat([zero, v[:, :n - k]], 1) if steps > 0 else torch.cat([v[:, k:], zero], 1)


def upsample_nearest(x, h, w):
    """F.interpolate's legacy 'nearest' to (h, w), as tinyvid's upsample_nearest."""
    if x.shape[2] == h and x.shape[3] == w:
        return x
    return F.interpolate(x, size=(h, w), mode="nearest")


# ---------------------------------------------------------------------------------------------------------------
# DNR (dnr/relay.hpp, dnr/norm.hpp, docs/DNR.md)

class RelayCell(nn.Module):
    """An LSTM cell with bottleneck projections, h = o * sigmoid(c); gate order i, f, g, o."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        mid = channels // reduction
        if mid < 1:
            raise TwinError(f"RelayCell: {channels} channels with reduction ratio {reduction} leave no bottleneck channel")
        self.channels = channels
        self.input_proj = nn.Sequential(nn.Linear(channels, mid), nn.ReLU(), nn.Linear(mid, 4 * channels))
        self.hidden_proj = nn.Sequential(nn.Linear(channels, mid), nn.ReLU(), nn.Linear(mid, 4 * channels))

    def forward(self, s, state=None):
        h, c = state if state is not None else (torch.zeros_like(s), torch.zeros_like(s))
        i, f, g, o = (self.input_proj(s) + self.hidden_proj(h)).chunk(4, 1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.sigmoid(c2), c2


class _DynamicNorm(nn.Module):
    """The running statistics of a DNR norm (no weight, no bias), with BatchNorm2d's names."""

    def __init__(self, channels, group_clips):
        super().__init__()
        self.channels, self.momentum, self.eps, self.group_clips = channels, 0.1, 1e-5, group_clips
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def standardize(self, y5, count):
        """Training: y5 (N x t x C x H x W) standardized with its batch statistics, the running ones updated."""
        z = batch_norm(y5.transpose(1, 2), self.running_mean, self.running_var, None, None, True, self.momentum,
                       self.eps, self.group_clips, self.num_batches_tracked if count else None)
        return z.transpose(1, 2)

    def affine_with_running_stats(self, y5, h, c):
        """Eval: the running standardization folded into the dynamic affine. h, c: N x T x C (per frame)."""
        scale = h * torch.rsqrt(self.running_var + self.eps)
        shift = c - scale * self.running_mean
        return y5 * scale[..., None, None] + shift[..., None, None]


class CrossLayerNorm(_DynamicNorm):
    """bn1 of a DNR block: the stage's relay cell reads the clip means and moves the stage's state one step."""

    def forward(self, y, frames, cell, state):
        nt, c, hh, ww = y.shape
        y5 = y.reshape(nt // frames, frames, c, hh, ww)
        h, cs = cell(y5.mean((1, 3, 4)), state)
        if self.training:
            out = self.standardize(y5, True) * h[:, None, :, None, None] + cs[:, None, :, None, None]
        else:
            out = self.affine_with_running_stats(y5, h[:, None], cs[:, None])
        return out.reshape(y.shape), (h, cs)


class CrossTemporalNorm(_DynamicNorm):
    """bn2 of a DNR block: groups of frames relayed in temporal order (and back when bidirectional), each group
    standardized with its own batch statistics (training) and one shared set of running statistics."""

    def __init__(self, channels, cfg):
        super().__init__(channels, cfg.stats_group_clips)
        self.group_frames, self.bidirectional = cfg.ct_group_frames, cfg.ct_bidirectional
        self.relay = RelayCell(channels, cfg.reduction)
        self.shared_cell = cfg.ct_bidirectional and cfg.ct_shared_direction_cell
        if cfg.ct_bidirectional and not cfg.ct_shared_direction_cell:
            self.relay_backward = RelayCell(channels, cfg.reduction)

    def forward(self, y, frames):
        nt, c, hh, ww = y.shape
        n, d = nt // frames, self.group_frames
        y5 = y.reshape(n, frames, c, hh, ww)
        groups = frames // d
        parts = [y5[:, g * d:(g + 1) * d] for g in range(groups)]
        pooled = [p.mean((1, 3, 4)) for p in parts]
        states, state = [], None
        for s in pooled:
            state = self.relay(s, state)
            states.append(state)
        if self.bidirectional:
            cell = self.relay if self.shared_cell else self.relay_backward
            back, state = [None] * groups, None
            for g in reversed(range(groups)):
                state = cell(pooled[g], state)
                back[g] = state
            states = [((hf + hb) * 0.5, (cf + cb) * 0.5) for (hf, cf), (hb, cb) in zip(states, back)]
        if not self.training:
            h = torch.stack([s[0] for s in states], 1)  # N x G x C -> N x T x C, group g covering its d frames
            cs = torch.stack([s[1] for s in states], 1)
            h = h[:, :, None].expand(n, groups, d, c).reshape(n, frames, c)
            cs = cs[:, :, None].expand(n, groups, d, c).reshape(n, frames, c)
            return self.affine_with_running_stats(y5, h, cs).reshape(y.shape)
        out = [self.standardize(p, g == 0) * h[:, None, :, None, None] + cs[:, None, :, None, None]
               for g, (p, (h, cs)) in enumerate(zip(parts, states))]
        return torch.cat(out, 1).reshape(y.shape)


# ---------------------------------------------------------------------------------------------------------------
# TANet's TAM (models/tam.hpp, MMAction2's names)

class Tam(nn.Module):
    def __init__(self, channels, frames, cfg):
        super().__init__()
        alpha, beta = cfg.tam_alpha, cfg.tam_beta
        k, k1 = cfg.tam_adaptive_kernel_size, cfg.tam_conv1d_kernel_size
        if channels // beta < 1:
            raise TwinError(f"TAM: need at least beta channels, got beta {beta}, {channels} channels")
        if k % 2 == 0 or k1 % 2 == 0:
            raise TwinError(f"TAM: the kernel sizes must be odd, got adaptive_kernel_size {k} and conv1d_kernel_size {k1}")
        self.channels, self.frames, self.k = channels, frames, k
        hidden, mid, groups = frames * alpha, channels // beta, cfg.stats_group_clips
        self.G = nn.Sequential(nn.Linear(frames, hidden, bias=False), BatchNorm1d(hidden, groups * channels), nn.ReLU(),
                               nn.Linear(hidden, k, bias=False))
        self.L = nn.Sequential(nn.Conv1d(channels, mid, k1, padding=k1 // 2, bias=False), BatchNorm1d(mid, groups),
                               nn.ReLU(), nn.Conv1d(mid, channels, 1, bias=False), nn.Sigmoid())

    def forward(self, x):
        nt, c, h, w = x.shape
        t = self.frames
        n = nt // t
        theta = x.mean((2, 3)).reshape(n, t, c).permute(0, 2, 1)  # N x C x T
        kernel = F.softmax(self.G(theta.reshape(n * c, t)), 1).reshape(n, c, self.k).permute(0, 2, 1)  # N x K x C
        importance = self.L(theta).permute(0, 2, 1)  # N x T x C
        v = x.reshape(n, t, c, h * w) * importance[..., None]
        y = None
        for k in range(self.k):
            tap = kernel[:, k].reshape(n, 1, c, 1)
            term = (v if k == self.k // 2 else shift_frames(v, self.k // 2 - k)) * tap
            y = term if y is None else y + term
        return y.reshape(x.shape)


# ---------------------------------------------------------------------------------------------------------------
# TDN's long-term modules (models/tdn.hpp, the authors' names)

class DepthwiseTemporalConv(nn.Module):
    """The authors' ShiftModule's conv: out[t] = w0 x[t-1] + w1 x[t] + w2 x[t+1], zero beyond the clip."""

    def __init__(self, channels):
        super().__init__()
        w = torch.zeros(channels, 1, 3)
        fold = channels // 8
        w[:fold, 0, 2] = 1
        w[fold:2 * fold, 0, 0] = 1
        w[2 * fold:, 0, 1] = 1
        self.weight = nn.Parameter(w)

    def forward(self, x, frames):
        c = self.weight.shape[0]
        v = x.reshape(x.shape[0] // frames, frames, c, -1)
        tap = [self.weight[:, 0, k].reshape(1, 1, c, 1) for k in range(3)]
        return (shift_frames(v, 1) * tap[0] + v * tap[1] + shift_frames(v, -1) * tap[2]).reshape(x.shape)


class TemporalShiftConv(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = DepthwiseTemporalConv(channels)

    def forward(self, x, frames):
        return self.conv(x, frames)


class LongTermDifference(nn.Module):
    """The authors' mSEModule (reduction 16), as their current code (March 2021, with their checkpoints) and
    models/tdn.hpp compute it: forward and backward differences, each with a half- and a full-resolution view."""
    reduction = 16

    def __init__(self, channels, frames, bn):
        super().__init__()
        mid = channels // self.reduction
        if mid < 1:
            raise TwinError(f"TDN: the long-term difference module narrows the channels by {self.reduction} and needs at "
                            f"least {self.reduction}, got {channels} (a smaller width switch than TDN can take)")
        self.frames = frames
        self.conv1 = _kaiming(nn.Conv2d(channels, mid, 1, bias=False))
        self.bn1 = bn(mid)
        self.conv2 = _kaiming(nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False))
        self.conv3 = _kaiming(nn.Conv2d(mid, channels, 1, bias=False))
        self.bn3 = bn(channels)
        self.conv3_smallscale2 = _kaiming(nn.Conv2d(mid, mid, 3, padding=1, bias=False))
        self.bn3_smallscale2 = bn(mid)
        self.conv3_smallscale4 = _kaiming(nn.Conv2d(mid, mid, 3, padding=1, bias=False))
        self.bn3_smallscale4 = bn(mid)

    def forward(self, x):
        if x.shape[2] < 2 or x.shape[3] < 2:
            raise TwinError(f"TDN long-term module: its 2x2 average pool needs maps of at least 2x2, got {tuple(x.shape)} "
                            "(layer4 runs at 1/32 of the frame: frames of at least 64x64)")
        b = self.bn1(self.conv1(x))
        cb = self.conv2(b)
        t = self.frames
        n, mid, h, w = b.shape[0] // t, b.shape[1], b.shape[2], b.shape[3]
        b5, c5 = b.reshape(n, t, mid, h, w), cb.reshape(n, t, mid, h, w)
        if t == 1:
            fwd = bwd = torch.zeros_like(b)
        else:
            none = torch.zeros_like(b5[:, :1])
            fwd = torch.cat([c5[:, 1:] - b5[:, :-1], none], 1).reshape(b.shape)
            bwd = torch.cat([none, c5[:, :-1] - b5[:, 1:]], 1).reshape(b.shape)

        # One call per norm, in the authors' (and tinyvid's) order: a norm that runs twice updates its running
        # statistics twice, and the order of the updates shows in them.
        def half_scale(d):
            return self.bn3_smallscale2(self.conv3_smallscale2(F.avg_pool2d(d, 2, 2)))

        def full_scale(d):
            return self.bn3_smallscale4(self.conv3_smallscale4(d))

        fwd_half, bwd_half = half_scale(fwd), half_scale(bwd)
        fwd_full, bwd_full = full_scale(fwd), full_scale(bwd)
        third = 1.0 / 3.0

        def attention(d, half, full):
            mixed = d * third + upsample_nearest(half, h, w) * third + full * third
            return torch.sigmoid(self.bn3(self.conv3(mixed))) - 0.5

        y = attention(fwd, fwd_half, fwd_full) * 0.5 + attention(bwd, bwd_half, bwd_full) * 0.5
        return x + x * y


# ---------------------------------------------------------------------------------------------------------------
# The ResNet (models/resnet.hpp) and the recognizer (models/recognizer.hpp)

def _kaiming(conv):
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class _Block(nn.Module):
    def _conv(self, cin, cout, k, stride, cfg):
        return _kaiming(nn.Conv2d(cin, cout, k, stride, k // 2, bias=cfg.tdn))

    def _bn(self, c, cfg):
        return BatchNorm2d(c, cfg.stats_group_clips * cfg.segments)

    def _norms(self, planes, cfg):
        if cfg.dnr and cfg.cross_layer:
            self.bn1 = CrossLayerNorm(planes, cfg.stats_group_clips)
        else:
            self.bn1 = self._bn(planes, cfg)
        if cfg.dnr and cfg.cross_temporal:
            self.bn2 = CrossTemporalNorm(planes, cfg)
        else:
            self.bn2 = self._bn(planes, cfg)

    def _downsample(self, cin, cout, stride, cfg):
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(self._conv(cin, cout, 1, stride, cfg), self._bn(cout, cfg))

    def _temporal(self, planes, cfg):
        self.shift_input = cfg.shift
        self.shift_div = cfg.shift_div
        self.tam = Tam(planes, cfg.segments, cfg) if cfg.arch == "tanet" else None
        self.mse = None
        if cfg.tdn and planes > cfg.width:
            self.mse = LongTermDifference(planes, cfg.segments, lambda c: self._bn(c, cfg))
            self.shift = TemporalShiftConv(planes)

    def norm1(self, y, frames, relay, state):
        if isinstance(self.bn1, CrossLayerNorm):
            return self.bn1(y, frames, relay, state)
        return self.bn1(y), state

    def norm2(self, y, frames):
        return self.bn2(y, frames) if isinstance(self.bn2, CrossTemporalNorm) else self.bn2(y)

    def adapt(self, y, frames):
        if self.tam is not None:
            return self.tam(y)
        if self.mse is not None:
            return self.shift(self.mse(y), frames)
        return y

    def branch_input(self, x, frames):
        return temporal_shift(x, frames, self.shift_div) if self.shift_input else x

    def residual(self, x):
        return self.downsample(x) if self.downsample is not None else x


class BasicBlock(_Block):
    expansion = 1

    def __init__(self, inplanes, planes, stride, cfg):
        super().__init__()
        self.conv1 = self._conv(inplanes, planes, 3, stride, cfg)
        self.conv2 = self._conv(planes, planes, 3, 1, cfg)
        self._norms(planes, cfg)
        self._downsample(inplanes, planes, stride, cfg)
        self._temporal(planes, cfg)

    def forward(self, x, frames, relay=None, state=None):
        out, state = self.norm1(self.conv1(self.branch_input(x, frames)), frames, relay, state)
        out = self.norm2(self.conv2(self.adapt(F.relu(out), frames)), frames)
        return F.relu(out + self.residual(x)), state


class Bottleneck(_Block):
    expansion = 4

    def __init__(self, inplanes, planes, stride, cfg):
        super().__init__()
        self.conv1 = self._conv(inplanes, planes, 1, 1, cfg)
        self.conv2 = self._conv(planes, planes, 3, stride, cfg)
        self.conv3 = self._conv(planes, planes * 4, 1, 1, cfg)
        self._norms(planes, cfg)
        self.bn3 = self._bn(planes * 4, cfg)
        self._downsample(inplanes, planes * 4, stride, cfg)
        self._temporal(planes, cfg)

    def forward(self, x, frames, relay=None, state=None):
        out, state = self.norm1(self.conv1(self.branch_input(x, frames)), frames, relay, state)
        out = F.relu(self.norm2(self.conv2(self.adapt(F.relu(out), frames)), frames))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.residual(x)), state


class ResLayer(nn.Module):
    """A stage: blocks "0", "1", ... and, with cross-layer DNR, the stage's relay cell "relay" (state from zero)."""

    def __init__(self, block, inplanes, planes, blocks, stride, cfg):
        super().__init__()
        self.num_blocks = blocks
        for b in range(blocks):
            self.add_module(str(b), block(inplanes, planes, stride if b == 0 else 1, cfg))
            inplanes = planes * block.expansion
        self.out_channels = inplanes
        self.relay = RelayCell(planes, cfg.reduction) if cfg.dnr and cfg.cross_layer else None

    def forward(self, x, frames):
        state = None
        for b in range(self.num_blocks):
            x, state = getattr(self, str(b))(x, frames, self.relay, state)
        return x


STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class ResNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        width, blocks = cfg.width, STAGE_BLOCKS[cfg.depth]
        block = BasicBlock if cfg.depth < 50 else Bottleneck
        group_rows = cfg.stats_group_clips * cfg.segments
        self.conv1 = _kaiming(nn.Conv2d(3, width, 7, 2, 3, bias=cfg.tdn))
        self.bn1 = BatchNorm2d(width, group_rows)
        if cfg.tdn:  # the short-term module: conv1_5 on the 12 difference channels, then a second layer1
            conv = nn.Conv2d(3 * (TDN_SEGMENT_FRAMES - 1), width, 7, 2, 3, bias=False)
            rgb = torch.empty(width, 3, 7, 7)
            nn.init.kaiming_normal_(rgb, mode="fan_out", nonlinearity="relu")
            with torch.no_grad():
                conv.weight.copy_(rgb.mean(1, keepdim=True).expand_as(conv.weight))
            self.conv1_5 = nn.Sequential(conv, BatchNorm2d(width, group_rows))
            self.resnext_layer1 = ResLayer(block, width, width, blocks[0], 1, cfg)
        inplanes = width
        for s in range(4):
            layer = ResLayer(block, inplanes, width << s, blocks[s], 1 if s == 0 else 2, cfg)
            inplanes = layer.out_channels
            self.add_module(f"layer{s + 1}", layer)
        self.out_channels = inplanes

    def stem(self, x):
        return F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)

    def fuse(self, x, d):
        a = 0.5 if self.cfg.segments == 8 else 0.75
        return x * a + upsample_nearest(d, x.shape[2], x.shape[3]) * (1.0 - a)

    def forward(self, x):
        t = self.cfg.segments
        if not self.cfg.tdn:
            y = self.stem(x)
            for s in range(1, 5):
                y = getattr(self, f"layer{s}")(y, t)
            return y
        L = TDN_SEGMENT_FRAMES
        nt, _, h, w = x.shape
        x5 = x.reshape(nt // L, L, 3, h, w)
        centre = x5[:, 2]
        diff = (x5[:, 1:] - x5[:, :-1]).reshape(nt // L, 3 * (L - 1), h, w)
        diff = F.max_pool2d(F.relu(self.conv1_5(F.avg_pool2d(diff, 2, 2))), 3, 2, 1)
        y = self.fuse(self.stem(centre), diff)
        y = self.fuse(self.layer1(y, t), self.resnext_layer1(diff, t))
        for s in range(2, 5):
            y = getattr(self, f"layer{s}")(y, t)
        return y


class ClsHead(nn.Module):
    """TSN: pool, mean over the frames, dropout, fc; TSM, TANet, TDN: pool, dropout, fc per frame, mean."""

    def __init__(self, in_channels, cfg):
        super().__init__()
        self.segments, self.after_fc = cfg.segments, cfg.consensus_after_fc
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc_cls = nn.Linear(in_channels, cfg.num_classes)
        nn.init.normal_(self.fc_cls.weight, 0.0, cfg.init_std)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, features):
        pooled = features.mean((2, 3))
        n, c = pooled.shape[0] // self.segments, pooled.shape[1]
        if not self.after_fc:
            return self.fc_cls(self.dropout(pooled.reshape(n, self.segments, c).mean(1)))
        scores = self.fc_cls(self.dropout(pooled))
        return scores.reshape(n, self.segments, -1).mean(1)


class Recognizer(nn.Module):
    """backbone.* and cls_head.fc_cls.*: x (N*F x 3 x H x W, a clip's F input frames adjacent) -> scores N x K."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNet(cfg)
        self.cls_head = ClsHead(self.backbone.out_channels, cfg)

    def forward(self, x):
        f = self.cfg.input_frames
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[0] % f:
            raise TwinError(f"{self.cfg.name}: expected an input of shape N*{f} x 3 x H x W (the {f} frames of a clip "
                            f"adjacent), got {tuple(x.shape)}")
        return self.cls_head(self.backbone(x))


def build_model(name, frames=8, num_classes=400, sets=None, dropout=-1.0):
    """The module of model NAME, with its own random initialization."""
    return Recognizer(TwinConfig(name, num_classes, frames, dropout, sets))


# ---------------------------------------------------------------------------------------------------------------
# safetensors, read and written without the safetensors package

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """name -> tensor (a copy), and the metadata."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise TwinError(f"{path}: {e.strerror}") from None
    if len(raw) < 8:
        raise TwinError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise TwinError(f"{path}: not a safetensors file (header of {n} bytes in a file of {len(raw)})")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError:
        raise TwinError(f"{path}: not a safetensors file (its header is not JSON)") from None
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise TwinError(f"{path}: tensor '{name}' has dtype {info.get('dtype')}, which this tool does not read")
        b, e = info["data_offsets"]
        shape = info["shape"]
        buf = bytearray(data[b:e])
        t = torch.frombuffer(buf, dtype=dtype) if len(buf) else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(shape).clone()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> tensor, written in name order (each as its dtype), atomically."""
    header, chunks, at = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        b = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(b)]}
        chunks.append(b)
        at += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in chunks:
            f.write(b)
    os.replace(tmp, path)


def _listing(names, limit=8):
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_weights(model, source):
    """Loads a safetensors file (or a name -> tensor dict) with tinyvid's names into the model, strictly: every key of
    the source used, every parameter and buffer loaded, the shapes equal, every value finite. A `tinyvid train` state
    file (latest.state.safetensors) gives its model.* tensors."""
    path = source if isinstance(source, str) else "weights"
    tensors = read_safetensors(source)[0] if isinstance(source, str) else dict(source)
    if not any(k.startswith("backbone.") for k in tensors) and any(k.startswith("model.backbone.") for k in tensors):
        tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing = set(own) - set(tensors)
    unexpected = set(tensors) - set(own)
    misshapen = [f"{k} (file {tuple(tensors[k].shape)}, model {tuple(own[k].shape)})" for k in sorted(set(own) & set(tensors))
                 if tuple(tensors[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or misshapen:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_listing(unexpected)}")
        if misshapen:
            parts.append(f"{len(misshapen)} of another shape: {_listing(misshapen, 4)}")
        cfg = model.cfg
        raise TwinError(f"{path} does not fit {cfg.name} (frames {cfg.input_frames}, num_classes {cfg.num_classes}, "
                        f"switches as given): " + "; ".join(parts))
    converted = {}
    for k, v in tensors.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            bad = int((~torch.isfinite(v)).nonzero()[0].tolist()[0]) if v.dim() else 0
            raise TwinError(f"{path}: tensor '{k}' holds a NaN or infinity (first at index {bad} of dim 0)")
        target = own[k]
        converted[k] = v.round().to(target.dtype) if not target.is_floating_point() else v.to(target.dtype)
    model.load_state_dict(converted, strict=True)
    return model


def save_weights(model, path):
    """The module's state as tinyvid writes it: every tensor F32 (num_batches_tracked too), tinyvid's names."""
    write_safetensors(path, {k: v.float() for k, v in model.state_dict().items()}, {"format": "pt"})


# ---------------------------------------------------------------------------------------------------------------
# ONNX

def export_onnx(model, path, example, opset=14, log=print):
    """Exports the model in eval mode for the fixed shape of `example`, checks the graph with onnx.checker, infers
    its output shape, and runs it with onnxruntime when that is installed. Returns the output shape."""
    import warnings
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes that shapes become constants: the export is for one fixed input shape on purpose.
        warnings.simplefilter("ignore")
        ref = model(example)
        torch.onnx.export(model, (example,), path, input_names=["input"], output_names=["output"], opset_version=opset,
                          do_constant_folding=True)
    try:
        import onnx
    except ImportError:
        log(f"wrote {path}; onnx is not installed (Debian: python3-onnx): the graph was not checked")
        return None
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(m)
    out = [o for o in inferred.graph.output if o.name == "output"][0]
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in out.type.tensor_type.shape.dim]
    ops = sorted({n.op_type for n in m.graph.node})
    log(f"wrote {path}: opset {opset}, {len(m.graph.node)} nodes ({', '.join(ops)}), input {list(example.shape)}, "
        f"output {shape}; onnx.checker passed")
    if shape != list(ref.shape):
        raise TwinError(f"{path}: the graph's output shape {shape} is not the model's {list(ref.shape)}")
    try:
        import onnxruntime
    except ImportError:
        log("onnxruntime is not installed (Debian 12 has no package of it): the exported graph was checked, not run")
        return shape
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": example.cpu().numpy()})[0]
    err = float(np.abs(got - ref.cpu().numpy()).max() / max(1e-30, float(ref.abs().max())))
    log(f"onnxruntime: the graph's scores match the module's to {err:.2e} (relative to the largest score)")
    return shape


# ---------------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="(tsn|tsm|tanet|tdn)_r(18|34|50|101|152)[_dnr]")
    ap.add_argument("--weights", help="tinyvid's .safetensors (without: the module's own random initialization)")
    ap.add_argument("--frames", type=int, default=8, help="input frames per clip (TDN: 5 per segment)")
    ap.add_argument("--num-classes", type=int, default=400)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a model switch, or device=cpu|cuda|cuda:N (torch's device); repeatable")
    ap.add_argument("--input", help=".safetensors with a tensor 'input': N*F x 3 x H x W")
    ap.add_argument("--output", help=".safetensors to write the scores to, as 'output' (F32)")
    ap.add_argument("--onnx", metavar="OUT.onnx", help="export the model to ONNX (eval mode, fixed input shape)")
    ap.add_argument("--batch", type=int, default=1, help="--onnx: clips in the exported input (without --input)")
    ap.add_argument("--size", type=int, default=224, help="--onnx: frame side in pixels (without --input)")
    ap.add_argument("--opset", type=int, default=14, help="--onnx: the ONNX opset")
    ap.add_argument("--double", action="store_true", help="compute in float64")
    ap.add_argument("--save-weights", metavar="W.safetensors", help="write the module's weights in tinyvid's names")
    ap.add_argument("--list", action="store_true", help="print the module's state_dict names and shapes")
    args = ap.parse_args(argv)
    try:
        sets = {}
        for kv in args.set:
            if "=" not in kv or kv.startswith("="):
                raise TwinError(f"--set expects key=value, got '{kv}'")
            k, v = kv.split("=", 1)
            sets[k] = v
        try:
            device = torch.device(sets.pop("device", "cpu"))
        except RuntimeError as e:
            raise TwinError(f"--set device: {e}") from None
        if (args.input is None) != (args.output is None) and not (args.input and args.onnx):
            raise TwinError("--input and --output go together")
        model = build_model(args.model, args.frames, args.num_classes, sets)
        if args.double:
            model.double()
        if args.weights:
            load_weights(model, args.weights)
        model.to(device)
        dtype = torch.float64 if args.double else torch.float32
        if args.list:
            for k, v in model.state_dict().items():
                print(k, tuple(v.shape))
        if args.save_weights:
            save_weights(model, args.save_weights)
            print(f"wrote {args.save_weights}: {len(model.state_dict())} tensors")
        model.eval()
        x = None
        if args.input:
            tensors, _ = read_safetensors(args.input)
            if "input" not in tensors:
                raise TwinError(f"{args.input}: no tensor named 'input' (expected N*F x 3 x H x W)")
            x = tensors["input"].to(device, dtype)
            if not torch.isfinite(x).all():
                raise TwinError(f"{args.input}: tensor 'input' holds a NaN or infinity")
        if x is not None and args.output:
            with torch.no_grad():
                scores = model(x)
            write_safetensors(args.output, {"output": scores.float().cpu()})
            print(f"wrote {args.output}: output {'x'.join(str(s) for s in scores.shape)}")
        if args.onnx:
            example = x if x is not None else torch.randn(args.batch * args.frames, 3, args.size, args.size, dtype=dtype,
                                                          device=device)
            export_onnx(model, args.onnx, example, args.opset)
    except TwinError as e:
        print(f"torch_twin.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
