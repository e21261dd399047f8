#pragma once
// The one GEMM every matrix product goes through: C = A * B + beta * C on tinyvid buffers, without
// copying. In float with AVX-512 kernels, tinyvid's own packed GEMM runs (packed_gemm.hpp, use_own_gemm). Otherwise,
// built with TINYVID_WITH_OPENBLAS (which comes with EIGEN_USE_BLAS, so Eigen's own products
// go to OpenBLAS too) the buffers are handed straight to OpenBLAS's sgemm/dgemm, with beta, so C is
// not zeroed in a separate pass; otherwise they are mapped into Eigen and Eigen's GEMM runs.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "tinyvid/backend/cpu/matrix_ref.hpp"
#include "tinyvid/backend/cpu/packed_gemm.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/shape.hpp"

#if defined(TINYVID_WITH_OPENBLAS) && !defined(EIGEN_USE_BLAS)
#error "TINYVID_WITH_OPENBLAS needs EIGEN_USE_BLAS (link the tinyvid::tinyvid target, which defines both)"
#endif

namespace tv::cpu {

namespace detail {
using Eigen::Dynamic;
template <class T>
using RowMap = Eigen::Map<Eigen::Matrix<T, Dynamic, Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;
template <class T>
using ColMap = Eigen::Map<Eigen::Matrix<T, Dynamic, Dynamic, Eigen::ColMajor>, 0, Eigen::OuterStride<>>;

template <class T, class F>
void with_map(const MatrixRef<T>& m, F&& f) {
  if (m.is_row_major()) f(RowMap<T>(m.data, m.rows, m.cols, Eigen::OuterStride<>(m.leading_dim())));
  else f(ColMap<T>(m.data, m.rows, m.cols, Eigen::OuterStride<>(m.leading_dim())));
}
}  // namespace detail

// C = A * B + beta * C; C must be row-major (col_stride 1); A and B must be mappable().
template <class T>
void gemm(const MatrixRef<const T>& a, const MatrixRef<const T>& b, const MatrixRef<T>& c, T beta = T(0)) {
  if (c.rows == 0 || c.cols == 0) return;
  if constexpr (std::is_same_v<T, float>)
    if (const Isa isa = active_isa(); use_own_gemm(isa)) return gemm_packed(isa, a, b, c, beta);
#ifdef TINYVID_WITH_OPENBLAS
  // BLAS is column-major: the row-major C (M x N) is the column-major C^T = B^T A^T, and a
  // row-major operand is its own transpose in column-major terms.
  TV_CHECK(c.rows < INT_MAX && c.cols < INT_MAX && a.cols < INT_MAX, "gemm: a dimension exceeds the BLAS int range");
  const int m = static_cast<int>(c.cols), n = static_cast<int>(c.rows), k = static_cast<int>(a.cols);
  const char tb = b.is_row_major() ? 'N' : 'T', ta = a.is_row_major() ? 'N' : 'T';
  const int ldb = static_cast<int>(b.leading_dim()), lda = static_cast<int>(a.leading_dim());
  const int ldc = static_cast<int>(row_major_ld(c));
  const T one = T(1);
  if constexpr (std::is_same_v<T, float>)
    sgemm_(&tb, &ta, &m, &n, &k, &one, b.data, &ldb, a.data, &lda, &beta, c.data, &ldc);
  else
    dgemm_(&tb, &ta, &m, &n, &k, &one, b.data, &ldb, a.data, &lda, &beta, c.data, &ldc);
#else
  auto as_mut = [](const MatrixRef<const T>& m) {
    return MatrixRef<T>{const_cast<T*>(m.data), m.rows, m.cols, m.row_stride, m.col_stride};
  };
  detail::RowMap<T> cm(c.data, c.rows, c.cols, Eigen::OuterStride<>(row_major_ld(c)));
  if (beta == T(0)) cm.setZero();
  else if (beta != T(1)) cm *= beta;
  if (a.cols == 0) return;
  detail::with_map(as_mut(a), [&](const auto& am) {
    detail::with_map(as_mut(b), [&](const auto& bm) { cm.noalias() += am * bm; });
  });
#endif
}

// c[i] = a[i] * b[i] for every index i of `batch` (c contiguous: M x N matrices one after another). Matrix i of
// a starts at a + sum_d i_d * a_batch_strides[d] (a zero stride broadcasts it) with row and column strides
// a_rs, a_cs; b likewise; each must be mappable(). Small products run one per thread; a large one uses
// every thread inside the GEMM.
template <class T>
void batched_gemm(const Shape& batch, const T* a, const Shape& a_batch_strides, int64_t a_rs, int64_t a_cs,
                  const T* b, const Shape& b_batch_strides, int64_t b_rs, int64_t b_cs, T* c, int64_t M, int64_t K,
                  int64_t N) {
  const int64_t nb = numel_of(batch);
  // Element offsets of each batch's matrices.
  std::vector<int64_t> oa(nb, 0), ob(nb, 0);
  for (int64_t i = 0; i < nb; ++i) {
    int64_t r = i;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t k = r % batch[d];
      r /= batch[d];
      oa[i] += k * a_batch_strides[d];
      ob[i] += k * b_batch_strides[d];
    }
  }
  auto one = [&](int64_t i) {
    MatrixRef<T> ci{c + i * M * N, M, N, N, 1};
    gemm<T>(MatrixRef<const T>{a + oa[i], M, K, a_rs, a_cs}, MatrixRef<const T>{b + ob[i], K, N, b_rs, b_cs}, ci);
  };
  const bool small = M * N * K < (1 << 21);
  if (nb > 1 && small) {
    parallel_for(0, nb, 1, [&](int64_t b0, int64_t e0) {
      for (int64_t i = b0; i < e0; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < nb; ++i) one(i);
  }
}

}  // namespace tv::cpu
