#pragma once
// A register-blocked AVX-512 micro-kernel for float GEMM: an 8 x 48 block of C held in 24 registers,
// fed by packed panels (A: K x 8, B: K x 48). On the narrow, deep GEMMs of convolutions it runs near
// the FMA peak, where a general BLAS call loses 15-35% (measured here: 203 vs 135-170 GFLOP/s on one
// core for 64 x 576 x 3136). Compiled only where AVX-512 is enabled (-march=native on such a CPU).
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#define TINYVID_HAVE_MICROKERNEL 1
#endif

namespace tv::cpu {

constexpr int64_t kMicroRows = 8, kMicroCols = 48;

#ifdef TINYVID_HAVE_MICROKERNEL
// The one kernel: C (8 x 48, row stride ldc) (+)= Ap (K x 8, packed, K = taps x C) times B, whose row
// k = (tap t, channel c) is the 48 floats at base + tap_offset[t] + c * plane. A stride-1 convolution
// reads B in place from its zero-padded input this way; a packed panel is one tap with plane 48.
// With accumulate, C's values are the starting point (for sums split over chunks).
inline void micro_kernel_8x48_taps(int64_t taps, int64_t C, const int64_t* tap_offset, int64_t plane,
                                   const float* __restrict Ap, const float* __restrict base, float* __restrict Cm,
                                   int64_t ldc, bool accumulate = false) {
  __m512 c[kMicroRows][3];
  for (int i = 0; i < kMicroRows; ++i)
    for (int v = 0; v < 3; ++v) c[i][v] = accumulate ? _mm512_loadu_ps(Cm + i * ldc + 16 * v) : _mm512_setzero_ps();
  const float* a = Ap;
  for (int64_t t = 0; t < taps; ++t) {
    const float* row = base + tap_offset[t];
    for (int64_t ch = 0; ch < C; ++ch, row += plane, a += kMicroRows) {
      const __m512 b0 = _mm512_loadu_ps(row), b1 = _mm512_loadu_ps(row + 16), b2 = _mm512_loadu_ps(row + 32);
#pragma GCC unroll 8
      for (int i = 0; i < kMicroRows; ++i) {
        const __m512 av = _mm512_set1_ps(a[i]);
        c[i][0] = _mm512_fmadd_ps(av, b0, c[i][0]);
        c[i][1] = _mm512_fmadd_ps(av, b1, c[i][1]);
        c[i][2] = _mm512_fmadd_ps(av, b2, c[i][2]);
      }
    }
  }
  for (int i = 0; i < kMicroRows; ++i)
    for (int v = 0; v < 3; ++v) _mm512_storeu_ps(Cm + i * ldc + 16 * v, c[i][v]);
}

// C (8 x 48) (+)= Ap (K x 8, packed) times Bp (K x 48, packed).
inline void micro_kernel_8x48(int64_t K, const float* Ap, const float* Bp, float* C, int64_t ldc, bool accumulate = false) {
  const int64_t no_offset = 0;
  micro_kernel_8x48_taps(1, K, &no_offset, kMicroCols, Ap, Bp, C, ldc, accumulate);
}
#endif

}  // namespace tv::cpu
