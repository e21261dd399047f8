#pragma once
// batch_norm as torch.nn.functional.batch_norm: training mode normalizes with the batch statistics
// and updates the running ones (running = (1 - momentum) running + momentum batch, with the unbiased
// variance); eval mode uses the running statistics. weight and bias are optional (affine=False).
// `channel_dim` (default 1) lets a caller normalize any view: DNR normalizes a group of frames,
// x.view({N, T, C, H, W}).narrow(1, t0, len) with channel_dim 2, sharing one set of running buffers.
// `stats_group_size` > 0 takes the batch statistics over groups of that many entries of dim 0 (the last
// group may be smaller), as one batch norm per device does in data-parallel training without SyncBN: the
// paper's 8 clips per GPU, reproduced on one device. The running statistics then get one update with the
// groups' statistics averaged, weighted by their sizes. That is tinyvid's choice: DDP keeps one device's
// buffers (rank 0's, from its own clips), which has the same expectation and more noise.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/cpu/batch_norm.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv {

namespace detail {
// Entries [start, start + rows) of dim 0 that share batch statistics.
struct StatsGroup {
  int64_t start, rows;
};
inline std::vector<StatsGroup> stats_groups(int64_t batch, int64_t group_size) {
  if (group_size <= 0 || group_size >= batch) return {{0, batch}};
  std::vector<StatsGroup> groups;
  for (int64_t s = 0; s < batch; s += group_size) groups.push_back({s, std::min(group_size, batch - s)});
  return groups;
}
inline Shape with_rows(Shape s, int64_t rows) {
  s[0] = rows;
  return s;
}
}  // namespace detail

