#pragma once
// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions: each 2x2 block of outputs ("tile") comes from
// a 4x4 input patch with 16 multiplies per channel pair instead of 36, so the GEMM work drops 2.25x.
//   Y = A^T [ sum_c (G g G^T) .* (B^T d B) ] A      (Lavin & Gray, 2016)
// The 16 element-wise products summed over channels are 16 GEMMs: M[xi] (Cout x tiles) =
// U[xi] (Cout x C) * V[xi] (C x tiles), xi = 0..15 the position in the 4x4 transformed patch.
// Tiles are processed in chunks of whole tile rows (so the transforms run along contiguous rows);
// within a chunk the input transform is split over channels, the GEMMs over (xi, column panel), the
// output transform over output channels. The transforms only add and subtract (coefficients 1 and
// 1/2), so float results stay within a few ulps of the direct sum on ResNet's shapes (tests check).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tinyvid/backend/cpu/conv_epilogue.hpp"
#include "tinyvid/backend/cpu/gemm.hpp"
#include "tinyvid/backend/cpu/microkernel.hpp"
#include "tinyvid/backend/cpu/scratch.hpp"
#include "tinyvid/core/parallel.hpp"

namespace tv::cpu::winograd {

constexpr int64_t kTaps = 16;  // a 4x4 transformed patch

// The distance between the 16 matrices of U, V and M: padded by one cache line, because the transforms
// write all 16 at once and, 4 KB-multiples apart (as ResNet's channel counts make them), those
// writes would all fall in one L1 set (measured: 3.5x slower weight transform).
inline int64_t xi_stride(int64_t matrix_size) { return matrix_size + 16; }

// Tiles of the output and the chunking of tile rows; a tile row is (image n, tile row ty).
struct TileLayout {
  int64_t TH, TW;        // tiles down and across one image
  int64_t rows;          // N * TH tile rows in all
  int64_t chunk_rows;    // tile rows per chunk
  int64_t ld;            // columns of a chunk's V and M rows: its tiles, rounded up to a panel
  int64_t Wq;            // a zero-padded input row: 2 * TW + 2 columns cover every tile's patch
  TileLayout(int64_t N, int64_t C, int64_t Cout, int64_t OH, int64_t OW, int64_t panel) {
    TH = (OH + 1) / 2;
    TW = (OW + 1) / 2;
    rows = N * TH;
    Wq = 2 * TW + 2;
    // V and M of one chunk (16 x (C + Cout) x tiles) kept near 3 MB, at least 96 tiles; among the
    // chunk sizes within that, the one with the fewest padded columns (each chunk counted as 16 more,
    // for its fork-joins), so a small map is not cut into half-empty panels.
    const int64_t per_tile = kTaps * (C + Cout) * 4;
    // A small map whose V and M fit in ~12 MB is one chunk (see forward_one_chunk).
    const int64_t cap = rows * TW * per_tile <= (12 << 20) ? rows * TW
                                                           : std::max<int64_t>({(3 << 20) / std::max<int64_t>(per_tile, 1), 96, TW});
    int64_t best_cost = -1;
    for (int64_t cr = 1; cr <= rows && cr * TW <= cap; ++cr) {
      const int64_t full = rows / cr, rest = rows % cr;
      auto padded = [&](int64_t tiles) { return (tiles + panel - 1) / panel * panel; };
      const int64_t cost = full * (padded(cr * TW) + 16) + (rest ? padded(rest * TW) + 16 : 0);
      if (best_cost < 0 || cost <= best_cost) best_cost = cost, chunk_rows = cr;
    }
    ld = (chunk_rows * TW + panel - 1) / panel * panel;
  }
};

// U = (G g G^T) for each 3x3 kernel g = w[k][c], k in [k0, k1) (k0 a multiple of 8); G = [1 0 0;
// .5 .5 .5; .5 -.5 .5; 0 0 1]. Written to u + xi * xi_stride as rows (k - k0) * C + c for a GEMM, or
// packed for the micro-kernel: panels of 8 kernels, [(k - k0) / 8][c][k % 8].
#ifdef TINYVID_X86_KERNELS
// One packed panel row: the 16 outputs of each of 8 kernels g[0..7] (an FMA per tap, the tap broadcast from
// memory), transposed in registers so that each xi's 8 values are one store.
namespace avx2 {
// lo[i] / hi[i]: outputs xi 0-7 / 8-15 of kernel i; stored transposed, xi's 8 kernels at out + xi * xi_stride.
TINYVID_TARGET_AVX2 inline void store_transposed(__m256* lo, __m256* hi, float* out, int64_t xi_stride) {
  ::tv::cpu::avx2::transpose_8x8(lo);
  ::tv::cpu::avx2::transpose_8x8(hi);
  for (int xi = 0; xi < 8; ++xi) {
    _mm256_storeu_ps(out + xi * xi_stride, lo[xi]);
    _mm256_storeu_ps(out + (xi + 8) * xi_stride, hi[xi]);
  }
}
}  // namespace avx2

namespace avx512 {
TINYVID_TARGET_AVX512 inline void transform_weight_panel(const float* const g[kMicroRows], const float* by_tap,
                                                         float* out, int64_t xi_stride) {
  __m256 lo[8], hi[8];
  for (int i = 0; i < 8; ++i) {
    __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(by_tap), _mm512_set1_ps(g[i][0]));
    for (int tap = 1; tap < 9; ++tap) acc = _mm512_fmadd_ps(_mm512_loadu_ps(by_tap + 16 * tap), _mm512_set1_ps(g[i][tap]), acc);
    lo[i] = _mm512_castps512_ps256(acc);
    hi[i] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
  }
  ::tv::cpu::winograd::avx2::store_transposed(lo, hi, out, xi_stride);
}
}  // namespace avx512

