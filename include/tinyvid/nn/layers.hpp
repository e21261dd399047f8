#pragma once
// Layers as in torch.nn, with the same parameter names, shapes, defaults and initialization, so a
// PyTorch state_dict loads key for key. Options are small structs with chained setters and getters
// (TV_ARG, core/options.hpp), like libtorch's Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tinyvid/core/options.hpp"
#include "tinyvid/nn/init.hpp"
#include "tinyvid/nn/module.hpp"
#include "tinyvid/ops/batch_norm.hpp"
#include "tinyvid/ops/conv.hpp"
#include "tinyvid/ops/dropout.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/linear.hpp"
#include "tinyvid/ops/lstm.hpp"
#include "tinyvid/ops/pool.hpp"

namespace tv::nn {

// A module with one tensor in and one out: what Sequential chains.
template <class T = float>
class UnaryModule : public Module<T> {
 public:
  virtual Tensor<T> forward(const Tensor<T>& x) = 0;
  Tensor<T> operator()(const Tensor<T>& x) { return forward(x); }
};

// Every layer takes an options struct (TV_ARG fields: a chained setter name(v) and a getter name()) and keeps it
// as its public `options`, as libtorch's modules do. A positional constructor exists only where libtorch has one
// (Linear(in, out), LSTMCell(in, hidden), Dropout(p), the pools' kernel size); a non-default bias is always
// spelled .bias(false). The trailing Generator is tinyvid's: the initial weights are drawn from it.

struct Conv2dOptions {
  Conv2dOptions(int64_t in, int64_t out, Pair kernel) : in_channels_(in), out_channels_(out), kernel_size_(kernel) {}
  Conv2dOptions(int64_t in, int64_t out, int64_t kernel) : Conv2dOptions(in, out, Pair{kernel, kernel}) {}
  TV_ARG(Conv2dOptions, int64_t, in_channels);
  TV_ARG(Conv2dOptions, int64_t, out_channels);
  TV_ARG(Conv2dOptions, Pair, kernel_size);
  TV_ARG(Conv2dOptions, Pair, stride) = {1, 1};
  TV_ARG(Conv2dOptions, Pair, padding) = {0, 0};
  TV_ARG(Conv2dOptions, Pair, dilation) = {1, 1};
  TV_ARG(Conv2dOptions, int64_t, groups) = 1;
  TV_ARG(Conv2dOptions, bool, bias) = true;

