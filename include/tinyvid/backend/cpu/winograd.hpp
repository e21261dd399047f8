#pragma once
// Winograd convolution for 3x3 stride-1 convs: each tile x tile block of outputs comes from a patch x patch
// input patch (patch = tile + 2) with patch^2 multiplies per channel pair instead of 9 tile^2,
//   Y = A^T [ sum_c (G g G^T) .* (B^T d B) ] A      (Lavin & Gray, 2016).
// The patch^2 element-wise products summed over channels are patch^2 GEMMs: M[xi] (Cout x tiles) =
// U[xi] (Cout x C) * V[xi] (C x tiles), xi the position in the transformed patch.
// Tiles are processed in chunks of whole tile rows. With the micro-kernels each thread runs whole chunks
// (input transform, GEMMs, output transform) in buffers of its own; a map that is one chunk (forward_one_chunk) and
// the BLAS path split each step over the threads instead: the input transform over channels, the GEMMs over xi
// (or over blocks of output channels), the output transform over output channels.
//
// Two variants, the same code with other matrices:
// - F2x2 (F(2x2, 3x3), 2.25x fewer multiplies): the transforms only add and subtract (coefficients 1 and
//   1/2), so float results stay within a few ulps of the direct sum. Every conv whose gradient may be taken
//   runs it: the forward in training and both backward passes.
// - F4x4 (F(4x4, 3x3), 4x fewer multiplies, and 44% fewer transformed values per output): its coefficients
//   (up to 8) round more. In float its largest error is 1.5-3.3e-5 of the output's rms against 1.8-5.7e-6 for
//   F2x2 (ResNet-50's four 3x3 shapes, unit inputs, He-scaled weights: a test in test_nn_ops.cpp); in training
//   that reached early layers' gradients (TANet-R18's first TAM: 4.5x PyTorch's own float error). Forwards
//   whose output no gradient is taken of (inference: eval under NoGradGuard, conv2d_inference) run it.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include <vector>

#include "tinyvid/backend/cpu/conv_epilogue.hpp"
#include "tinyvid/backend/cpu/gemm.hpp"
#include "tinyvid/backend/cpu/microkernel.hpp"
#include "tinyvid/backend/cpu/scratch.hpp"
#include "tinyvid/core/parallel.hpp"

namespace tv::cpu::winograd {

// F(2x2, 3x3): interpolation points 0, 1, -1 and infinity.
struct F2x2 {
  static constexpr int64_t tile = 2, patch = 4, taps = 16;
  static constexpr int BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
// F(4x4, 3x3): points 0, 1, -1, 1/2, -2 and infinity (with 2 and -2, the textbook choice, float results
// were 3x further from the exact sum). B^T's rows are scaled to integers (by 2, 6, 6, 15/16, 30, 2) and A^T's
// entries are powers of two, so the activations' transforms round only in their sums; the non-dyadic factors
// sit in G, applied once to the weights.
struct F4x4 {
  static constexpr int64_t tile = 4, patch = 6, taps = 36;
  static constexpr int BT[6][6] = {{2, -3, -4, 3, 2, 0}, {0, -2, 1, 5, 2, 0},   {0, -2, 5, -1, -2, 0},
                                   {0, 2, 1, -2, -1, 0}, {0, 1, -2, -1, 2, 0}, {0, 2, -3, -4, 3, 2}};
  static constexpr double G[6][3] = {{1 / 2., 0, 0},           {1 / 6., 1 / 6., 1 / 6.},
                                     {1 / 6., -1 / 6., 1 / 6.}, {16 / 15., 8 / 15., 4 / 15.},
                                     {1 / 30., -1 / 15., 2 / 15.}, {0, 0, 1 / 2.}};
  static constexpr double AT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 0.5, -2, 0}, {0, 1, 1, 0.25, 4, 0},
                                      {0, 1, -1, 0.125, -8, 1}};
};

template <class E, size_t R, size_t C>
constexpr std::array<std::array<E, R>, C> transposed(const E (&m)[R][C]) {
  std::array<std::array<E, R>, C> t{};
  for (size_t i = 0; i < R; ++i)
    for (size_t j = 0; j < C; ++j) t[j][i] = m[i][j];
  return t;
}
template <class F>
inline constexpr auto kA = transposed(F::AT);  // the output gradient's transform
template <class F>
inline constexpr auto kGT = transposed(F::G);  // the weight gradient's

// out[i][x] = sum_j K[i][j] in[j][x], x < n, for a constant matrix K: the sums are unrolled at compile time,
// so zero entries emit nothing and +-1 entries no multiply, and the loop over x runs in vectors. Every
// transform below is two of these, one down the patch and one across it.
template <const auto& K, size_t I, size_t J, class T>
[[gnu::always_inline]] inline T row_sum(T acc, const T* const* in, int64_t x) {
  if constexpr (J == std::size(K[0])) return acc;
  else if constexpr (K[I][J] == 0) return row_sum<K, I, J + 1>(acc, in, x);
  else return row_sum<K, I, J + 1>(acc + T(K[I][J]) * in[J][x], in, x);
}
template <const auto& K, size_t I, size_t J = 0, class T>
[[gnu::always_inline]] inline T row_start(const T* const* in, int64_t x) {
  if constexpr (K[I][J] == 0) return row_start<K, I, J + 1>(in, x);
  else return row_sum<K, I, J + 1>(T(K[I][J]) * in[J][x], in, x);
}
template <const auto& K, class T, size_t... I>
[[gnu::always_inline]] inline void transform_rows(const T* const* in, T* const* out, int64_t n, std::index_sequence<I...>) {
#pragma omp simd
  for (int64_t x = 0; x < n; ++x) ((out[I][x] = row_start<K, I>(in, x)), ...);
}
template <const auto& K, class T>
void transform_rows(const T* const* in, T* const* out, int64_t n) {
  transform_rows<K>(in, out, n, std::make_index_sequence<std::size(K)>{});
}

