#pragma once
// Register-blocked micro-kernels for float GEMMs, in an AVX-512 and an AVX2 + FMA body each, chosen at run
// time (core/cpu_isa.hpp). The 8 x 48 kernel holds a block of C in registers, fed by a packed A panel (K x 8) and B
// rows read in place; on the narrow, deep GEMMs of convolutions it runs near the FMA peak, where a general
// BLAS call loses 15-35% (measured on AVX-512: 203 vs 135-170 GFLOP/s on one core for 64 x 576 x 3136).
// The entry points at the bottom take the ISA; they are called from generic code (conv.hpp, winograd.hpp)
// only when active_isa() is not Generic.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tinyvid/core/cpu_isa.hpp"

#ifdef TINYVID_X86_KERNELS
#include <immintrin.h>
#define TINYVID_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define TINYVID_TARGET_AVX2 __attribute__((target("avx2,fma")))
// A kernel body is compiled once, on its own: inlined into a large caller (packed_gemm.hpp's driver), GCC 12 kept
// the 8 x 16 kernel's accumulators on the stack and the 1x1 weight gradient at 56 x 56 lost 20%.
#define TINYVID_KERNEL __attribute__((noinline))
#endif

namespace tv::cpu {

constexpr int64_t kMicroRows = 8, kMicroCols = 48;
// How the 8 x 48 kernel reads its A operand, 8 rows by K: packed, a panel [k][8] (pack_a), or where it lies: rows `lda`
// apart with each row's k contiguous (Rows), or 8 contiguous floats per k, `lda` apart (Columns, a transposed matrix
// read in place). Packing pays where many column panels reread A; where few do, or where A is read once per call, the
// packing pass costs more than the kernel's reading A in place (packed_gemm.hpp).
enum class ALayout { Packed, Rows, Columns };
// The broadcast kernel's tile: up to 6 rows of B x 64 columns of A.
constexpr int64_t kBroadcastRows = 6, kBroadcastCols = 64;

#ifdef TINYVID_X86_KERNELS
namespace avx512 {

// C (8 x 16V, row stride ldc) (+)= A (K x 8, laid out as Layout says, lda apart) times B, whose row k = (tap t, channel c)
// is the 16V floats at base + tap_offset[t] + c * plane. A stride-1 convolution reads B in place from its
// zero-padded input this way; a packed panel is one tap with plane 48. With accumulate, C's values are the
// starting point (for sums split over chunks; a template argument, so that the registers start from their values
// without a trip through the stack). V = 3 is the full tile: 24 accumulators; per k, 3 loads of B and
// 8 broadcasts of A. V < 3 serves a GEMM's last, narrower column panel. With PrefetchNext, each row's next 16V floats
// (the next column panel's, read in place) are asked for into L1 as the row is read; with CopyB, each row is also
// stored to copy as a packed panel, copy[k][16V] (micro_kernel_8x48_taps); with Stream, C is written by streaming
// stores (micro_kernel_8x48_stream). With Stacked, vector v of B's rows lies v * b_step floats on and of C's rows
// v * c_step on, not 16 v: V output rows' last 16 columns at once (micro_kernel_8x16_stacked_stream).
template <int V, bool Accumulate, bool PrefetchNext = false, bool CopyB = false, bool Stream = false, bool Stacked = false,
          ALayout Layout = ALayout::Packed>
TINYVID_TARGET_AVX512 TINYVID_KERNEL inline void micro_kernel_8xv_taps(int64_t taps, int64_t C, const int64_t* tap_offset,
                                                                       int64_t plane, const float* __restrict Ap,
                                                                       const float* __restrict base, float* __restrict Cm,
                                                                       int64_t ldc, float* __restrict copy = nullptr,
                                                                       int64_t b_step = 16, int64_t c_step = 16,
                                                                       int64_t lda = kMicroRows) {
  if constexpr (!Stacked) b_step = c_step = 16;  // (constants, so the plain kernels keep their addressing)
  // A's row i at k: a[i * a_row] with a moving a_k on per k.
  const int64_t a_row = Layout == ALayout::Rows ? lda : 1;
  const int64_t a_k = Layout == ALayout::Packed ? kMicroRows : Layout == ALayout::Rows ? 1 : lda;
  // Every loop over the registers is unrolled and the taps x C rows are one loop (the next tap's first row fetched
  // at each tap's end), so that GCC 12 keeps the accumulators in registers from start to end; with nested loops it
  // kept them on the stack wherever the kernel was not inlined into a caller with one tap.
  __m512 c[kMicroRows][V];
#pragma GCC unroll 24
  for (int i = 0; i < kMicroRows * V; ++i)
    c[i / V][i % V] = Accumulate ? _mm512_loadu_ps(Cm + (i / V) * ldc + c_step * (i % V)) : _mm512_setzero_ps();
  const float* a = Ap;
  const float* row = base + tap_offset[0];
  for (int64_t t = 0, ch = 0, k = 0; k < taps * C; ++k, a += a_k) {
    __m512 b[V];
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) b[v] = _mm512_loadu_ps(row + b_step * v);
    if constexpr (PrefetchNext) {
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) _mm_prefetch(reinterpret_cast<const char*>(row + 16 * (V + v)), _MM_HINT_T0);
    }
    if constexpr (CopyB) {
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(copy + 16 * v, b[v]);
      copy += 16 * V;
    }
#pragma GCC unroll 8
    for (int i = 0; i < kMicroRows; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * a_row]);
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) c[i][v] = _mm512_fmadd_ps(av, b[v], c[i][v]);
    }
    if (++ch < C) {
      row += plane;
    } else if (++t < taps) {
      ch = 0;
      row = base + tap_offset[t];
    }
  }