namespace avx2 {
TINYVID_TARGET_AVX2 inline void transform_weight_panel(const float* const g[kMicroRows], const float* by_tap, float* out,
                                                       int64_t xi_stride) {
  __m256 lo[8], hi[8];
  for (int i = 0; i < 8; ++i) {
    const __m256 g0 = _mm256_broadcast_ss(g[i]);
    lo[i] = _mm256_mul_ps(_mm256_loadu_ps(by_tap), g0);
    hi[i] = _mm256_mul_ps(_mm256_loadu_ps(by_tap + 8), g0);
    for (int tap = 1; tap < 9; ++tap) {
      const __m256 gt = _mm256_broadcast_ss(g[i] + tap);
      lo[i] = _mm256_fmadd_ps(_mm256_loadu_ps(by_tap + 16 * tap), gt, lo[i]);
      hi[i] = _mm256_fmadd_ps(_mm256_loadu_ps(by_tap + 16 * tap + 8), gt, hi[i]);
    }
  }
  ::tv::cpu::winograd::avx2::store_transposed(lo, hi, out, xi_stride);
}
}  // namespace avx2
#endif

inline void transform_weight_panel(Isa isa, const float* const g[kMicroRows], const float* by_tap, float* out,
                                   int64_t xi_stride) {
#ifdef TINYVID_X86_KERNELS
  if (isa == Isa::Avx512) return avx512::transform_weight_panel(g, by_tap, out, xi_stride);
  return avx2::transform_weight_panel(g, by_tap, out, xi_stride);
#else
  (void)isa, (void)g, (void)by_tap, (void)out, (void)xi_stride;
  std::abort();  // unreachable: isa_supported refuses every kernel ISA on this target
#endif
}

template <class T>
void transform_weight_rows(const T* w, int64_t C, int64_t k0, int64_t k1, bool packed, T* u, int64_t xi_stride,
                           Isa isa) {
  // U = (G (x) G) g as one 16 x 9 matrix, stored by columns: the 16 outputs of a kernel are one
  // vector, built from 9 broadcast taps. Its entries (products of 0, +-1/2, 1) are exact.
  static const auto kByTap = [] {
    const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    std::array<std::array<T, kTaps>, 9> m{};
    for (int r = 0; r < 4; ++r)
      for (int s = 0; s < 4; ++s)
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b) m[a * 3 + b][r * 4 + s] = static_cast<T>(G[r][a] * G[s][b]);
    return m;
  }();
  constexpr int64_t kLanes = kMicroRows;  // the packed layout's panel of 8 kernels
  for (int64_t kb = k0; kb < k1; kb += kLanes) {
    const int64_t nk = std::min(kLanes, k1 - kb);
    for (int64_t c = 0; c < C; ++c) {
      // Eight kernels side by side, so the FMA chains are independent (a missing kernel reads zeros).
      static const T kZeros[9] = {};
      const T* g[kLanes];
      for (int64_t i = 0; i < kLanes; ++i) g[i] = i < nk ? w + ((kb + i) * C + c) * 9 : kZeros;
      if constexpr (std::is_same_v<T, float>)
        if (packed && has_micro_kernels(isa)) {
          transform_weight_panel(isa, g, kByTap[0].data(), u + (kb - k0) * C + c * kLanes, xi_stride);
          continue;
        }
      alignas(64) T v[kLanes][kTaps] = {};
      for (int tap = 0; tap < 9; ++tap)
#pragma GCC unroll 8
        for (int64_t i = 0; i < kLanes; ++i)
#pragma omp simd
          for (int xi = 0; xi < kTaps; ++xi) v[i][xi] += kByTap[tap][xi] * g[i][tap];
      for (int64_t xi = 0; xi < kTaps; ++xi) {
        if (packed) {
          T* out = u + xi * xi_stride + (kb - k0) * C + c * kLanes;
          for (int64_t i = 0; i < kLanes; ++i) out[i] = v[i][xi];
        } else {
          for (int64_t i = 0; i < nk; ++i) u[xi * xi_stride + (kb - k0 + i) * C + c] = v[i][xi];
        }
      }
    }
  }
}

