#pragma once
// Elementwise kernels on raw pointers: out = f(a), out = f(a, b) with broadcast strides, copy, fill, iota.
// f is a functor from backend/functors.hpp. The inner loops have unit-stride fast paths the compiler
// vectorizes; a functor with an array() member goes through Eigen's SIMD functions (map1_array).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include <Eigen/Core>

#include "tinyvid/backend/cpu/loops.hpp"

namespace tv::cpu {

// out = f.array(in) where f.array maps an Eigen array expression to another (a.exp(), a.tanh(), ...): Eigen's
// SIMD versions of the transcendental functions. Strided rows go through a small buffer, so every
// layout computes the same values.
template <class T, class F>
void map1_array(const Shape& shape, T* out, const Shape& out_strides, const T* in, const Shape& in_strides, F f) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  for_each_row<2>(shape, {out_strides, in_strides}, [&](Offsets<2> off, int64_t n, Offsets<2> st) {
    T* o = out + off[0];
    const T* a = in + off[1];
    if (st[0] == 1 && st[1] == 1) {
      Eigen::Map<Array>(o, n) = f.array(Eigen::Map<const Array>(a, n));
      return;
    }
    constexpr int64_t kBuffer = 256;
    alignas(64) T buf[kBuffer];
    for (int64_t i0 = 0; i0 < n; i0 += kBuffer) {
      const int64_t len = std::min(kBuffer, n - i0);
      for (int64_t i = 0; i < len; ++i) buf[i] = a[(i0 + i) * st[1]];
      Eigen::Map<Array> b(buf, len);
      b = f.array(Eigen::Map<const Array>(buf, len));
      for (int64_t i = 0; i < len; ++i) o[(i0 + i) * st[0]] = buf[i];
    }
  });
}

// True when f has an Eigen array form for T (f.array(a) on a mapped array of T).
template <class T, class F>
inline constexpr bool has_array_form =
    requires(const F& f, const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>& a) { f.array(a); };

// out[i] = f(in[i]) over `shape`; each operand has its own strides. A functor with an array form (exp, log,
// sigmoid, tanh) is computed by Eigen's vectorized function instead (map1_array).
template <class T, class U, class F>
void map1(const Shape& shape, U* out, const Shape& out_strides, const T* in, const Shape& in_strides, F f) {
  if constexpr (std::is_same_v<T, U> && has_array_form<T, F>) {
    map1_array(shape, out, out_strides, in, in_strides, f);
  } else {
    for_each_row<2>(shape, {out_strides, in_strides}, [&](Offsets<2> off, int64_t n, Offsets<2> st) {
      U* o = out + off[0];
      const T* a = in + off[1];
      if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(a[i * st[1]]);
      }
    });
  }
}

// out[i] = f(a[i], b[i]); a zero stride broadcasts an operand.
template <class T, class U, class F>
void map2(const Shape& shape, U* out, const Shape& out_strides, const T* a, const Shape& a_strides, const T* b,
          const Shape& b_strides, F f) {
  for_each_row<3>(shape, {out_strides, a_strides, b_strides},
                  [&](Offsets<3> off, int64_t n, Offsets<3> st) {
                    U* o = out + off[0];
                    const T* x = a + off[1];
                    const T* y = b + off[2];
                    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
                      const T yv = *y;
#pragma omp simd
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
                      const T xv = *x;
#pragma omp simd
                      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
                    }
                  });
}

namespace detail {
// A copy that transposes (dst contiguous along one dim, src along another) walks both in 32 x 32
// tiles, so neither side strides through memory a cache line per element.
template <class T>
bool copy_transposing(Shape shape, std::array<Shape, 2> st, T* dst, const T* src) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (nd < 2 || st[0][nd - 1] != 1 || st[1][nd - 1] == 1) return false;
  int64_t j = -1;
  for (int64_t d = 0; d < nd - 1; ++d)
    if (st[1][d] == 1) j = d;
  if (j < 0) return false;
  std::swap(shape[j], shape[nd - 2]);
  for (auto& s : st) std::swap(s[j], s[nd - 2]);
  constexpr int64_t B = 32;
  const int64_t rows = shape[nd - 2], cols = shape[nd - 1], row_blocks = (rows + B - 1) / B;
  const Shape outer(shape.begin(), shape.end() - 2);
  const int64_t n_outer = numel_of(outer);
  const int64_t d_row = st[0][nd - 2], s_col = st[1][nd - 1];
  parallel_for(0, n_outer * row_blocks, std::max<int64_t>(1, kParallelGrain / (B * cols)), [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) {
      int64_t o = w / row_blocks, r0 = (w % row_blocks) * B, od = 0, os = 0;
      for (int64_t d = nd - 3; d >= 0; --d) {
        od += (o % outer[d]) * st[0][d];
        os += (o % outer[d]) * st[1][d];
        o /= outer[d];
      }
      const int64_t r1 = std::min(rows, r0 + B);
      for (int64_t c0 = 0; c0 < cols; c0 += B) {
        const int64_t c1 = std::min(cols, c0 + B);
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) dst[od + r * d_row + c] = src[os + r + c * s_col];
      }
    }
  });
  return true;
}
}  // namespace detail

template <class T>
void copy(const Shape& shape, T* dst, const Shape& dst_strides, const T* src, const Shape& src_strides) {
  {
    Shape s = shape;
    std::array<Shape, 2> st{dst_strides, src_strides};
    coalesce<2>(s, st);
    if (numel_of(shape) > 0 && detail::copy_transposing(s, st, dst, src)) return;
  }
  for_each_row<2>(shape, {dst_strides, src_strides}, [&](Offsets<2> off, int64_t n, Offsets<2> st) {
    if (st[0] == 1 && st[1] == 1) {
      std::memcpy(dst + off[0], src + off[1], static_cast<size_t>(n) * sizeof(T));
    } else {
      T* d = dst + off[0];
      const T* s = src + off[1];
      for (int64_t i = 0; i < n; ++i) d[i * st[0]] = s[i * st[1]];
    }
  });
}

template <class T>
void fill(const Shape& shape, T* dst, const Shape& dst_strides, T value) {
  for_each_row<1>(shape, {dst_strides}, [&](Offsets<1> off, int64_t n, Offsets<1> st) {
    T* d = dst + off[0];
    if (st[0] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) d[i] = value;
    } else {
      for (int64_t i = 0; i < n; ++i) d[i * st[0]] = value;
    }
  });
}

// out[i] = start + i * step for i in [0, n) (arange), computed in T as torch.arange does.
template <class T>
void iota(T* out, int64_t n, T start, T step) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(start + static_cast<T>(i) * step);
}

}  // namespace tv::cpu
