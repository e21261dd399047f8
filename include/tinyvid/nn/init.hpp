#pragma once
// Initializers with PyTorch's formulas (torch.nn.init), in place, drawing from a tv::Generator.
#include <cmath>
#include <utility>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv::nn::init {

// fan_in = dim 1 x receptive field, fan_out = dim 0 x receptive field (PyTorch's rule).
template <class T>
std::pair<int64_t, int64_t> fans(const Tensor<T>& t) {
  TV_CHECK(t.dim() >= 2, "init: fan in and fan out need at least 2 dims, got shape ", t.shape());
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

template <class T>
void uniform_(Tensor<T>& t, double lo, double hi, Generator& gen = default_generator()) {
  NoGradGuard no_grad;
  t.copy_(uniform<T>(t.shape(), lo, hi, gen, t.device()));
}

template <class T>
void normal_(Tensor<T>& t, double mean, double std, Generator& gen = default_generator()) {
  NoGradGuard no_grad;
  t.copy_(normal<T>(t.shape(), mean, std, gen, t.device()));
}

template <class T>
void constant_(Tensor<T>& t, double value) {
  NoGradGuard no_grad;
  t.fill_(static_cast<T>(value));
}

// Which fan Kaiming's formulas divide by (libtorch's torch::kFanIn / torch::kFanOut).
enum class FanMode { FanIn, FanOut };

// kaiming_normal_ for a ReLU (gain sqrt(2)): std = sqrt(2 / fan). FanMode::FanOut is what torchvision's ResNet
// uses for convs.
template <class T>
void kaiming_normal_(Tensor<T>& t, FanMode mode = FanMode::FanIn, Generator& gen = default_generator()) {
  auto [fan_in, fan_out] = fans(t);
  const double std = std::sqrt(2.0) / std::sqrt(static_cast<double>(mode == FanMode::FanIn ? fan_in : fan_out));
  normal_(t, 0.0, std, gen);
}

// kaiming_uniform_ with negative slope a, fan_in mode: PyTorch's default for Conv2d and Linear uses a = sqrt(5),
// which gives the bound 1 / sqrt(fan_in).
template <class T>
void kaiming_uniform_(Tensor<T>& t, double a = 0.0, Generator& gen = default_generator()) {
  auto [fan_in, fan_out] = fans(t);
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in));
  uniform_(t, -bound, bound, gen);
}

}  // namespace tv::nn::init