// out[j][t] = row[step * t + j] for j < count, t < n: a row's columns split by their offset in each tile.
template <int64_t step, int64_t count, class T>
void split_columns(const T* row, T* const* out, int64_t n) {
#pragma omp simd
  for (int64_t t = 0; t < n; ++t)
#pragma GCC unroll 8
    for (int64_t j = 0; j < count; ++j) out[j][t] = row[step * t + j];
}
// row[step * t + j] = in[j][t], the inverse for count == step.
template <int64_t step, class T>
void join_columns(const T* const* in, T* row, int64_t n) {
#pragma omp simd
  for (int64_t t = 0; t < n; ++t)
#pragma GCC unroll 8
    for (int64_t j = 0; j < step; ++j) row[step * t + j] = in[j][t];
}

// The distance between the matrices of U, V and M: padded by one cache line, because the transforms
// write them all at once and, 4 KB-multiples apart (as ResNet's channel counts make them), those
// writes would all fall in one L1 set (measured: 3.5x slower weight transform).
inline int64_t xi_stride(int64_t matrix_size) { return matrix_size + 16; }

// Tiles of the output and the chunking of tile rows; a tile row is (image n, tile row ty).
struct TileLayout {
  int64_t TH, TW;        // tiles down and across one image
  int64_t rows;          // N * TH tile rows in all
  int64_t chunk_rows;    // tile rows per chunk
  int64_t ld;            // columns of a chunk's V and M rows: its tiles, rounded up to a panel
  int64_t Wq;            // a zero-padded input row: tile * TW + 2 columns cover every tile's patch
  // The layout of variant F (F2x2 or F4x4) for an N-image output of OH x OW, GEMM column panels `panel` wide; a map
  // whose V and M together take at most `whole_bytes` is one chunk.
  template <class F>
  static TileLayout of(int64_t N, int64_t C, int64_t Cout, int64_t OH, int64_t OW, int64_t panel,
                       int64_t whole_bytes = int64_t{12} << 20) {
    return TileLayout(F::tile, F::taps, N, C, Cout, OH, OW, panel, whole_bytes);
  }
 private:
  TileLayout(int64_t tile, int64_t taps, int64_t N, int64_t C, int64_t Cout, int64_t OH, int64_t OW, int64_t panel,
             int64_t whole_bytes) {
    TH = (OH + tile - 1) / tile;
    TW = (OW + tile - 1) / tile;
    rows = N * TH;
    Wq = tile * TW + 2;
    // V and M of one chunk (taps x (C + Cout) x tiles) kept near 3 MB, at least 96 tiles; among the
    // chunk sizes within that, the one with the fewest padded columns (each chunk counted as 16 more,
    // for its fork-joins), so a small map is not cut into half-empty panels.
    const int64_t per_tile = taps * (C + Cout) * 4;
    // A small map whose V and M fit in whole_bytes is one chunk (see forward_one_chunk and weight_grad_layout).
    const int64_t cap = rows * TW * per_tile <= whole_bytes ? rows * TW
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

// A conv's 3x3 kernels as the weight transform reads them: kernel (k, c) (output k, input c) at w + k * k_stride +
// c * c_stride, 9 taps in order, or in reverse where flipped. The input gradient's kernels are w's with the channel
// axes swapped and each kernel turned around (input_gradient_of): read so in place, the copy that held them
// (flipped_transposed_kernels) took 14% of the input gradient of 3x3 512 -> 512 at 7 x 7.
template <class T>
struct Kernels3x3 {
  const T* w;
  int64_t k_stride, c_stride;
  bool flipped = false;
  // w as it lies: Cout x C x 3 x 3.
  static Kernels3x3 of(const T* w, int64_t C) { return {w, 9 * C, 9, false}; }
  // The kernels of the input gradient of a conv with weights w (Cout x C x 3 x 3): C x Cout of them.
  static Kernels3x3 input_gradient_of(const T* w, int64_t C) { return {w, 9, 9 * C, true}; }
  const T* kernel(int64_t k, int64_t c) const { return w + k * k_stride + c * c_stride; }
  T tap(int64_t k, int64_t c, int64_t t) const { return kernel(k, c)[flipped ? 8 - t : t]; }
};

#ifdef TINYVID_X86_KERNELS
namespace avx2 {
// g[t][i] = tap t of row i's kernel, for 8 kernels' 9 taps from rows[i] (in reverse where flipped): taps 0-7 as one 8 x 8
// transpose, tap 8 one by one. (Element by element, the scattered stores took 12% of the forward of a 3x3 512 -> 512
// conv at 7 x 7.)
TINYVID_TARGET_AVX2 inline void gather_taps_8(const float* const* rows, bool flipped, float* const* g) {
  __m256 r[8];
  float last[8];
  const __m256i reverse = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  for (int i = 0; i < 8; ++i) {
    if (flipped) {  // tap t is element 8 - t: elements 8..1 reversed, then element 0
      r[i] = _mm256_permutevar8x32_ps(_mm256_loadu_ps(rows[i] + 1), reverse);
      last[i] = rows[i][0];
    } else {
      r[i] = _mm256_loadu_ps(rows[i]);
      last[i] = rows[i][8];
    }
  }
  cpu::avx2::transpose_8x8(r);
  for (int t = 0; t < 8; ++t) _mm256_storeu_ps(g[t], r[t]);
  std::copy_n(last, 8, g[8]);
}
}  // namespace avx2
#endif

// U = (G g G^T) for each 3x3 kernel g = w's (k, c), k in [k0, k1) (k0 a multiple of 8). Written to u + xi * xi_stride
// as rows (k - k0) * C + c for a GEMM, or packed for the micro-kernel: panels of 8 kernels, [(k - k0) / 8][c][k % 8].
// Either way a group of kernels (8 packed, 1 not) fills one contiguous run of every U[xi]: its 9 taps are gathered
// into rows laid out the same way, and both products with G run along those rows.
template <class F, class T>
void transform_weight_rows(Isa isa, const Kernels3x3<T>& w, int64_t C, int64_t k0, int64_t k1, bool packed, T* u,
                           int64_t xi_stride) {
  constexpr int64_t P = F::patch;
  const int64_t lanes = packed ? kMicroRows : 1;
  const int64_t cs = std::max<int64_t>(1, 256 / lanes);  // channels per pass: the passes' rows stay in L1
  T* buf = scratch<T>((9 + 3 * P) * cs * lanes, 1);
  T *g[9], *t[3 * P];  // g[a * 3 + b]: the kernels' tap (a, b) at (c - c0) * lanes + i; t[r * 3 + b]: (G g)[r][b]
  for (int64_t i = 0; i < 9; ++i) g[i] = buf + i * cs * lanes;
  for (int64_t i = 0; i < 3 * P; ++i) t[i] = buf + (9 + i) * cs * lanes;
  for (int64_t kb = k0; kb < k1; kb += lanes) {
    const int64_t nk = std::min(lanes, k1 - kb);
    for (int64_t c0 = 0; c0 < C; c0 += cs) {
      const int64_t c1 = std::min(C, c0 + cs), n = (c1 - c0) * lanes;
      bool gathered = false;
#ifdef TINYVID_X86_KERNELS
      if constexpr (std::is_same_v<T, float>)
        if (nk == kMicroRows && isa != Isa::Generic) {  // a whole packed panel
          for (int64_t c = c0; c < c1; ++c) {
            const float* rows[8];
            float* out[9];
            for (int64_t i = 0; i < 8; ++i) rows[i] = w.kernel(kb + i, c);
            for (int64_t tap = 0; tap < 9; ++tap) out[tap] = g[tap] + (c - c0) * 8;
            avx2::gather_taps_8(rows, w.flipped, out);
          }
          gathered = true;
        }
#endif
      if (!gathered)
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t i = 0; i < lanes; ++i)
            for (int64_t tap = 0; tap < 9; ++tap)
              g[tap][(c - c0) * lanes + i] = i < nk ? w.tap(kb + i, c, tap) : T(0);
      for (int64_t b = 0; b < 3; ++b) {
        const T* in[3] = {g[b], g[3 + b], g[6 + b]};
        T* out[P];
        for (int64_t r = 0; r < P; ++r) out[r] = t[r * 3 + b];
        transform_rows<F::G>(in, out, n);
      }
      for (int64_t r = 0; r < P; ++r) {
        T* out[P];
        for (int64_t s = 0; s < P; ++s) out[s] = u + (r * P + s) * xi_stride + (kb - k0) * C + c0 * lanes;
        transform_rows<F::G>(t + r * 3, out, n);
      }
    }
  }
}

// All kernels' U, as U[xi] (Cout x C) or packed, into u (F::taps * xi_stride(Cout * C) values).
template <class F, class T>
void transform_weight(Isa isa, const Kernels3x3<T>& w, int64_t Cout, int64_t C, bool packed, T* u) {
  parallel_for(0, (Cout + kMicroRows - 1) / kMicroRows, 1, [&](int64_t b, int64_t e) {
    const int64_t k0 = b * kMicroRows, k1 = std::min(Cout, e * kMicroRows);
    transform_weight_rows<F>(isa, w, C, k0, k1, packed, u + k0 * C, xi_stride(Cout * C));
  });
}

// PreparedWeights' tags: all of U (packed or not), or U panel by panel (forward_one_chunk).
template <class F>
constexpr int64_t prepared_tag(bool packed, bool by_panel) {
  return 16 * F::tile + (by_panel ? 4 : packed ? 3 : 2);
}

// The transforms run on whole rows of a chunk's tiles (V's and M's rows), so their vectors are long even where
// a tile row is short (14 tiles at 56 x 56 in F4x4, 2 at 7 x 7): the patches' entries are first gathered into
// one row per position in the patch, and the results scattered back the same way. The rows run to a whole
// number of vectors (the tiles past the chunk's are zeros): a scalar remainder of up to 15 tiles in every row took
// about as long as the vectors (eval forward at batch 8, 2 threads: 3x3 at 28 x 28, 128 channels, 3.46 -> 3.16 ms;
// at 56 x 56, 64 channels, 5.13 -> 4.58 ms).
inline int64_t transform_width(int64_t tiles) { return (tiles + 15) / 16 * 16; }

// f(n, ty0, ty1) for each image n's tile rows [ty0, ty1] among chunk rows [r0, r1) (the prefetches' row ranges).
template <class Fn>
void for_each_image_rows(const TileLayout& L, int64_t r0, int64_t r1, Fn&& f) {
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / L.TH, last = std::min(r1, (n + 1) * L.TH) - 1;
    f(n, r % L.TH, last % L.TH);
    r = last + 1;
  }
}

