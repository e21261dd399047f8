#pragma once
// The pieces of TDN (Wang et al., "TDN: Temporal Difference Networks for Efficient Action Recognition",
// arXiv 2012.10071) as its authors' code builds them (github MCG-NJU/TDN, ops/base_module.py), with their
// parameter names, so their checkpoints convert key for key. The short-term module (differences of the 5
// frames of a segment at the stem, fused twice into the RGB path) lives in ResNet (models/resnet.hpp); here:
// - LongTermDifference, the authors' mSEModule ("mse"): each frame's features against its neighbours' after a
//   depthwise 3x3, at three scales, turned into a channel attention x + x * y;
// - TemporalShiftConv, the authors' ShiftModule ("shift"): a learnable depthwise conv over time, kernel 3,
//   initialized to TSM's shift.
// Both run over the T segments of a clip (N*T x C x H x W, a clip's segments adjacent).
#include <memory>

#include "tinyvid/nn/layers.hpp"
#include "tinyvid/ops/conv.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/index.hpp"
#include "tinyvid/ops/join.hpp"
#include "tinyvid/ops/pool.hpp"

namespace tv::models {

// The frames of a TDN segment and the number of differences the stem sees (4 x RGB = 12 channels).
inline constexpr int64_t kTdnSegmentFrames = 5;

// x: N*T*5 x 3 x H x W (a segment's 5 frames adjacent) -> N*T x 12 x H x W: [f2 - f1, f3 - f2, f4 - f3, f5 - f4]
// along the channels, the input of the short-term module.
template <class T>
Tensor<T> frame_differences(const Tensor<T>& x) {
  const int64_t L = kTdnSegmentFrames, NT = x.size(0) / L, H = x.size(2), W = x.size(3);
  const Tensor<T> x5 = x.view({NT, L, 3, H, W});
  return sub(x5.narrow(1, 1, L - 1), x5.narrow(1, 0, L - 1)).reshape({NT, 3 * (L - 1), H, W});
}

// The authors' ShiftModule: `conv.weight` (C x 1 x 3, PyTorch's Conv1d shape, trained) on each channel's values over
// time: out[t] = w0 x[t-1] + w1 x[t] + w2 x[t+1], zero beyond the clip. Initialized as TSM's shift: the first
// C/8 channels read the next segment, the next C/8 the previous one, the rest themselves.
template <class T = float>
class DepthwiseTemporalConv : public nn::Module<T> {
 public:
  explicit DepthwiseTemporalConv(int64_t channels) {
    weight = this->register_parameter("weight", zeros<T>({channels, 1, 3}));
    const int64_t fold = channels / 8;
    T* w = weight.data();
    for (int64_t c = 0; c < channels; ++c) w[c * 3 + (c < fold ? 2 : c < 2 * fold ? 0 : 1)] = T(1);
  }
  Tensor<T> forward(const Tensor<T>& x, int64_t frames) {
    const int64_t C = weight.size(0), N = x.size(0) / frames;
    const Tensor<T> v = x.reshape({N, frames, C, x.numel() / (x.size(0) * C)});
    auto tap = [&](int64_t k) { return weight.narrow(2, k, 1).reshape({1, 1, C, 1}); };
    Tensor<T> y = add(add(mul(shift(v, 1, 1), tap(0)), mul(v, tap(1))), mul(shift(v, 1, -1), tap(2)));
    return y.view(x.shape());
  }
  Tensor<T> weight;
};

template <class T = float>
class TemporalShiftConv : public nn::Module<T> {
 public:
  explicit TemporalShiftConv(int64_t channels) {
    conv = this->register_module("conv", std::make_shared<DepthwiseTemporalConv<T>>(channels));
  }
  Tensor<T> forward(const Tensor<T>& x, int64_t frames) { return conv->forward(x, frames); }
  std::shared_ptr<DepthwiseTemporalConv<T>> conv;
};

// The authors' mSEModule (reduction 16), names as theirs. With b = bn1(conv1(x)) and c = conv2(b) (depthwise 3x3):
// forward difference f[t] = c[t+1] - b[t] (0 at the last segment), backward difference g[t] = c[t-1] - b[t] (0 at the
// first); each adds a half-resolution view (avg pool 2, conv, bn, nearest back) and a full-resolution one (conv,
// bn), averaged; conv3 + bn3 + sigmoid - 1/2 gives each direction's attention, y their mean, and out = x + x y.
// This is the authors' current code (March 2021, released with their checkpoints); their first release computed
// g's full-resolution view from f's instead.
template <class T = float>
class LongTermDifference : public nn::Module<T> {
 public:
  static constexpr int64_t reduction = 16;
  // channels: C of the input; frames: T segments per clip; bn: how the model makes its batch norms (statistics
  // per group of clips, rows per clip).
  template <class MakeBn>
  LongTermDifference(int64_t channels, int64_t frames, MakeBn bn, Generator& gen) : frames(frames) {
    const int64_t mid = channels / reduction;
    TV_CHECK(mid >= 1, "TDN: the long-term difference module narrows the channels by ", reduction, " and needs at least ",
             reduction, ", got ", channels, " (a smaller width switch than TDN can take)");
    auto conv = [&](int64_t in, int64_t out, int64_t k, int64_t groups) {
      auto c = std::make_shared<nn::Conv2d<T>>(
          nn::Conv2dOptions(in, out, k).padding(k / 2).groups(groups).bias(false), gen);
      nn::init::kaiming_normal_(c->weight, nn::init::FanMode::FanOut, gen);  // the authors' ResNet init reaches these
      return c;
    };
    conv1 = this->register_module("conv1", conv(channels, mid, 1, 1));
    bn1 = this->register_module("bn1", bn(mid));
    conv2 = this->register_module("conv2", conv(mid, mid, 3, mid));
    conv3 = this->register_module("conv3", conv(mid, channels, 1, 1));
    bn3 = this->register_module("bn3", bn(channels));
    conv3_smallscale2 = this->register_module("conv3_smallscale2", conv(mid, mid, 3, 1));
    bn3_smallscale2 = this->register_module("bn3_smallscale2", bn(mid));
    conv3_smallscale4 = this->register_module("conv3_smallscale4", conv(mid, mid, 3, 1));
    bn3_smallscale4 = this->register_module("bn3_smallscale4", bn(mid));
  }

