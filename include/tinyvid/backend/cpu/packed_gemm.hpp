#pragma once
// tinyvid's own float GEMM, C = A B + beta C, on the 8 x 48 micro-kernel (microkernel.hpp), for every layout
// cpu::gemm accepts. A is packed into 8-row panels (PackedA: a conv packs its weights once for all its column
// blocks). B is packed into slices of 48-column panels (a column-major B through 16 x 16 transposes), except where
// at most 16 row panels use a slice and its rows are contiguous: then the copy would be reused too little to pay,
// and the kernel reads B in place (packing matters where many row panels reread rows a power of two apart, which
// share a few L1 sets). Tails of M and N go through tiles of their own, the last column panel on a narrower kernel.
// Blocked BLIS-style: K in slices of kGemmKc, M in blocks of kGemmMcPanels panels that share one packed B slice,
// and K slices outside column panels, so a block's slice of A stays in L2. Each element of C is summed by one
// work item in one order, so the result does not depend on the thread count; inside a parallel region (a conv's
// work item) the call runs on its thread alone.
#include <algorithm>
#include <cstdint>

#include "tinyvid/backend/cpu/matrix_ref.hpp"
#include "tinyvid/backend/cpu/microkernel.hpp"
#include "tinyvid/backend/cpu/scratch.hpp"
#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

constexpr int64_t kGemmKc = 256;       // rows of a B panel's slice (256 x 48 floats = 48 KB, L1 / L2)
// Up to 128 rows (16 panels), B's rows are read in place: packing costs more than it saves (1x1 256 -> 64 at 56x56:
// 160 packed, 185 in place, GFLOP/s on 2 cores); from 256 rows on, packing wins (1x1 2048 -> 512 at 7x7: 160 vs 125).
constexpr int64_t kGemmInPlacePanels = 16;
// 8-row panels per M block (256 rows): B is packed once per block. With 256 x kGemmKc of A (256 KB) and the run's
// C, a block fits the 1 MB L2 of Zen 4; 512 rows thrashed it (1x1 2048 -> 512 at 7x7, 8 images: 120 against 160
// GFLOP/s on 2 cores), 128 rows repacked B too often (124).
constexpr int64_t kGemmMcPanels = 32;

namespace detail {

// Rows [r0, r0 + 8) of A (zero past its last row) as the kernel's panel: out[k][8], k over all of A's columns.
inline void pack_a_panel(const MatrixRef<const float>& a, int64_t r0, float* out) {
  const int64_t rows = std::min<int64_t>(kMicroRows, a.rows - r0), K = a.cols;
  if (rows < kMicroRows) std::fill(out, out + K * kMicroRows, 0.0f);
  if (a.rows == 1 || a.row_stride == 1) {  // column-major (W^T read in place): 8 contiguous floats per k
    for (int64_t k = 0; k < K; ++k) std::copy_n(a.data + r0 + k * a.col_stride, rows, out + k * kMicroRows);
    return;
  }
  for (int64_t i = 0; i < rows; ++i) {
    const float* src = a.data + (r0 + i) * a.row_stride;
    for (int64_t k = 0; k < K; ++k) out[k * kMicroRows + i] = src[k * a.col_stride];
  }
}

// Rows [k0, k0 + kc) of B's columns [j0, j0 + 48) (zero past its last column) as a packed panel: out[k][48].
inline void pack_b_panel(Isa isa, const MatrixRef<const float>& b, int64_t k0, int64_t kc, int64_t j0, float* out) {
  const int64_t cols = std::min<int64_t>(kMicroCols, b.cols - j0);
  if (cols < kMicroCols)
    for (int64_t k = 0; k < kc; ++k) std::fill(out + k * kMicroCols + cols, out + (k + 1) * kMicroCols, 0.0f);
  if (b.cols == 1 || b.col_stride == 1) {  // rows contiguous
    for (int64_t k = 0; k < kc; ++k) std::copy_n(b.data + (k0 + k) * b.row_stride + j0, cols, out + k * kMicroCols);
    return;
  }
  int64_t j = 0;
  if (b.row_stride == 1)  // column-major: B^T's rows are contiguous, transposed 16 x 16 at a time
    for (; j + 16 <= cols; j += 16) {
      int64_t k = 0;
      for (; k + 16 <= kc; k += 16)
        transpose_16x16(isa, b.data + (j0 + j) * b.col_stride + k0 + k, b.col_stride, out + k * kMicroCols + j, kMicroCols);
      for (; k < kc; ++k)
        for (int64_t jj = j; jj < j + 16; ++jj) out[k * kMicroCols + jj] = b.data[(j0 + jj) * b.col_stride + k0 + k];
    }
  for (; j < cols; ++j) {
    const float* src = b.data + (j0 + j) * b.col_stride + k0 * b.row_stride;
    for (int64_t k = 0; k < kc; ++k) out[k * kMicroCols + j] = src[k * b.row_stride];
  }
}

}  // namespace detail