// V[xi][c][p] = (B^T d B)[xi] for the patch d of every tile p of chunk rows [r0, r1), channel c, up to the
// transforms' width (the tiles past the chunk's: zeros). With zero_to_ld, V's columns from there to L.ld are zeroed
// too, for a product that reads whole rows of L.ld (the BLAS path); the micro-kernels' products stop at the width.
// With AVX-512, the patches' columns come from each input row by vector permutes (split_row).
template <class F, class T>
void transform_input_channel(Isa isa, const T* x, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw,
                             const TileLayout& L, int64_t r0, int64_t r1, int64_t c, T* V, bool zero_to_ld = false) {
  constexpr int64_t P = F::patch;
  const int64_t vs = xi_stride(C * L.ld), used = (r1 - r0) * L.TW, span = L.Wq + F::tile, width = transform_width(used);
  T* buf = scratch<T>(2 * F::taps * width + span, 1);
  T *d[F::taps], *t[F::taps];  // d[q * P + j]: the patches' row q, column j; t[i * P + j]: B^T down column j
  for (int64_t i = 0; i < F::taps; ++i) {
    d[i] = buf + i * width, t[i] = buf + (F::taps + i) * width;
    std::fill(d[i] + used, d[i] + width, T(0));
  }
  T* row = buf + 2 * F::taps * width;  // one zero-padded input row
  // The next channel's rows of the chunk, asked for now: each plane's few KB began with misses (3x3 at 28 x 28, 128
  // channels: 2-10% of the conv).
  if (c + 1 < C)
    for_each_image_rows(L, r0, r1, [&](int64_t n, int64_t ty0, int64_t ty1) {
      const int64_t y0 = std::max<int64_t>(0, F::tile * ty0 - ph), y1 = std::min(H, F::tile * ty1 - ph + P);
      if (y0 < y1) prefetch_lines(x + ((n * C + c + 1) * H + y0) * W, (y1 - y0) * W);
    });
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / L.TH, ty = r % L.TH, p0 = (r - r0) * L.TW;
    const T* plane = x + (n * C + c) * H * W;
    for (int64_t q = 0; q < P; ++q) {
      const int64_t iy = F::tile * ty - ph + q;
      T* dq[P];
      for (int64_t j = 0; j < P; ++j) dq[j] = d[q * P + j] + p0;
      if constexpr (std::is_same_v<T, float>)
        if (isa == Isa::Avx512) {  // the padded row's column pw + i is the input's i
          const bool inside = iy >= 0 && iy < H;
          split_row(isa, plane + (inside ? iy : 0) * W - pw, pw, inside ? pw + W : pw, F::tile, P, L.TW, dq);
          continue;
        }
      std::fill(row, row + span, T(0));
      if (iy >= 0 && iy < H) std::copy(plane + iy * W, plane + iy * W + W, row + pw);
      split_columns<F::tile, P>(row, dq, L.TW);
    }
  }
  for (int64_t j = 0; j < P; ++j) {
    const T* in[P];
    T* out[P];
    for (int64_t q = 0; q < P; ++q) in[q] = d[q * P + j], out[q] = t[q * P + j];
    transform_rows<F::BT>(in, out, width);
  }
  for (int64_t i = 0; i < P; ++i) {
    T* v[P];
    for (int64_t j = 0; j < P; ++j) v[j] = V + (i * P + j) * vs + c * L.ld;
    transform_rows<F::BT>(t + i * P, v, width);
  }
  if (zero_to_ld)
    for (int64_t xi = 0; xi < F::taps; ++xi) std::fill(V + xi * vs + c * L.ld + width, V + xi * vs + (c + 1) * L.ld, T(0));
}