#pragma GCC unroll 24
  for (int i = 0; i < kMicroRows * V; ++i) {
    if constexpr (Stream) _mm512_stream_ps(Cm + (i / V) * ldc + c_step * (i % V), c[i / V][i % V]);
    else _mm512_storeu_ps(Cm + (i / V) * ldc + c_step * (i % V), c[i / V][i % V]);
  }
}

// dst (16 x 16, row stride ldd) = the transpose of src (16 x 16, row stride lds).
// (GCC 12's unmasked unpack / shuffle intrinsics start from an undefined vector and warn -Wuninitialized, a
// false positive fixed in GCC 13; the full-mask forms below compile to the same instructions.)
TINYVID_TARGET_AVX512 inline void transpose_16x16(const float* src, int64_t lds, float* dst, int64_t ldd) {
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

// C (R x 16V, row stride ldc) += sum over k < K of B[r][k] times Ap[k][0:16V]: 4R accumulators and 4 A
// registers fit the 32 vector registers (R <= 6, V <= 4).
template <int R, int V>
TINYVID_TARGET_AVX512 TINYVID_KERNEL inline void micro_kernel_broadcast(int64_t K, const float* const* b, const float* __restrict Ap,
                                                         float* __restrict Cm, int64_t ldc) {
  __m512 c[R][V];  // loops over registers unrolled, as in micro_kernel_8xv_taps
#pragma GCC unroll 24
  for (int i = 0; i < R * V; ++i) c[i / V][i % V] = _mm512_loadu_ps(Cm + (i / V) * ldc + 16 * (i % V));
  const float* rows[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) rows[r] = b[r];
  for (int64_t k = 0; k < K; ++k) {
    __m512 a[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) a[v] = _mm512_loadu_ps(Ap + (k * V + v) * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 bv = _mm512_set1_ps(rows[r][k]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) c[r][v] = _mm512_fmadd_ps(bv, a[v], c[r][v]);
    }
  }
#pragma GCC unroll 24
  for (int i = 0; i < R * V; ++i) _mm512_storeu_ps(Cm + (i / V) * ldc + 16 * (i % V), c[i / V][i % V]);
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

inline void micro_kernel_broadcast(int64_t rows, int64_t width, int64_t K, const float* const* b, const float* Ap,
                                   float* Cm, int64_t ldc) {
  switch (width / 16) {
    case 4: return micro_kernel_broadcast_rows<4>(rows, K, b, Ap, Cm, ldc);
    case 3: return micro_kernel_broadcast_rows<3>(rows, K, b, Ap, Cm, ldc);
    case 2: return micro_kernel_broadcast_rows<2>(rows, K, b, Ap, Cm, ldc);
    default: return micro_kernel_broadcast_rows<1>(rows, K, b, Ap, Cm, ldc);
  }
}

// out[j][t] = r[step * t + j] for j < count, t < n, where r[x] = src[x] for x in [lo, hi) and 0 elsewhere, x < 64
// (no float of src outside [lo, hi) is read: masked loads), n <= 16: Winograd's patch columns of up to 16 tiles
// from one input row, its padding included (a copy into a zero-padded row and a scalar split took 12% of a 3x3
// conv's time at 28 x 28).
TINYVID_TARGET_AVX512 inline void split_row(const float* src, int64_t lo, int64_t hi, int64_t step, int64_t count, int64_t n,
                                            float* const* out) {
  __m512 r[4];
  for (int64_t v = 0; v < 4; ++v) {
    const int64_t a = std::max<int64_t>(lo, 16 * v), b = std::min<int64_t>(hi, 16 * v + 16);
    const __mmask16 m = a < b ? static_cast<__mmask16>(((1u << (b - a)) - 1) << (a - 16 * v)) : 0;
    r[v] = m ? _mm512_maskz_loadu_ps(m, src + 16 * v) : _mm512_setzero_ps();
  }
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i at = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(step)));
  const __mmask16 keep = static_cast<__mmask16>((1u << n) - 1);
  for (int64_t j = 0; j < count; ++j) {
    const __m512i idx = _mm512_add_epi32(at, _mm512_set1_epi32(static_cast<int>(j)));  // (permutes use idx mod 32)
    const __m512 low = _mm512_permutex2var_ps(r[0], idx, r[1]), high = _mm512_permutex2var_ps(r[2], idx, r[3]);
    _mm512_mask_storeu_ps(out[j], keep, _mm512_mask_mov_ps(low, _mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(32)), high));
  }
}

