#pragma once
// conv2d as torch.nn.functional.conv2d: NCHW input, weight Cout x C/groups x KH x KW, optional bias. The
// kernels (backend/conv.hpp) run on the tensors' device; the output and gradients are allocated there.
#include <array>
#include <type_traits>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/conv.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

namespace detail {

// Checks the shapes and options of a conv2d call and returns its geometry (before allocating anything).
template <class T>
ConvGeometry conv_geometry(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, Pair stride, Pair padding,
                           Pair dilation, int64_t groups) {
  TV_CHECK(x.dim() == 4, "conv2d: expected a 4-D input (N x C x H x W), got shape ", x.shape());
  TV_CHECK(w.dim() == 4, "conv2d: expected a 4-D weight (Cout x C/groups x KH x KW), got shape ", w.shape());
  TV_CHECK(groups >= 1, "conv2d: groups must be positive, got ", groups);
  for (int i = 0; i < 2; ++i) {
    TV_CHECK(stride[i] >= 1 && dilation[i] >= 1 && padding[i] >= 0, "conv2d: stride [", stride[0], ", ", stride[1],
             "] and dilation [", dilation[0], ", ", dilation[1], "] must be positive and padding [", padding[0], ", ",
             padding[1], "] non-negative");
  }
  ConvGeometry g{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3),
                 stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups, 0, 0};
  TV_CHECK(g.C % groups == 0 && g.Cout % groups == 0, "conv2d: input channels ", g.C, " and output channels ", g.Cout,
           " must both be divisible by groups ", groups);
  TV_CHECK(w.size(1) == g.C / groups, "conv2d: weight of shape ", w.shape(), " expects ", w.size(1) * groups,
           " input channels, but the input of shape ", x.shape(), " has ", g.C);
  const int64_t eff_h = (g.KH - 1) * g.dh + 1, eff_w = (g.KW - 1) * g.dw + 1;
  TV_CHECK(g.H + 2 * g.ph >= eff_h && g.W + 2 * g.pw >= eff_w, "conv2d: kernel ", eff_h, " x ", eff_w,
           " (with dilation) is larger than the padded input ", g.H + 2 * g.ph, " x ", g.W + 2 * g.pw, " (input shape ",
           x.shape(), ")");
  g.OH = (g.H + 2 * g.ph - eff_h) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - eff_w) / g.sw + 1;
  if (bias.defined())
    TV_CHECK(bias.dim() == 1 && bias.size(0) == g.Cout, "conv2d: bias of shape ", bias.shape(), " does not match ",
             g.Cout, " output channels");
  return g;
}

}  // namespace detail

// Pass an undefined Tensor<T>() as bias for none.
template <class T>
Tensor<T> conv2d(const Tensor<T>& input, const Tensor<T>& weight, const Tensor<T>& bias = Tensor<T>(), Pair stride = {1, 1},
                 Pair padding = {0, 0}, Pair dilation = {1, 1}, int64_t groups = 1) {
  const ConvGeometry g = detail::conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  const Device device = device_of("conv2d", input, weight, bias);
  const Tensor<T> x = input.contiguous(), w = weight.contiguous(), b = bias.defined() ? bias.contiguous() : bias;
  Tensor<T> y = Tensor<T>::empty({g.N, g.Cout, g.OH, g.OW}, device);
  kernel::conv2d_forward(g, x, w, b, y, /*inference=*/!autograd::any_requires_grad<T>({input, weight, bias}));
  autograd::record(y, "Conv2dBackward", {input, weight, bias},
                   [g, sx = autograd::Saved<T>(x), sw = autograd::Saved<T>(w)](const Tensor<T>& grad,
                                                                               const autograd::Node<T>& n) {
                     const Tensor<T> gy = grad.contiguous();
                     std::vector<Tensor<T>> r(3);
                     if (n.needs_grad(0)) {
                       // Added into the input's gradient gathered so far where the kernel can (the shortcut's, in a
                       // bottleneck block), saving the engine's pass that adds the two.
                       if (Tensor<T> sum = n.gathered_gradient(0); sum.defined() && kernel::conv2d_input_gradient_adds(g, sum)) {
                         kernel::conv2d_backward_input_add(g, gy, sw.get("conv2d"), sum);
                         r[0] = sum;
                       } else {
                         r[0] = Tensor<T>::empty({g.N, g.C, g.H, g.W}, gy.device());
                         kernel::conv2d_backward_input(g, gy, sw.get("conv2d"), r[0]);
                       }
                     }
                     if (n.needs_grad(1)) {
                       r[1] = Tensor<T>::empty({g.Cout, g.Cg(), g.KH, g.KW}, gy.device());
                       kernel::conv2d_backward_weight(g, sx.get("conv2d"), gy, r[1]);
                     }
                     if (n.needs_grad(2)) {
                       r[2] = Tensor<T>::empty({g.Cout}, gy.device());
                       kernel::conv2d_backward_bias(g, gy, r[2]);
                     }
                     return r;
                   });
  return y;
}