// Whether cpu::gemm<float> runs tinyvid's GEMM: with AVX-512. With AVX2 the 8 x 48 kernel runs as four 4 x 24
// sub-tiles (16 registers) and the driver reached about half of OpenBLAS's AVX2 GEMM (bench_matmul 1000 and
// 2048, 2026-12-04), so there the products stay on BLAS; AVX2's conv kernels (Winograd, shifted) do win and run.
inline bool use_own_gemm(Isa isa) { return isa == Isa::Avx512; }

// A packed for the kernel: 8-row panels, data[panel][k][8] over all K, zero past the last row. A product that
// reuses A (a conv's weights, over its column blocks) packs it once.
struct PackedA {
  const float* data;
  int64_t rows, cols;
};

inline int64_t packed_a_size(int64_t rows, int64_t cols) { return (rows + kMicroRows - 1) / kMicroRows * kMicroRows * cols; }

// Packs A into out (packed_a_size floats), in parallel over panels (serially inside a parallel region).
inline PackedA pack_a(const MatrixRef<const float>& a, float* out) {
  const int64_t panels = (a.rows + kMicroRows - 1) / kMicroRows;
  parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) detail::pack_a_panel(a, p * kMicroRows, out + p * a.cols * kMicroRows);
  });
  return {out, a.rows, a.cols};
}

