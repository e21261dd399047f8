#pragma once
// Dispatch of the softmax kernels: rows along the last dim of contiguous tensors of one shape
// (a tensor with no dims is one row of one element).
#include "tinyvid/backend/cpu/softmax.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::detail {
// Rows and row length of the last dim of `x`; checks that every tensor is contiguous and of x's shape.
template <class T, class... More>
std::pair<int64_t, int64_t> softmax_rows_of(const char* op, const Tensor<T>& x, const More&... more) {
  auto check = [&](const Tensor<T>& t) {
    TV_CHECK(t.is_contiguous() && t.shape() == x.shape(), op, ": expected contiguous tensors of shape ", x.shape(),
             ", got one of shape ", t.shape());
  };
  check(x);
  (check(more), ...);
  const int64_t n = x.dim() == 0 ? 1 : x.size(-1);
  return {x.numel() / std::max<int64_t>(n, 1), n};
}
}  // namespace tv::detail

namespace tv::kernel {

// y = softmax(x) along the last dim.
template <class T>
void softmax_rows(const Tensor<T>& x, Tensor<T>& y) {
  const auto [rows, n] = detail::softmax_rows_of("softmax", x, y);
  TV_DISPATCH("softmax", device_of("softmax", x, y), softmax_rows<T>(x.data(), y.data(), rows, n));
}

// y = log_softmax(x) along the last dim.
template <class T>
void log_softmax_rows(const Tensor<T>& x, Tensor<T>& y) {
  const auto [rows, n] = detail::softmax_rows_of("log_softmax", x, y);
  TV_DISPATCH("log_softmax", device_of("log_softmax", x, y), log_softmax_rows<T>(x.data(), y.data(), rows, n));
}

// gx = y * (g - sum(g * y)) along the last dim (softmax's backward from its output y).
template <class T>
void softmax_backward_rows(const Tensor<T>& y, const Tensor<T>& g, Tensor<T>& gx) {
  const auto [rows, n] = detail::softmax_rows_of("softmax_backward", y, g, gx);
  TV_DISPATCH("softmax_backward", device_of("softmax_backward", y, g, gx),
              softmax_backward_rows<T>(y.data(), g.data(), gx.data(), rows, n));
}

// gx = g - exp(y) * sum(g) along the last dim (log_softmax's backward from its output y).
template <class T>
void log_softmax_backward_rows(const Tensor<T>& y, const Tensor<T>& g, Tensor<T>& gx) {
  const auto [rows, n] = detail::softmax_rows_of("log_softmax_backward", y, g, gx);
  TV_DISPATCH("log_softmax_backward", device_of("log_softmax_backward", y, g, gx),
              log_softmax_backward_rows<T>(y.data(), g.data(), gx.data(), rows, n));
}

}  // namespace tv::kernel