// All kernels' U, as U[xi] (Cout x C) or packed, in the calling thread's scratch.
template <class T>
T* transform_weight(const T* w, int64_t Cout, int64_t C, bool packed, Isa isa) {
  T* u = scratch<T>(kTaps * xi_stride(Cout * C), kScratchWinogradU);
  parallel_for(0, (Cout + kMicroRows - 1) / kMicroRows, 1, [&](int64_t b, int64_t e) {
    const int64_t k0 = b * kMicroRows, k1 = std::min(Cout, e * kMicroRows);
    transform_weight_rows(w, C, k0, k1, packed, u + k0 * C, xi_stride(Cout * C), isa);
  });
  return u;
}

// V[xi][c][p] = (B^T d B)[xi] for the 4x4 patch d of every tile p of chunk rows [r0, r1), channel c;
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. First down four zero-padded input rows (whole rows
// at a time), then across, reading every other column.
template <class T>
void transform_input_channel(const T* x, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const TileLayout& L,
                             int64_t r0, int64_t r1, int64_t c, T* V) {
  const int64_t vs = xi_stride(C * L.ld);
  T* buf = scratch<T>(8 * L.Wq, 1);
  T* d[4] = {buf, buf + L.Wq, buf + 2 * L.Wq, buf + 3 * L.Wq};
  T* t = buf + 4 * L.Wq;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / L.TH, ty = r % L.TH, p0 = (r - r0) * L.TW;
    const T* plane = x + (n * C + c) * H * W;
    for (int q = 0; q < 4; ++q) {
      const int64_t iy = 2 * ty - ph + q;
      std::fill(d[q], d[q] + L.Wq, T(0));
      if (iy >= 0 && iy < H) std::copy(plane + iy * W, plane + iy * W + W, d[q] + pw);
    }
#pragma omp simd
    for (int64_t j = 0; j < L.Wq; ++j) {
      t[j] = d[0][j] - d[2][j];
      t[L.Wq + j] = d[1][j] + d[2][j];
      t[2 * L.Wq + j] = d[2][j] - d[1][j];
      t[3 * L.Wq + j] = d[1][j] - d[3][j];
    }
    for (int i = 0; i < 4; ++i) {
      const T* s = t + i * L.Wq;
      T* v0 = V + (i * 4 + 0) * vs + c * L.ld + p0;
      T* v1 = V + (i * 4 + 1) * vs + c * L.ld + p0;
      T* v2 = V + (i * 4 + 2) * vs + c * L.ld + p0;
      T* v3 = V + (i * 4 + 3) * vs + c * L.ld + p0;
#pragma omp simd
      for (int64_t tx = 0; tx < L.TW; ++tx) {
        v0[tx] = s[2 * tx] - s[2 * tx + 2];
        v1[tx] = s[2 * tx + 1] + s[2 * tx + 2];
        v2[tx] = s[2 * tx + 2] - s[2 * tx + 1];
        v3[tx] = s[2 * tx + 1] - s[2 * tx + 3];
      }
    }
  }
  // The panel's columns past the chunk's tiles: zeros, so the GEMM reads defined values.
  const int64_t used = (r1 - r0) * L.TW;
  for (int64_t xi = 0; xi < kTaps; ++xi) std::fill(V + xi * vs + c * L.ld + used, V + xi * vs + (c + 1) * L.ld, T(0));
}

