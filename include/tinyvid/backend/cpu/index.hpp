#pragma once
// Gather along a dim and its adjoint, scatter-add: out[..i..] = in[..index[..i..]..] along `dim`.
#include <cstdint>

#include "tinyvid/backend/cpu/loops.hpp"

namespace tv::cpu {

// out (shape of index, contiguous) = in gathered along dim; indices are already range-checked.
template <class T>
void gather(const T* in, const Shape& in_strides, int64_t dim, const int64_t* index, const Shape& index_shape,
            const Shape& index_strides, T* out) {
  Shape in_walk = in_strides;
  const int64_t dim_stride = in_strides[dim];
  in_walk[dim] = 0;  // the position along dim comes from the index
  for_each_row<3>(index_shape, {contiguous_strides(index_shape), index_strides, in_walk},
                  [&](Offsets<3> off, int64_t n, Offsets<3> st) {
                    for (int64_t i = 0; i < n; ++i)
                      out[off[0] + i * st[0]] = in[off[2] + i * st[2] + index[off[1] + i * st[1]] * dim_stride];
                  });
}

// grad_in (contiguous, zero-filled by the caller) += grad_out scattered along dim. Serial: two
// index entries may name the same element.
template <class T>
void scatter_add(T* grad_in, const Shape& grad_in_shape, int64_t dim, const int64_t* index, const Shape& index_shape,
                 const Shape& index_strides, const T* grad_out, const Shape& grad_out_strides) {
  Shape walk = contiguous_strides(grad_in_shape);
  const int64_t dim_stride = walk[dim];
  walk[dim] = 0;
  Shape shape = index_shape;
  std::array<Shape, 3> strides{grad_out_strides, index_strides, walk};
  coalesce<3>(shape, strides);
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t n = numel_of(shape);
  for (int64_t k = 0; k < n; ++k) {
    int64_t o0 = 0, o1 = 0, o2 = 0;
    for (int64_t d = 0; d < nd; ++d) {
      o0 += idx[d] * strides[0][d];
      o1 += idx[d] * strides[1][d];
      o2 += idx[d] * strides[2][d];
    }
    grad_in[o2 + index[o1] * dim_stride] += grad_out[o0];
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// How many entries of `index` (shape, strides) lie outside [0, n): *count (host memory), and *first_bad (host
// memory) the first of them in logical order. Serial: index tensors are small (labels, positions).
inline void count_out_of_range(const int64_t* index, const Shape& index_shape, const Shape& index_strides, int64_t n,
                               int64_t* count, int64_t* first_bad) {
  *count = 0;
  const int64_t total = numel_of(index_shape);
  if (total == 0) return;
  Shape shape = index_shape;
  std::array<Shape, 1> strides{index_strides};
  coalesce<1>(shape, strides);
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t v = index[off];
    if (v < 0 || v >= n) {
      if (*count == 0) *first_bad = v;
      ++*count;
    }
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[0][d];
        break;
      }
      off -= (shape[d] - 1) * strides[0][d];
      idx[d] = 0;
    }
  }
}

}  // namespace tv::cpu