// y[n][k] rows tile * ty + a = A^T m A (+ bias) for every tile of chunk rows [r0, r1), channel k, then the
// epilogue on each row. Tiles reaching past the output are cut.
template <class F, class T>
void transform_output_channel(const T* M, int64_t Cout, int64_t OH, int64_t OW, const TileLayout& L, int64_t r0,
                              int64_t r1, int64_t k, T bias, T* y, const ConvEpilogue<T>& ep, bool prefetch_next) {
  constexpr int64_t P = F::patch, Q = F::tile;
  // (M's columns past the chunk's tiles hold the products of V's zeros; the transforms run over them, unread)
  const int64_t TW = L.TW, width = transform_width((r1 - r0) * TW);
  T* buf = scratch<T>((P * Q + Q * Q) * width + Q * TW, 1);
  T *s[P * Q], *o[Q * Q];  // s[j * Q + a]: A^T down column j; o[a * Q + b]: the tiles' output row a, column b
  for (int64_t i = 0; i < P * Q; ++i) s[i] = buf + i * width;
  for (int64_t i = 0; i < Q * Q; ++i) o[i] = buf + (P * Q + i) * width;
  T* row = buf + (P * Q + Q * Q) * width;  // one output row of Q TW columns
  // The next channel's output rows of the chunk, asked for owned now where the map is cut in chunks (their stores
  // missed: 3x3 at 28 x 28, 128 channels, 4% of the conv; on one-chunk maps it cost 4% at 7 x 7).
  if (prefetch_next && k + 1 < Cout)
    for_each_image_rows(L, r0, r1, [&](int64_t n, int64_t ty0, int64_t ty1) {
      const int64_t y0 = Q * ty0, y1 = std::min(OH, Q * (ty1 + 1));
      if (y0 < y1) prefetch_lines(y + ((n * Cout + k + 1) * OH + y0) * OW, (y1 - y0) * OW, true);
    });
  for (int64_t j = 0; j < P; ++j) {
    const T* in[P];
    for (int64_t i = 0; i < P; ++i) in[i] = M + (i * P + j) * xi_stride(Cout * L.ld) + k * L.ld;
    transform_rows<F::AT>(in, s + j * Q, width);
  }
  for (int64_t a = 0; a < Q; ++a) {
    const T* in[P];
    for (int64_t j = 0; j < P; ++j) in[j] = s[j * Q + a];
    transform_rows<F::AT>(in, o + a * Q, width);
  }
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / L.TH, ty = r % L.TH, p0 = (r - r0) * TW;
    for (int64_t a = 0; a < Q && Q * ty + a < OH; ++a) {
      const T* oa[Q];
      for (int64_t b = 0; b < Q; ++b) oa[b] = o[a * Q + b] + p0;
      join_columns<Q>(oa, row, TW);
      const int64_t at = (n * Cout + k) * OH * OW + (Q * ty + a) * OW;
      ep.store(row, bias, y + at, at, OW, k);
    }
  }
}