// y[n][k] rows 2ty, 2ty + 1 = A^T m A (+ bias) for every tile of chunk rows [r0, r1), channel k;
// A^T = [1 1 1 0; 0 1 -1 -1]. Tiles reaching past the output (odd OH or OW) are cut.
template <class T>
void transform_output_channel(const T* M, int64_t Cout, int64_t OH, int64_t OW, const TileLayout& L, int64_t r0,
                              int64_t r1, int64_t k, T bias, T* y, const ConvEpilogue<T>& ep = {}) {
  T* out = scratch<T>(4 * L.TW + 2, 1);
  T* top = out;
  T* bottom = out + 2 * L.TW;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / L.TH, ty = r % L.TH, p0 = (r - r0) * L.TW;
    const T* m[kTaps];
    for (int64_t xi = 0; xi < kTaps; ++xi) m[xi] = M + xi * xi_stride(Cout * L.ld) + k * L.ld + p0;
#pragma omp simd
    for (int64_t tx = 0; tx < L.TW; ++tx) {
      T s0[4], s1[4];
      for (int j = 0; j < 4; ++j) {
        s0[j] = m[j][tx] + m[4 + j][tx] + m[8 + j][tx];
        s1[j] = m[4 + j][tx] - m[8 + j][tx] - m[12 + j][tx];
      }
      top[2 * tx] = s0[0] + s0[1] + s0[2] + bias;
      top[2 * tx + 1] = s0[1] - s0[2] - s0[3] + bias;
      bottom[2 * tx] = s1[0] + s1[1] + s1[2] + bias;
      bottom[2 * tx + 1] = s1[1] - s1[2] - s1[3] + bias;
    }
    const int64_t at = (n * Cout + k) * OH * OW + 2 * ty * OW;
    std::copy(top, top + OW, y + at);
    ep.apply(y + at, at, OW, k);
    if (2 * ty + 1 < OH) {
      std::copy(bottom, bottom + OW, y + at + OW);
      ep.apply(y + at + OW, at + OW, OW, k);
    }
  }
}

// dM[xi][k][p] = (A dY A^T)[xi], the adjoint of transform_output_channel, with dY the 2x2 block of
// gy at tile p (zero where the tile reaches past the output).
template <class T>
void transform_output_grad_channel(const T* gy, int64_t Cout, int64_t OH, int64_t OW, const TileLayout& L, int64_t r0,
                                   int64_t r1, int64_t k, T* dM) {
  const int64_t ms = xi_stride(Cout * L.ld);
  T* buf = scratch<T>(4 * L.TW + 2, 1);
  T* top = buf;
  T* bottom = buf + 2 * L.TW;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / L.TH, ty = r % L.TH, p0 = (r - r0) * L.TW;
    const T* plane = gy + (n * Cout + k) * OH * OW;
    std::fill(buf, buf + 4 * L.TW, T(0));
    std::copy(plane + 2 * ty * OW, plane + 2 * ty * OW + OW, top);
    if (2 * ty + 1 < OH) std::copy(plane + (2 * ty + 1) * OW, plane + (2 * ty + 1) * OW + OW, bottom);
    T* m[kTaps];
    for (int64_t xi = 0; xi < kTaps; ++xi) m[xi] = dM + xi * ms + k * L.ld + p0;
#pragma omp simd
    for (int64_t tx = 0; tx < L.TW; ++tx) {
      const T a = top[2 * tx], b = top[2 * tx + 1], c = bottom[2 * tx], d = bottom[2 * tx + 1];
      const T col[2][4] = {{a, a + b, a - b, -b}, {c, c + d, c - d, -d}};  // each row of dY times A^T
      for (int j = 0; j < 4; ++j) {
        m[j][tx] = col[0][j];
        m[4 + j][tx] = col[0][j] + col[1][j];
        m[8 + j][tx] = col[0][j] - col[1][j];
        m[12 + j][tx] = -col[1][j];
      }
    }
  }
  const int64_t used = (r1 - r0) * L.TW;
  for (int64_t xi = 0; xi < kTaps; ++xi) std::fill(dM + xi * ms + k * L.ld + used, dM + xi * ms + (k + 1) * L.ld, T(0));
}

template <class T>
bool use_micro_kernel(int64_t Cout, Isa isa) {
  return std::is_same_v<T, float> && has_micro_kernels(isa) && Cout % kMicroRows == 0;
}