// C (M x N, row-major) = A (M x K, packed) B (K x N) + beta C, on the micro-kernels of `isa` (not Generic). B may
// be row- or column-major (MatrixRef::mappable); beta 0 never reads C.
inline void gemm_packed(Isa isa, const PackedA& a, const MatrixRef<const float>& b, const MatrixRef<float>& c,
                        float beta) {
  const int64_t M = c.rows, N = c.cols, K = a.cols, ldc = row_major_ld(c);
  if (M == 0 || N == 0) return;
  if (beta != 0.0f && beta != 1.0f) {  // scale once; the kernels then add to C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c.data[i * ldc + j] *= beta;
    beta = 1.0f;
  }
  if (K == 0) {
    if (beta == 0.0f)
      for (int64_t i = 0; i < M; ++i) std::fill_n(c.data + i * ldc, N, 0.0f);
    return;
  }
  const int64_t panels_m = (M + kMicroRows - 1) / kMicroRows, panels_n = (N + kMicroCols - 1) / kMicroCols;
  const int64_t blocks_m = (panels_m + kGemmMcPanels - 1) / kGemmMcPanels;
  const float* ap = a.data;
  const int64_t no_offset = 0;
  // Work items: (M block, column panel), the panels of one block consecutive. A thread's run of items within one
  // block goes K slice by K slice over all its column panels, so that the block's slice of A (up to 256 x kGemmKc
  // floats) stays in L2 while every panel of the run reads it.
  parallel_for(0, blocks_m * panels_n, 1, [&](int64_t i0, int64_t i1) {
    float* bp = scratch<float>(kGemmKc * kMicroCols, kScratchGemmB);
    for (int64_t run0 = i0; run0 < i1;) {
      const int64_t blk = run0 / panels_n, run1 = std::min(i1, (blk + 1) * panels_n);
      const int64_t q0 = run0 % panels_n, q1 = q0 + (run1 - run0);  // column panels of the run
      const int64_t p0 = blk * kGemmMcPanels, p1 = std::min(panels_m, p0 + kGemmMcPanels);
      run0 = run1;
      auto cols_of = [&](int64_t q) { return std::min(kMicroCols, N - q * kMicroCols); };
      auto rows_of = [&](int64_t p) { return std::min(kMicroRows, M - p * kMicroRows); };
      // A tile short of rows or columns is summed in a tile of its own: those of the last column panel first (one
      // per row panel), then those of the last row panel (one per column panel).
      const bool last_cols_short = cols_of(panels_n - 1) < kMicroCols && q1 == panels_n;
      const bool last_rows_short = rows_of(panels_m - 1) < kMicroRows && p1 == panels_m;
      auto is_full = [&](int64_t p, int64_t q) {
        return !(last_cols_short && q == panels_n - 1) && !(last_rows_short && p == panels_m - 1);
      };
      const int64_t col_slots = last_cols_short ? p1 - p0 : 0, row_slots = last_rows_short ? q1 - q0 : 0;
      float* edge = scratch<float>((col_slots + row_slots) * kMicroRows * kMicroCols, kScratchGemmC);
      auto edge_of = [&](int64_t p, int64_t q) {
        const int64_t slot = last_cols_short && q == panels_n - 1 ? p - p0 : col_slots + (q - q0);
        return edge + slot * kMicroRows * kMicroCols;
      };
      // A short tile starts from C's values (beta 1) or from nothing (beta 0: the first slice overwrites it).
      auto for_each_short = [&](auto&& f) {
        for (int64_t q = q0; q < q1; ++q)
          for (int64_t p = p0; p < p1; ++p)
            if (!is_full(p, q)) f(p, q, edge_of(p, q));
      };
      if (beta != 0.0f)
        for_each_short([&](int64_t p, int64_t q, float* t) {
          for (int64_t i = 0; i < kMicroRows; ++i)
            for (int64_t j = 0; j < kMicroCols; ++j)
              t[i * kMicroCols + j] = i < rows_of(p) && j < cols_of(q) ? c.data[(p * kMicroRows + i) * ldc + q * kMicroCols + j] : 0.0f;
        });
      for (int64_t k0 = 0; k0 < K; k0 += kGemmKc) {
        const int64_t kc = std::min(kGemmKc, K - k0);
        const bool accumulate = k0 > 0 || beta != 0.0f;
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t j0 = q * kMicroCols, cols = cols_of(q);
          // B's slice: read in place where few row panels reread it (its rows contiguous, the panel full), else packed.
          const bool in_place = cols == kMicroCols && b.cols > 1 && b.col_stride == 1 && p1 - p0 <= kGemmInPlacePanels;
          const float* bsrc = bp;
          int64_t plane = kMicroCols;
          if (in_place) {
            bsrc = b.data + k0 * b.row_stride + j0;
            plane = b.row_stride;
          } else {
            detail::pack_b_panel(isa, b, k0, kc, j0, bp);
          }
          for (int64_t p = p0; p < p1; ++p) {
            const float* apanel = ap + (p * K + k0) * kMicroRows;
            if (is_full(p, q))
              micro_kernel_8x48_taps(isa, 1, kc, &no_offset, plane, apanel, bsrc, c.data + p * kMicroRows * ldc + j0, ldc,
                                     accumulate);
            else
              micro_kernel_8x48_taps(isa, 1, kc, &no_offset, plane, apanel, bsrc, edge_of(p, q), kMicroCols, accumulate, cols);
          }
        }
      }
      for_each_short([&](int64_t p, int64_t q, const float* t) {
        for (int64_t i = 0; i < rows_of(p); ++i)
          std::copy_n(t + i * kMicroCols, cols_of(q), c.data + (p * kMicroRows + i) * ldc + q * kMicroCols);
      });
    }
  });
}

// The same for an A as it lies: packed first, into the calling thread's scratch.
inline void gemm_packed(Isa isa, const MatrixRef<const float>& a, const MatrixRef<const float>& b,
                        const MatrixRef<float>& c, float beta) {
  if (c.rows == 0 || c.cols == 0) return;
  gemm_packed(isa, pack_a(a, scratch<float>(packed_a_size(a.rows, a.cols), kScratchGemmA)), b, c, beta);
}

}  // namespace tv::cpu