 public:
  Conv2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  Conv2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  Conv2dOptions& dilation(int64_t d) { return dilation(Pair{d, d}); }
};

template <class T = float>
class Conv2d : public UnaryModule<T> {
 public:
  explicit Conv2d(const Conv2dOptions& o, Generator& gen = default_generator()) : options(o) {
    TV_CHECK(o.in_channels() % o.groups() == 0 && o.out_channels() % o.groups() == 0, "Conv2d: in_channels ",
             o.in_channels(), " and out_channels ", o.out_channels(), " must be divisible by groups ", o.groups());
    weight = this->register_parameter(
        "weight", zeros<T>({o.out_channels(), o.in_channels() / o.groups(), o.kernel_size()[0], o.kernel_size()[1]}));
    init::kaiming_uniform_(weight, std::sqrt(5.0), gen);  // PyTorch's default
    if (o.bias()) {
      bias = this->register_parameter("bias", zeros<T>({o.out_channels()}));
      const double bound = 1.0 / std::sqrt(static_cast<double>(init::fans(weight).first));
      init::uniform_(bias, -bound, bound, gen);
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return conv2d(x, weight, bias, options.stride(), options.padding(), options.dilation(), options.groups());
  }
  // Training drops a frozen conv's prepared weights (nn::freeze).
  void train(bool on = true) override {
    UnaryModule<T>::train(on);
    if (on) weight_cache.reset();
  }
  Conv2dOptions options;
  Tensor<T> weight, bias;
  // Set by nn::freeze: the weights as the kernels use them, kept between inference calls (nn::conv_bn).
  std::shared_ptr<kernel::ConvWeightCache> weight_cache;
};

struct BatchNormOptions {
  explicit BatchNormOptions(int64_t num_features) : num_features_(num_features) {}
  TV_ARG(BatchNormOptions, int64_t, num_features);
  TV_ARG(BatchNormOptions, double, eps) = 1e-5;
  TV_ARG(BatchNormOptions, double, momentum) = 0.1;  // negative: a cumulative average (PyTorch's None)
  TV_ARG(BatchNormOptions, bool, affine) = true;
  TV_ARG(BatchNormOptions, bool, track_running_stats) = true;
  // > 0: training statistics over groups of this many clips of the batch, as one batch norm per device in
  // data-parallel training (see ops/batch_norm.hpp); 0: over the whole batch.
  TV_ARG(BatchNormOptions, int64_t, stats_group_clips) = 0;
  // Input samples (entries of dim 0) per clip: the frames per clip for a 2-D CNN's N*T x C x H x W input.
  TV_ARG(BatchNormOptions, int64_t, rows_per_clip) = 1;
};

// torch.nn.BatchNorm2d: weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked (kept
// as a T tensor holding a whole number; PyTorch's is int64).
template <class T = float>
class BatchNorm2d : public UnaryModule<T> {
 public:
  explicit BatchNorm2d(const BatchNormOptions& o) : options(o) {
    const int64_t c = o.num_features();
    if (o.affine()) {
      weight = this->register_parameter("weight", ones<T>({c}));
      bias = this->register_parameter("bias", zeros<T>({c}));
    }
    if (o.track_running_stats()) {
      running_mean = this->register_buffer("running_mean", zeros<T>({c}));
      running_var = this->register_buffer("running_var", ones<T>({c}));
      num_batches_tracked = this->register_buffer("num_batches_tracked", zeros<T>({}));
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override { return forward(x, func_options()); }
  // batch_norm with this module's tensors and `o` (func_options(), perhaps with a residual and ReLU: nn::conv_bn).
  Tensor<T> forward(const Tensor<T>& x, const BatchNormFuncOptions<T>& o) {
    TV_CHECK(x.dim() == 4, "BatchNorm2d: expected a 4-D input (N x C x H x W), got shape ", x.shape());
    return batch_norm(x, running_mean, running_var, o);
  }
  // The functional options of this module's forward in its current mode.
  BatchNormFuncOptions<T> func_options() const {
    const bool update = this->is_training() && options.track_running_stats();
    // num_batches_tracked is counted by the kernel on the input's device (no host read for momentum None).
    return BatchNormFuncOptions<T>()
        .weight(weight)
        .bias(bias)
        .training(this->is_training() || !options.track_running_stats())
        .momentum(options.momentum())
        .eps(options.eps())
        .stats_group_clips(options.stats_group_clips())
        .rows_per_clip(options.rows_per_clip())
        .num_batches_tracked(update ? num_batches_tracked : Tensor<T>());
  }
  BatchNormOptions options;
  Tensor<T> weight, bias, running_mean, running_var, num_batches_tracked;
};

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  TV_ARG(LinearOptions, int64_t, in_features);
  TV_ARG(LinearOptions, int64_t, out_features);
  TV_ARG(LinearOptions, bool, bias) = true;
};

// torch.nn.Linear: weight (out x in) kaiming_uniform(a = sqrt(5)), bias U(-1/sqrt(in), 1/sqrt(in)).
template <class T = float>
class Linear : public UnaryModule<T> {
 public:
  explicit Linear(const LinearOptions& o, Generator& gen = default_generator()) : options(o) {
    weight = this->register_parameter("weight", zeros<T>({o.out_features(), o.in_features()}));
    init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
    if (o.bias()) {
      bias = this->register_parameter("bias", zeros<T>({o.out_features()}));
      const double bound = o.in_features() > 0 ? 1.0 / std::sqrt(static_cast<double>(o.in_features())) : 0.0;
      init::uniform_(bias, -bound, bound, gen);
    }
  }
  Linear(int64_t in_features, int64_t out_features, Generator& gen = default_generator())
      : Linear(LinearOptions(in_features, out_features), gen) {}
  Tensor<T> forward(const Tensor<T>& x) override { return linear(x, weight, bias); }
  LinearOptions options;
  Tensor<T> weight, bias;
};

struct LSTMCellOptions {
  LSTMCellOptions(int64_t input_size, int64_t hidden_size) : input_size_(input_size), hidden_size_(hidden_size) {}
  TV_ARG(LSTMCellOptions, int64_t, input_size);
  TV_ARG(LSTMCellOptions, int64_t, hidden_size);
  TV_ARG(LSTMCellOptions, bool, bias) = true;
};

// torch.nn.LSTMCell: weight_ih (4H x in), weight_hh (4H x H), bias_ih, bias_hh, all U(-1/sqrt(H), 1/sqrt(H)).
template <class T = float>
class LSTMCell : public Module<T> {
 public:
  explicit LSTMCell(const LSTMCellOptions& o, Generator& gen = default_generator()) : options(o) {
    const int64_t H = o.hidden_size();
    const double bound = 1.0 / std::sqrt(static_cast<double>(H));
    auto param = [&](const char* name, Shape shape) {
      Tensor<T> t = this->register_parameter(name, zeros<T>(shape));
      init::uniform_(t, -bound, bound, gen);
      return t;
    };
    weight_ih = param("weight_ih", {4 * H, o.input_size()});
    weight_hh = param("weight_hh", {4 * H, H});
    if (o.bias()) {
      bias_ih = param("bias_ih", {4 * H});
      bias_hh = param("bias_hh", {4 * H});
    }
  }
  LSTMCell(int64_t input_size, int64_t hidden_size, Generator& gen = default_generator())
      : LSTMCell(LSTMCellOptions(input_size, hidden_size), gen) {}
  // The state starts at zeros when `state` is not given, as in PyTorch.
  LstmState<T> forward(const Tensor<T>& x, LstmState<T> state = {}) {
    const int64_t H = options.hidden_size();
    if (!state.h.defined()) state = {zeros<T>({x.size(0), H}, x.device()), zeros<T>({x.size(0), H}, x.device())};
    return lstm_cell(x, state, weight_ih, weight_hh, bias_ih, bias_hh);
  }
  LstmState<T> operator()(const Tensor<T>& x, LstmState<T> state = {}) { return forward(x, state); }
  LSTMCellOptions options;
  Tensor<T> weight_ih, weight_hh, bias_ih, bias_hh;
};

struct DropoutOptions {
  /* implicit */ DropoutOptions(double p = 0.5) : p_(p) {}  // so Dropout(0.5) reads as in libtorch
  TV_ARG(DropoutOptions, double, p);
};

template <class T = float>
class Dropout : public UnaryModule<T> {
 public:
  explicit Dropout(const DropoutOptions& o = {}, Generator& gen = default_generator()) : options(o), gen_(&gen) {}
  Tensor<T> forward(const Tensor<T>& x) override { return dropout(x, options.p(), this->is_training(), *gen_); }
  DropoutOptions options;