// dst's rows (ldd apart) = n floats of each of src's (lds apart), by masked moves: the short pieces of a GEMM whose
// column panels straddle two images (a 1x1 conv at 7 x 7: each panel of 48 columns in two parts), where a memmove
// call per piece took 10% of the conv's time.
TINYVID_TARGET_AVX512 inline void copy_rows(const float* src, int64_t lds, int64_t rows, int64_t n, float* dst, int64_t ldd) {
  const int64_t full = n / 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n % 16)) - 1);
  for (int64_t r = 0; r < rows; ++r, src += lds, dst += ldd) {
    for (int64_t v = 0; v < full; ++v) _mm512_storeu_ps(dst + 16 * v, _mm512_loadu_ps(src + 16 * v));
    if (tail) _mm512_mask_storeu_ps(dst + 16 * full, tail, _mm512_maskz_loadu_ps(tail, src + 16 * full));
  }
}

// micro_kernel_8xv_taps's forms that micro_kernel_8x48_taps runs, picked from a table and called directly: that
// wrapper runs once per tile, and a 1x1 conv of 64 input channels calls it per 64 multiply-adds, where a dispatch
// through nested lambdas (their closures built on the stack on every call) took 7% of the conv's time.
using Kernel8x48 = void (*)(int64_t taps, int64_t C, const int64_t* tap_offset, int64_t plane, const float* Ap,
                            const float* base, float* Cm, int64_t ldc, float* copy, int64_t b_step, int64_t c_step,
                            int64_t lda);
