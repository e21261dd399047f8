#pragma once
// The one GEMM every matrix product goes through: C = A * B + beta * C on tinyvid buffers mapped
// into Eigen without copying. Built with TINYVID_WITH_OPENBLAS, Eigen hands the product to OpenBLAS
// (EIGEN_USE_BLAS); otherwise Eigen's own GEMM runs.
#include <algorithm>
#include <cstdint>

#include <Eigen/Core>

namespace tv::cpu {

// A matrix operand: element (i, j) lives at data[i * row_stride + j * col_stride].
template <class T>
struct MatrixRef {
  T* data;
  int64_t rows, cols, row_stride, col_stride;
  // Eigen needs unit stride along one dim and a leading dimension that covers the other (so no
  // expanded, zero-stride operand); a dim of size 1 makes its stride irrelevant.
  bool is_row_major() const { return (cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= cols); }
  bool is_col_major() const { return (rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= rows); }
  bool mappable() const { return is_row_major() || is_col_major(); }
  int64_t leading_dim() const {
    if (is_row_major()) return rows == 1 ? std::max<int64_t>(cols, 1) : row_stride;
    return cols == 1 ? std::max<int64_t>(rows, 1) : col_stride;
  }
};

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

template <class T>
int64_t row_major_ld(const MatrixRef<T>& c) {
  return c.rows == 1 ? std::max<int64_t>(c.cols, 1) : c.row_stride;
}

// C = A * B + beta * C; C must be row-major (col_stride 1); A and B must be mappable().
template <class T>
void gemm(const MatrixRef<const T>& a, const MatrixRef<const T>& b, const MatrixRef<T>& c, T beta = T(0)) {
  if (c.rows == 0 || c.cols == 0) return;
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
}

}  // namespace tv::cpu