// The forward for a map small enough to be one chunk (the late stages, where the weights outweigh
// the activations): each work item owns a block of output channels, transforms their kernels into
// its own cache-sized buffer, multiplies and transforms its outputs, so U never goes to memory.
inline void forward_one_chunk(const float* x, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw,
                              const float* w, int64_t Cout, const float* bias, float* y, const TileLayout& L, float* V,
                              float* M, Isa isa, const ConvEpilogue<float>& ep) {
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  parallel_for(0, C, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) transform_input_channel(x, C, H, W, ph, pw, L, 0, L.rows, c, V);
  });
  // As few blocks as there are threads: every block reads all of V (from L3 at these sizes), while a
  // block's U (at most 8 MB here) is read one xi at a time. Panels per block divide Cout / 8.
  const int64_t panels_m = Cout / kMicroRows, threads = get_num_threads();
  const int64_t budget = std::max<int64_t>(1, std::min((panels_m + threads - 1) / threads, (2 << 20) / (kTaps * C * kMicroRows)));
  int64_t per_block = 1;
  for (int64_t d = 1; d <= std::min(panels_m, budget); ++d)
    if (panels_m % d == 0) per_block = d;
  const int64_t rows = per_block * kMicroRows, panels_n = L.ld / kMicroCols, no_offset = 0, kSlice = 128;
  const int64_t vs = xi_stride(C * L.ld), ms = xi_stride(Cout * L.ld), us = xi_stride(rows * C);
  parallel_for(0, panels_m / per_block, 1, [&](int64_t b, int64_t e) {
    float* ub = scratch<float>(kTaps * us, 0);
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t k0 = blk * rows;
      transform_weight_rows(w, C, k0, k0 + rows, true, ub, us, isa);
      // Channels in slices of kSlice, so the 48-column sliver of V stays in L1 across the block's panels.
      for (int64_t xi = 0; xi < kTaps; ++xi)
        for (int64_t j = 0; j < panels_n; ++j)
          for (int64_t c0 = 0; c0 < C; c0 += kSlice)
            for (int64_t mb = 0; mb < per_block; ++mb)
              micro_kernel_8x48_taps(isa, 1, std::min(kSlice, C - c0), &no_offset, L.ld,
                                     ub + xi * us + (mb * C + c0) * kMicroRows, V + xi * vs + c0 * L.ld + j * kMicroCols,
                                     M + xi * ms + (k0 + mb * kMicroRows) * L.ld + j * kMicroCols, L.ld, c0 > 0);
      for (int64_t k = k0; k < k0 + rows; ++k)
        transform_output_channel(M, Cout, OH, OW, L, 0, L.rows, k, bias ? bias[k] : 0.0f, y, ep);
    }
  });
}

// y (N x Cout x OH x OW) = the 3x3 stride-1 convolution of x (N x C x H x W) padded by (ph, pw), finished by ep.
template <class T>
void forward(const T* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const T* w, int64_t Cout,
             const T* bias, T* y, const ConvEpilogue<T>& ep = {}) {
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  const Isa isa = active_isa();
  const bool micro = use_micro_kernel<T>(Cout, isa);
  const TileLayout L(N, C, Cout, OH, OW, micro ? kMicroCols : 16);
  const int64_t vs = xi_stride(C * L.ld), ms = xi_stride(Cout * L.ld), us = xi_stride(Cout * C);
  T* V = scratch<T>(kTaps * vs, kScratchWinogradV);
  T* M = scratch<T>(kTaps * ms, kScratchWinogradM);
  if constexpr (std::is_same_v<T, float>)
    if (micro && L.chunk_rows >= L.rows) return forward_one_chunk(x, C, H, W, ph, pw, w, Cout, bias, y, L, V, M, isa, ep);
  const T* u = transform_weight(w, Cout, C, micro, isa);
  for (int64_t r0 = 0; r0 < L.rows; r0 += L.chunk_rows) {
    const int64_t r1 = std::min(L.rows, r0 + L.chunk_rows);
    parallel_for(0, C, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) transform_input_channel(x, C, H, W, ph, pw, L, r0, r1, c, V);
    });
    if (micro) {
      if constexpr (std::is_same_v<T, float>) {
        const int64_t mbs = Cout / kMicroRows, panels = L.ld / kMicroCols, no_offset = 0;
        parallel_for(0, kTaps * panels, 1, [&](int64_t b, int64_t e) {
          for (int64_t it = b; it < e; ++it) {
            const int64_t xi = it / panels, j = (it % panels) * kMicroCols;
            for (int64_t mb = 0; mb < mbs; ++mb)  // B's rows are V[xi]'s, L.ld apart
              micro_kernel_8x48_taps(isa, 1, C, &no_offset, L.ld, u + xi * us + mb * C * kMicroRows, V + xi * vs + j,
                                     M + xi * ms + mb * kMicroRows * L.ld + j, L.ld);
          }
        });
      }
    } else {
      parallel_for(0, kTaps, 1, [&](int64_t b, int64_t e) {
        for (int64_t xi = b; xi < e; ++xi)
          gemm<T>({u + xi * us, Cout, C, C, 1}, {V + xi * vs, C, L.ld, L.ld, 1}, {M + xi * ms, Cout, L.ld, L.ld, 1});
      });
    }
    parallel_for(0, Cout, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) transform_output_channel(M, Cout, OH, OW, L, r0, r1, k, bias ? bias[k] : T(0), y, ep);
    });
  }
}

