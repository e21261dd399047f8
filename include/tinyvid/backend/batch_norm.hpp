#pragma once
// batch_norm's kernels behind the device seam (backend/cpu/batch_norm.hpp on the CPU). A call's statistics
// groups are dim 0 cut into groups of `group_rows` entries (the last one possibly smaller; the whole dim 0 for
// one group); the statistics are G x C doubles (mean, var, invstd), on the input's device.
#include "tinyvid/backend/cpu/batch_norm.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::kernel {

inline int64_t stats_group_count(int64_t batch, int64_t group_rows) { return cpu::stats_group_count(batch, group_rows); }

// mean, var (G x C) = each group's per-channel mean and biased variance of x.
template <class T>
void batch_norm_stats(const Tensor<T>& x, int64_t channel_dim, int64_t group_rows, Tensor<double>& mean,
                      Tensor<double>& var) {
  TV_DISPATCH("batch_norm", device_of("batch_norm", x, mean, var),
              batch_norm_stats<T>(x.data(), x.shape(), x.strides(), channel_dim, group_rows, mean.data(), var.data()));
}

// mean, var (C) = the running statistics (evaluation mode).
template <class T>
void batch_norm_running_stats(const Tensor<T>& running_mean, const Tensor<T>& running_var, Tensor<double>& mean,
                              Tensor<double>& var) {
  TV_DISPATCH("batch_norm", device_of("batch_norm", running_mean, running_var, mean, var),
              batch_norm_running_stats<T>(running_mean.data(), running_mean.stride(0), running_var.data(),
                                          running_var.stride(0), running_mean.size(0), mean.data(), var.data()));
}

// The running statistics' update, in place on their device, from the groups' statistics of a batch of
// `batch` entries of dim 0 with `per_row` values per channel each; num_batches_tracked (may be undefined)
// counts the batch, and a negative momentum is then the cumulative average 1 / num_batches_tracked.
template <class T>
void batch_norm_update_running(const Tensor<double>& mean, const Tensor<double>& var, int64_t batch, int64_t group_rows,
                               int64_t per_row, double momentum, Tensor<T>& running_mean, Tensor<T>& running_var,
                               Tensor<T>& num_batches_tracked) {
  TV_DISPATCH("batch_norm", device_of("batch_norm", mean, var, running_mean, running_var, num_batches_tracked),
              batch_norm_update_running<T>(mean.data(), var.data(), running_mean.size(0), batch, group_rows, per_row,
                                           momentum, running_mean.data(), running_mean.stride(0), running_var.data(),
                                           running_var.stride(0),
                                           num_batches_tracked.defined() ? num_batches_tracked.data() : nullptr));
}

// invstd (G x C) and the folded affine y = x * scale + shift (G x C each); weight and bias may be undefined.
template <class T>
void batch_norm_coefficients(const Tensor<double>& mean, const Tensor<double>& var, const Tensor<T>& weight,
                             const Tensor<T>& bias, double eps, Tensor<double>& invstd, Tensor<T>& scale,
                             Tensor<T>& shift) {
  const int64_t C = scale.size(1);
  TV_DISPATCH("batch_norm", device_of("batch_norm", mean, var, weight, bias, invstd, scale, shift),
              batch_norm_coefficients<T>(mean.data(), var.data(), scale.size(0), C,
                                         weight.defined() ? weight.data() : nullptr, weight.defined() ? weight.stride(0) : 0,
                                         bias.defined() ? bias.data() : nullptr, bias.defined() ? bias.stride(0) : 0, eps,
                                         invstd.data(), scale.data(), shift.data()));
}

// y = x * scale[g, c] + shift[g, c] (scale, shift: G x C), + residual when defined (x's shape), then ReLU when relu.
template <class T>
void batch_norm_apply(const Tensor<T>& x, int64_t channel_dim, int64_t group_rows, const Tensor<T>& scale,
                      const Tensor<T>& shift, const Tensor<T>& residual, bool relu, Tensor<T>& y) {
  static const Shape kNoStrides;
  TV_DISPATCH("batch_norm", device_of("batch_norm", x, scale, shift, residual, y),
              batch_norm_apply<T>(y.data(), y.strides(), x.data(), x.shape(), x.strides(), channel_dim, group_rows,
                                  scale.data(), shift.data(), residual.defined() ? residual.data() : nullptr,
                                  residual.defined() ? residual.strides() : kNoStrides, relu));
}

// gx, gw, gb (each may be undefined: not wanted) from gy, with the forward's x, statistics and weight. With
// relu_scale and relu_shift (the forward's scale and shift, G x C; undefined: none), gy is the gradient of a ReLU
// that followed the batch norm (no residual between), its mask recomputed from x. With relu_out (the output of a
// ReLU after a residual, x's shape; undefined: none), gy is that ReLU's gradient, and g_out (x's shape) gets the
// gradient the ReLU lets through (the residual's too) in the same pass.
template <class T>
void batch_norm_backward(const Tensor<T>& gy, const Tensor<T>& x, int64_t channel_dim, int64_t group_rows,
                         int64_t per_row, const Tensor<double>& mean, const Tensor<double>& invstd,
                         const Tensor<T>& weight, bool use_batch_stats, Tensor<T>& gx, Tensor<T>& gw, Tensor<T>& gb,
                         const Tensor<T>& relu_scale, const Tensor<T>& relu_shift, const Tensor<T>& relu_out = {},
                         Tensor<T> g_out = {}) {
  static const Shape kNoStrides;
  TV_CHECK(relu_scale.defined() == relu_shift.defined(),
           "batch_norm backward: give both relu_scale and relu_shift, or neither");
  TV_CHECK(relu_out.defined() == g_out.defined() && !(relu_out.defined() && relu_scale.defined()),
           "batch_norm backward: give relu_out with g_out, and neither with relu_scale");
  TV_CHECK(!relu_out.defined() || (relu_out.shape() == x.shape() && g_out.shape() == x.shape()),
           "batch_norm backward: relu_out of shape ", relu_out.defined() ? relu_out.shape() : Shape{}, " and g_out of shape ",
           g_out.defined() ? g_out.shape() : Shape{}, " must have the input's, ", x.shape());
  TV_DISPATCH("batch_norm backward",
              device_of("batch_norm backward", gy, x, mean, invstd, weight, gx, gw, gb, relu_scale, relu_shift, relu_out,
                        g_out),
              batch_norm_backward<T>(gy.data(), gy.strides(), x.data(), x.shape(), x.strides(), channel_dim, group_rows,
                                     per_row, mean.data(), invstd.data(), weight.defined() ? weight.data() : nullptr,
                                     weight.defined() ? weight.stride(0) : 0, use_batch_stats,
                                     gx.defined() ? gx.data() : nullptr, gx.defined() ? gx.strides() : kNoStrides,
                                     gw.defined() ? gw.data() : nullptr, gb.defined() ? gb.data() : nullptr,
                                     relu_scale.defined() ? relu_scale.data() : nullptr,
                                     relu_shift.defined() ? relu_shift.data() : nullptr,
                                     relu_out.defined() ? relu_out.data() : nullptr,
                                     relu_out.defined() ? relu_out.strides() : kNoStrides,
                                     g_out.defined() ? g_out.data() : nullptr, g_out.defined() ? g_out.strides() : kNoStrides));
}

}  // namespace tv::kernel
