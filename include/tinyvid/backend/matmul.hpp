#pragma once
// Dispatch of the batched matrix product: each matrix is handed to the GEMM where it lies (a transposed view
// needs no copy) as long as it has unit stride along one dim (gemm_ready).
#include <cstdint>

#include "tinyvid/backend/cpu/gemm.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::kernel {

// True when the last two dims of x (at least 2-D) can go to the GEMM as they lie: unit stride along one of them
// and a leading dimension that covers the other (no expanded, zero-stride matrix). A layout query, no data.
template <class T>
bool gemm_ready(const Tensor<T>& x) {
  const int64_t nd = x.dim();
  return cpu::MatrixRef<const T>{nullptr, x.shape()[nd - 2], x.shape()[nd - 1], x.strides()[nd - 2],
                                 x.strides()[nd - 1]}
      .mappable();
}

// out (contiguous, [batch..., M, N]) = a [..., M, K] times b [..., K, N], the batch dims of a and b broadcast to
// out's. a and b must be gemm_ready (the op makes a contiguous copy otherwise).
template <class T>
void matmul(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& out) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  TV_CHECK(out.is_contiguous() && out.dim() >= 2 && out.size(-2) == M && out.size(-1) == N && b.size(-2) == K &&
               gemm_ready(a) && gemm_ready(b),
           "matmul: operands of shapes ", a.shape(), " and ", b.shape(), " for an output of shape ", out.shape());
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  const Shape sa = broadcast_strides(ba, Shape(a.strides().begin(), a.strides().end() - 2), batch);
  const Shape sb = broadcast_strides(bb, Shape(b.strides().begin(), b.strides().end() - 2), batch);
  TV_DISPATCH("matmul", device_of("matmul", a, b, out),
              batched_gemm(batch, a.data(), sa, a.stride(-2), a.stride(-1), b.data(), sb, b.stride(-2), b.stride(-1),
                           out.data(), M, K, N));
}

}  // namespace tv::kernel