template <bool Accumulate, ALayout Layout>
inline constexpr Kernel8x48 kKernels8x48[5] = {  // 16, 32 or 48 columns; 48 with PrefetchNext; with CopyB too
    &micro_kernel_8xv_taps<1, Accumulate, false, false, false, false, Layout>,
    &micro_kernel_8xv_taps<2, Accumulate, false, false, false, false, Layout>,
    &micro_kernel_8xv_taps<3, Accumulate, false, false, false, false, Layout>,
    &micro_kernel_8xv_taps<3, Accumulate, true, false, false, false, Layout>,
    &micro_kernel_8xv_taps<3, Accumulate, true, true, false, false, Layout>};
inline Kernel8x48 kernel_8x48(bool accumulate, int64_t width, bool prefetch_next, bool copy_b, ALayout layout) {
  static constexpr const Kernel8x48* table[3][2] = {  // [ALayout, in its order][accumulate]
      {kKernels8x48<false, ALayout::Packed>, kKernels8x48<true, ALayout::Packed>},
      {kKernels8x48<false, ALayout::Rows>, kKernels8x48<true, ALayout::Rows>},
      {kKernels8x48<false, ALayout::Columns>, kKernels8x48<true, ALayout::Columns>}};
  const int form = copy_b ? 4 : prefetch_next && width == kMicroCols ? 3 : width <= 16 ? 0 : width <= 32 ? 1 : 2;
  return table[static_cast<int>(layout)][accumulate ? 1 : 0][form];
}

}  // namespace avx512

// The same contracts on 16 ymm registers: each kernel runs as sub-tiles that fit them.
namespace avx2 {

// r[j][i] <- r[i][j] for 8 rows of 8 floats.
TINYVID_TARGET_AVX2 inline void transpose_8x8(__m256* r) {
  __m256 t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 2; ++k) {
    u[4 * k + 0] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
  }
}

// out[k][i] = src[i * ld + k] for 8 rows i and k < K: 8 rows of a row-major matrix as a packed A panel, 8 x 8 at a
// time. One body for both ISAs (a transpose of 8 floats wide gains nothing from zmm registers).
TINYVID_TARGET_AVX2 inline void pack_8_rows(const float* src, int64_t ld, int64_t K, float* out) {
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld + k);
    transpose_8x8(r);
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (k + i) * 8, r[i]);
  }
  for (; k < K; ++k)
    for (int i = 0; i < 8; ++i) out[k * 8 + i] = src[i * ld + k];
}

TINYVID_TARGET_AVX2 inline void transpose_16x16(const float* src, int64_t lds, float* dst, int64_t ldd) {
  for (int bi = 0; bi < 16; bi += 8)
    for (int bj = 0; bj < 16; bj += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (bi + i) * lds + bj);
      transpose_8x8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (bj + i) * ldd + bi, r[i]);
    }
}

// C (4 x 24, row stride ldc) (+)= A (K rows of 4 floats, 8 apart: half of an 8-wide packed panel) times K rows of B, 24
// floats each, walking (tap, channel) from (t, ch) as micro_kernel_8x48_taps' rows do. 12 accumulators, 3 B registers,
// 1 broadcast. The empty asm pins the three rows of B in registers: GCC 12 folded them into every multiply-add as
// memory operands (12 loads per k for 3), and the kernel ran at 60-70% of the AVX2 peak with B in L1, 48% with its rows
// far apart (90% so).
TINYVID_TARGET_AVX2 inline void tile_4x24(int64_t K, const float* __restrict a, const float* base, const int64_t* tap_offset,
                                          int64_t t, int64_t ch, int64_t C, int64_t plane, float* __restrict Cm, int64_t ldc,
                                          bool accumulate) {
  __m256 c[4][3];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) c[i / 3][i % 3] = accumulate ? _mm256_loadu_ps(Cm + (i / 3) * ldc + 8 * (i % 3)) : _mm256_setzero_ps();
  const float* row = base + tap_offset[t] + ch * plane;
  for (int64_t k = 0; k < K; ++k) {
    __m256 b0 = _mm256_loadu_ps(row), b1 = _mm256_loadu_ps(row + 8), b2 = _mm256_loadu_ps(row + 16);
    __asm__("" : "+x"(b0), "+x"(b1), "+x"(b2));
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const __m256 av = _mm256_set1_ps(a[k * kMicroRows + i]);
      c[i][0] = _mm256_fmadd_ps(av, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(av, b1, c[i][1]);
      c[i][2] = _mm256_fmadd_ps(av, b2, c[i][2]);
    }
    if (++ch < C) {
      row += plane;
    } else if (k + 1 < K) {
      ch = 0;
      row = base + tap_offset[++t];
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) _mm256_storeu_ps(Cm + (i / 3) * ldc + 8 * (i % 3), c[i / 3][i % 3]);
}