// dM[xi][k][p] = (A dY A^T)[xi], the adjoint of transform_output_channel, with dY the block of gy at tile p
// (zero where the tile reaches past the output), up to the transforms' width (all the weight gradient's products read).
template <class F, class T>
void transform_output_grad_channel(const T* gy, int64_t Cout, int64_t OH, int64_t OW, const TileLayout& L, int64_t r0,
                                   int64_t r1, int64_t k, T* dM) {
  constexpr int64_t P = F::patch, Q = F::tile;
  const int64_t ms = xi_stride(Cout * L.ld), TW = L.TW, used = (r1 - r0) * TW, width = transform_width(used);
  T* buf = scratch<T>((Q * Q + Q * P) * width + Q * TW, 1);
  T *g[Q * Q], *s[Q * P];  // g[a * Q + b]: dY's row a, column b at each tile; s[a * P + j]: row a of dY times A^T
  for (int64_t i = 0; i < Q * Q; ++i) {
    g[i] = buf + i * width;
    std::fill(g[i] + used, g[i] + width, T(0));
  }
  for (int64_t i = 0; i < Q * P; ++i) s[i] = buf + (Q * Q + i) * width;
  T* row = buf + (Q * Q + Q * P) * width;  // one zero-padded gy row of Q TW columns
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / L.TH, ty = r % L.TH, p0 = (r - r0) * TW;
    const T* plane = gy + (n * Cout + k) * OH * OW;
    for (int64_t a = 0; a < Q; ++a) {
      const int64_t oy = Q * ty + a;
      T* ga[Q];
      for (int64_t b = 0; b < Q; ++b) ga[b] = g[a * Q + b] + p0;
      // A whole row of tiles is split where it lies; a short one (an odd width) or one past the map goes through a
      // zero-padded copy (filling and copying every row, calls of 56 floats, took 7% of 3x3 64 at 56 x 56).
      if (oy < OH && OW == Q * TW) {
        split_columns<Q, Q>(plane + oy * OW, ga, TW);
        continue;
      }
      std::fill(row, row + Q * TW, T(0));
      if (oy < OH) std::copy(plane + oy * OW, plane + oy * OW + OW, row);
      split_columns<Q, Q>(row, ga, TW);
    }
  }
  for (int64_t a = 0; a < Q; ++a) transform_rows<kA<F>>(g + a * Q, s + a * P, width);
  for (int64_t j = 0; j < P; ++j) {
    const T* in[Q];
    T* out[P];
    for (int64_t a = 0; a < Q; ++a) in[a] = s[a * P + j];
    for (int64_t i = 0; i < P; ++i) out[i] = dM + (i * P + j) * ms + k * L.ld;
    transform_rows<kA<F>>(in, out, width);
  }
}

template <class T>
bool use_micro_kernel(int64_t Cout, Isa isa) {
  return std::is_same_v<T, float> && has_micro_kernels(isa) && Cout % kMicroRows == 0;
}

