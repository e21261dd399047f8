#pragma once
// TAM, the temporal adaptive module of TANet (Liu et al., "TAM: Temporal Adaptive Module for Video
// Recognition", arXiv 2005.06803), as MMAction2 builds it (mmaction/models/common/tam.py), with its
// parameter names, so a checkpoint converts key for key:
//   G (global branch): G.0 Linear(T, alpha T, no bias), G.1 BatchNorm1d, ReLU, G.3 Linear(alpha T, K, no bias),
//     softmax: from a channel's T pooled values, the K taps of that clip and channel's temporal kernel;
//   L (local branch): L.0 Conv1d(C, C / beta, 3, no bias), L.1 BatchNorm1d, ReLU, L.3 Conv1d(C / beta, C, 1),
//     sigmoid: from the pooled clip (C x T), an importance per channel and frame.
// out[n, t, c] = sum_k kernel[n, c, k] * (x * importance)[n, t + k - K/2, c] (zero outside the clip):
// MMAction2's grouped conv2d, written here as K shifted products so it stays in the clip's own layout.
#include <cmath>
#include <memory>
#include <string>

#include "tinyvid/nn/layers.hpp"
#include "tinyvid/ops/conv.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/index.hpp"
#include "tinyvid/ops/reduce.hpp"
#include "tinyvid/ops/softmax.hpp"

