#pragma once
// DNR's dynamic affine (dnr/norm.hpp) on contiguous buffers: z is N x Tn x C x inner, scale and shift
// N x G x C, and frame t of a clip uses the pair of group t / (Tn / G).
#include <algorithm>
#include <cstdint>

#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

// out = z * scale[n, g, k] + shift[n, g, k], one pass over z.
template <class T>
void dynamic_affine_forward(const T* z, const T* scale, const T* shift, T* out, int64_t N, int64_t Tn, int64_t C,
                            int64_t G, int64_t inner) {
  const int64_t per_group = Tn / G;
  parallel_for(0, N * Tn * C, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / (Tn * C), t = (r / C) % Tn, k = r % C, at = (n * G + t / per_group) * C + k;
      const T av = scale[at], bv = shift[at];
      const T* src = z + r * inner;
      T* dst = out + r * inner;
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) dst[i] = src[i] * av + bv;
    }
  });
}

// One pass over the gradient g and z: gz = g * scale (gz may be null: not wanted) and, when gscale and gshift
// are given (N x G x C, overwritten), the sums of g * z and of g per clip, group and channel. Parallel over
// (clip, channel): each owns its sums, so no two threads add into one.
template <class T>
void dynamic_affine_backward(const T* g, const T* z, const T* scale, T* gz, T* gscale, T* gshift, int64_t N, int64_t Tn,
                             int64_t C, int64_t G, int64_t inner) {
  const int64_t per_group = Tn / G;
  parallel_for(0, N * C, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t n = q / C, k = q % C;
      if (gscale)
        for (int64_t j = 0; j < G; ++j) gscale[(n * G + j) * C + k] = gshift[(n * G + j) * C + k] = T(0);
      for (int64_t t = 0; t < Tn; ++t) {
        const int64_t r = (n * Tn + t) * C + k, at = (n * G + t / per_group) * C + k;
        const T* gr = g + r * inner;
        if (gz) {
          const T av = scale[at];
          T* dst = gz + r * inner;
#pragma omp simd
          for (int64_t i = 0; i < inner; ++i) dst[i] = gr[i] * av;
        }
        if (gscale) {
          double sa = 0, sb = 0;
          const T* zr = z + r * inner;
#pragma omp simd reduction(+ : sa, sb)
          for (int64_t i = 0; i < inner; ++i) {
            sa += static_cast<double>(gr[i]) * zr[i];
            sb += gr[i];
          }
          gscale[at] += static_cast<T>(sa);
          gshift[at] += static_cast<T>(sb);
        }
      }
    }
  });
}

}  // namespace tv::cpu