// The forward for a map small enough to be one chunk (the late stages, where the weights outweigh
// the activations): each work item owns an 8-row panel of output channels, transforms their kernels into
// its own buffer (in L2), multiplies and transforms its outputs, so U never goes to memory.
// With prepared weights (a frozen conv), each 8-row panel's U is transformed once and kept, and read from there.
template <class F>
void forward_one_chunk(const float* x, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const Kernels3x3<float>& w,
                       int64_t Cout, const float* bias, float* y, const TileLayout& L, float* V, float* M, Isa isa,
                       const ConvEpilogue<float>& ep, PreparedWeights* prepared) {
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  parallel_for(0, C, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) transform_input_channel<F>(isa, x, C, H, W, ph, pw, L, 0, L.rows, c, V);
  });
  // One 8-row panel of output channels per work item, claimed as the threads come free: the panel's U, kept or
  // transformed into the thread's scratch (16 x 16 KB at 512 channels, in L2), is read front to back, and every
  // panel reads all of V (from L3). Blocks of panels up to a thread's share (so that V was read once per block, the
  // blocks' U in turn one xi at a time: 8 streams 590 KB apart where kept) ran slower, at batch 8 on 2 threads:
  // 3x3 512 -> 512 at 7 x 7, F(2x2, 3x3) forward and input gradient (32 panels a block) 5.3-5.6 -> 4.7-4.9 ms,
  // F(4x4, 3x3) with U kept (a frozen conv, 4 panels a block) 4.3-4.8 -> 2.5-2.9 ms (with all channels in one call,
  // below), at batch 2 3.6-4.0 -> 1.8 ms.
  const int64_t panels_m = Cout / kMicroRows, panels_n = L.ld / kMicroCols, no_offset = 0;
  // A short last panel runs a narrower kernel (7 x 7 maps: 32 of 48 columns), to the transforms' width at least.
  const int64_t width = transform_width(L.rows * L.TW);
  const int64_t vs = xi_stride(C * L.ld), ms = xi_stride(Cout * L.ld);
  const int64_t panel_us = xi_stride(kMicroRows * C);  // a panel's U: F::taps matrices this far apart
  const float* kept = nullptr;
  if (prepared)
    kept = prepared->get(prepared_tag<F>(true, true), panels_m * F::taps * panel_us, [&](float* out) {
      parallel_for(0, panels_m, 1, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p)
          transform_weight_rows<F>(isa, w, C, p * kMicroRows, (p + 1) * kMicroRows, true, out + p * F::taps * panel_us, panel_us);
      });
    });
  parallel_for(0, panels_m, 1, [&](int64_t b, int64_t e) {
    float* fresh = kept ? nullptr : scratch<float>(F::taps * panel_us, 0);
    for (int64_t p = b; p < e; ++p) {
      const int64_t k0 = p * kMicroRows;
      const float* u = kept ? kept + p * F::taps * panel_us : fresh;
      if (!kept) transform_weight_rows<F>(isa, w, C, k0, k0 + kMicroRows, true, fresh, panel_us);
      // All channels in one call: in slices of 128 (so that a block's panels found the slice's sliver of V in L1), the
      // sums went out to memory and back between slices (512 at 7 x 7: 5-6% of the forward).
      for (int64_t xi = 0; xi < F::taps; ++xi)
        for (int64_t j = 0; j < panels_n; ++j)
          micro_kernel_8x48_taps(isa, 1, C, &no_offset, L.ld, u + xi * panel_us, V + xi * vs + j * kMicroCols,
                                 M + xi * ms + k0 * L.ld + j * kMicroCols, L.ld, false, std::min(kMicroCols, width - j * kMicroCols));
      for (int64_t k = k0; k < k0 + kMicroRows; ++k)
        transform_output_channel<F>(M, Cout, OH, OW, L, 0, L.rows, k, bias ? bias[k] : 0.0f, y, ep, false);
    }
  });
}

// y (N x Cout x OH x OW) = the 3x3 stride-1 convolution of x (N x C x H x W) padded by (ph, pw) with the kernels w
// (Cout x C of them), finished by ep, in the variant F. prepared: U kept across calls (a frozen conv's, float), or null.
template <class F, class T>
void forward(const T* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const Kernels3x3<T>& w, int64_t Cout,
             const T* bias, T* y, const ConvEpilogue<T>& ep = {}, PreparedWeights* prepared = nullptr) {
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  const Isa isa = active_isa();
  const bool micro = use_micro_kernel<T>(Cout, isa);
  const auto L = TileLayout::of<F>(N, C, Cout, OH, OW, micro ? kMicroCols : 16);
  const int64_t vs = xi_stride(C * L.ld), ms = xi_stride(Cout * L.ld), us = xi_stride(Cout * C);
  T* V = scratch<T>(F::taps * vs, kScratchWinogradV);
  T* M = scratch<T>(F::taps * ms, kScratchWinogradM);
  if constexpr (std::is_same_v<T, float>)
    if (micro && L.chunk_rows >= L.rows)
      return forward_one_chunk<F>(x, C, H, W, ph, pw, w, Cout, bias, y, L, V, M, isa, ep, prepared);
  const T* u = nullptr;
  if constexpr (std::is_same_v<T, float>)
    if (prepared)
      u = prepared->get(prepared_tag<F>(micro, false), F::taps * us, [&](float* out) { transform_weight<F>(isa, w, Cout, C, micro, out); });
  if (!u) {
    T* fresh = scratch<T>(F::taps * us, kScratchWinogradU);
    transform_weight<F>(isa, w, Cout, C, micro, fresh);
    u = fresh;
  }
  if constexpr (std::is_same_v<T, float>)
    if (micro) {
      // Each thread runs whole chunks, the three steps one after another in its own V and M, as many chunks for each
      // thread, of even sizes. Split over the threads step by step, a chunk's V and M went from core to core and
      // each chunk waited at three barriers: eval forward at batch 8, 2 threads, 3x3 at 28 x 28, 128 channels
      // 2.68 -> 2.14 ms, at 56 x 56, 64 channels 3.83 -> 2.55 ms.
      const int64_t threads = get_num_threads(), chunks = (L.rows + L.chunk_rows - 1) / L.chunk_rows;
      const int64_t count = (std::max<int64_t>(chunks, threads) + threads - 1) / threads * threads;
      parallel_for(0, count, 1, [&](int64_t b, int64_t e) {
        T* Vt = scratch<T>(F::taps * vs, kScratchWinogradV);
        T* Mt = scratch<T>(F::taps * ms, kScratchWinogradM);
        for (int64_t i = b; i < e; ++i) {
          const int64_t r0 = L.rows * i / count, r1 = L.rows * (i + 1) / count;
          if (r0 == r1) continue;  // (more threads than tile rows)
          for (int64_t c = 0; c < C; ++c) transform_input_channel<F>(isa, x, C, H, W, ph, pw, L, r0, r1, c, Vt);
          // The products to the transforms' width (M's columns there are read, the AVX2 kernel's 24-column tiles
          // would stop short of it), B's columns past the tiles zeros.
          const int64_t no_offset = 0, width = transform_width((r1 - r0) * L.TW);
          for (int64_t xi = 0; xi < F::taps; ++xi)
            for (int64_t j = 0; j < width; j += kMicroCols)
              for (int64_t mb = 0; mb < Cout / kMicroRows; ++mb)  // B's rows are V[xi]'s, L.ld apart
                micro_kernel_8x48_taps(isa, 1, C, &no_offset, L.ld, u + xi * us + mb * C * kMicroRows, Vt + xi * vs + j,
                                       Mt + xi * ms + mb * kMicroRows * L.ld + j, L.ld, false, std::min(kMicroCols, width - j));
          for (int64_t k = 0; k < Cout; ++k)
            transform_output_channel<F>(Mt, Cout, OH, OW, L, r0, r1, k, bias ? bias[k] : T(0), y, ep, true);
        }
      });
      return;
    }
  // Without the micro-kernels: each step split over the threads, one BLAS product per xi.
  for (int64_t r0 = 0; r0 < L.rows; r0 += L.chunk_rows) {
    const int64_t r1 = std::min(L.rows, r0 + L.chunk_rows);
    parallel_for(0, C, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) transform_input_channel<F>(isa, x, C, H, W, ph, pw, L, r0, r1, c, V, /*zero_to_ld=*/true);
    });
    parallel_for(0, F::taps, 1, [&](int64_t b, int64_t e) {
      for (int64_t xi = b; xi < e; ++xi)
        gemm<T>({u + xi * us, Cout, C, C, 1}, {V + xi * vs, C, L.ld, L.ld, 1}, {M + xi * ms, Cout, L.ld, L.ld, 1});
    });
    parallel_for(0, Cout, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k)
        transform_output_channel<F>(M, Cout, OH, OW, L, r0, r1, k, bias ? bias[k] : T(0), y, ep, true);
    });
  }
}