namespace tv::models {

// MMAction2's tam_cfg (its defaults, which its TANet configs keep).
struct TamOptions {
  int64_t alpha = 2;                 // G's hidden width: alpha * T
  int64_t beta = 4;                  // L's bottleneck: C / beta channels
  int64_t adaptive_kernel_size = 3;  // K, odd: the adaptive kernel's taps (padding K / 2, stride 1)
  int64_t conv1d_kernel_size = 3;    // L.0's temporal kernel, odd (padding half of it)
};

// torch.nn.Conv1d without bias (weight Cout x Cin x K, PyTorch's shape, stride 1, padding K / 2) on an
// N x Cin x L x 1 input: a conv2d with a K x 1 kernel over a view of the weight.
template <class T = float>
class TemporalConv1d : public nn::Module<T> {
 public:
  TemporalConv1d(int64_t in, int64_t out, int64_t k, Generator& gen) {
    weight = this->register_parameter("weight", zeros<T>({out, in, k}));
    // PyTorch's default: MMAction2's TANet builds its TAMs after its init_weights, so they keep it.
    nn::init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
  }
  Tensor<T> forward(const Tensor<T>& x) {
    const int64_t k = weight.size(2);
    return conv2d(x, weight.view({weight.size(0), weight.size(1), k, 1}), Tensor<T>(), {1, 1}, {k / 2, 0});
  }
  Tensor<T> weight;
};

// TAM's local branch L: children "0", "1", "3" as MMAction2's nn.Sequential (2 and 4 hold no parameters).
// Input N x C x T x 1 (pooled clips) -> importance N x C x T x 1 in (0, 1).
template <class T = float>
class TamLocal : public nn::Module<T> {
 public:
  TamLocal(int64_t channels, int64_t mid, int64_t kernel_size, int64_t stats_group_clips, Generator& gen) {
    conv1 = this->register_module("0", std::make_shared<TemporalConv1d<T>>(channels, mid, kernel_size, gen));
    bn = this->register_module(
        "1", std::make_shared<nn::BatchNorm2d<T>>(nn::BatchNormOptions(mid).stats_group_clips(stats_group_clips)));
    conv2 = this->register_module("3", std::make_shared<TemporalConv1d<T>>(mid, channels, 1, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) { return sigmoid(conv2->forward(relu((*bn)(conv1->forward(x))))); }
  std::shared_ptr<TemporalConv1d<T>> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d<T>> bn;
};

template <class T = float>
class Tam : public nn::Module<T> {
 public:
  // channels: C of the input (the block's conv1 output); frames: T per clip. stats_group_clips as every norm of
  // the model (ResNetOptions): the two batch norms then also take their statistics per group of clips.
  Tam(int64_t channels, int64_t frames, const TamOptions& o, int64_t stats_group_clips, Generator& gen)
      : channels(channels), frames(frames), options(o) {
    TV_CHECK(frames >= 1, "TAM: frames must be at least 1, got ", frames);
    TV_CHECK(o.alpha >= 1 && o.beta >= 1 && channels / o.beta >= 1, "TAM: need alpha >= 1, beta >= 1 and at least beta ",
             "channels, got alpha ", o.alpha, ", beta ", o.beta, ", ", channels, " channels");
    TV_CHECK(o.adaptive_kernel_size >= 1 && o.adaptive_kernel_size % 2 == 1 && o.conv1d_kernel_size >= 1 &&
                 o.conv1d_kernel_size % 2 == 1,
             "TAM: the kernel sizes must be odd, got adaptive_kernel_size ", o.adaptive_kernel_size,
             " and conv1d_kernel_size ", o.conv1d_kernel_size);
    const int64_t hidden = frames * o.alpha, mid = channels / o.beta;
    G = this->register_module("G", std::make_shared<nn::Sequential<T>>());
    g_fc1 = std::make_shared<nn::Linear<T>>(nn::LinearOptions(frames, hidden).bias(false), gen);
    // G's rows are clip x channel (C rows per clip); L's rows are clips.
    g_bn = std::make_shared<nn::BatchNorm2d<T>>(
        nn::BatchNormOptions(hidden).stats_group_clips(stats_group_clips).rows_per_clip(channels));
    g_fc2 = std::make_shared<nn::Linear<T>>(nn::LinearOptions(hidden, o.adaptive_kernel_size).bias(false), gen);
    G->push_back(g_fc1);
    G->push_back(g_bn);
    G->push_back(std::make_shared<nn::ReLU<T>>());
    G->push_back(g_fc2);
    L = this->register_module("L",
                              std::make_shared<TamLocal<T>>(channels, mid, o.conv1d_kernel_size, stats_group_clips, gen));
  }

  // x: N*T x C x H x W, the frames of a clip adjacent -> the same shape.
  Tensor<T> forward(const Tensor<T>& x) {
    TV_CHECK(x.dim() == 4 && x.size(1) == channels && x.size(0) % frames == 0, "TAM: expected an input of shape N*",
             frames, " x ", channels, " x H x W, got ", x.shape());
    const int64_t Tn = frames, C = channels, N = x.size(0) / Tn, HW = x.size(2) * x.size(3);
    const int64_t hidden = g_bn->options.num_features(), K = options.adaptive_kernel_size;
    Tensor<T> theta = mean(x, {2, 3}).view({N, Tn, C}).permute({0, 2, 1});  // N x C x T
    // Global branch: each clip and channel's kernel from its T pooled values.
    Tensor<T> g = (*g_fc1)(theta.reshape({N * C, Tn}));
    g = relu((*g_bn)(g.view({N * C, hidden, 1, 1}))).view({N * C, hidden});
    Tensor<T> kernel = softmax((*g_fc2)(g), 1).view({N, C, K}).permute({0, 2, 1});  // N x K x C
    // Local branch: the importance of each frame and channel.
    Tensor<T> importance = L->forward(theta.reshape({N, C, Tn, 1})).permute({0, 2, 1, 3});  // N x T x C x 1
    Tensor<T> v = mul(x.reshape({N, Tn, C, HW}), importance);
    // The adaptive temporal convolution: tap k reads frame t + k - K/2.
    Tensor<T> y;
    for (int64_t k = 0; k < K; ++k) {
      Tensor<T> tap = kernel.narrow(1, k, 1).reshape({N, 1, C, 1});
      Tensor<T> term = mul(k == K / 2 ? v : shift(v, 1, K / 2 - k), tap);
      y = k == 0 ? term : add(y, term);
    }
    return y.view(x.shape());
  }

  int64_t channels, frames;
  TamOptions options;
  std::shared_ptr<nn::Sequential<T>> G;
  std::shared_ptr<TamLocal<T>> L;
  std::shared_ptr<nn::Linear<T>> g_fc1, g_fc2;
  std::shared_ptr<nn::BatchNorm2d<T>> g_bn;
};

}  // namespace tv::models
