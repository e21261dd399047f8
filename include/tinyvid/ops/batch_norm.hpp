#pragma once
// batch_norm as torch.nn.functional.batch_norm: training mode normalizes with the batch statistics
// and updates the running ones (running = (1 - momentum) running + momentum batch, with the unbiased
// variance); eval mode uses the running statistics. weight and bias are optional (affine=False).
// Options in libtorch's style: batch_norm(x, rm, rv, BatchNormFuncOptions<T>().weight(w).bias(b).training(true)).
// `channel_dim` (default 1) lets a caller normalize any view: DNR normalizes a group of frames,
// x.view({N, T, C, H, W}).narrow(1, t0, len) with channel_dim 2, sharing one set of running buffers.
// `stats_group_clips` > 0 takes the batch statistics over groups of that many clips, as one batch norm per
// device does in data-parallel training without SyncBN: the paper's 8 clips per GPU, reproduced on one
// device. A clip is `rows_per_clip` consecutive entries of dim 0: 1 where dim 0 holds clips (DNR's
// N x T x C x H x W view), the frames per clip where it holds every frame (a 2-D CNN's N*T x C x H x W);
// the last group may be smaller. The running statistics then get one update with the groups' statistics
// averaged, weighted by their sizes. That is tinyvid's choice: DDP keeps one device's buffers (rank 0's,
// from its own clips), which has the same expectation and more noise.
// Every value is computed on the input's device (backend/batch_norm.hpp): the statistics, the running
// update (in place, no host read) and num_batches_tracked when given.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/batch_norm.hpp"
#include "tinyvid/core/options.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv {

// batch_norm's options (torch::nn::functional::BatchNormFuncOptions): chained setters and getters.
template <class T = float>
struct BatchNormFuncOptions {
  // The affine parameters (C each); undefined: none.
  TV_ARG(BatchNormFuncOptions, Tensor<T>, weight);
  TV_ARG(BatchNormFuncOptions, Tensor<T>, bias);
  // true: the batch's statistics, and the running ones updated; false: the running ones.
  TV_ARG(BatchNormFuncOptions, bool, training) = false;
  // The running statistics' update factor; negative: a cumulative average, 1 / num_batches_tracked
  // (PyTorch's momentum=None), which needs num_batches_tracked.
  TV_ARG(BatchNormFuncOptions, double, momentum) = 0.1;
  TV_ARG(BatchNormFuncOptions, double, eps) = 1e-5;
  // The dim that holds the channels.
  TV_ARG(BatchNormFuncOptions, int64_t, channel_dim) = 1;
  // > 0: training statistics over groups of this many clips (see above); 0: over the whole batch.
  TV_ARG(BatchNormFuncOptions, int64_t, stats_group_clips) = 0;
  // Entries of dim 0 per clip: 1 when dim 0 holds clips, the frames per clip when it holds frames.
  TV_ARG(BatchNormFuncOptions, int64_t, rows_per_clip) = 1;
  // A one-element counter of the batches seen (BatchNorm2d's buffer): counted by a training call that updates
  // the running statistics, on its device.
  TV_ARG(BatchNormFuncOptions, Tensor<T>, num_batches_tracked);
  // tinyvid's own, beyond PyTorch's: the output is relu(batch_norm(x) + residual) (residual of x's shape; either
  // part optional), computed in the batch norm's output pass and differentiated as one op: what a ResNet block does
  // after each conv (nn::conv_bn), without two more passes over memory. The same values as the ops one by one.
  TV_ARG(BatchNormFuncOptions, Tensor<T>, residual);
  TV_ARG(BatchNormFuncOptions, bool, relu) = false;
};

