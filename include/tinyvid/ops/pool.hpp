#pragma once
// Pooling over NCHW as torch.nn.functional: max_pool2d, avg_pool2d, adaptive_avg_pool2d. Options as libtorch's:
// tv::max_pool2d(x, tv::MaxPool2dOptions(3).stride(2).padding(1)). The kernels are in backend/pool.hpp.
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/pool.hpp"
#include "tinyvid/core/options.hpp"
#include "tinyvid/core/shape.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

// Options as libtorch's, one set for the functions here and the nn:: layers: built (implicitly) from the
// kernel size, the stride defaulting to it, padding 0, ceil_mode false; avg_pool2d's count_include_pad defaults
// to true (padding zeros count in the divisor, as PyTorch's default). Setters chain; getters read.
class MaxPool2dOptions {
 public:
  MaxPool2dOptions(Pair kernel_size) : kernel_size_(kernel_size), stride_(kernel_size) {}  // NOLINT: implicit
  MaxPool2dOptions(int64_t kernel_size) : MaxPool2dOptions(Pair{kernel_size, kernel_size}) {}  // NOLINT
  MaxPool2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  MaxPool2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  TV_ARG(MaxPool2dOptions, Pair, kernel_size);
  TV_ARG(MaxPool2dOptions, Pair, stride);
  TV_ARG(MaxPool2dOptions, Pair, padding) = {0, 0};
  TV_ARG(MaxPool2dOptions, bool, ceil_mode) = false;
};

class AvgPool2dOptions {
 public:
  AvgPool2dOptions(Pair kernel_size) : kernel_size_(kernel_size), stride_(kernel_size) {}  // NOLINT: implicit
  AvgPool2dOptions(int64_t kernel_size) : AvgPool2dOptions(Pair{kernel_size, kernel_size}) {}  // NOLINT
  AvgPool2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  AvgPool2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  TV_ARG(AvgPool2dOptions, Pair, kernel_size);
  TV_ARG(AvgPool2dOptions, Pair, stride);
  TV_ARG(AvgPool2dOptions, Pair, padding) = {0, 0};
  TV_ARG(AvgPool2dOptions, bool, ceil_mode) = false;
  TV_ARG(AvgPool2dOptions, bool, count_include_pad) = true;
};

// adaptive_avg_pool2d's options: the output size (AdaptiveAvgPool2dOptions(1) is the global average pool).
class AdaptiveAvgPool2dOptions {
 public:
  AdaptiveAvgPool2dOptions(Pair output_size) : output_size_(output_size) {}  // NOLINT: implicit
  AdaptiveAvgPool2dOptions(int64_t output_size) : output_size_{output_size, output_size} {}  // NOLINT
  TV_ARG(AdaptiveAvgPool2dOptions, Pair, output_size);
};

namespace detail {

// Output size as PyTorch computes it, ceil_mode included (a last window must start inside the input or left padding).
inline int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t span = in + 2 * p - k;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

template <class T>
PoolGeometry pool_geometry(const char* op, const Tensor<T>& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode) {
  TV_CHECK(x.dim() == 4, op, ": expected a 4-D input (N x C x H x W), got shape ", x.shape());
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;  // torch: stride defaults to the kernel size
  TV_CHECK(kernel[0] > 0 && kernel[1] > 0 && stride[0] > 0 && stride[1] > 0, op, ": kernel [", kernel[0], ", ",
           kernel[1], "] and stride [", stride[0], ", ", stride[1], "] must be positive");
  TV_CHECK(padding[0] >= 0 && padding[1] >= 0 && 2 * padding[0] <= kernel[0] && 2 * padding[1] <= kernel[1], op,
           ": padding [", padding[0], ", ", padding[1], "] must be at most half the kernel [", kernel[0], ", ",
           kernel[1], "]");
  PoolGeometry g{x.size(0) * x.size(1), x.size(2), x.size(3), kernel[0], kernel[1], stride[0], stride[1],
                 padding[0], padding[1], 0, 0};
  TV_CHECK(g.H + 2 * g.ph >= g.KH && g.W + 2 * g.pw >= g.KW, op, ": kernel [", g.KH, ", ", g.KW,
           "] is larger than the padded input ", g.H + 2 * g.ph, " x ", g.W + 2 * g.pw, " (input shape ", x.shape(), ")");
  g.OH = pool_out_size(g.H, g.KH, g.sh, g.ph, ceil_mode);
  g.OW = pool_out_size(g.W, g.KW, g.sw, g.pw, ceil_mode);
  return g;
}

}  // namespace detail