// The 8 x 48 contract as four 4 x 24 sub-tiles, over the taps x C rows of B in chunks of 128: a chunk's B (128 x 48
// floats, 24 KB) stays in L1 while the four sub-tiles read it. Chunks run across taps: chunk by tap, the stem's 3
// channels per tap made each sub-tile load and store its accumulators for 3 rows (a third of PyTorch's AVX2 speed).
// A narrower width runs only the sub-tiles it needs.
TINYVID_TARGET_AVX2 TINYVID_KERNEL inline void micro_kernel_8x48_taps(int64_t taps, int64_t C, const int64_t* tap_offset,
                                                       int64_t plane, const float* Ap, const float* base, float* Cm,
                                                       int64_t ldc, bool accumulate, int64_t width) {
  constexpr int64_t kChunk = 128;
  const int64_t K = taps * C;
  if (K == 0 && !accumulate) {
    for (int64_t i = 0; i < kMicroRows; ++i) std::fill_n(Cm + i * ldc, width, 0.0f);
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
    const int64_t kc = std::min(kChunk, K - k0);
    for (int64_t i = 0; i < kMicroRows; i += 4)
      for (int64_t j = 0; j < width; j += 24)
        tile_4x24(kc, Ap + k0 * kMicroRows + i, base + j, tap_offset, k0 / C, k0 % C, C, plane, Cm + i * ldc + j, ldc,
                  accumulate || k0 > 0);
  }
}

