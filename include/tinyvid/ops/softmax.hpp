#pragma once
// softmax and log_softmax along a dim, numerically stable (the row maximum is subtracted first).
// The kernels (backend/softmax.hpp) work on rows along the last dim: another dim is moved there and back.
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/softmax.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

namespace detail {

// Applies a row kernel, kernel(in, out) on contiguous tensors with rows along their last dim, to the rows
// along `dim` of x; returns the result in x's shape, on x's device.
template <class T, class Kernel>
Tensor<T> along_rows(const Tensor<T>& x, int64_t dim, Kernel kernel) {
  const int64_t d = wrap_dim(dim, x.dim(), "softmax");
  if (x.dim() == 0) return along_rows(x.reshape({1}), 0, kernel).reshape({});
  const Tensor<T> moved = x.transpose(d, -1).contiguous();
  Tensor<T> out = Tensor<T>::empty(moved.shape(), moved.device());
  kernel(moved, out);
  return d == x.dim() - 1 ? out : out.transpose(d, -1).contiguous();
}

// A backward along rows: kernel(y, g, gx) on the output y and the gradient g with `dim` moved last.
template <class T, class Kernel>
Tensor<T> backward_along_rows(const Tensor<T>& y, const Tensor<T>& g, int64_t dim, Kernel kernel) {
  const Tensor<T> yt = y.transpose(dim, -1).contiguous();
  const Tensor<T> gc = g.transpose(dim, -1).contiguous();
  Tensor<T> gx = Tensor<T>::empty(yt.shape(), yt.device());
  kernel(yt, gc, gx);
  return gx.transpose(dim, -1).contiguous();
}

}  // namespace detail

// exp(x - max) / sum, per row along dim. Backward: gx = y * (g - sum(g * y)).
template <class T>
Tensor<T> softmax(const Tensor<T>& x, int64_t dim) {
  Tensor<T> y;
  {
    NoGradGuard forward_only;  // the row shuffling is not part of the graph; record() adds one node
    y = detail::along_rows(x, dim, [](const Tensor<T>& in, Tensor<T>& out) { kernel::softmax_rows(in, out); });
  }
  autograd::record(y, "SoftmaxBackward", {x}, [sy = autograd::Saved<T>(y), dim](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{detail::backward_along_rows(
        sy.get("softmax"), g, dim,
        [](const Tensor<T>& yt, const Tensor<T>& gc, Tensor<T>& gx) { kernel::softmax_backward_rows(yt, gc, gx); })};
  });
  return y;
}

// x - max - log(sum(exp(x - max))), per row along dim. Backward: gx = g - exp(y) * sum(g).
template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, int64_t dim) {
  Tensor<T> y;
  {
    NoGradGuard forward_only;
    y = detail::along_rows(x, dim, [](const Tensor<T>& in, Tensor<T>& out) { kernel::log_softmax_rows(in, out); });
  }
  autograd::record(y, "LogSoftmaxBackward", {x}, [sy = autograd::Saved<T>(y), dim](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{detail::backward_along_rows(
        sy.get("log_softmax"), g, dim,
        [](const Tensor<T>& yt, const Tensor<T>& gc, Tensor<T>& gx) {
          kernel::log_softmax_backward_rows(yt, gc, gx);
        })};
  });
  return y;
}

}  // namespace tv
