#pragma once
// Reductions over any set of dims (sum, mean, var) and along one dim (max with its indices; NaN wins, as in
// PyTorch), and check_finite. An empty dim list means all dims, as torch.sum(x) does.
#include <string>
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/backend/functors.hpp"
#include "tinyvid/backend/index.hpp"
#include "tinyvid/backend/reduce.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

namespace detail {

// Which dims a reduction covers; every dim when `dims` is empty.
inline std::vector<bool> reduce_mask(const Shape& dims, int64_t ndim, const char* op) {
  std::vector<bool> mask(ndim, dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, ndim, op);
    TV_CHECK(!mask[w], op, ": dim ", d, " appears more than once in ", dims);
    mask[w] = true;
  }
  return mask;
}

inline Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!mask[d]) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

inline int64_t reduced_count(const Shape& shape, const std::vector<bool>& mask) {
  int64_t n = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    if (mask[d]) n *= shape[d];
  return n;
}

// scale * sum over the masked dims, without autograd.
template <class T>
Tensor<T> sum_raw(const Tensor<T>& x, const std::vector<bool>& mask, bool keepdim, double scale) {
  Tensor<T> out = Tensor<T>::empty(reduced_shape(x.shape(), mask, keepdim), x.device());
  kernel::sum(x, mask, out, scale);
  return out;
}

// The gradient of a reduction: g (reduced shape) read back over the input shape, as a view.
template <class T>
Tensor<T> expand_back(const Tensor<T>& g, const Shape& in_shape, const std::vector<bool>& mask) {
  return g.reshape(reduced_shape(in_shape, mask, true)).expand(in_shape);
}

}  // namespace detail

// Sums x down to `shape` (the shape it was broadcast from): the adjoint of broadcasting.
template <class T>
Tensor<T> sum_to(const Tensor<T>& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const size_t lead = x.shape().size() - shape.size();
  TV_CHECK(x.shape().size() >= shape.size(), "sum_to: cannot sum shape ", x.shape(), " to more dims ", shape);
  std::vector<bool> mask(x.dim(), false);
  for (size_t d = 0; d < x.shape().size(); ++d) {
    if (d < lead) mask[d] = true;
    else {
      int64_t want = shape[d - lead];
      TV_CHECK(want == x.shape()[d] || want == 1, "sum_to: shape ", x.shape(), " does not broadcast from ", shape);
      mask[d] = want == 1 && x.shape()[d] != 1;
    }
  }
  return detail::sum_raw(x, mask, true, 1.0).reshape(shape);
}

template <class T>
Tensor<T> sum(const Tensor<T>& x, const Shape& dims = {}, bool keepdim = false) {
  auto mask = detail::reduce_mask(dims, x.dim(), "sum");
  Tensor<T> out = detail::sum_raw(x, mask, keepdim, 1.0);
  Shape in_shape = x.shape();
  autograd::record(out, "SumBackward", {x}, [in_shape, mask](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{detail::expand_back(g, in_shape, mask)};
  });
  return out;
}

template <class T>
Tensor<T> mean(const Tensor<T>& x, const Shape& dims = {}, bool keepdim = false) {
  auto mask = detail::reduce_mask(dims, x.dim(), "mean");
  const double n = static_cast<double>(detail::reduced_count(x.shape(), mask));
  Tensor<T> out = detail::sum_raw(x, mask, keepdim, 1.0 / n);
  Shape in_shape = x.shape();
  autograd::record(out, "MeanBackward", {x}, [in_shape, mask, n](const Tensor<T>& g, const autograd::Node<T>&) {
    Tensor<T> gs = Tensor<T>::empty(g.shape(), g.device());
    kernel::map(g, gs, fn::MulScalar<T>{static_cast<T>(1.0 / n)}, "mean");
    return std::vector<Tensor<T>>{detail::expand_back(gs, in_shape, mask)};
  });
  return out;
}