 private:
  Generator* gen_;
};

template <class T = float>
class ReLU : public UnaryModule<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return relu(x); }
};

// The pool options are tv::'s (ops/pool.hpp), one set for the layers and the functions, as libtorch's
// MaxPool2dFuncOptions is MaxPool2dOptions.
using MaxPool2dOptions = ::tv::MaxPool2dOptions;
using AvgPool2dOptions = ::tv::AvgPool2dOptions;
using AdaptiveAvgPool2dOptions = ::tv::AdaptiveAvgPool2dOptions;

template <class T = float>
class MaxPool2d : public UnaryModule<T> {
 public:
  explicit MaxPool2d(const MaxPool2dOptions& o) : options(o) {}
  Tensor<T> forward(const Tensor<T>& x) override { return max_pool2d(x, options); }
  MaxPool2dOptions options;
};

template <class T = float>
class AvgPool2d : public UnaryModule<T> {
 public:
  explicit AvgPool2d(const AvgPool2dOptions& o) : options(o) {}
  Tensor<T> forward(const Tensor<T>& x) override { return avg_pool2d(x, options); }
  AvgPool2dOptions options;
};

template <class T = float>
class AdaptiveAvgPool2d : public UnaryModule<T> {
 public:
  explicit AdaptiveAvgPool2d(const AdaptiveAvgPool2dOptions& o) : options(o) {}
  Tensor<T> forward(const Tensor<T>& x) override { return adaptive_avg_pool2d(x, options); }
  AdaptiveAvgPool2dOptions options;
};

// Children named "0", "1", ... as torch.nn.Sequential.
template <class T = float>
class Sequential : public UnaryModule<T> {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<UnaryModule<T>>> modules) {
    for (auto& m : modules) push_back(m);
  }
  void push_back(std::shared_ptr<UnaryModule<T>> m) {
    this->register_module(std::to_string(layers_.size()), m);
    layers_.push_back(std::move(m));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    Tensor<T> y = x;
    for (auto& m : layers_) y = m->forward(y);
    return y;
  }
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<UnaryModule<T>>& operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<UnaryModule<T>>> layers_;
};

}  // namespace tv::nn
