#pragma once
// Elementwise kernels on raw pointers: out = f(a), out = f(a, b) with broadcast strides, copy, fill.
// The inner loops have unit-stride fast paths the compiler vectorizes.
#include <cstring>

#include "tinyvid/backend/cpu/loops.hpp"

namespace tv::cpu {

// out[i] = f(in[i]) over `shape`; each operand has its own strides.
template <class T, class U, class F>
void map1(const Shape& shape, U* out, const Shape& out_strides, const T* in, const Shape& in_strides, F f) {
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

template <class T>
void copy(const Shape& shape, T* dst, const Shape& dst_strides, const T* src, const Shape& src_strides) {
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

}  // namespace tv::cpu