// Max over each window; the gradient goes to the (first) maximum of the window, as in PyTorch.
template <class T>
Tensor<T> max_pool2d(const Tensor<T>& input, const MaxPool2dOptions& options) {
  const PoolGeometry g = detail::pool_geometry("max_pool2d", input, options.kernel_size(), options.stride(),
                                               options.padding(), options.ceil_mode());
  const Tensor<T> x = input.contiguous();
  Tensor<T> y = Tensor<T>::empty({input.size(0), input.size(1), g.OH, g.OW}, input.device());
  // The flat index of each maximum within its input plane, for the backward; without one (inference) the kernel
  // keeps the values alone, as torch.max_pool2d without indices (an argmax per output took half its time).
  Tensor<int64_t> argmax;
  if (is_grad_enabled() && input.requires_grad()) argmax = Tensor<int64_t>::empty(y.shape(), input.device());
  kernel::max_pool2d(x, y, argmax, g);
  autograd::record(y, "MaxPool2dBackward", {input}, [g, argmax, in_shape = input.shape()](const Tensor<T>& grad,
                                                                                          const autograd::Node<T>&) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = Tensor<T>::empty(in_shape, gy.device());
    kernel::max_pool2d_backward(gy, argmax, gx, g);
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}


// Mean over each window; count_include_pad as PyTorch's default (padding zeros count).
template <class T>
Tensor<T> avg_pool2d(const Tensor<T>& input, const AvgPool2dOptions& options) {
  const PoolGeometry g = detail::pool_geometry("avg_pool2d", input, options.kernel_size(), options.stride(),
                                               options.padding(), options.ceil_mode());
  const bool count_include_pad = options.count_include_pad();
  const Tensor<T> x = input.contiguous();
  Tensor<T> y = Tensor<T>::empty({input.size(0), input.size(1), g.OH, g.OW}, input.device());
  kernel::avg_pool2d(x, y, g, count_include_pad);
  autograd::record(y, "AvgPool2dBackward", {input}, [g, count_include_pad, in_shape = input.shape()](
                                                        const Tensor<T>& grad, const autograd::Node<T>&) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = Tensor<T>::empty(in_shape, gy.device());
    kernel::avg_pool2d_backward(gy, gx, g, count_include_pad);
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}


// Mean over PyTorch's adaptive windows: rows floor(i H / OH) to ceil((i + 1) H / OH), likewise columns.
// adaptive_avg_pool2d(x, {1, 1}) is the global average pool.
template <class T>
Tensor<T> adaptive_avg_pool2d(const Tensor<T>& input, const AdaptiveAvgPool2dOptions& options) {
  const Pair output_size = options.output_size();
  TV_CHECK(input.dim() == 4, "adaptive_avg_pool2d: expected a 4-D input (N x C x H x W), got shape ", input.shape());
  TV_CHECK(output_size[0] > 0 && output_size[1] > 0, "adaptive_avg_pool2d: output size [", output_size[0], ", ",
           output_size[1], "] must be positive");
  const Tensor<T> x = input.contiguous();
  Tensor<T> y = Tensor<T>::empty({input.size(0), input.size(1), output_size[0], output_size[1]}, input.device());
  kernel::adaptive_avg_pool2d(x, y);
  autograd::record(y, "AdaptiveAvgPool2dBackward", {input}, [in_shape = input.shape()](const Tensor<T>& grad,
                                                                                      const autograd::Node<T>&) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = Tensor<T>::empty(in_shape, gy.device());
    kernel::adaptive_avg_pool2d_backward(gy, gx);
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}


}  // namespace tv
