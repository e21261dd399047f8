#pragma once
// Layers as in torch.nn, with the same parameter names, shapes, defaults and initialization, so a
// PyTorch state_dict loads key for key. Options are small structs with chained setters, like
// libtorch's Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

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

#define TV_OPTION(Self, type, name) \
  Self& name(type v) {              \
    name##_ = v;                    \
    return *this;                   \
  }                                 \
  type name##_

struct Conv2dOptions {
  Conv2dOptions(int64_t in, int64_t out, Pair kernel) : in_channels(in), out_channels(out), kernel_size(kernel) {}
  Conv2dOptions(int64_t in, int64_t out, int64_t kernel) : Conv2dOptions(in, out, Pair{kernel, kernel}) {}
  int64_t in_channels, out_channels;
  Pair kernel_size;
  TV_OPTION(Conv2dOptions, Pair, stride) = {1, 1};
  TV_OPTION(Conv2dOptions, Pair, padding) = {0, 0};
  TV_OPTION(Conv2dOptions, Pair, dilation) = {1, 1};
  TV_OPTION(Conv2dOptions, int64_t, groups) = 1;
  TV_OPTION(Conv2dOptions, bool, bias) = true;
  Conv2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  Conv2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  Conv2dOptions& dilation(int64_t d) { return dilation(Pair{d, d}); }
};

template <class T = float>
class Conv2d : public UnaryModule<T> {
 public:
  explicit Conv2d(const Conv2dOptions& o, Generator& gen = default_generator()) : options(o) {
    TV_CHECK(o.in_channels % o.groups_ == 0 && o.out_channels % o.groups_ == 0, "Conv2d: in_channels ", o.in_channels,
             " and out_channels ", o.out_channels, " must be divisible by groups ", o.groups_);
    weight = this->register_parameter(
        "weight", zeros<T>({o.out_channels, o.in_channels / o.groups_, o.kernel_size[0], o.kernel_size[1]}));
    init::kaiming_uniform_(weight, std::sqrt(5.0), gen);  // PyTorch's default
    if (o.bias_) {
      bias = this->register_parameter("bias", zeros<T>({o.out_channels}));
      const double bound = 1.0 / std::sqrt(static_cast<double>(init::fans(weight).first));
      init::uniform_(bias, -bound, bound, gen);
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return conv2d(x, weight, bias, options.stride_, options.padding_, options.dilation_, options.groups_);
  }
  Conv2dOptions options;
  Tensor<T> weight, bias;
};

struct BatchNormOptions {
  explicit BatchNormOptions(int64_t features) : num_features(features) {}
  int64_t num_features;
  TV_OPTION(BatchNormOptions, double, eps) = 1e-5;
  TV_OPTION(BatchNormOptions, double, momentum) = 0.1;  // negative: a cumulative average (PyTorch's None)
  TV_OPTION(BatchNormOptions, bool, affine) = true;
  TV_OPTION(BatchNormOptions, bool, track_running_stats) = true;
  // > 0: training statistics over groups of this many samples of the batch, as one batch norm per device
  // in data-parallel training (see batch_norm); 0: over the whole batch.
  TV_OPTION(BatchNormOptions, int64_t, stats_group_size) = 0;
};

// torch.nn.BatchNorm2d: weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked (kept
// as a T tensor holding a whole number; PyTorch's is int64).
template <class T = float>
class BatchNorm2d : public UnaryModule<T> {
 public:
  explicit BatchNorm2d(const BatchNormOptions& o) : options(o) {
    const int64_t c = o.num_features;
    if (o.affine_) {
      weight = this->register_parameter("weight", ones<T>({c}));
      bias = this->register_parameter("bias", zeros<T>({c}));
    }
    if (o.track_running_stats_) {
      running_mean = this->register_buffer("running_mean", zeros<T>({c}));
      running_var = this->register_buffer("running_var", ones<T>({c}));
      num_batches_tracked = this->register_buffer("num_batches_tracked", zeros<T>({}));
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    TV_CHECK(x.dim() == 4, "BatchNorm2d: expected a 4-D input (N x C x H x W), got shape ", x.shape());
    double momentum = options.momentum_;
    if (this->is_training() && options.track_running_stats_) {
      NoGradGuard no_grad;
      num_batches_tracked.add_(ones<T>({}));
      if (momentum < 0) momentum = 1.0 / num_batches_tracked.item();
    }
    const bool batch_stats = this->is_training() || !options.track_running_stats_;
    return batch_norm(x, running_mean, running_var, weight, bias, batch_stats, momentum, options.eps_, 1,
                      options.stats_group_size_);
  }
  BatchNormOptions options;
  Tensor<T> weight, bias, running_mean, running_var, num_batches_tracked;
};

template <class T = float>
class Linear : public UnaryModule<T> {
 public:
  Linear(int64_t in_features, int64_t out_features, bool with_bias = true, Generator& gen = default_generator()) {
    weight = this->register_parameter("weight", zeros<T>({out_features, in_features}));
    init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
    if (with_bias) {
      bias = this->register_parameter("bias", zeros<T>({out_features}));
      const double bound = in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 0.0;
      init::uniform_(bias, -bound, bound, gen);
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override { return linear(x, weight, bias); }
  Tensor<T> weight, bias;
};

// torch.nn.LSTMCell: weight_ih (4H x in), weight_hh (4H x H), bias_ih, bias_hh, all U(-1/sqrt(H), 1/sqrt(H)).
template <class T = float>
class LSTMCell : public Module<T> {
 public:
  LSTMCell(int64_t input_size, int64_t hidden_size, bool with_bias = true, Generator& gen = default_generator())
      : hidden_size(hidden_size) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
    auto param = [&](const char* name, Shape shape) {
      Tensor<T> t = this->register_parameter(name, zeros<T>(shape));
      init::uniform_(t, -bound, bound, gen);
      return t;
    };
    weight_ih = param("weight_ih", {4 * hidden_size, input_size});
    weight_hh = param("weight_hh", {4 * hidden_size, hidden_size});
    if (with_bias) {
      bias_ih = param("bias_ih", {4 * hidden_size});
      bias_hh = param("bias_hh", {4 * hidden_size});
    }
  }
  // The state starts at zeros when `state` is not given, as in PyTorch.
  LstmState<T> forward(const Tensor<T>& x, LstmState<T> state = {}) {
    if (!state.h.defined()) state = {zeros<T>({x.size(0), hidden_size}), zeros<T>({x.size(0), hidden_size})};
    return lstm_cell(x, state, weight_ih, weight_hh, bias_ih, bias_hh);
  }
  LstmState<T> operator()(const Tensor<T>& x, LstmState<T> state = {}) { return forward(x, state); }
  int64_t hidden_size;
  Tensor<T> weight_ih, weight_hh, bias_ih, bias_hh;
};

template <class T = float>
class Dropout : public UnaryModule<T> {
 public:
  explicit Dropout(double p = 0.5, Generator& gen = default_generator()) : p(p), gen_(&gen) {}
  Tensor<T> forward(const Tensor<T>& x) override { return dropout(x, p, this->is_training(), *gen_); }
  double p;