// gx (N x C x H x W) = the input gradient: a 3x3 stride-1 convolution of gy with the kernel flipped,
// its channel axes swapped and padding 2 - p, so the forward above (in F2x2: see the top of the file).
template <class T>
void backward_input(const T* gy, int64_t N, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const T* w,
                    int64_t Cout, T* gx) {
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  forward<F2x2>(gy, N, Cout, OH, OW, 2 - ph, 2 - pw, Kernels3x3<T>::input_gradient_of(w, C), C, static_cast<const T*>(nullptr), gx);
}

// backward_weight's layout: the map is one chunk up to 32 MB of V and dM (not 12 as in the forward). Chunk by chunk,
// each chunk's three steps (transforms of x and gy, then the 16 products added into dU) split over the threads met
// three barriers and read and wrote all of dU again: at batch 8, 2 threads, 3x3 128 -> 128 at 28 x 28 (25.7 MB, 9
// chunks) 4.81-4.92 -> 4.05-4.27 ms as one chunk, 256 -> 256 at 14 x 14 (12.8 MB, 5 chunks) 4.00-4.09 -> 3.48-3.59 ms.
// The buffers stay allocated for the next call (scratch): TSN-R50's training step's peak RSS 1372 -> 1409 MB.
inline TileLayout weight_grad_layout(int64_t N, int64_t C, int64_t Cout, int64_t OH, int64_t OW) {
  return TileLayout::of<F2x2>(N, C, Cout, OH, OW, 16, int64_t{32} << 20);
}

// backward_weight's groups of tile rows, each summed apart by one thread: 16 or 8, as many as leave each group two
// chunks or more, on maps with few channels (where it measured faster); 0 for chunk by chunk. A function of the shape
// alone, not of the thread count, so that the sums do not depend on it (with more threads than groups, some wait).
inline int64_t weight_grad_groups(const TileLayout& L, int64_t C, int64_t Cout) {
  if (C * Cout > 96 * 96) return 0;
  for (int64_t groups : {16, 8})
    if (L.rows / groups >= 2 * L.chunk_rows) return groups;
  return 0;
}

