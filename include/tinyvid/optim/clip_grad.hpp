#pragma once
// Gradient-norm clipping with exactly torch.nn.utils.clip_grad_norm_'s rule: the norm is taken over all
// grads together, and when max_norm / (total + 1e-6) < 1 every grad is scaled by that coefficient.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/tensor.hpp"

namespace tv::optim {

namespace detail {

// Sum of |x|^p (p = 1, 2 or any other positive value) over a contiguous buffer, in double. The buffer is cut
// into fixed blocks summed in order, so the result does not depend on the thread count.
template <class T>
double sum_abs_pow(const T* x, int64_t n, double p) {
  const int64_t blocks = (n + kParallelGrain - 1) / kParallelGrain;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T* xb = x + b * kParallelGrain;
      const int64_t len = std::min(kParallelGrain, n - b * kParallelGrain);
      double acc = 0;
      if (p == 2) {
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < len; ++i) acc += static_cast<double>(xb[i]) * static_cast<double>(xb[i]);
      } else if (p == 1) {
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < len; ++i) acc += std::abs(static_cast<double>(xb[i]));
      } else {
        for (int64_t i = 0; i < len; ++i) acc += std::pow(std::abs(static_cast<double>(xb[i])), p);
      }
      partial[static_cast<size_t>(b)] = acc;
    }
  });
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

// max |x|, NaN if any element is NaN (as torch's max).
template <class T>
double max_abs(const T* x, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) {
    double a = std::abs(static_cast<double>(x[i]));
    if (a > m || std::isnan(a)) m = a;
    if (std::isnan(m)) break;
  }
  return m;
}

}  // namespace detail

// Scales the grads of `params` in place so that their total norm is at most about max_norm; returns the total
// norm before clipping (0 when no parameter has a grad). norm_type: any p > 0, or INFINITY for the max norm.
// Parameters without a grad are skipped. As in PyTorch, a non-finite total norm is not an error: the
// coefficient then turns every grad into NaN (or zero for an infinite norm), which a trainer can detect.
template <class T>
double clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm, double norm_type = 2.0) {
  TV_CHECK(max_norm >= 0, "clip_grad_norm: expected max_norm >= 0, got ", max_norm);
  TV_CHECK(norm_type > 0, "clip_grad_norm: expected norm_type > 0 (or INFINITY), got ", norm_type);
  NoGradGuard no_grad;
  std::vector<Tensor<T>> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    TV_CHECK(params[i].defined(), "clip_grad_norm: parameter ", i, " is an undefined tensor");
    Tensor<T> g = params[i].grad();
    if (!g.defined()) continue;
    TV_CHECK(g.device() == Device::CPU, "clip_grad_norm: the grad of parameter ", i, " is on ",
             device_name(g.device()), ", expected cpu");
    TV_CHECK(g.is_contiguous(), "clip_grad_norm: the grad of parameter ", i, " (shape ", g.shape(), ", strides ",
             g.strides(), ") is not contiguous");
    grads.push_back(g);
  }
  if (grads.empty()) return 0.0;

  const bool is_inf = std::isinf(norm_type);
  double total = 0;
  for (const auto& g : grads) {
    if (is_inf) {
      double m = detail::max_abs(g.data(), g.numel());
      total = (m > total || std::isnan(m)) ? m : total;
    } else {
      total += detail::sum_abs_pow(g.data(), g.numel(), norm_type);
    }
  }
  if (!is_inf) total = norm_type == 2 ? std::sqrt(total) : std::pow(total, 1.0 / norm_type);

  const double coef = max_norm / (total + 1e-6);
  if (coef >= 1.0) return total;  // written so that a NaN coefficient scales, as torch's clamp passes NaN on
  const T scale = static_cast<T>(coef);
  for (auto& g : grads) {
    T* x = g.data();
    parallel_for(0, g.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) x[i] *= scale;
    });
    g.storage()->bump_version();
  }
  return total;
}

}  // namespace tv::optim