 private:
  Generator* gen_;
};

template <class T = float>
class ReLU : public UnaryModule<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return relu(x); }
};

template <class T = float>
class MaxPool2d : public UnaryModule<T> {
 public:
  MaxPool2d(Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0}, bool ceil_mode = false)
      : kernel(kernel), stride(stride), padding(padding), ceil_mode(ceil_mode) {}
  Tensor<T> forward(const Tensor<T>& x) override { return max_pool2d(x, kernel, stride, padding, ceil_mode); }
  Pair kernel, stride, padding;
  bool ceil_mode;
};

template <class T = float>
class AvgPool2d : public UnaryModule<T> {
 public:
  AvgPool2d(Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true)
      : kernel(kernel), stride(stride), padding(padding), ceil_mode(ceil_mode), count_include_pad(count_include_pad) {}
  Tensor<T> forward(const Tensor<T>& x) override {
    return avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad);
  }
  Pair kernel, stride, padding;
  bool ceil_mode, count_include_pad;
};

template <class T = float>
class AdaptiveAvgPool2d : public UnaryModule<T> {
 public:
  explicit AdaptiveAvgPool2d(Pair output_size) : output_size(output_size) {}
  Tensor<T> forward(const Tensor<T>& x) override { return adaptive_avg_pool2d(x, output_size); }
  Pair output_size;
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

#undef TV_OPTION

}  // namespace tv::nn
