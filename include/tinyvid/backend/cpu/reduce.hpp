#pragma once
// Reductions on raw pointers. Sums accumulate in double, so a float sum over a large batch
// (a bias gradient over N*H*W, a batch-norm statistic) does not lose digits.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/shape.hpp"

namespace tv::cpu {

namespace detail {
struct DimList {
  Shape size, stride;
  void push(int64_t n, int64_t s) {
    if (n == 1) return;
    if (!size.empty() && stride.back() == s * n) {  // contiguous with the previous dim: merge
      size.back() *= n;
      stride.back() = s;
    } else {
      size.push_back(n);
      stride.push_back(s);
    }
  }
  int64_t numel() const { return numel_of(size); }
  int64_t offset_of(int64_t linear) const {  // storage offset of the linear index-th element
    int64_t off = 0;
    for (size_t d = size.size(); d-- > 0;) {
      off += (linear % size[d]) * stride[d];
      linear /= size[d];
    }
    return off;
  }
};
// Sum of n contiguous values in double, with 32 independent lanes so the adds do not wait on each
// other (one accumulator would be bound by the add latency, not by memory).
template <class T>
double sum_contiguous(const T* p, int64_t n) {
  constexpr int64_t L = 32;
  double lanes[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int64_t l = 0; l < L; ++l) lanes[l] += static_cast<double>(p[i + l]);
  double acc = 0.0;
  for (; i < n; ++i) acc += p[i];
  for (int64_t l = 0; l < L; ++l) acc += lanes[l];
  return acc;
}
}  // namespace detail

// out (contiguous over the kept dims, in order) = scale * sum of `in` over the dims where reduce[d].
template <class T>
void sum(const T* in, const Shape& shape, const Shape& strides, const std::vector<bool>& reduce, T* out,
         double scale = 1.0) {
  detail::DimList kept, red;
  for (size_t d = 0; d < shape.size(); ++d) (reduce[d] ? red : kept).push(shape[d], strides[d]);
  const int64_t nk = kept.numel(), nr = red.numel();
  if (nk == 0) return;
  // Reduced dims: an inner run of `red_inner` elements at stride `red_step`, repeated at `red_outer`.
  const int64_t red_inner = red.size.empty() ? 1 : red.size.back();
  const int64_t red_step = red.size.empty() ? 0 : red.stride.back();
  detail::DimList red_rest{Shape(red.size.begin(), red.size.empty() ? red.size.end() : red.size.end() - 1),
                           Shape(red.stride.begin(), red.stride.empty() ? red.stride.end() : red.stride.end() - 1)};
  std::vector<int64_t> red_outer(nr == 0 ? 0 : nr / red_inner);
  for (size_t i = 0; i < red_outer.size(); ++i) red_outer[i] = red_rest.offset_of(static_cast<int64_t>(i));

  const bool column_mode = !kept.size.empty() && kept.stride.back() == 1 && red_step != 1 && nr > 0;
  // Sum of the reduced elements of output o from run ro_begin to ro_end, inner elements [i0, i1).
  auto partial = [&](int64_t o, size_t ro_begin, size_t ro_end, int64_t i0, int64_t i1) {
    const T* base = in + kept.offset_of(o);
    double acc = 0.0;
    for (size_t r = ro_begin; r < ro_end; ++r) {
      const T* p = base + red_outer[r];
      if (red_step == 1) {
        acc += detail::sum_contiguous(p + i0, i1 - i0);
      } else {
        for (int64_t i = i0; i < i1; ++i) acc += p[i * red_step];
      }
    }
    return acc;
  };
  if (!column_mode && nk < get_num_threads() && nr >= 2 * kParallelGrain) {
    // Few outputs, many elements each (a full sum): fixed-size pieces summed in parallel, then
    // added in order, so the result does not depend on the thread count.
    const int64_t piece = kParallelGrain;
    const int64_t inner_pieces = (red_inner + piece - 1) / piece;
    const int64_t units = static_cast<int64_t>(red_outer.size()) * inner_pieces;
    std::vector<double> partials(units);
    for (int64_t o = 0; o < nk; ++o) {
      parallel_for(0, units, 1, [&](int64_t b, int64_t e) {
        for (int64_t u = b; u < e; ++u) {
          const size_t r = static_cast<size_t>(u / inner_pieces);
          const int64_t i0 = (u % inner_pieces) * piece;
          partials[u] = partial(o, r, r + 1, i0, std::min(red_inner, i0 + piece));
        }
      });
      double acc = 0.0;
      for (double v : partials) acc += v;
      out[o] = static_cast<T>(acc * scale);
    }
    return;
  }
  if (!column_mode) {
    // Each output is a sum over its own elements, the innermost run contiguous when red_step is 1.
    parallel_for(0, nk, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(nr, 1)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = static_cast<T>(partial(o, 0, red_outer.size(), 0, red_inner) * scale);
    });
    return;
  }
  // The innermost kept dim is contiguous: add whole rows into a tile of accumulators (vectorized).
  constexpr int64_t kTile = 256;
  const int64_t k_inner = kept.size.back();
  const int64_t tiles_per_row = (k_inner + kTile - 1) / kTile;
  const int64_t k_outer = nk / k_inner;
  detail::DimList kept_rest{Shape(kept.size.begin(), kept.size.end() - 1), Shape(kept.stride.begin(), kept.stride.end() - 1)};
  parallel_for(0, k_outer * tiles_per_row, std::max<int64_t>(1, kParallelGrain / (kTile * nr)), [&](int64_t b, int64_t e) {
    double acc[kTile];
    for (int64_t w = b; w < e; ++w) {
      const int64_t ko = w / tiles_per_row, t0 = (w % tiles_per_row) * kTile;
      const int64_t len = std::min(kTile, k_inner - t0);
      const T* base = in + kept_rest.offset_of(ko) + t0;
      for (int64_t j = 0; j < len; ++j) acc[j] = 0.0;
      for (int64_t ro : red_outer)
        for (int64_t i = 0; i < red_inner; ++i) {
          const T* p = base + ro + i * red_step;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) acc[j] += p[j];
        }
      T* o = out + ko * k_inner + t0;
      for (int64_t j = 0; j < len; ++j) o[j] = static_cast<T>(acc[j] * scale);
    }
  });
}

