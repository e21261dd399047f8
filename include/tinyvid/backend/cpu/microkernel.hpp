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

// dst (16 x 16, row stride ldd) = the transpose of src (16 x 16, row stride lds): packs gy^T for the kernel
// below 16 channels x 16 pixels at a time (a scalar strided copy took a fifth of the weight gradient).
// (GCC 12's unmasked unpack / shuffle intrinsics start from an undefined vector and warn -Wuninitialized, a
// false positive fixed in GCC 13; the full-mask forms below compile to the same instructions.)
inline void transpose_16x16(const float* src, int64_t lds, float* dst, int64_t ldd) {
  constexpr __mmask16 all16 = 0xFFFF;
  constexpr __mmask8 all8 = 0xFF;
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 16; i += 2) {  // interleave 32-bit elements of row pairs (within 128-bit lanes)
    t[i] = _mm512_mask_unpacklo_ps(r[i], all16, r[i], r[i + 1]);
    t[i + 1] = _mm512_mask_unpackhi_ps(r[i], all16, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // then 64-bit pairs: each lane holds a 4 x 4 block transposed
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]), c = _mm512_castps_pd(t[i + 2]),
                  d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_mask_unpacklo_pd(a, all8, a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_mask_unpackhi_pd(a, all8, a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_mask_unpacklo_pd(b, all8, b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_mask_unpackhi_pd(b, all8, b, d));
  }
  for (int i = 0; i < 4; ++i) {  // move 128-bit lanes: rows of 4-row groups 0/1 and 2/3
    t[i] = _mm512_mask_shuffle_f32x4(r[i], all16, r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_mask_shuffle_f32x4(r[i], all16, r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_mask_shuffle_f32x4(r[i + 8], all16, r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_mask_shuffle_f32x4(r[i + 8], all16, r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_mask_shuffle_f32x4(t[i], all16, t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_mask_shuffle_f32x4(t[i], all16, t[i], t[i + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

// The other orientation, vectorized over output channels, for weight gradients: C (R x 16V, row stride
// ldc) += sum over k < K of B[r][k] times Ap[k][0:16V], where row r of B is the K floats at b[r]
// (rows of the input, broadcast) and Ap is gy^T packed 16V floats per k. R <= 6, V <= 4: 4R accumulators
// and 4 A registers fit the 32 vector registers.
constexpr int64_t kBroadcastRows = 6, kBroadcastCols = 64;
template <int R, int V>
inline void micro_kernel_broadcast(int64_t K, const float* const* b, const float* __restrict Ap,
                                   float* __restrict Cm, int64_t ldc) {
  __m512 c[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) c[r][v] = _mm512_loadu_ps(Cm + r * ldc + 16 * v);
  const float* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = b[r];
  for (int64_t k = 0; k < K; ++k) {
    __m512 a[V];
    for (int v = 0; v < V; ++v) a[v] = _mm512_loadu_ps(Ap + (k * V + v) * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 bv = _mm512_set1_ps(rows[r][k]);
      for (int v = 0; v < V; ++v) c[r][v] = _mm512_fmadd_ps(bv, a[v], c[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(Cm + r * ldc + 16 * v, c[r][v]);
}

template <int V>
inline void micro_kernel_broadcast_rows(int64_t rows, int64_t K, const float* const* b, const float* Ap, float* Cm,
                                        int64_t ldc) {
  switch (rows) {
    case 6: return micro_kernel_broadcast<6, V>(K, b, Ap, Cm, ldc);
    case 5: return micro_kernel_broadcast<5, V>(K, b, Ap, Cm, ldc);
    case 4: return micro_kernel_broadcast<4, V>(K, b, Ap, Cm, ldc);
    case 3: return micro_kernel_broadcast<3, V>(K, b, Ap, Cm, ldc);
    case 2: return micro_kernel_broadcast<2, V>(K, b, Ap, Cm, ldc);
    default: return micro_kernel_broadcast<1, V>(K, b, Ap, Cm, ldc);
  }
}

// Any rows <= kBroadcastRows and width = 16, 32, 48 or 64 channels.
inline void micro_kernel_broadcast(int64_t rows, int64_t width, int64_t K, const float* const* b, const float* Ap,
                                   float* Cm, int64_t ldc) {
  switch (width / 16) {
    case 4: return micro_kernel_broadcast_rows<4>(rows, K, b, Ap, Cm, ldc);
    case 3: return micro_kernel_broadcast_rows<3>(rows, K, b, Ap, Cm, ldc);
    case 2: return micro_kernel_broadcast_rows<2>(rows, K, b, Ap, Cm, ldc);
    default: return micro_kernel_broadcast_rows<1>(rows, K, b, Ap, Cm, ldc);
  }
}
#endif

}  // namespace tv::cpu