template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, Tensor<T> running_mean, Tensor<T> running_var,
                     const std::type_identity_t<BatchNormFuncOptions<T>>& options = {}) {
  const Tensor<T>& weight = options.weight();
  const Tensor<T>& bias = options.bias();
  const Tensor<T>& residual = options.residual();
  const bool relu_after = options.relu();
  Tensor<T> num_batches_tracked = options.num_batches_tracked();
  const bool training = options.training();
  TV_CHECK(x.dim() >= 2, "batch_norm: expected an input with at least 2 dims, got shape ", x.shape());
  const int64_t cd = wrap_dim(options.channel_dim(), x.dim(), "batch_norm");
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
  TV_CHECK(!residual.defined() || residual.shape() == x.shape(), "batch_norm: the residual's shape ",
           residual.defined() ? residual.shape() : Shape{}, " must be the input's, ", x.shape());
  TV_CHECK(running_mean.defined() == running_var.defined(), "batch_norm: give both running_mean and running_var, or neither");
  TV_CHECK(training || running_mean.defined(),
           "batch_norm: running_mean and running_var must be given in evaluation mode (training=false)");
  const int64_t group_clips = options.stats_group_clips(), rows_per_clip = options.rows_per_clip();
  TV_CHECK(group_clips >= 0 && rows_per_clip >= 1 && (group_clips == 0 || cd != 0),
           "batch_norm: stats_group_clips splits dim 0 into groups and must be >= 0 (rows_per_clip >= 1) with the "
           "channels in another dim; got ",
           group_clips, " (rows_per_clip ", rows_per_clip, ") for an input of shape ", x.shape(), " with channel dim ", cd);
  const bool update_running = training && running_mean.defined();
  if (num_batches_tracked.defined())
    TV_CHECK(num_batches_tracked.numel() == 1, "batch_norm: num_batches_tracked must have one element, got shape ",
             num_batches_tracked.shape());
  TV_CHECK(!update_running || options.momentum() >= 0 || num_batches_tracked.defined(),
           "batch_norm: a negative momentum (a cumulative average) needs num_batches_tracked");
  const Device device = device_of("batch_norm", x, running_mean, running_var, weight, bias, num_batches_tracked, residual);
  const bool use_batch_stats = training || !running_mean.defined();
  const int64_t batch = x.size(0), M = x.numel() / std::max<int64_t>(C, 1), per_row = M / std::max<int64_t>(batch, 1);
  // Entries of dim 0 per statistics group: the whole dim 0 unless groups were asked for.
  const int64_t wanted_rows = group_clips * rows_per_clip;
  const int64_t rows = use_batch_stats && wanted_rows > 0 && wanted_rows < batch ? wanted_rows : batch;
  const int64_t G = kernel::stats_group_count(batch, rows);
  if (use_batch_stats) {
    const int64_t smallest = G > 1 ? batch - (G - 1) * rows : rows;  // the last group is the smallest
    TV_CHECK(std::min(rows, smallest) * per_row > 1,
             "batch_norm: expected more than 1 value per channel when training, got input shape ", x.shape(),
             G > 1 ? " in statistics groups of " + std::to_string(rows) + " along dim 0" : "");
  }

  Tensor<double> mean = Tensor<double>::empty({G, C}, device), var = Tensor<double>::empty({G, C}, device);
  if (use_batch_stats)
    kernel::batch_norm_stats(x, cd, rows, mean, var);
  else
    kernel::batch_norm_running_stats(running_mean, running_var, mean, var);
  if (update_running) {
    NoGradGuard no_grad;
    kernel::batch_norm_update_running(mean, var, batch, rows, per_row, options.momentum(), running_mean, running_var,
                                      num_batches_tracked);
    running_mean.storage()->bump_version();
    running_var.storage()->bump_version();
    if (num_batches_tracked.defined()) num_batches_tracked.storage()->bump_version();
  }
  Tensor<double> invstd = Tensor<double>::empty({G, C}, device);
  Tensor<T> scale = Tensor<T>::empty({G, C}, device), shift = Tensor<T>::empty({G, C}, device);
  kernel::batch_norm_coefficients(mean, var, weight, bias, options.eps(), invstd, scale, shift);
  Tensor<T> y = Tensor<T>::empty(x.shape(), device);
  kernel::batch_norm_apply(x, cd, rows, scale, shift, residual, relu_after, y);

  const char* name = residual.defined() || relu_after ? "BatchNormAddReluBackward" : "BatchNormBackward";
  // A ReLU straight after the batch norm is undone inside the backward's passes, its mask recomputed from x with
  // this scale and shift (kernel::batch_norm_backward); after a residual it needs y, and its gradient, the residual's
  // too, is written by the backward's first pass (or alone, where the batch norm's own gradients are not wanted).
  const bool relu_from_x = relu_after && !residual.defined(), relu_from_y = relu_after && residual.defined();
  autograd::record(
      y, name, {x, weight, bias, residual},
      [sx = autograd::Saved<T>(x), sw = weight.defined() ? autograd::Saved<T>(weight) : autograd::Saved<T>(),
       sy = relu_from_y ? autograd::Saved<T>(y) : autograd::Saved<T>(), has_weight = weight.defined(), relu_from_x, relu_from_y,
       relu_scale = relu_from_x ? scale : Tensor<T>(), relu_shift = relu_from_x ? shift : Tensor<T>(), mean, invstd, cd,
       use_batch_stats, rows, per_row](const Tensor<T>& gy, const autograd::Node<T>& n) {
        const Tensor<T>& xv = sx.get("batch_norm");
        const Tensor<T> w = has_weight ? sw.get("batch_norm") : Tensor<T>();
        const int64_t C = xv.size(cd);
        const bool own_grads = n.needs_grad(0) || n.needs_grad(1) || n.needs_grad(2);
        std::vector<Tensor<T>> r(4);
        if (n.needs_grad(0)) r[0] = Tensor<T>::empty(xv.shape(), xv.device());
        if (n.needs_grad(1)) r[1] = Tensor<T>::empty({C}, xv.device());
        if (n.needs_grad(2)) r[2] = Tensor<T>::empty({C}, xv.device());
        // g: the gradient of relu's input (ReluBackward's), which is the residual's and the batch norm's output's:
        // written by the backward's sums pass, or by ReluGrad's pass where the batch norm's own gradients are not wanted.
        const Tensor<T> relu_out = relu_from_y ? sy.get("batch_norm") : Tensor<T>();
        Tensor<T> g = gy;
        if (own_grads) {
          // Behind a ReLU, gy laid out as ReluBackward's gradient would be (contiguous, as y): the passes then sum as
          // they would over that gradient, the ops one by one's bits (a gy expanded from a sum, stride 0, took other
          // loops).
          const Tensor<T> gyc = (relu_from_x || relu_from_y) && !gy.is_contiguous() ? gy.contiguous() : gy;
          if (relu_from_y) g = Tensor<T>::empty(gy.shape(), gy.device());
          kernel::batch_norm_backward(gyc, xv, cd, rows, per_row, mean, invstd, w, use_batch_stats, r[0], r[1], r[2],
                                      relu_scale, relu_shift, relu_out, relu_from_y ? g : Tensor<T>());
        } else if (relu_from_y) {
          g = detail::zip(gy, relu_out, "batch_norm", fn::ReluGrad{});
        }
        if (n.needs_grad(3)) r[3] = g;
        return r;
      });
  return y;
}