  Tensor<T> forward(const Tensor<T>& x) {
    TV_CHECK(x.dim() == 4 && x.size(0) % frames == 0, "TDN long-term module: expected N*", frames,
             " x C x H x W, got ", x.shape());
    TV_CHECK(x.size(2) >= 2 && x.size(3) >= 2, "TDN long-term module: its 2x2 average pool needs maps of at least 2x2, got ",
             x.shape(), " (layer4 runs at 1/32 of the frame: frames of at least 64x64)");
    const Tensor<T> b = (*bn1)((*conv1)(x));
    const Tensor<T> c = (*conv2)(b);
    const int64_t N = x.size(0) / frames, mid = b.size(1), h = b.size(2), w = b.size(3);
    const Tensor<T> b5 = b.view({N, frames, mid, h, w}), c5 = c.view({N, frames, mid, h, w});
    // The differences, zero at the segment with no neighbour in that direction.
    Tensor<T> fwd, bwd;
    if (frames == 1) {
      fwd = bwd = zeros<T>(b.shape(), x.device());
    } else {
      const Tensor<T> none = zeros<T>({N, 1, mid, h, w}, x.device());
      fwd = cat<T>({sub(c5.narrow(1, 1, frames - 1), b5.narrow(1, 0, frames - 1)), none}, 1).view(b.shape());
      bwd = cat<T>({none, sub(c5.narrow(1, 0, frames - 1), b5.narrow(1, 1, frames - 1))}, 1).view(b.shape());
    }
    // One statement per norm call, in the authors' order: a norm that runs twice updates its running statistics
    // twice, and the order of the two updates shows in them.
    auto half_scale = [&](const Tensor<T>& d) {
      return (*bn3_smallscale2)((*conv3_smallscale2)(avg_pool2d(d, AvgPool2dOptions(2).stride(2))));
    };
    auto full_scale = [&](const Tensor<T>& d) { return (*bn3_smallscale4)((*conv3_smallscale4)(d)); };
    const Tensor<T> fwd_half = half_scale(fwd);
    const Tensor<T> bwd_half = half_scale(bwd);
    const Tensor<T> fwd_full = full_scale(fwd);
    const Tensor<T> bwd_full = full_scale(bwd);
    const T third = T(1) / T(3);
    auto attention = [&](const Tensor<T>& d, const Tensor<T>& half, const Tensor<T>& full) {
      const Tensor<T> mixed = add(add(mul(d, third), mul(upsample_nearest(half, h, w), third)), mul(full, third));
      return sub(sigmoid((*bn3)((*conv3)(mixed))), T(0.5));
    };
    const Tensor<T> fwd_attention = attention(fwd, fwd_half, fwd_full);
    const Tensor<T> bwd_attention = attention(bwd, bwd_half, bwd_full);
    const Tensor<T> y = add(mul(fwd_attention, T(0.5)), mul(bwd_attention, T(0.5)));
    return add(x, mul(x, y));
  }

  int64_t frames;
  std::shared_ptr<nn::Conv2d<T>> conv1, conv2, conv3, conv3_smallscale2, conv3_smallscale4;
  std::shared_ptr<nn::BatchNorm2d<T>> bn1, bn3, bn3_smallscale2, bn3_smallscale4;
};

}  // namespace tv::models
