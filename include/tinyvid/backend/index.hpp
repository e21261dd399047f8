#pragma once
// Dispatch of the indexing kernels: gather along a dim, its adjoint scatter-add, and the range check of an index.
#include <cstdint>

#include "tinyvid/backend/cpu/index.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::kernel {

// out (contiguous, index's shape) = x gathered along dim: out[..i..] = x[..index[..i..]..]. The indices must be
// in range (index_out_of_range).
template <class T>
void gather(const Tensor<T>& x, int64_t dim, const Tensor<int64_t>& index, Tensor<T>& out) {
  TV_CHECK(out.is_contiguous() && out.shape() == index.shape(), "gather: expected a contiguous output of the index's shape");
  TV_DISPATCH("gather", device_of("gather", x, index, out),
              gather(x.data(), x.strides(), dim, index.data(), index.shape(), index.strides(), out.data()));
}

// grad_in (contiguous, filled by the caller, usually with zeros) += grad_out scattered along dim by index.
template <class T>
void scatter_add(const Tensor<T>& grad_out, int64_t dim, const Tensor<int64_t>& index, Tensor<T>& grad_in) {
  TV_CHECK(grad_in.is_contiguous() && grad_out.shape() == index.shape(),
           "scatter_add: expected a contiguous destination and a source of the index's shape");
  TV_DISPATCH("scatter_add", device_of("scatter_add", grad_out, index, grad_in),
              scatter_add(grad_in.data(), grad_in.shape(), dim, index.data(), index.shape(), index.strides(),
                          grad_out.data(), grad_out.strides()));
}

struct OutOfRange {
  int64_t count = 0;      // entries outside [0, n)
  int64_t first_bad = 0;  // the first of them, when count > 0
};

// The entries of index outside [0, n). A HOST READ by design: an op checks its indices before it runs, so on a
// GPU this waits for the device (two scalars come back, not the index).
inline OutOfRange index_out_of_range(const Tensor<int64_t>& index, int64_t n, const char* op) {
  OutOfRange r;
  TV_DISPATCH(op, index.device(),
              count_out_of_range(index.data(), index.shape(), index.strides(), n, &r.count, &r.first_bad));
  return r;
}

}  // namespace tv::kernel