// C (R x 16, row stride ldc) += sum over k < K of B[r][k] times A[k][0:16], A's rows lda apart: 2R
// accumulators (R <= 6), 2 A registers, 1 broadcast.
template <int R>
TINYVID_TARGET_AVX2 TINYVID_KERNEL inline void broadcast_tile(int64_t K, const float* const* b, const float* __restrict Ap, int64_t lda,
                                               float* __restrict Cm, int64_t ldc) {
  __m256 c[R][2];  // loops over registers unrolled, as in avx512::micro_kernel_8xv_taps
#pragma GCC unroll 12
  for (int i = 0; i < R * 2; ++i) c[i / 2][i % 2] = _mm256_loadu_ps(Cm + (i / 2) * ldc + 8 * (i % 2));
  const float* rows[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) rows[r] = b[r];
  for (int64_t k = 0; k < K; ++k) {
    const __m256 a0 = _mm256_loadu_ps(Ap + k * lda), a1 = _mm256_loadu_ps(Ap + k * lda + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 bv = _mm256_broadcast_ss(rows[r] + k);
      c[r][0] = _mm256_fmadd_ps(bv, a0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(bv, a1, c[r][1]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < R * 2; ++i) _mm256_storeu_ps(Cm + (i / 2) * ldc + 8 * (i % 2), c[i / 2][i % 2]);
}

template <int R>
inline void broadcast_columns(int64_t width, int64_t K, const float* const* b, const float* Ap, float* Cm, int64_t ldc) {
  for (int64_t v = 0; v < width; v += 16) broadcast_tile<R>(K, b, Ap + v, width, Cm + v, ldc);
}

inline void micro_kernel_broadcast(int64_t rows, int64_t width, int64_t K, const float* const* b, const float* Ap,
                                   float* Cm, int64_t ldc) {
  switch (rows) {
    case 6: return broadcast_columns<6>(width, K, b, Ap, Cm, ldc);
    case 5: return broadcast_columns<5>(width, K, b, Ap, Cm, ldc);
    case 4: return broadcast_columns<4>(width, K, b, Ap, Cm, ldc);
    case 3: return broadcast_columns<3>(width, K, b, Ap, Cm, ldc);
    case 2: return broadcast_columns<2>(width, K, b, Ap, Cm, ldc);
    default: return broadcast_columns<1>(width, K, b, Ap, Cm, ldc);
  }
}

}  // namespace avx2
#endif  // TINYVID_X86_KERNELS

// Whether the kernels below can run: float data and an ISA that has them.
inline bool has_micro_kernels(Isa isa) { return isa != Isa::Generic; }

// The entry points. isa is Avx2 or Avx512 (has_micro_kernels); they are called inside parallel loops, so
// they take the ISA their caller read once.

#ifdef TINYVID_X86_KERNELS
namespace detail {
// micro_kernel_8x48_taps' AVX2 path, out of line so that the AVX-512 path's wrapper stays a table lookup and a call.
[[gnu::noinline]] inline void micro_kernel_8x48_taps_avx2(int64_t taps, int64_t C, const int64_t* tap_offset, int64_t plane,
                                                          const float* Ap, const float* base, float* Cm, int64_t ldc,
                                                          bool accumulate, int64_t width, float* copy_b, ALayout a_layout,
                                                          int64_t lda) {
  std::vector<float> packed;  // (A in place: packed here for the AVX2 body)
  if (a_layout != ALayout::Packed) {
    packed.resize(static_cast<size_t>(taps * C * kMicroRows));
    for (int64_t k = 0; k < taps * C; ++k)
      for (int64_t i = 0; i < kMicroRows; ++i)
        packed[k * kMicroRows + i] = a_layout == ALayout::Rows ? Ap[i * lda + k] : Ap[k * lda + i];
    Ap = packed.data();
  }
  if (copy_b)  // (the AVX2 body copies apart)
    for (int64_t k = 0; k < C; ++k) std::copy_n(base + tap_offset[0] + k * plane, kMicroCols, copy_b + k * kMicroCols);
  return avx2::micro_kernel_8x48_taps(taps, C, tap_offset, plane, Ap, base, Cm, ldc, accumulate, width);  // (no prefetch)
}
}  // namespace detail
#endif

// C (8 x 48, row stride ldc) (+)= Ap (K x 8, packed [k][8], K = taps x C) times B, B's row k = (tap t,
// channel c) being the 48 floats at base + tap_offset[t] + c * plane (read in place; a packed 48-wide panel
// is one tap with plane 48). With accumulate, C's values are the starting point. A narrower width (a GEMM's last
// column panel) computes only the first width columns rounded up to the ISA's vectors (16 with AVX-512, 24 with
// AVX2): C and B must hold that many. With prefetch_next (a full width; AVX-512), the 48 floats after each row of B
// are asked for into L1 while the row is read: a GEMM's next column panel, read in place rows a map apart, where each
// row lies on a page of its own and the hardware prefetchers, which stop at pages, leave every row to miss (1x1 256 ->
// 64 at 56 x 56: 10% of the forward). With copy_b (one tap, a full width; the next rows asked for as with
// prefetch_next), B's rows are also written to copy_b as a packed panel, copy_b[k][48]: a GEMM's first row panel packs
// the slice that the others then read, on the loads its product makes anyway (packing in a pass of its own took 7%
// of 1x1 1024 -> 256 at 14 x 14).
// With a_layout other than Packed, A is read where it lies, lda apart (ALayout; with AVX-512: other ISAs pack it here
// first).
inline void micro_kernel_8x48_taps(Isa isa, int64_t taps, int64_t C, const int64_t* tap_offset, int64_t plane,
                                   const float* Ap, const float* base, float* Cm, int64_t ldc, bool accumulate = false,
                                   int64_t width = kMicroCols, bool prefetch_next = false, float* copy_b = nullptr,
                                   ALayout a_layout = ALayout::Packed, int64_t lda = kMicroRows) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512)
    return avx512::kernel_8x48(accumulate, width, prefetch_next, copy_b != nullptr, a_layout)(
        taps, C, tap_offset, plane, Ap, base, Cm, ldc, copy_b, 16, 16, lda);
  return detail::micro_kernel_8x48_taps_avx2(taps, C, tap_offset, plane, Ap, base, Cm, ldc, accumulate, width, copy_b,
                                             a_layout, lda);
#else
  (void)isa, (void)taps, (void)C, (void)tap_offset, (void)plane, (void)Ap, (void)base, (void)Cm, (void)ldc, (void)accumulate,
      (void)width, (void)prefetch_next, (void)copy_b, (void)a_layout, (void)lda;
  std::abort();  // unreachable: isa_supported refuses every kernel ISA on this target
#endif
}