// gw (Cout x C x 3 x 3, overwritten): dU[xi] = sum over tiles of dM[xi] V[xi]^T, then G^T dU G, in F2x2.
// The sums are cut the same way whatever the thread count, so the result does not depend on it.
template <class T>
void backward_weight(const T* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, const T* gy,
                     int64_t Cout, T* gw) {
  using F = F2x2;
  const int64_t OH = H + 2 * ph - 2, OW = W + 2 * pw - 2;
  const Isa isa = active_isa();
  const auto L = weight_grad_layout(N, C, Cout, OH, OW);
  const int64_t vs = xi_stride(C * L.ld), ms = xi_stride(Cout * L.ld), us = xi_stride(Cout * C);
  T* dU = scratch<T>(F::taps * us, kScratchWinogradU);
  // Tile rows [r0, r1)'s product for xi added into dUs's (beta 0 when first), over the transforms' width (the
  // columns past it, up to L.ld, are not the rows' tiles).
  auto product = [&](int64_t r0, int64_t r1, int64_t xi, const T* V, const T* dM, T* dUs, bool first) {
    const int64_t width = transform_width((r1 - r0) * L.TW);
    gemm<T>({dM + xi * ms, Cout, width, L.ld, 1}, {V + xi * vs, width, C, 1, L.ld}, {dUs + xi * us, Cout, C, C, 1},
            first ? T(0) : T(1));
  };
  if (const int64_t G = weight_grad_groups(L, C, Cout)) {
    // G groups of tile rows, each summed by one thread in its own V, dM and dU (in pieces of at most L.chunk_rows
    // rows, of even sizes), then the groups' dU added in order. Split over the threads step by step
    // (the transforms over channels, the products over xi), V and dM went from core to core and each chunk waited at
    // three barriers: 2 threads, 64 channels at 56 x 56, batch 8 7.3-7.4 -> 5.3-5.9 ms, batch 16 14.3-14.7 -> 9.8-12.1.
    // With 128 channels at 28 x 28 it measured no faster (batch 16: 10.4-12.8 -> 11.3-12.8 ms; batch 8, groups of
    // less than two chunks: 5.4-6.5 -> 6.8-8.2).
    AlignedVector<T> partial(static_cast<size_t>(G * F::taps * us));
    parallel_for(0, G, 1, [&](int64_t b, int64_t e) {
      T* V = scratch<T>(F::taps * vs, kScratchWinogradV);
      T* dM = scratch<T>(F::taps * ms, kScratchWinogradM);
      for (int64_t grp = b; grp < e; ++grp) {
        const int64_t g0 = L.rows * grp / G, g1 = L.rows * (grp + 1) / G;
        const int64_t pieces = (g1 - g0 + L.chunk_rows - 1) / L.chunk_rows;
        for (int64_t i = 0; i < pieces; ++i) {
          const int64_t r0 = g0 + (g1 - g0) * i / pieces, r1 = g0 + (g1 - g0) * (i + 1) / pieces;
          for (int64_t c = 0; c < C; ++c) transform_input_channel<F>(isa, x, C, H, W, ph, pw, L, r0, r1, c, V);
          for (int64_t k = 0; k < Cout; ++k) transform_output_grad_channel<F>(gy, Cout, OH, OW, L, r0, r1, k, dM);
          for (int64_t xi = 0; xi < F::taps; ++xi) product(r0, r1, xi, V, dM, partial.data() + grp * F::taps * us, i == 0);
        }
      }
    });
    // dU = the groups' sums in group order (each xi's Cout x C: the padding after it is never written).
    parallel_for(0, F::taps * Cout * C, kParallelGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t at = i / (Cout * C) * us + i % (Cout * C);
        T sum = partial[at];
        for (int64_t grp = 1; grp < G; ++grp) sum += partial[grp * F::taps * us + at];
        dU[at] = sum;
      }
    });
  } else {
    // Chunk by chunk, each step split over the threads, each xi's sum one work item.
    T* V = scratch<T>(F::taps * vs, kScratchWinogradV);
    T* dM = scratch<T>(F::taps * ms, kScratchWinogradM);
    for (int64_t r0 = 0; r0 < L.rows; r0 += L.chunk_rows) {
      const int64_t r1 = std::min(L.rows, r0 + L.chunk_rows);
      // Two regions, so each thread gets its share of both transforms (one region over C + Cout items gave one
      // thread the inputs and the other the gradients, and the faster waited: 40% of the region's thread time).
      parallel_for(0, C, 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) transform_input_channel<F>(isa, x, C, H, W, ph, pw, L, r0, r1, c, V);
      });
      parallel_for(0, Cout, 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) transform_output_grad_channel<F>(gy, Cout, OH, OW, L, r0, r1, k, dM);
      });
      parallel_for(0, F::taps, 1, [&](int64_t b, int64_t e) {
        for (int64_t xi = b; xi < e; ++xi) product(r0, r1, xi, V, dM, dU, r0 == 0);
      });
    }
  }
  // gw[k][c] = G^T dU G, for all c of a kernel k at once.
  parallel_for(0, Cout, 1, [&](int64_t b, int64_t e) {
    constexpr int64_t P = F::patch;
    T* buf = scratch<T>((3 * P + 9) * C, 1);
    T *t[3 * P], *g[9];  // t[i * 3 + b]: G^T across row i of dU; g[a * 3 + b]: gw's tap (a, b)
    for (int64_t i = 0; i < 3 * P; ++i) t[i] = buf + i * C;
    for (int64_t i = 0; i < 9; ++i) g[i] = buf + (3 * P + i) * C;
    for (int64_t k = b; k < e; ++k) {
      for (int64_t i = 0; i < P; ++i) {
        const T* in[P];
        for (int64_t j = 0; j < P; ++j) in[j] = dU + (i * P + j) * us + k * C;
        transform_rows<kGT<F>>(in, t + i * 3, C);
      }
      for (int64_t j = 0; j < 3; ++j) {
        const T* in[P];
        for (int64_t i = 0; i < P; ++i) in[i] = t[i * 3 + j];
        T* out[3] = {g[j], g[3 + j], g[6 + j]};
        transform_rows<kGT<F>>(in, out, C);
      }
      for (int64_t c = 0; c < C; ++c)
        for (int tap = 0; tap < 9; ++tap) gw[(k * C + c) * 9 + tap] = g[tap][c];
    }
  });
}

}  // namespace tv::cpu::winograd