// Variance over dims: unbiased (divides by n - 1, torch's default) or biased (by n).
template <class T>
Tensor<T> var(const Tensor<T>& x, const Shape& dims = {}, bool unbiased = true, bool keepdim = false) {
  auto mask = detail::reduce_mask(dims, x.dim(), "var");
  const double n = static_cast<double>(detail::reduced_count(x.shape(), mask));
  const double denom = std::max(0.0, n - (unbiased ? 1.0 : 0.0));
  Tensor<T> m = detail::sum_raw(x, mask, true, 1.0 / n);
  // Two passes (mean, then squared deviations) keep the result exact for data far from zero.
  Tensor<T> sq = Tensor<T>::empty(x.shape(), x.device());
  kernel::zip(x, m, sq, fn::SquaredDiff{}, "var");
  Tensor<T> out = detail::sum_raw(sq, mask, keepdim, 1.0 / denom);
  autograd::record(out, "VarBackward", {x},
                   [sx = autograd::Saved<T>(x), m, mask, denom](const Tensor<T>& g, const autograd::Node<T>&) {
                     const Tensor<T>& xv = sx.get("var");
                     Tensor<T> ge = detail::expand_back(g, xv.shape(), mask);
                     Tensor<T> gx = Tensor<T>::empty(xv.shape(), xv.device());
                     // gx = g * 2 (x - mean) / denom
                     kernel::zip(xv, m, gx, fn::ScaledDiff<T>{static_cast<T>(2.0 / denom)}, "var");
                     kernel::zip(gx, ge, gx, fn::Mul{}, "var");
                     return std::vector<Tensor<T>>{gx};
                   });
  return out;
}

template <class T>
struct ValuesIndices {
  Tensor<T> values;
  Tensor<int64_t> indices;
};

// Maximum along `dim` and where it is (the first maximum; NaN propagates), as torch.max(x, dim).
template <class T>
ValuesIndices<T> max(const Tensor<T>& x, int64_t dim, bool keepdim = false) {
  TV_CHECK(x.numel() > 0, "max: cannot take the maximum of an empty tensor of shape ", x.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "max");
  if (x.dim() == 0) return max(x.reshape({1}), 0, keepdim);
  std::vector<bool> mask(x.dim(), false);
  mask[d] = true;
  Shape out_shape = detail::reduced_shape(x.shape(), mask, keepdim);
  Tensor<T> values = Tensor<T>::empty(out_shape, x.device());
  Tensor<int64_t> indices = Tensor<int64_t>::empty(out_shape, x.device());
  kernel::max_along(x, d, values, indices);
  Shape in_shape = x.shape();
  autograd::record(values, "MaxBackward", {x}, [in_shape, mask, d, indices](const Tensor<T>& g, const autograd::Node<T>&) {
    // Scatter g to the positions of the maxima.
    Shape keep = detail::reduced_shape(in_shape, mask, true);
    Tensor<T> gk = g.reshape(keep);
    Tensor<int64_t> ik = indices.reshape(keep);
    Tensor<T> gx = zeros<T>(in_shape, g.device());
    kernel::scatter_add(gk, d, ik, gx);
    return std::vector<Tensor<T>>{gx};
  });
  return {values, indices};
}

// The largest element of x (a tensor with no dims).
template <class T>
Tensor<T> max(const Tensor<T>& x) {
  return max(x.reshape({-1}), 0, false).values;
}

// Refuses a tensor holding an infinity or NaN: `what` (e.g. "Recognizer::forward: input") with the shape,
// the first bad value and its index. For the inputs of a model, where a non-finite value would otherwise
// come out as plausible-looking scores or a NaN loss far from its cause.
// A HOST READ by design (the answer decides whether to throw): on a GPU it waits for the device, and one index
// and one value come back (kernel::first_non_finite), never the tensor.
template <class T>
void check_finite(const Tensor<T>& x, const std::string& what) {
  const Tensor<T> c = x.contiguous();
  const kernel::NonFinite<T> found = kernel::first_non_finite(c);
  if (found.index < 0) return;
  int64_t i = found.index;
  Shape index(static_cast<size_t>(c.dim()));
  for (int64_t d = c.dim() - 1; d >= 0; --d) {
    index[static_cast<size_t>(d)] = i % c.size(d);
    i /= c.size(d);
  }
  TV_FAIL(what, " of shape ", x.shape(), ": expected finite values, got ", found.value, " at index ", index);
}

template <class T>
Tensor<int64_t> argmax(const Tensor<T>& x, int64_t dim, bool keepdim = false) {
  NoGradGuard no_grad;
  return max(x, dim, keepdim).indices;
}

}  // namespace tv