// An eval-mode batch norm as its per-channel affine y = x * scale + shift (C each), from the running statistics
// and the affine parameters (either may be undefined): the very values batch_norm's evaluation applies, for a
// conv that does the batch norm in its output pass (conv2d_inference). No gradient.
template <class T>
std::pair<Tensor<T>, Tensor<T>> batch_norm_eval_coefficients(const Tensor<T>& running_mean, const Tensor<T>& running_var,
                                                             const Tensor<T>& weight, const Tensor<T>& bias, double eps) {
  TV_CHECK(running_mean.defined() && running_var.defined() && running_mean.dim() == 1 &&
               running_var.shape() == running_mean.shape(),
           "batch_norm_eval_coefficients: expected running_mean and running_var of one shape (C), got ",
           running_mean.defined() ? running_mean.shape() : Shape{}, " and ", running_var.defined() ? running_var.shape() : Shape{});
  const int64_t C = running_mean.size(0);
  for (const Tensor<T>* t : {&weight, &bias})
    TV_CHECK(!t->defined() || t->shape() == Shape{C}, "batch_norm_eval_coefficients: weight and bias must have shape [",
             C, "], got ", t->shape());
  const Device device = device_of("batch_norm", running_mean, running_var, weight, bias);
  NoGradGuard no_grad;
  Tensor<double> mean = Tensor<double>::empty({1, C}, device), var = Tensor<double>::empty({1, C}, device);
  kernel::batch_norm_running_stats(running_mean, running_var, mean, var);
  Tensor<double> invstd = Tensor<double>::empty({1, C}, device);
  Tensor<T> scale = Tensor<T>::empty({1, C}, device), shift = Tensor<T>::empty({1, C}, device);
  kernel::batch_norm_coefficients(mean, var, weight, bias, eps, invstd, scale, shift);
  return {scale.view({C}), shift.view({C})};
}

}  // namespace tv