// C = the product of micro_kernel_8x48_taps (without accumulate, the same sums), its first width columns only, its
// rows written past the caches by streaming stores (which do not read the lines first) with AVX-512, where C is 64-byte
// aligned and ldc and width are multiples of 16. For an output that no cache would keep until its next use (the stem's
// 25.7 MB at batch 8, where the first reads of those lines cost a third of the forward's gap to PyTorch). The caller
// ends its stores with stream_fence().
inline void micro_kernel_8x48_stream(Isa isa, int64_t taps, int64_t C, const int64_t* tap_offset, int64_t plane,
                                     const float* Ap, const float* base, float* Cm, int64_t ldc, int64_t width) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512 && reinterpret_cast<uintptr_t>(Cm) % 64 == 0 && ldc % 16 == 0 && width % 16 == 0) {
    auto run = [&]<int V>() { avx512::micro_kernel_8xv_taps<V, false, false, false, true>(taps, C, tap_offset, plane, Ap, base, Cm, ldc); };
    if (width <= 16) return run.template operator()<1>();
    if (width <= 32) return run.template operator()<2>();
    return run.template operator()<3>();
  }
#endif
  // Otherwise through a tile of its own: the kernels compute whole vectors (AVX2: 24 columns for a width of 16),
  // which past a row of C would land in the next.
  alignas(64) float tile[kMicroRows * kMicroCols];
  micro_kernel_8x48_taps(isa, taps, C, tap_offset, plane, Ap, base, tile, kMicroCols, false, width);
  for (int64_t i = 0; i < kMicroRows; ++i) std::copy_n(tile + i * kMicroCols, width, Cm + i * ldc);
}

// dst's rows (ldd apart) = n floats of each of src's `rows` rows (lds apart): masked moves with AVX-512 (short
// pieces, without a call per piece), else copies.
inline void copy_rows(Isa isa, const float* src, int64_t lds, int64_t rows, int64_t n, float* dst, int64_t ldd) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512) return avx512::copy_rows(src, lds, rows, n, dst, ldd);
#endif
  (void)isa;
  for (int64_t r = 0; r < rows; ++r) std::copy_n(src + r * lds, n, dst + r * ldd);
}

// micro_kernel_8x48_stream's 16-column panel for `count` (1-3) output rows at once: row r's B at base + r * b_step
// and C at Cm + r * c_step. A conv whose output rows are 48 m + 16 wide (the stem's 112) runs its rows' last 16
// columns three rows to a call, at the full tile's rate, where one row to a call (8 broadcasts per 8 multiply-adds)
// took 16% of the stem's time for 14% of its work.
inline void micro_kernel_8x16_stacked_stream(Isa isa, int64_t taps, int64_t C, const int64_t* tap_offset, int64_t plane,
                                             const float* Ap, const float* base, int64_t b_step, float* Cm, int64_t ldc,
                                             int64_t c_step, int64_t count) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512 && reinterpret_cast<uintptr_t>(Cm) % 64 == 0 && ldc % 16 == 0 && c_step % 16 == 0) {
    auto run = [&]<int V>() {
      avx512::micro_kernel_8xv_taps<V, false, false, false, true, true>(taps, C, tap_offset, plane, Ap, base, Cm, ldc, nullptr,
                                                                       b_step, c_step);
    };
    if (count == 3) return run.template operator()<3>();
    if (count == 2) return run.template operator()<2>();
    return run.template operator()<1>();
  }
