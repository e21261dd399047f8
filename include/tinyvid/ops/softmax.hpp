#pragma once
// softmax and log_softmax along a dim, numerically stable (the row maximum is subtracted first).
#include <cmath>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

namespace detail {

// Applies row_fn(in_row, out_row, n, row_index) to every row along `dim` of x; returns the result in x's shape.
template <class T, class RowFn>
Tensor<T> along_rows(const Tensor<T>& x, int64_t dim, RowFn row_fn) {
  const int64_t d = wrap_dim(dim, x.dim(), "softmax");
  if (x.dim() == 0) return along_rows(x.reshape({1}), 0, row_fn).reshape({});
  const Tensor<T> moved = x.transpose(d, -1).contiguous();
  Tensor<T> out = Tensor<T>::empty(moved.shape());
  const int64_t n = moved.size(-1), rows = moved.numel() / std::max<int64_t>(n, 1);
  parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) row_fn(moved.data() + r * n, out.data() + r * n, n, r);
  });
  return d == x.dim() - 1 ? out : out.transpose(d, -1).contiguous();
}

// The row's maximum, skipping a NaN: a NaN anywhere in the row makes the sum of exponentials NaN, so the whole
// row comes out NaN, as in PyTorch (and +inf gives inf - inf = NaN there too).
template <class T>
T row_max(const T* p, int64_t n) {
  T m = p[0];
  for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}

}  // namespace detail

// exp(x - max) / sum, per row along dim. Backward: gx = y * (g - sum(g * y)).
template <class T>
Tensor<T> softmax(const Tensor<T>& x, int64_t dim) {
  Tensor<T> y;
  {
    NoGradGuard forward_only;  // the row shuffling is not part of the graph; record() adds one node
    y = detail::along_rows(x, dim, [](const T* in, T* out, int64_t n, int64_t) {
      const T m = detail::row_max(in, n);
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += (out[i] = std::exp(in[i] - m));
      const T inv = static_cast<T>(1.0 / s);
      for (int64_t i = 0; i < n; ++i) out[i] *= inv;
    });
  }
  autograd::record(y, "SoftmaxBackward", {x}, [sy = autograd::Saved<T>(y), dim](const Tensor<T>& g, const autograd::Node<T>&) {
    const Tensor<T> yv = sy.get("softmax");
    const Tensor<T> gc = g.transpose(dim, -1).contiguous();
    const Tensor<T> yt = yv.transpose(dim, -1).contiguous();
    Tensor<T> gx = detail::along_rows(yt, -1, [&](const T* yr, T* out, int64_t n, int64_t r) {
      const T* gr = gc.data() + r * n;
      double dot = 0;
      for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(gr[i]) * yr[i];
      for (int64_t i = 0; i < n; ++i) out[i] = yr[i] * (gr[i] - static_cast<T>(dot));
    });
    return std::vector<Tensor<T>>{gx.transpose(dim, -1).contiguous()};
  });
  return y;
}

// x - max - log(sum(exp(x - max))), per row along dim. Backward: gx = g - exp(y) * sum(g).
template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, int64_t dim) {
  Tensor<T> y;
  {
    NoGradGuard forward_only;
    y = detail::along_rows(x, dim, [](const T* in, T* out, int64_t n, int64_t) {
      const T m = detail::row_max(in, n);
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(in[i] - m));
      const T lse = static_cast<T>(std::log(s));
      for (int64_t i = 0; i < n; ++i) out[i] = (in[i] - m) - lse;  // this order: exactly <= 0 at the maximum
    });
  }
  autograd::record(y, "LogSoftmaxBackward", {x}, [sy = autograd::Saved<T>(y), dim](const Tensor<T>& g, const autograd::Node<T>&) {
    const Tensor<T> yt = sy.get("log_softmax").transpose(dim, -1).contiguous();
    const Tensor<T> gc = g.transpose(dim, -1).contiguous();
    Tensor<T> gx = detail::along_rows(yt, -1, [&](const T* yr, T* out, int64_t n, int64_t r) {
      const T* gr = gc.data() + r * n;
      double total = 0;
      for (int64_t i = 0; i < n; ++i) total += gr[i];
      for (int64_t i = 0; i < n; ++i) out[i] = gr[i] - std::exp(yr[i]) * static_cast<T>(total);
    });
    return std::vector<Tensor<T>>{gx.transpose(dim, -1).contiguous()};
  });
  return y;
}

}  // namespace tv