// No infinity or NaN among p[0, n): an exponent field of all ones marks both. Integer min, so it vectorizes.
template <class T>
bool all_finite(const T* p, int64_t n) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr U exponent = static_cast<U>(sizeof(T) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
  U least = exponent;  // (bits & exponent) ^ exponent is 0 exactly for a non-finite value
  for (int64_t i = 0; i < n; ++i) {
    U bits;
    std::memcpy(&bits, p + i, sizeof bits);
    least = std::min<U>(least, (bits & exponent) ^ exponent);
  }
  return least != 0;
}

// The index of the first infinity or NaN among p[0, n), or -1: pieces scanned in parallel, then the
// first bad piece searched element by element.
template <class T>
int64_t first_non_finite(const T* p, int64_t n) {
  const int64_t pieces = (n + kParallelGrain - 1) / kParallelGrain;
  std::vector<char> bad(static_cast<size_t>(pieces), 0);
  parallel_for(0, pieces, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k)
      bad[static_cast<size_t>(k)] = !all_finite(p + k * kParallelGrain, std::min(kParallelGrain, n - k * kParallelGrain));
  });
  for (int64_t k = 0; k < pieces; ++k)
    if (bad[static_cast<size_t>(k)])
      for (int64_t i = k * kParallelGrain; i < n; ++i)
        if (!std::isfinite(p[i])) return i;
  return -1;
}

// The first infinity or NaN among p[0, n): *index (host memory) is its index or -1, *value (host memory) is it.
template <class T>
void first_non_finite(const T* p, int64_t n, int64_t* index, T* value) {
  *index = first_non_finite(p, n);
  if (*index >= 0) *value = p[*index];
}

// Maximum along one dim: values and the index of the first maximum; NaN wins, as in PyTorch.
template <class T>
void max_along(const T* in, const Shape& shape, const Shape& strides, int64_t dim, T* values, int64_t* indices) {
  detail::DimList kept;
  for (size_t d = 0; d < shape.size(); ++d)
    if (static_cast<int64_t>(d) != dim) kept.push(shape[d], strides[d]);
  const int64_t n = shape[dim], step = strides[dim], nk = kept.numel();
  parallel_for(0, nk, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* p = in + kept.offset_of(o);
      T best = p[0];
      int64_t arg = 0;
      for (int64_t i = 1; i < n && !std::isnan(best); ++i) {
        T v = p[i * step];
        if (v > best || std::isnan(v)) {
          best = v;
          arg = i;
        }
      }
      values[o] = best;
      indices[o] = arg;
    }
  });
}

}  // namespace tv::cpu
