#pragma once
// Strided loops over K operands that share one shape. Dims that are contiguous for every operand
// are merged first, so most calls become a single long inner loop; rows are split across threads.
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "tinyvid/backend/strided.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/shape.hpp"

namespace tv::cpu {

// The output columns [lo, hi) within [ox0, ox1) whose input column ox * stride + off lies in [0, W):
// computed once per run (conv unrolling, pooling), so the loops carry no bounds test.
inline void valid_columns(int64_t ox0, int64_t ox1, int64_t off, int64_t stride, int64_t W, int64_t& lo, int64_t& hi) {
  auto ceil_div = [](int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
  lo = std::clamp(ceil_div(-off, stride), ox0, ox1);
  hi = std::clamp(ceil_div(W - off, stride), lo, ox1);
}

template <size_t K>
using Offsets = std::array<int64_t, K>;

// Calls row(offsets, n, inner_strides) for every innermost row of `shape`, in parallel. When there
// are few rows (a contiguous tensor is a single row), rows are cut into pieces so that the threads
// share the work evenly. row must not throw.
template <size_t K, class F>
void for_each_row(Shape shape, std::array<Shape, K> strides, F&& row) {
  if (numel_of(shape) == 0) return;
  coalesce(shape, strides);
  if (shape.empty()) {
    row(Offsets<K>{}, int64_t{1}, Offsets<K>{});
    return;
  }
  const int64_t nd = static_cast<int64_t>(shape.size());
  const int64_t inner = shape.back();
  const int64_t rows = numel_of(shape) / inner;
  const int64_t threads = get_num_threads();
  // Rows cut into pieces of about kParallelGrain elements unless there are rows enough to share: with one piece per
  // thread (a contiguous tensor cut in two), a thread on a slower core finished last and the other waited (relu's
  // gradient and the gradients' sums in a ResNet-50 step: a quarter of their time).
  const int64_t per_row = rows >= 8 * threads ? 1 : (inner + kParallelGrain - 1) / kParallelGrain;
  const int64_t piece = std::min(inner, ((inner + per_row - 1) / per_row + 15) / 16 * 16);
  const int64_t pieces = (inner + piece - 1) / piece;
  Offsets<K> inner_strides;
  for (size_t k = 0; k < K; ++k) inner_strides[k] = strides[k].back();
  parallel_for(0, rows * pieces, std::max<int64_t>(1, kParallelGrain / piece), [&](int64_t b, int64_t e) {
    // Decompose the first row index once, then step through the outer dims like an odometer.
    std::vector<int64_t> idx(nd, 0);
    Offsets<K> off{};
    int64_t r = b / pieces;
    for (int64_t d = nd - 2; d >= 0; --d) {
      idx[d] = r % shape[d];
      r /= shape[d];
      for (size_t k = 0; k < K; ++k) off[k] += idx[d] * strides[k][d];
    }
    for (int64_t w = b; w < e; ++w) {
      const int64_t p = w % pieces, start = p * piece;
      Offsets<K> at = off;
      for (size_t k = 0; k < K; ++k) at[k] += start * inner_strides[k];
      row(at, std::min(piece, inner - start), inner_strides);
      if (p + 1 < pieces) continue;
      for (int64_t d = nd - 2; d >= 0; --d) {
        if (++idx[d] < shape[d]) {
          for (size_t k = 0; k < K; ++k) off[k] += strides[k][d];
          break;
        }
        for (size_t k = 0; k < K; ++k) off[k] -= (shape[d] - 1) * strides[k][d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace tv::cpu
