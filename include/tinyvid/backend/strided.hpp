#pragma once
// Strided layouts shared by every device's kernels.
#include <array>
#include <cstddef>
#include <utility>

#include "tinyvid/core/shape.hpp"

namespace tv {

// Drops size-1 dims and merges neighbours that are contiguous for all K operands.
template <size_t K>
void coalesce(Shape& shape, std::array<Shape, K>& strides) {
  Shape s;
  std::array<Shape, K> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !s.empty();
    for (size_t k = 0; k < K && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      s.back() *= shape[d];
      for (size_t k = 0; k < K; ++k) st[k].back() = strides[k][d];
    } else {
      s.push_back(shape[d]);
      for (size_t k = 0; k < K; ++k) st[k].push_back(strides[k][d]);
    }
  }
  shape = std::move(s);
  strides = std::move(st);
}

}  // namespace tv