// What conv2d_inference does after the conv and its bias, in the conv's output pass: y * scale + shift per output
// channel (an eval-mode batch norm: batch_norm_eval_coefficients; both undefined for none), + residual (the
// output's shape; undefined for none), then ReLU.
template <class T>
struct ConvFusion {
  Tensor<T> scale, shift, residual;
  bool relu = false;
};

namespace detail {
// Whether conv2d_inference may write its result into the residual's memory: `then` was handed over (moved in) and
// nothing else holds the residual or its storage (tensors share both by counted handles), and the conv is one that
// adds in place without a copy (kernel::conv2d_adds_in_place). In place, the output's stream of new memory is not
// read in before it is written: 1x1 64 -> 256 at 56 x 56 with batch norm, residual and ReLU, 3.0-3.2 -> 2.6-2.7 ms.
template <class T>
bool residual_reusable(const Tensor<T>& r, const ConvGeometry& g) {
  return r.defined() && kernel::conv2d_adds_in_place<T>(g, r.device()) && !r.requires_grad() && r.is_contiguous() &&
         r.impl_ptr().use_count() == 1 && r.storage().use_count() == 1;
}
}  // namespace detail

// The eval path's conv: conv2d followed by `then` in one pass over the output, the same arithmetic as the ops one
// after another (models/resnet.hpp's blocks, through nn::conv_bn). No gradient flows through it: it refuses
// inputs that require grad while grad mode is on. A residual handed over with `then` (std::move, its memory held by
// nothing else) may come back as the result, its memory overwritten, as PyTorch's inference fusions add a
// residual in place; one that is still held elsewhere is only read. weight_cache: where a frozen conv keeps its
// weights prepared for the kernels (nn::freeze), or null.
template <class T>
Tensor<T> conv2d_inference(const Tensor<T>& input, const Tensor<T>& weight, const Tensor<T>& bias, ConvFusion<T> then,
                           Pair stride = {1, 1}, Pair padding = {0, 0}, Pair dilation = {1, 1}, int64_t groups = 1,
                           kernel::ConvWeightCache* weight_cache = nullptr) {
  const ConvGeometry g = detail::conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  const auto needs_grad = [](const Tensor<T>& t) { return t.defined() && t.requires_grad(); };
  TV_CHECK(!is_grad_enabled() || !(needs_grad(input) || needs_grad(weight) || needs_grad(bias) || needs_grad(then.scale) ||
                                   needs_grad(then.shift) || needs_grad(then.residual)),
           "conv2d_inference: an input requires grad, and no gradient flows through this op (use the ops one by one, "
           "or run under tv::NoGradGuard)");
  const Shape out{g.N, g.Cout, g.OH, g.OW};
  TV_CHECK(then.scale.defined() == then.shift.defined(), "conv2d_inference: give both scale and shift, or neither");
  for (const Tensor<T>* t : {&then.scale, &then.shift})
    TV_CHECK(!t->defined() || (t->dim() == 1 && t->size(0) == g.Cout), "conv2d_inference: scale and shift must have one "
             "value per output channel (", g.Cout, "), got shape ", t->shape());
  TV_CHECK(!then.residual.defined() || then.residual.shape() == out, "conv2d_inference: residual of shape ",
           then.residual.shape(), " for an output of shape ", out);
  const Device device = device_of("conv2d", input, weight, bias, then.scale, then.shift, then.residual);
  auto c = [](const Tensor<T>& t) { return t.defined() ? t.contiguous() : t; };
  Tensor<T> y = detail::residual_reusable(then.residual, g) ? then.residual : Tensor<T>::empty(out, device);
  if (y.is_same(then.residual)) y.storage()->bump_version();
  kernel::conv2d_forward_fused(g, input.contiguous(), weight.contiguous(), c(bias), c(then.scale), c(then.shift),
                               c(then.residual), then.relu, y, weight.is_contiguous() ? weight_cache : nullptr);
  return y;
}

}  // namespace tv