template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, Tensor<T> running_mean, Tensor<T> running_var, const Tensor<T>& weight,
                     const Tensor<T>& bias, bool training, double momentum = 0.1, double eps = 1e-5,
                     int64_t channel_dim = 1, int64_t stats_group_size = 0) {
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
  TV_CHECK(stats_group_size >= 0 && (stats_group_size == 0 || cd != 0),
           "batch_norm: stats_group_size splits dim 0 into groups and must be >= 0 with the channels in another dim; got ",
           stats_group_size, " for an input of shape ", x.shape(), " with channel dim ", cd);
  const bool use_batch_stats = training || !running_mean.defined();
  const int64_t M = x.numel() / std::max<int64_t>(C, 1), per_row = M / std::max<int64_t>(x.size(0), 1);
  const std::vector<detail::StatsGroup> groups = detail::stats_groups(x.size(0), use_batch_stats ? stats_group_size : 0);
  const int64_t G = static_cast<int64_t>(groups.size());
  if (use_batch_stats)
    for (const auto& g : groups)
      TV_CHECK(g.rows * per_row > 1, "batch_norm: expected more than 1 value per channel when training, got input shape ",
               x.shape(), G > 1 ? " in statistics groups of " + std::to_string(stats_group_size) + " along dim 0" : "");

  // mean[g * C + c], var[...]: the statistics of group g.
  std::vector<double> mean(G * C), var(G * C);
  if (use_batch_stats) {
    for (int64_t g = 0; g < G; ++g)
      cpu::channel_stats(x.data() + groups[g].start * x.stride(0),
                         cpu::ChannelWalk<1>(detail::with_rows(x.shape(), groups[g].rows), {x.strides()}, cd),
                         mean.data() + g * C, var.data() + g * C);
  } else {
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = running_mean.data()[c * running_mean.stride(0)];
      var[c] = running_var.data()[c * running_var.stride(0)];
    }
  }
  if (training && running_mean.defined()) {
    NoGradGuard no_grad;
    for (int64_t c = 0; c < C; ++c) {
      double batch_mean = 0, batch_var = 0;
      for (int64_t g = 0; g < G; ++g) {
        const double m = static_cast<double>(groups[g].rows * per_row);
        batch_mean += m / M * mean[g * C + c];
        batch_var += m / M * var[g * C + c] * m / (m - 1);  // each group's unbiased variance
      }
      T& rm = running_mean.data()[c * running_mean.stride(0)];
      T& rv = running_var.data()[c * running_var.stride(0)];
      rm = static_cast<T>((1 - momentum) * rm + momentum * batch_mean);
      rv = static_cast<T>((1 - momentum) * rv + momentum * batch_var);
    }
    running_mean.storage()->bump_version();
    running_var.storage()->bump_version();
  }
  // Per group and channel: invstd, and the normalization and affine folded into y = x * scale + shift.
  std::vector<double> invstd(G * C);
  std::vector<T> scale(G * C), shift(G * C);
  for (int64_t i = 0; i < G * C; ++i) {
    const int64_t c = i % C;
    const double is = 1.0 / std::sqrt(var[i] + eps);
    const double wv = weight.defined() ? weight.data()[c * weight.stride(0)] : 1.0;
    const double bv = bias.defined() ? bias.data()[c * bias.stride(0)] : 0.0;
    invstd[i] = is;
    scale[i] = static_cast<T>(wv * is);
    shift[i] = static_cast<T>(bv - mean[i] * wv * is);
  }
  Tensor<T> y = Tensor<T>::empty(x.shape());
  for (int64_t g = 0; g < G; ++g)
    cpu::channel_affine(y.data() + groups[g].start * y.stride(0), x.data() + groups[g].start * x.stride(0),
                        cpu::ChannelWalk<2>(detail::with_rows(x.shape(), groups[g].rows), {y.strides(), x.strides()}, cd),
                        scale.data() + g * C, shift.data() + g * C);

  autograd::record(
      y, "BatchNormBackward", {x, weight, bias},
      [sx = autograd::Saved<T>(x), sw = weight.defined() ? autograd::Saved<T>(weight) : autograd::Saved<T>(),
       has_weight = weight.defined(), mean, invstd, cd, use_batch_stats, groups, per_row](const Tensor<T>& gy,
                                                                                          const autograd::Node<T>& n) {
        const Tensor<T>& xv = sx.get("batch_norm");
        const Tensor<T> w = has_weight ? sw.get("batch_norm") : Tensor<T>();
        const int64_t C = xv.size(cd), G = static_cast<int64_t>(groups.size());
        std::vector<Tensor<T>> r(3);
        if (n.needs_grad(0)) r[0] = Tensor<T>::empty(xv.shape());
        std::vector<double> sum_gy(C), sum_gy_xc(C), dw(C), db(C);
        std::vector<T> a(C), bx(C), k(C);
        for (int64_t g = 0; g < G; ++g) {
          const Shape gshape = detail::with_rows(xv.shape(), groups[g].rows);
          const T* gy_g = gy.data() + groups[g].start * gy.stride(0);
          const T* x_g = xv.data() + groups[g].start * xv.stride(0);
          const double* mean_g = mean.data() + g * C;
          const double* invstd_g = invstd.data() + g * C;
          cpu::channel_grad_sums(gy_g, x_g, cpu::ChannelWalk<2>(gshape, {gy.strides(), xv.strides()}, cd), mean_g,
                                 sum_gy.data(), sum_gy_xc.data());
          for (int64_t c = 0; c < C; ++c) {
            dw[c] += sum_gy_xc[c] * invstd_g[c];
            db[c] += sum_gy[c];
          }
          if (!n.needs_grad(0)) continue;
          const double m = static_cast<double>(groups[g].rows * per_row);
          for (int64_t c = 0; c < C; ++c) {
            const double is = invstd_g[c];
            const double wc = w.defined() ? w.data()[c * w.stride(0)] : 1.0;
            a[c] = static_cast<T>(wc * is);
            if (use_batch_stats) {  // the batch statistics depend on x too
              const double is3 = is * is * is;
              bx[c] = static_cast<T>(-wc * is3 * sum_gy_xc[c] / m);
              k[c] = static_cast<T>(-wc * is * sum_gy[c] / m + wc * is3 * sum_gy_xc[c] * mean_g[c] / m);
            } else {
              bx[c] = T(0);
              k[c] = T(0);
            }
          }
          cpu::channel_grad_input(r[0].data() + groups[g].start * r[0].stride(0), gy_g, x_g,
                                  cpu::ChannelWalk<3>(gshape, {r[0].strides(), gy.strides(), xv.strides()}, cd), a.data(),
                                  bx.data(), k.data());
        }
        if (n.needs_grad(1)) {
          r[1] = Tensor<T>::empty({C});
          for (int64_t c = 0; c < C; ++c) r[1].data()[c] = static_cast<T>(dw[c]);
        }
        if (n.needs_grad(2)) {
          r[2] = Tensor<T>::empty({C});
          for (int64_t c = 0; c < C; ++c) r[2].data()[c] = static_cast<T>(db[c]);
        }
        return r;
      });
  return y;
}

}  // namespace tv
