#pragma once
// Indexing along a dim: gather (what cross-entropy needs) and shift (TSM's and DNR's channel
// interlacing: move along a dim by whole steps, fill what is vacated with zeros).
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/cpu/elementwise.hpp"
#include "tinyvid/backend/cpu/index.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

// out[i][j][k] = x[i][index[i][j][k]][k] for dim 1, as torch.gather. index has x's number of dims
// and is no larger than x in the other dims.
template <class T>
Tensor<T> gather(const Tensor<T>& x, int64_t dim, const Tensor<int64_t>& index) {
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  TV_CHECK(index.dim() == x.dim(), "gather: index has ", index.dim(), " dims (shape ", index.shape(),
           ") but the input has ", x.dim(), " (shape ", x.shape(), ")");
  for (int64_t k = 0; k < x.dim(); ++k)
    TV_CHECK(k == d || index.size(k) <= x.size(k), "gather: index shape ", index.shape(), " is larger than input shape ",
             x.shape(), " in dim ", k);
  const int64_t n = x.size(d);
  const int64_t* ip = index.data();
  for_each_offset(index.shape(), index.strides(), [&](int64_t off) {
    TV_CHECK(ip[off] >= 0 && ip[off] < n, "gather: index ", ip[off], " is out of range for dim ", d, " of size ", n,
             " (input shape ", x.shape(), ")");
  });
  Tensor<T> out = Tensor<T>::empty(index.shape());
  cpu::gather(x.data(), x.strides(), d, index.data(), index.shape(), index.strides(), out.data());
  Shape in_shape = x.shape();
  autograd::record(out, "GatherBackward", {x}, [in_shape, d, index](const Tensor<T>& g, const autograd::Node<T>&) {
    Tensor<T> gx = zeros<T>(in_shape);
    cpu::scatter_add(gx.data(), in_shape, d, index.data(), index.shape(), index.strides(), g.data(), g.strides());
    return std::vector<Tensor<T>>{gx};
  });
  return out;
}

// out[..., i, ...] = x[..., i - steps, ...] along dim, zero where i - steps is outside [0, n):
// steps = 1 moves every frame one step later, steps = -1 one step earlier. Like torch.roll without
// the wrap-around. Its gradient is the opposite shift.
template <class T>
Tensor<T> shift(const Tensor<T>& x, int64_t dim, int64_t steps) {
  const int64_t d = wrap_dim(dim, x.dim(), "shift");
  const int64_t n = x.size(d), k = std::min<int64_t>(std::abs(steps), n);
  Tensor<T> out = zeros<T>(x.shape());
  {
    NoGradGuard no_grad;
    Tensor<T> dst = out.narrow(d, steps > 0 ? k : 0, n - k);
    Tensor<T> src = x.narrow(d, steps > 0 ? 0 : k, n - k);
    cpu::copy(dst.shape(), dst.data(), dst.strides(), src.data(), src.strides());
  }
  autograd::record(out, "ShiftBackward", {x}, [d, steps](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{shift(g, d, -steps)};
  });
  return out;
}

}  // namespace tv
