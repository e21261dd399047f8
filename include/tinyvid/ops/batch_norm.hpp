#pragma once
// batch_norm as torch.nn.functional.batch_norm: training mode normalizes with the batch statistics
// and updates the running ones (running = (1 - momentum) running + momentum batch, with the unbiased
// variance); eval mode uses the running statistics. weight and bias are optional (affine=False).
// `channel_dim` (default 1) lets a caller normalize any view: DNR normalizes a group of frames,
// x.view({N, T, C, H, W}).narrow(1, t0, len) with channel_dim 2, sharing one set of running buffers.
#include <cmath>
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/cpu/batch_norm.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv {

template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, Tensor<T> running_mean, Tensor<T> running_var, const Tensor<T>& weight,
                     const Tensor<T>& bias, bool training, double momentum = 0.1, double eps = 1e-5,
                     int64_t channel_dim = 1) {
  TV_CHECK(x.dim() >= 2, "batch_norm: expected an input with at least 2 dims, got shape ", x.shape());
  const int64_t cd = wrap_dim(channel_dim, x.dim(), "batch_norm");
  const int64_t C = x.size(cd);
  auto check_vec = [&](const Tensor<T>& t, const char* what) {
    if (t.defined())
      TV_CHECK(t.dim() == 1 && t.size(0) == C, "batch_norm: ", what, " of shape ", t.shape(), " does not match ", C,
               " channels of the input of shape ", x.shape(), " (channel dim ", cd, ")");
  };
  check_vec(running_mean, "running_mean");
  check_vec(running_var, "running_var");
  check_vec(weight, "weight");
  check_vec(bias, "bias");
  TV_CHECK(running_mean.defined() == running_var.defined(), "batch_norm: give both running_mean and running_var, or neither");
  TV_CHECK(training || running_mean.defined(),
           "batch_norm: running_mean and running_var must be given in evaluation mode (training=false)");
  const bool use_batch_stats = training || !running_mean.defined();
  const int64_t M = x.numel() / std::max<int64_t>(C, 1);
  if (use_batch_stats)
    TV_CHECK(M > 1, "batch_norm: expected more than 1 value per channel when training, got input shape ", x.shape());

  std::vector<double> mean(C), var(C);
  if (use_batch_stats) {
    cpu::channel_stats(x.data(), cpu::ChannelWalk<1>(x.shape(), {x.strides()}, cd), mean.data(), var.data());
  } else {
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = running_mean.data()[c * running_mean.stride(0)];
      var[c] = running_var.data()[c * running_var.stride(0)];
    }
  }
  if (training && running_mean.defined()) {
    NoGradGuard no_grad;
    const double unbias = static_cast<double>(M) / static_cast<double>(M - 1);
    for (int64_t c = 0; c < C; ++c) {
      T& rm = running_mean.data()[c * running_mean.stride(0)];
      T& rv = running_var.data()[c * running_var.stride(0)];
      rm = static_cast<T>((1 - momentum) * rm + momentum * mean[c]);
      rv = static_cast<T>((1 - momentum) * rv + momentum * var[c] * unbias);
    }
    running_mean.storage()->bump_version();
    running_var.storage()->bump_version();
  }
  // Per channel: invstd, and the normalization and affine folded into y = x * scale + shift.
  Tensor<T> invstd = Tensor<T>::empty({C}), scale = Tensor<T>::empty({C}), shift = Tensor<T>::empty({C});
  Tensor<T> mean_t = Tensor<T>::empty({C});
  for (int64_t c = 0; c < C; ++c) {
    const double is = 1.0 / std::sqrt(var[c] + eps);
    const double wv = weight.defined() ? weight.data()[c * weight.stride(0)] : 1.0;
    const double bv = bias.defined() ? bias.data()[c * bias.stride(0)] : 0.0;
    invstd.data()[c] = static_cast<T>(is);
    mean_t.data()[c] = static_cast<T>(mean[c]);
    scale.data()[c] = static_cast<T>(wv * is);
    shift.data()[c] = static_cast<T>(bv - mean[c] * wv * is);
  }
  Tensor<T> y = Tensor<T>::empty(x.shape());
  cpu::channel_affine(y.data(), x.data(), cpu::ChannelWalk<2>(x.shape(), {y.strides(), x.strides()}, cd), scale.data(),
                      shift.data());

  autograd::record(
      y, "BatchNormBackward", {x, weight, bias},
      [sx = autograd::Saved<T>(x), sw = weight.defined() ? autograd::Saved<T>(weight) : autograd::Saved<T>(),
       has_weight = weight.defined(), mean, invstd, cd, use_batch_stats, M](const Tensor<T>& gy, const autograd::Node<T>& n) {
        const Tensor<T>& xv = sx.get("batch_norm");
        const Tensor<T> w = has_weight ? sw.get("batch_norm") : Tensor<T>();
        const int64_t C = xv.size(cd);
        std::vector<double> sum_gy(C), sum_gy_xc(C);
        cpu::channel_grad_sums(gy.data(), xv.data(), cpu::ChannelWalk<2>(xv.shape(), {gy.strides(), xv.strides()}, cd),
                               mean.data(), sum_gy.data(), sum_gy_xc.data());
        std::vector<Tensor<T>> r(3);
        if (n.needs_grad(0)) {
          Tensor<T> a = Tensor<T>::empty({C}), bx = Tensor<T>::empty({C}), k = Tensor<T>::empty({C});
          for (int64_t c = 0; c < C; ++c) {
            const double is = invstd.data()[c];
            const double wc = w.defined() ? w.data()[c * w.stride(0)] : 1.0;
            a.data()[c] = static_cast<T>(wc * is);
            if (use_batch_stats) {  // the batch statistics depend on x too
              const double is3 = is * is * is;
              bx.data()[c] = static_cast<T>(-wc * is3 * sum_gy_xc[c] / M);
              k.data()[c] = static_cast<T>(-wc * is * sum_gy[c] / M + wc * is3 * sum_gy_xc[c] * mean[c] / M);
            } else {
              bx.data()[c] = T(0);
              k.data()[c] = T(0);
            }
          }
          r[0] = Tensor<T>::empty(xv.shape());
          cpu::channel_grad_input(r[0].data(), gy.data(), xv.data(),
                                  cpu::ChannelWalk<3>(xv.shape(), {r[0].strides(), gy.strides(), xv.strides()}, cd),
                                  a.data(), bx.data(), k.data());
        }
        if (n.needs_grad(1)) {
          r[1] = Tensor<T>::empty({C});
          for (int64_t c = 0; c < C; ++c) r[1].data()[c] = static_cast<T>(sum_gy_xc[c] * invstd.data()[c]);
        }
        if (n.needs_grad(2)) {
          r[2] = Tensor<T>::empty({C});
          for (int64_t c = 0; c < C; ++c) r[2].data()[c] = static_cast<T>(sum_gy[c]);
        }
        return r;
      });
  return y;
}

}  // namespace tv
