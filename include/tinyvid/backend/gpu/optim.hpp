#pragma once
// The CUDA backend's optimizer kernels (declared in backend/cuda.hpp): SGD's fused update, elementwise with
// the CPU's float arithmetic, and the norm and scaling of gradient clipping. The norm stays on the device:
// |g|^p is summed in double in pieces (as gpu/reduce.hpp's sum: interleaved, then a tree) into a one-element accumulator,
// which the scaling reads there, so no step waits for the host.
#include <cmath>
#include <cstdint>
#include <memory>

#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/gpu/launch.hpp"
#include "tinyvid/backend/gpu/reduce.hpp"
#include "tinyvid/core/storage.hpp"

namespace tv::cuda {

// torch.optim.SGD's update, operation for operation as cpu::sgd_step. On the GPU each product and sum is
// rounded on its own (the _rn intrinsics), because nvcc would otherwise fuse a * b + c into one FMA and the
// result would differ from the CPU's in the last bit.
struct SgdStepKernel {
  float* p;
  const float* grad;
  float* buf;  // null without momentum
  int64_t n;
  float lr, momentum, dampening_keep, weight_decay;
  bool decay, use_momentum, nesterov, first_step;

  static TV_HOST_DEVICE float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
  }
  static TV_HOST_DEVICE float add(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
  }
  static TV_HOST_DEVICE float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
  }

  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      float g = grad[i];
      if (decay) g = add(g, mul(weight_decay, p[i]));
      if (use_momentum) {
        // PyTorch: the buffer starts as a copy of g, without dampening
        const float b = first_step ? g : add(mul(momentum, buf[i]), mul(dampening_keep, g));
        buf[i] = b;
        g = nesterov ? add(g, mul(momentum, b)) : b;
      }
      p[i] = sub(p[i], mul(lr, g));
    }
  }
};

void sgd_step(float* p, const float* grad, float* buf, int64_t n, float lr, float momentum, float dampening_keep,
              float weight_decay, bool decay, bool use_momentum, bool nesterov, bool first_step) {
  launch_n("SGD::step", n,
           SgdStepKernel{p, grad, buf, n, lr, momentum, dampening_keep, weight_decay, decay, use_momentum,
                         use_momentum && nesterov, first_step});
}

// The running norm's new value from its old one and a grad's part: a sum for finite p, for p = inf the
// maximum with NaN winning (as torch's max).
TV_HOST_DEVICE inline double grad_norm_combine(double total, double part, bool inf) {
  if (!inf) return total + part;
  return (part > total || part != part) ? part : total;
}

// Piece w of x (elements w, w + pieces, w + 2 pieces, ..., so neighbouring threads read neighbouring values):
// partial[w] = its sum of |x|^p in double, or its max |x| (NaN if it holds one). With one piece the result goes
// straight into the accumulator.
template <class T>
struct GradNormPiecesKernel {
  const T* x;
  int64_t n, pieces;
  double p;
  bool inf, first;
  double* partial;  // pieces > 1
  double* acc;      // pieces == 1
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t w = t.global(); w < pieces; w += t.stride()) {
      double s = 0.0;
      if (inf) {
        for (int64_t i = w; i < n && s == s; i += pieces) {  // stops at a NaN, which wins
          const double a = std::abs(static_cast<double>(x[i]));
          if (a > s || a != a) s = a;
        }
      } else if (p == 2) {
        for (int64_t i = w; i < n; i += pieces) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
      } else if (p == 1) {
        for (int64_t i = w; i < n; i += pieces) s += std::abs(static_cast<double>(x[i]));
      } else {
        for (int64_t i = w; i < n; i += pieces) s += std::pow(std::abs(static_cast<double>(x[i])), p);
      }
      if (pieces == 1)
        *acc = grad_norm_combine(first ? 0.0 : *acc, s, inf);
      else
        partial[w] = s;
    }
  }
};

// next[q] = partials [q * group, (q + 1) * group) combined in order: one level of the tree that brings the
// pieces down to at most `group`, so no thread combines more.
struct GradNormTreeKernel {
  const double* partial;
  int64_t pieces, group;
  bool inf;
  double* next;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t groups = (pieces + group - 1) / group;
    for (int64_t q = t.global(); q < groups; q += t.stride()) {
      const int64_t end = (q + 1) * group < pieces ? (q + 1) * group : pieces;
      double s = 0.0;
      for (int64_t w = q * group; w < end; ++w) s = inf ? grad_norm_combine(s, partial[w], true) : s + partial[w];
      next[q] = s;
    }
  }
};

// One thread: the (at most 256) pieces in order, then into the accumulator.
struct GradNormPartialsKernel {
  const double* partial;
  int64_t pieces;
  bool inf, first;
  double* acc;
  TV_HOST_DEVICE void operator()(Thread t) const {
    if (t.global() != 0) return;
    double s = 0.0;
    for (int64_t w = 0; w < pieces; ++w) s = inf ? grad_norm_combine(s, partial[w], true) : s + partial[w];
    *acc = grad_norm_combine(first ? 0.0 : *acc, s, inf);
  }
};

template <class T>
void grad_norm_accumulate(const T* x, int64_t n, double p, bool first, double* acc) {
  const bool inf = std::isinf(p);
  int64_t pieces = sum_pieces(1, n);  // 1 for an empty grad: the accumulator is still written
  GradNormPiecesKernel<T> k{x, n, pieces, p, inf, first, nullptr, acc};
  if (pieces == 1) {
    launch("clip_grad_norm", Launch{1, 1}, k);
    return;
  }
  auto partial = std::make_unique<Storage<double>>(pieces, Device::CUDA);
  k.partial = partial->data();
  launch_n("clip_grad_norm", pieces, k);
  constexpr int64_t kGroup = 256;
  while (pieces > kGroup) {
    const int64_t groups = (pieces + kGroup - 1) / kGroup;
    auto next = std::make_unique<Storage<double>>(groups, Device::CUDA);
    launch_n("clip_grad_norm", groups, GradNormTreeKernel{partial->data(), pieces, kGroup, inf, next->data()});
    partial = std::move(next);
    pieces = groups;
  }
  launch("clip_grad_norm", Launch{1, 1}, GradNormPartialsKernel{partial->data(), pieces, inf, first, acc});
}

struct GradNormFinishKernel {
  double* acc;
  double p;
  TV_HOST_DEVICE void operator()(Thread t) const {
    if (t.global() != 0) return;
    *acc = p == 2 ? std::sqrt(*acc) : std::pow(*acc, 1.0 / p);
  }
};

void grad_norm_finish(double* acc, double p) {
  if (!std::isinf(p)) launch("clip_grad_norm", Launch{1, 1}, GradNormFinishKernel{acc, p});
}

// x *= max_norm / (*total + 1e-6) where that is below 1; every thread reads the total on the device. A NaN
// coefficient scales (NaN >= 1 is false), as torch's clamp passes NaN on.
template <class T>
struct ClipGradScaleKernel {
  T* x;
  int64_t n;
  const double* total;
  double max_norm;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const double coef = max_norm / (*total + 1e-6);
    if (coef >= 1.0) return;
    const T scale = static_cast<T>(coef);
    for (int64_t i = t.global(); i < n; i += t.stride()) x[i] *= scale;
  }
};

template <class T>
void clip_grad_scale(T* x, int64_t n, const double* total, double max_norm) {
  launch_n("clip_grad_norm", n, ClipGradScaleKernel<T>{x, n, total, max_norm});
}

}  // namespace tv::cuda
