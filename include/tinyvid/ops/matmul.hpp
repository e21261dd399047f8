#pragma once
// matmul with torch.matmul's rules: 1-D operands are promoted and the added dim removed, batch dims
// broadcast. Each matrix is handed to the GEMM where it lies (transposed views need no copy).
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/cpu/gemm.hpp"
#include "tinyvid/ops/reduce.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

namespace detail {

template <class T>
cpu::MatrixRef<const T> matrix_at(const Tensor<T>& x, int64_t offset) {
  const int64_t nd = x.dim();
  return {x.data() + offset, x.shape()[nd - 2], x.shape()[nd - 1], x.strides()[nd - 2], x.strides()[nd - 1]};
}

// Batched product of a [..., M, K] and b [..., K, N] with broadcast batch dims; no autograd.
template <class T>
Tensor<T> matmul_raw(Tensor<T> a, Tensor<T> b) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  TV_CHECK(b.size(-2) == K, "matmul: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied (", K,
           " columns vs ", b.size(-2), " rows)");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  if (!matrix_at(a, 0).mappable()) a = a.contiguous();
  if (!matrix_at(b, 0).mappable()) b = b.contiguous();
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const int64_t nb = numel_of(batch);
  // Element offsets of each batch's matrices, read through broadcast strides.
  Shape sa = broadcast_strides(ba, Shape(a.strides().begin(), a.strides().end() - 2), batch);
  Shape sb = broadcast_strides(bb, Shape(b.strides().begin(), b.strides().end() - 2), batch);
  std::vector<int64_t> oa(nb, 0), ob(nb, 0);
  for (int64_t i = 0; i < nb; ++i) {
    int64_t r = i;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t k = r % batch[d];
      r /= batch[d];
      oa[i] += k * sa[d];
      ob[i] += k * sb[d];
    }
  }
  auto one = [&](int64_t i) {
    cpu::MatrixRef<T> c{out.data() + i * M * N, M, N, N, 1};
    cpu::gemm<T>(matrix_at(a, oa[i]), matrix_at(b, ob[i]), c);
  };
  // Small matrices: one per thread; large ones: the GEMM itself uses every thread.
  const bool small = M * N * K < (1 << 21);
  if (nb > 1 && small) {
    parallel_for(0, nb, 1, [&](int64_t b0, int64_t e0) {
      for (int64_t i = b0; i < e0; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < nb; ++i) one(i);
  }
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