// gx (N x C x H x W) = the input gradient: a 3x3 stride-1 convolution of gy with the kernel flipped,
// its channel axes swapped and padding 2 - p, so the forward above.
template <class T>
void backward_input(const T* gy, int64_t N, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const T* w,
                    int64_t Cout, T* gx) {
  AlignedVector<T> flipped(static_cast<size_t>(C * Cout * 9));  // [c][k][2 - i][2 - j]
  for (int64_t k = 0; k < Cout; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t tap = 0; tap < 9; ++tap) flipped[(c * Cout + k) * 9 + (8 - tap)] = w[(k * C + c) * 9 + tap];
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  forward(gy, N, Cout, OH, OW, 2 - ph, 2 - pw, flipped.data(), C, static_cast<const T*>(nullptr), gx);
}

// gw (Cout x C x 3 x 3, overwritten): dU[xi] = sum over tiles of dM[xi] V[xi]^T, then G^T dU G.
// Each xi's sum belongs to one work item, so the result does not depend on the thread count.
template <class T>
void backward_weight(const T* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const T* gy,
                     int64_t Cout, T* gw) {
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  const TileLayout L(N, C, Cout, OH, OW, 16);
  const int64_t vs = xi_stride(C * L.ld), ms = xi_stride(Cout * L.ld), us = xi_stride(Cout * C);
  T* V = scratch<T>(kTaps * vs, kScratchWinogradV);
  T* dM = scratch<T>(kTaps * ms, kScratchWinogradM);
  T* dU = scratch<T>(kTaps * us, kScratchWinogradU);
  for (int64_t r0 = 0; r0 < L.rows; r0 += L.chunk_rows) {
    const int64_t r1 = std::min(L.rows, r0 + L.chunk_rows);
    parallel_for(0, C + Cout, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (i < C) transform_input_channel(x, C, H, W, ph, pw, L, r0, r1, i, V);
        else transform_output_grad_channel(gy, Cout, OH, OW, L, r0, r1, i - C, dM);
      }
    });
    parallel_for(0, kTaps, 1, [&](int64_t b, int64_t e) {
      for (int64_t xi = b; xi < e; ++xi)
        gemm<T>({dM + xi * ms, Cout, L.ld, L.ld, 1}, {V + xi * vs, L.ld, C, 1, L.ld}, {dU + xi * us, Cout, C, C, 1},
                r0 == 0 ? T(0) : T(1));
    });
  }
  // gw[k][c] = G^T dU G, G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1].
  parallel_for(0, Cout, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k)
      for (int64_t c = 0; c < C; ++c) {
        T d[4][4];
        for (int xi = 0; xi < kTaps; ++xi) d[xi / 4][xi % 4] = dU[xi * us + k * C + c];
        T t[3][4];  // G^T dU
        for (int j = 0; j < 4; ++j) {
          t[0][j] = d[0][j] + T(0.5) * (d[1][j] + d[2][j]);
          t[1][j] = T(0.5) * (d[1][j] - d[2][j]);
          t[2][j] = T(0.5) * (d[1][j] + d[2][j]) + d[3][j];
        }
        T* g = gw + (k * C + c) * 9;
        for (int i = 0; i < 3; ++i) {
          g[i * 3 + 0] = t[i][0] + T(0.5) * (t[i][1] + t[i][2]);
          g[i * 3 + 1] = T(0.5) * (t[i][1] - t[i][2]);
          g[i * 3 + 2] = T(0.5) * (t[i][1] + t[i][2]) + t[i][3];
        }
      }
  });
}

}  // namespace tv::cpu::winograd
