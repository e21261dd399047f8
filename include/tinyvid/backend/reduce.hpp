#pragma once
// Dispatch of the reductions: sums over a set of dims, the maximum along a dim, the first non-finite value.
#include <cstdint>
#include <vector>

#include "tinyvid/backend/cpu/reduce.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::kernel {

// out (contiguous, the kept dims in order; any keepdim shape of them) = scale * sum of x over the dims where
// reduce[d]. Sums accumulate in double.
template <class T>
void sum(const Tensor<T>& x, const std::vector<bool>& reduce, Tensor<T>& out, double scale = 1.0) {
  TV_CHECK(out.is_contiguous() && static_cast<int64_t>(reduce.size()) == x.dim(),
           "sum: expected a contiguous output and one flag per dim of the input of shape ", x.shape());
  TV_DISPATCH("sum", device_of("sum", x, out), sum(x.data(), x.shape(), x.strides(), reduce, out.data(), scale));
}

// values, indices (contiguous, x's shape without `dim`) = the maximum of x along dim and the index of its
// first occurrence; NaN wins, as in PyTorch.
template <class T>
void max_along(const Tensor<T>& x, int64_t dim, Tensor<T>& values, Tensor<int64_t>& indices) {
  TV_CHECK(values.is_contiguous() && indices.is_contiguous(), "max: expected contiguous outputs");
  TV_DISPATCH("max", device_of("max", x, values, indices),
              max_along(x.data(), x.shape(), x.strides(), dim, values.data(), indices.data()));
}

template <class T>
struct NonFinite {
  int64_t index = -1;  // in x's flat order; -1 when every value is finite
  T value = T(0);      // the value found there
};

// The first infinity or NaN of a contiguous x. A HOST READ by design: its answer decides on the host whether
// to throw, so on a GPU it waits for the device (one scalar comes back, not the tensor).
template <class T>
NonFinite<T> first_non_finite(const Tensor<T>& x) {
  TV_CHECK(x.is_contiguous(), "check_finite: expected a contiguous tensor");
  NonFinite<T> r;
  TV_DISPATCH("check_finite", x.device(), first_non_finite(x.data(), x.numel(), &r.index, &r.value));
  return r;
}

}  // namespace tv::kernel