#endif
  for (int64_t r = 0; r < count; ++r)
    micro_kernel_8x48_stream(isa, taps, C, tap_offset, plane, Ap, base + r * b_step, Cm + r * c_step, ldc, 16);
}

// Orders a thread's streaming stores before what follows (the end of a parallel region).
inline void stream_fence() {
#ifdef TINYVID_X86_KERNELS
  _mm_sfence();
#endif
}

// dst (16 x 16, row stride ldd) = the transpose of src (16 x 16, row stride lds): packs gy^T for the
// broadcast kernel 16 channels x 16 pixels at a time (a scalar strided copy took a fifth of the weight
// gradient).
inline void pack_8_rows(Isa isa, const float* src, int64_t ld, int64_t K, float* out) {
#ifdef TINYVID_X86_KERNELS
  (void)isa;  // AVX-512 CPUs run the AVX2 body
  avx2::pack_8_rows(src, ld, K, out);
#else
  (void)isa, (void)src, (void)ld, (void)K, (void)out;
  std::abort();  // unreachable: isa_supported refuses every kernel ISA on this target
#endif
}

// The same for any n, with AVX-512 (only): out[j][t] = r[step * t + j], r[x] = src[x] on [lo, hi), else 0.
inline void split_row(Isa isa, const float* src, int64_t lo, int64_t hi, int64_t step, int64_t count, int64_t n,
                      float* const* out) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512) {
    const int64_t group = std::min<int64_t>(16, (64 - count) / step + 1);  // tiles whose columns lie in 64 floats
    for (int64_t t0 = 0; t0 < n; t0 += group) {
      float* part[8];
      for (int64_t j = 0; j < count; ++j) part[j] = out[j] + t0;
      avx512::split_row(src + step * t0, lo - step * t0, hi - step * t0, step, count, std::min(group, n - t0), part);
    }
    return;
  }
#endif
  (void)isa, (void)src, (void)lo, (void)hi, (void)step, (void)count, (void)n, (void)out;
  std::abort();  // unreachable: called only where active_isa() is Avx512
}

inline void transpose_16x16(Isa isa, const float* src, int64_t lds, float* dst, int64_t ldd) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512) return avx512::transpose_16x16(src, lds, dst, ldd);
  return avx2::transpose_16x16(src, lds, dst, ldd);
#else
  (void)isa, (void)src, (void)lds, (void)dst, (void)ldd;
  std::abort();  // unreachable: isa_supported refuses every kernel ISA on this target
#endif
}

// The weight-gradient orientation, vectorized over output channels: C (rows x width, row stride ldc) +=
// sum over k < K of B[r][k] times Ap[k][0:width], where row r of B is the K floats at b[r] (rows of the
// input, broadcast) and Ap is gy^T packed width floats per k. rows <= kBroadcastRows; width = 16, 32, 48
// or 64.
inline void micro_kernel_broadcast(Isa isa, int64_t rows, int64_t width, int64_t K, const float* const* b,
                                   const float* Ap, float* Cm, int64_t ldc) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512) return avx512::micro_kernel_broadcast(rows, width, K, b, Ap, Cm, ldc);
  return avx2::micro_kernel_broadcast(rows, width, K, b, Ap, Cm, ldc);
#else
  (void)isa, (void)rows, (void)width, (void)K, (void)b, (void)Ap, (void)Cm, (void)ldc;
  std::abort();  // unreachable: isa_supported refuses every kernel ISA on this target
#endif
}

}  // namespace tv::cpu
