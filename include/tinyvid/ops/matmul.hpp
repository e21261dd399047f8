#pragma once
// matmul with torch.matmul's rules: 1-D operands are promoted and the added dim removed, batch dims
// broadcast. Each matrix is handed to the GEMM where it lies (transposed views need no copy).
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/matmul.hpp"
#include "tinyvid/ops/reduce.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

namespace detail {

// Batched product of a [..., M, K] and b [..., K, N] with broadcast batch dims; no autograd.
template <class T>
Tensor<T> matmul_raw(Tensor<T> a, Tensor<T> b) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  TV_CHECK(b.size(-2) == K, "matmul: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied (", K,
           " columns vs ", b.size(-2), " rows)");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  const Device device = device_of("matmul", a, b);
  if (!kernel::gemm_ready(a)) a = a.contiguous();
  if (!kernel::gemm_ready(b)) b = b.contiguous();
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor<T> out = Tensor<T>::empty(out_shape, device);
  kernel::matmul(a, b, out);
  return out;
}

}  // namespace detail

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  TV_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got shapes ", a.shape(), " and ",
           b.shape());
  if (a.dim() == 1 && b.dim() == 1) {
    TV_CHECK(a.size(0) == b.size(0), "matmul: vectors of shapes ", a.shape(), " and ", b.shape(), " differ in length");
    return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  }
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  Tensor<T> out = detail::matmul_raw(a, b);
  autograd::record(out, "MatmulBackward", {a, b},
                   [sa = autograd::Saved<T>(a), sb = autograd::Saved<T>(b)](const Tensor<T>& g, const autograd::Node<T>& n) {
                     const auto& x = sa.get("matmul");
                     const auto& y = sb.get("matmul");
                     std::vector<Tensor<T>> r(2);
                     if (n.needs_grad(0)) r[0] = sum_to(detail::matmul_raw(g, y.transpose(-1, -2)), x.shape());
                     if (n.needs_grad(1)) r[1] = sum_to(detail::matmul_raw(x.transpose(-1, -2), g), y.shape());
                     return r;
                   });
  return out;
}

}  // namespace tv
