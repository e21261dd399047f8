#pragma once
// A matrix operand of the GEMMs (gemm.hpp, packed_gemm.hpp): a pointer and strides over a tinyvid buffer.
#include <algorithm>
#include <cstdint>

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

template <class T>
int64_t row_major_ld(const MatrixRef<T>& c) {
  return c.rows == 1 ? std::max<int64_t>(c.cols, 1) : c.row_stride;
}

}  // namespace tv::cpu
