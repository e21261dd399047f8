#pragma once
// The optimizers' kernels on contiguous buffers: SGD's fused update (optim/sgd.hpp) and the norm and scaling
// of gradient clipping (optim/clip_grad.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

namespace detail {

// The step's scalars in float: PyTorch also converts them to the tensors' dtype before the update.
struct SgdScalars {
  float lr, momentum, dampening_keep /* 1 - dampening */, weight_decay;
};

// One fused pass over a contiguous parameter: every choice is a template flag, so each instantiation is a
// branch-free loop the compiler vectorizes. kFirstStep: the momentum buffer is not yet initialised.
template <bool kDecay, bool kMomentum, bool kNesterov, bool kFirstStep>
void sgd_update(float* __restrict p, const float* __restrict grad, float* __restrict buf, int64_t n,
                const SgdScalars s) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if constexpr (kDecay) g = g + s.weight_decay * p[i];
    if constexpr (kMomentum) {
      float b;
      if constexpr (kFirstStep) b = g;  // PyTorch: the buffer starts as a copy of g, no dampening
      else b = s.momentum * buf[i] + s.dampening_keep * g;
      buf[i] = b;
      if constexpr (kNesterov) g = g + s.momentum * b;
      else g = b;
    }
    p[i] = p[i] - s.lr * g;
  }
}

template <bool kDecay>
void sgd_update_dispatch(float* p, const float* grad, float* buf, int64_t n, const SgdScalars& s, bool momentum,
                         bool nesterov, bool first_step) {
  if (!momentum) return sgd_update<kDecay, false, false, false>(p, grad, buf, n, s);
  if (nesterov) {
    return first_step ? sgd_update<kDecay, true, true, true>(p, grad, buf, n, s)
                      : sgd_update<kDecay, true, true, false>(p, grad, buf, n, s);
  }
  return first_step ? sgd_update<kDecay, true, false, true>(p, grad, buf, n, s)
                    : sgd_update<kDecay, true, false, false>(p, grad, buf, n, s);
}

}  // namespace detail

// One SGD step on a parameter p (n values) with its grad, torch.optim.SGD's update (optim/sgd.hpp); buf is
// the momentum buffer (null without momentum), written fresh on the first step. decay / momentum say whether
// weight decay / momentum apply (the float scalars are what they use). Elementwise, so splitting across
// threads changes no result bit.
inline void sgd_step(float* p, const float* grad, float* buf, int64_t n, float lr, float momentum,
                     float dampening_keep, float weight_decay, bool decay, bool use_momentum, bool nesterov,
                     bool first_step) {
  const detail::SgdScalars s{lr, momentum, dampening_keep, weight_decay};
  parallel_for(0, n, kParallelGrain, [&](int64_t b, int64_t e) {
    float* bb = buf ? buf + b : nullptr;
    if (decay) detail::sgd_update_dispatch<true>(p + b, grad + b, bb, e - b, s, use_momentum, nesterov, first_step);
    else detail::sgd_update_dispatch<false>(p + b, grad + b, bb, e - b, s, use_momentum, nesterov, first_step);
  });
}

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

// Adds one grad (n values) into the running total of a p-norm over several: *acc += sum |x|^p, or for
// p = INFINITY *acc = max(*acc, max |x|) with NaN winning. first: *acc starts at 0 (not read).
template <class T>
void grad_norm_accumulate(const T* x, int64_t n, double p, bool first, double* acc) {
  const double total = first ? 0.0 : *acc;
  if (std::isinf(p)) {
    const double m = detail::max_abs(x, n);
    *acc = (m > total || std::isnan(m)) ? m : total;
  } else {
    *acc = total + detail::sum_abs_pow(x, n, p);
  }
}

// *acc = (*acc)^(1/p) for a finite p: the norm from grad_norm_accumulate's sum.
inline void grad_norm_finish(double* acc, double p) {
  if (!std::isinf(p)) *acc = p == 2 ? std::sqrt(*acc) : std::pow(*acc, 1.0 / p);
}

// x *= max_norm / (*total + 1e-6) where that is below 1 (torch.nn.utils.clip_grad_norm_'s coefficient, clamped
// at 1). Written so that a NaN coefficient scales, as torch's clamp passes NaN on.
template <class T>
void clip_grad_scale(T* x, int64_t n, const double* total, double max_norm) {
  const double coef = max_norm / (*total + 1e-6);
  if (coef >= 1.0) return;
  const T scale = static_cast<T>(coef);
  parallel_for(0, n, kParallelGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) x[i] *= scale;
  });
}

}  // namespace tv::cpu
