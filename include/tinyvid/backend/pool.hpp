#pragma once
// Dispatch of the pooling kernels. Inputs and outputs are contiguous N x C x H x W tensors whose sizes agree with
// the geometry (the ops check shapes before allocating); backward kernels overwrite the whole input gradient.
#include "tinyvid/backend/cpu/pool.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::detail {
template <class T>
void check_pool_planes(const char* op, const Tensor<T>& t, int64_t planes, int64_t H, int64_t W) {
  TV_CHECK(t.dim() == 4 && t.is_contiguous() && t.size(0) * t.size(1) == planes && t.size(2) == H && t.size(3) == W,
           op, ": expected a contiguous tensor of ", planes, " planes of ", H, " x ", W, ", got shape ", t.shape());
}
}  // namespace tv::detail

namespace tv::kernel {

// y = max over each window of x, argmax (where defined) = the flat index of each maximum within its input plane.
template <class T>
void max_pool2d(const Tensor<T>& x, Tensor<T>& y, Tensor<int64_t>& argmax, const PoolGeometry& g) {
  ::tv::detail::check_pool_planes("max_pool2d", x, g.planes, g.H, g.W);
  ::tv::detail::check_pool_planes("max_pool2d", y, g.planes, g.OH, g.OW);
  if (!argmax.defined()) {
    TV_DISPATCH("max_pool2d", device_of("max_pool2d", x, y), max_pool2d<T>(x.data(), y.data(), nullptr, g));
    return;
  }
  ::tv::detail::check_pool_planes("max_pool2d", argmax, g.planes, g.OH, g.OW);
  TV_DISPATCH("max_pool2d", device_of("max_pool2d", x, y, argmax), max_pool2d<T>(x.data(), y.data(), argmax.data(), g));
}

// gx = gy sent to each window's maximum.
template <class T>
void max_pool2d_backward(const Tensor<T>& gy, const Tensor<int64_t>& argmax, Tensor<T>& gx, const PoolGeometry& g) {
  ::tv::detail::check_pool_planes("max_pool2d_backward", gy, g.planes, g.OH, g.OW);
  ::tv::detail::check_pool_planes("max_pool2d_backward", argmax, g.planes, g.OH, g.OW);
  ::tv::detail::check_pool_planes("max_pool2d_backward", gx, g.planes, g.H, g.W);
  TV_DISPATCH("max_pool2d_backward", device_of("max_pool2d_backward", gy, argmax, gx),
              max_pool2d_backward<T>(gy.data(), argmax.data(), gx.data(), g));
}

// y = mean over each window of x (PyTorch's divisor, count_include_pad or not).
template <class T>
void avg_pool2d(const Tensor<T>& x, Tensor<T>& y, const PoolGeometry& g, bool count_include_pad) {
  ::tv::detail::check_pool_planes("avg_pool2d", x, g.planes, g.H, g.W);
  ::tv::detail::check_pool_planes("avg_pool2d", y, g.planes, g.OH, g.OW);
  TV_DISPATCH("avg_pool2d", device_of("avg_pool2d", x, y), avg_pool2d<T>(x.data(), y.data(), g, count_include_pad));
}

// gx = gy spread evenly over each window.
template <class T>
void avg_pool2d_backward(const Tensor<T>& gy, Tensor<T>& gx, const PoolGeometry& g, bool count_include_pad) {
  ::tv::detail::check_pool_planes("avg_pool2d_backward", gy, g.planes, g.OH, g.OW);
  ::tv::detail::check_pool_planes("avg_pool2d_backward", gx, g.planes, g.H, g.W);
  TV_DISPATCH("avg_pool2d_backward", device_of("avg_pool2d_backward", gy, gx),
              avg_pool2d_backward<T>(gy.data(), gx.data(), g, count_include_pad));
}

// y (N x C x OH x OW) = mean over PyTorch's adaptive windows of x (N x C x H x W).
template <class T>
void adaptive_avg_pool2d(const Tensor<T>& x, Tensor<T>& y) {
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  ::tv::detail::check_pool_planes("adaptive_avg_pool2d", x, planes, H, W);
  ::tv::detail::check_pool_planes("adaptive_avg_pool2d", y, planes, OH, OW);
  TV_DISPATCH("adaptive_avg_pool2d", device_of("adaptive_avg_pool2d", x, y),
              adaptive_avg_pool2d<T>(x.data(), y.data(), planes, H, W, OH, OW));
}

// gx (N x C x H x W) = gy (N x C x OH x OW) spread evenly over each adaptive window.
template <class T>
void adaptive_avg_pool2d_backward(const Tensor<T>& gy, Tensor<T>& gx) {
  const int64_t planes = gx.size(0) * gx.size(1), H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  ::tv::detail::check_pool_planes("adaptive_avg_pool2d_backward", gy, planes, OH, OW);
  ::tv::detail::check_pool_planes("adaptive_avg_pool2d_backward", gx, planes, H, W);
  TV_DISPATCH("adaptive_avg_pool2d_backward", device_of("adaptive_avg_pool2d_backward", gy, gx),
              adaptive_avg_pool2d_backward<T>(gy.data(), gx.data(), planes, H, W, OH, OW));
}

}  // namespace tv::kernel
