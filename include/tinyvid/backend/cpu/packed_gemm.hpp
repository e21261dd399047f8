#pragma once
// tinyvid's own float GEMM, C = A B + beta C, on the 8 x 48 micro-kernel (microkernel.hpp), for every layout
// cpu::gemm accepts. A is packed into 8-row panels (pack_a: a conv packs its weights once for all its column
// blocks), or read in place where packing would cost more than it saves (in_place_a). B is packed into slices of
// 48-column panels (a column-major B through 16 x 16 transposes), except where at most 16 row panels use a slice
// and its rows are contiguous: then the copy would be reused too little to pay, and the kernel reads B in place
// (packing matters where many row panels reread rows a power of two apart, which share a few L1 sets); where the
// rows are contiguous, the first row panel's kernel packs the slice as it reads it in place. Tails of M and N go
// through tiles of their own, the last column panel on a narrower kernel, and so do panels that straddle two runs
// of columns (ColumnRuns: a 1x1 conv's images side by side, one product for the batch). Blocked BLIS-style: K in slices of kGemmKc, M in blocks of kGemmMcPanels panels that share one
// packed B slice (one block where K is one slice), and K slices outside chunks of column panels, so a block's slice of
// A stays in L2; the threads take equal runs of columns, and one done early takes part of another's
// (parallel_for). A `finish` callback gets each piece of C once its sum is complete (a conv's epilogue). Each
// element of C is summed by one work item in one order, so the result depends neither on the thread count nor on
// which thread ran it; inside a parallel region (a conv's work item) the call runs on its thread alone.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "tinyvid/backend/cpu/matrix_ref.hpp"
#include "tinyvid/backend/cpu/microkernel.hpp"
#include "tinyvid/backend/cpu/scratch.hpp"
#include "tinyvid/core/error.hpp"
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
// C's floats per chunk of column panels (256 KB): with K past one slice each tile of C is read again by every
// slice, so a thread's panels go through the slices a chunk at a time that stays in L2 beside the slice of A. Within a
// slice the chunk runs row panel by row panel across its columns, so C is written 8 rows at a time in runs of the
// chunk's width: tile by tile down all 256 rows of a block, the stores had 256 rows in flight (1x1 64 -> 256 at
// 56 x 56: 174-187 against 193-205 GFLOP/s on 2 cores).
constexpr int64_t kGemmChunkFloats = 64 * 1024;
constexpr int64_t kGemmChunkPanels = 8;  // at most: their packed slices of B (up to 384 KB) stay in L2
// The threads split a block's columns in equal runs of this many columns, each cut into panels from its own first
// column: split by whole panels, 1x1 1024 -> 256 at 14 x 14 (33 panels) gave one thread 17 and the other 16.
constexpr int64_t kGemmSplitCols = 16;

namespace detail {

// Rows [r0, r0 + 8) of A (zero past its last row) as the kernel's panel: out[k][8], k over all of A's columns.
inline void pack_a_panel(Isa isa, const MatrixRef<const float>& a, int64_t r0, float* out) {
  const int64_t rows = std::min<int64_t>(kMicroRows, a.rows - r0), K = a.cols;
  if (rows < kMicroRows) std::fill(out, out + K * kMicroRows, 0.0f);
  if (a.rows == 1 || a.row_stride == 1) {  // column-major (W^T read in place): 8 contiguous floats per k
    for (int64_t k = 0; k < K; ++k) std::copy_n(a.data + r0 + k * a.col_stride, rows, out + k * kMicroRows);
    return;
  }
  if (rows == kMicroRows && a.col_stride == 1 && has_micro_kernels(isa))  // row-major: 8 x 8 transposes
    return pack_8_rows(isa, a.data + r0 * a.row_stride, a.row_stride, K, out);
  for (int64_t i = 0; i < rows; ++i) {
    const float* src = a.data + (r0 + i) * a.row_stride;
    for (int64_t k = 0; k < K; ++k) out[k * kMicroRows + i] = src[k * a.col_stride];
  }
}

// rows x 48 floats, rows `ld` apart, into out[rows][48]: one fixed-size copy per row, which compilers inline (a
// memmove call per 192 bytes took 5% of a ResNet-50 forward). The 48 floats after each row, the next panel that
// callers pack, are asked for meanwhile: the rows lie a map apart, each on a page of its own, where the hardware
// prefetchers stop (1x1 64 -> 256 at 56 x 56: 2% of the forward).
inline void pack_rows_48(const float* src, int64_t ld, int64_t rows, float* out) {
  struct Row {
    float v[kMicroCols];
  };
  for (int64_t k = 0; k < rows; ++k) {
    Row row;
    for (int64_t v = kMicroCols; v < 2 * kMicroCols; v += 16) __builtin_prefetch(src + k * ld + v, 0, 3);
    std::memcpy(&row, src + k * ld, sizeof row);
    std::memcpy(out + k * kMicroCols, &row, sizeof row);
  }
}

// Columns [0, n) of B (column 0 at src, rows k0 onwards) into columns [0, n) of a packed panel: out[k][48].
inline void pack_b_columns(Isa isa, const float* src, int64_t row_stride, int64_t col_stride, int64_t k0, int64_t kc,
                           int64_t n, float* out) {
  if (n == 1 || col_stride == 1) {  // rows contiguous
    if (n == kMicroCols) return pack_rows_48(src + k0 * row_stride, row_stride, kc, out);
    return copy_rows(isa, src + k0 * row_stride, row_stride, kc, n, out, kMicroCols);
  }
  int64_t j = 0;
  if (row_stride == 1)  // column-major: B^T's rows are contiguous, transposed 16 x 16 at a time
    for (; j + 16 <= n; j += 16) {
      int64_t k = 0;
      for (; k + 16 <= kc; k += 16)
        transpose_16x16(isa, src + j * col_stride + k0 + k, col_stride, out + k * kMicroCols + j, kMicroCols);
      for (; k < kc; ++k)
        for (int64_t jj = j; jj < j + 16; ++jj) out[k * kMicroCols + jj] = src[jj * col_stride + k0 + k];
    }
  for (; j < n; ++j)
    for (int64_t k = 0; k < kc; ++k) out[k * kMicroCols + j] = src[j * col_stride + (k0 + k) * row_stride];
}

}  // namespace detail

// Columns of B and C in runs of `length`: column j is column j % length of run j / length, and run r begins
// r * b_stride (in B) and r * c_stride (in C) elements past run 0. A 1x1 conv's batch is one product this way
// (image n's C x HW input and Cout x HW output are run n of B and of C), so that a column panel may span images
// and no image's few columns (49 at 7 x 7) make a product of their own. The default, one run, is a plain matrix.
struct ColumnRuns {
  int64_t length = std::numeric_limits<int64_t>::max();
  int64_t b_stride = 0, c_stride = 0;
  // f(j, j_end) for each run's part of columns [j0, j1).
  template <class F>
  void for_each_part(int64_t j0, int64_t j1, F&& f) const {
    for (int64_t j = j0; j < j1;) {
      const int64_t end = std::min(j1, j - j % length + length);  // (j - j % length is 0 with one run: no overflow)
      f(j, end);
      j = end;
    }
  }
};

// No work after the product (gemm_packed's default `finish`).
struct NoFinish {
  void operator()(float*, int64_t, int64_t, int64_t, int64_t) const {}
};

namespace detail {

// Rows [k0, k0 + kc) of B's columns [j0, j0 + 48) (zero past its last column) as a packed panel: out[k][48].
inline void pack_b_panel(Isa isa, const MatrixRef<const float>& b, const ColumnRuns& runs, int64_t k0, int64_t kc,
                         int64_t j0, float* out) {
  const int64_t cols = std::min<int64_t>(kMicroCols, b.cols - j0);
  if (cols < kMicroCols)
    for (int64_t k = 0; k < kc; ++k) std::fill(out + k * kMicroCols + cols, out + (k + 1) * kMicroCols, 0.0f);
  runs.for_each_part(j0, j0 + cols, [&](int64_t j, int64_t end) {
    const float* src = b.data + (j / runs.length) * runs.b_stride + (j % runs.length) * b.col_stride;
    pack_b_columns(isa, src, b.row_stride, b.col_stride, k0, kc, end - j, out + (j - j0));
  });
}

}  // namespace detail

// Whether cpu::gemm<float> runs tinyvid's GEMM: with AVX-512. With AVX2 the 8 x 48 kernel runs as four 4 x 24
// sub-tiles (16 registers); on the 1x1 convs' products the driver on it came level with OpenBLAS's AVX2 GEMM, 0.85-1.13x
// its speed shape by shape and slower on most weight gradients (docs/cpu_kernels.md, "AVX2's kernel ..."), so there
// the products stay on BLAS; AVX2's conv kernels (Winograd, shifted) do win and run.
inline bool use_own_gemm(Isa isa) { return isa == Isa::Avx512; }

// A as the kernel reads it (ALayout): packed into 8-row panels, data[panel][k][8] over all K, zero past the last row
// (a product that reuses A, a conv's weights over its column blocks, packs it once); or in place, rows `ld` apart
// (Rows) or columns `ld` apart (Columns), its rows a multiple of 8.
struct KernelA {
  const float* data;
  int64_t rows, cols;
  ALayout layout = ALayout::Packed;
  int64_t ld = kMicroRows;
  // Row panel p's first row at column k0.
  const float* panel(int64_t p, int64_t k0) const {
    if (layout == ALayout::Packed) return data + (p * cols + k0) * kMicroRows;
    if (layout == ALayout::Rows) return data + p * kMicroRows * ld + k0;
    return data + p * kMicroRows + k0 * ld;
  }
};

// Products of at most this many columns read a row- or column-major A in place (in_place_a) rather than packing it,
// in every cpu::gemm<float> call that comes here: with few column panels to reread each panel of A, the packing pass
// cost more than the kernel's reading A's 8 rows where they lie (the weight gradients, A the output gradient and N
// the input's channels: 1x1 64 -> 256 at 56 x 56 0.81x the time, 256 -> 1024 at 14 x 14 0.93x; Winograd's 512 at 7,
// N = 512, 1.055x, so not there).
constexpr int64_t kInPlaceAColumns = 256;

// A read where it lies, if the kernel can (AVX-512; rows a multiple of 8; row- or column-major).
inline std::optional<KernelA> in_place_a(Isa isa, const MatrixRef<const float>& a) {
  if (isa != Isa::Avx512 || a.rows % kMicroRows != 0 || a.rows == 0 || a.cols == 0) return std::nullopt;
  if (a.col_stride == 1 || a.cols == 1) return KernelA{a.data, a.rows, a.cols, ALayout::Rows, a.row_stride};
  if (a.row_stride == 1) return KernelA{a.data, a.rows, a.cols, ALayout::Columns, a.col_stride};
  return std::nullopt;
}

inline int64_t packed_a_size(int64_t rows, int64_t cols) { return (rows + kMicroRows - 1) / kMicroRows * kMicroRows * cols; }

// Packs A into out (packed_a_size floats) with the kernels of `isa`, in parallel over panels (serially inside a
// parallel region).
inline KernelA pack_a(Isa isa, const MatrixRef<const float>& a, float* out) {
  const int64_t panels = (a.rows + kMicroRows - 1) / kMicroRows;
  parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) detail::pack_a_panel(isa, a, p * kMicroRows, out + p * a.cols * kMicroRows);
  });
  return {out, a.rows, a.cols};
}

// C (M x N, row-major) = A (M x K, as KernelA lays it out) B (K x N) + beta C, on the micro-kernels of `isa` (not Generic). B may
// be row- or column-major (MatrixRef::mappable); beta 0 never reads C. With `runs`, B's and C's columns lie in runs
// (ColumnRuns: a batch of images side by side). finish(row, i, run, at, len) is called once for each piece of a row
// of C when its sum is complete and it is still in cache: row i, columns [at, at + len) of run `run`, which lie at
// `row` (a conv's bias, batch norm, residual and ReLU: conv.hpp).
//
// A Finish whose static staged() is true writes C itself: the sums go to a buffer of the worker's (the
// chunk's C, in L2) and finish(sum, i, run, at, len) gets the piece's sums there, C untouched by the GEMM (beta 0
// only). Its output may then be a buffer that finish also reads, such as a residual added in place (conv.hpp).
template <class Finish = NoFinish>
void gemm_packed(Isa isa, const KernelA& a, const MatrixRef<const float>& b, const MatrixRef<float>& c, float beta,
                 const ColumnRuns& runs = {}, Finish&& finish = {}) {
  constexpr bool finishes = !std::is_same_v<std::decay_t<Finish>, NoFinish>;
  constexpr bool staged = requires { requires std::decay_t<Finish>::staged(); };
  // finish.prefetch(i, run, at, len), where it exists, asks for what finish will read besides C (a residual).
  constexpr bool prefetches = requires(Finish& f, int64_t v) { f.prefetch(v, v, v, v); };
  const int64_t M = c.rows, N = c.cols, K = a.cols, ldc = row_major_ld(c);
  if (M == 0 || N == 0) return;
  TV_CHECK(a.layout == ALayout::Packed || M % kMicroRows == 0, "gemm_packed: an A read in place needs whole 8-row panels, got ",
           M, " rows");
  auto c_at = [&](int64_t i, int64_t j) { return c.data + i * ldc + (j / runs.length) * runs.c_stride + j % runs.length; };
  // f(row i, columns [j, end) of one run) over C's rows [i0, i1) and columns [j0, j1).
  auto for_each_piece = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1, auto&& f) {
    for (int64_t i = i0; i < i1; ++i) runs.for_each_part(j0, j1, [&](int64_t j, int64_t end) { f(i, j, end); });
  };
  auto finish_pieces = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    if constexpr (finishes)
      for_each_piece(i0, i1, j0, j1, [&](int64_t i, int64_t j, int64_t end) {
        finish(c_at(i, j), i, j / runs.length, j % runs.length, end - j);
      });
  };
  if constexpr (staged) TV_CHECK(beta == 0.0f, "gemm_packed: a staged finish writes C from the product alone (beta 0)");
  if ((K == 0 && !staged) || (beta != 0.0f && beta != 1.0f)) {  // C = beta C (scaled once; the kernels then add to it)
    for_each_piece(0, M, 0, N, [&](int64_t i, int64_t j, int64_t end) {
      float* row = c_at(i, j);
      for (int64_t q = 0; q < end - j; ++q) row[q] = beta == 0.0f ? 0.0f : row[q] * beta;
    });
    beta = 1.0f;
  }
  if (K == 0) {
    if constexpr (staged) {  // C untouched (it may be what finish reads): the sums are zeros
      const float* zeros = std::fill_n(scratch<float>(N, kScratchGemmC), N, 0.0f) - N;
      for_each_piece(0, M, 0, N, [&](int64_t i, int64_t j, int64_t end) { finish(zeros, i, j / runs.length, j % runs.length, end - j); });
      return;
    }
    return finish_pieces(0, M, 0, N);
  }
  const int64_t panels_m = (M + kMicroRows - 1) / kMicroRows, units_n = (N + kGemmSplitCols - 1) / kGemmSplitCols;
  // With K in one slice, nothing of A or C is reread across slices: one block of all rows, so that each column
  // panel's slice of B is packed once rather than once per block (1x1 256 -> 1024 at 14 x 14 packed it four times).
  const int64_t block_panels = K <= kGemmKc ? panels_m : kGemmMcPanels;
  const int64_t blocks_m = (panels_m + block_panels - 1) / block_panels;
  const int64_t tile = kMicroRows * kMicroCols;
  const int64_t no_offset = 0;
  auto rows_of = [&](int64_t p) { return std::min(kMicroRows, M - p * kMicroRows); };
  // A column panel's slice of B for one K slice: rows `plane` apart, read in place or packed. An in-place slice with
  // a `copy` is packed there by the block's first row panel, whose kernel reads it in place (and the next panel's
  // rows ahead: prefetch_next); the others read the copy.
  struct Slice {
    const float* b = nullptr;
    int64_t plane = 0;
    bool in_place = false;
    float* copy = nullptr;
  };
  // The kernel's operands for row panel p: B's rows, their distance, whether to ask for the next panel's, where to
  // pack them.
  struct Read {
    const float* b;
    int64_t plane;
    bool prefetch_next;
    float* copy_b;
  };
  // A column panel of a chunk: whether the kernel writes its tiles into C (full width, within one run), where
  // (run, at), and otherwise its first tile of its own.
  struct Panel {
    bool in_c;
    int64_t run, at, first_slot;
    Slice slice;  // for the current K slice
  };
  // Work items: (M block, kGemmSplitCols columns), the columns of one block consecutive; the threads take equal runs
  // of items (then part of another's, if done first: parallel_for). A thread's run within one block is cut into column panels from its first column, and goes K slice by K
  // slice over a chunk of its panels, so that the block's slice of A (up to 256 x kGemmKc floats) stays in L2 while
  // every panel of the chunk reads it, and the chunk's C too.
  // Column panels per chunk for a block of `rows` row panels (only the last block may have fewer, and longer chunks).
  auto chunk_for = [&](int64_t rows) { return std::clamp<int64_t>(kGemmChunkFloats / (std::min(rows, kGemmMcPanels) * tile), 1, kGemmChunkPanels); };
  parallel_for(0, blocks_m * units_n, kMicroCols / kGemmSplitCols, chunk_for(block_panels), [&](int64_t i0, int64_t i1) {
    float* bp = scratch<float>(kGemmChunkPanels * kGemmKc * kMicroCols, kScratchGemmB);
    std::vector<Panel> panels;
    std::vector<Slice> slices;  // a staged chunk's
    for (int64_t run0 = i0; run0 < i1;) {
      const int64_t blk = run0 / units_n, run1 = std::min(i1, (blk + 1) * units_n);
      // The run's columns [j_first, j_last), as panels q < n_panels from j_first (the last one may be narrower).
      const int64_t j_first = run0 % units_n * kGemmSplitCols, j_last = std::min(N, (run1 - blk * units_n) * kGemmSplitCols);
      const int64_t n_panels = (j_last - j_first + kMicroCols - 1) / kMicroCols;
      auto col = [&](int64_t q) { return j_first + q * kMicroCols; };  // panel q's first column
      auto cols_of = [&](int64_t q) { return std::min(kMicroCols, j_last - col(q)); };
      const int64_t p0 = blk * block_panels, p1 = std::min(panels_m, p0 + block_panels);
      run0 = run1;
      const bool last_rows_short = rows_of(panels_m - 1) < kMicroRows && p1 == panels_m;
      const bool few_row_panels = p1 - p0 <= kGemmInPlacePanels;  // B's slices read in place where their rows are contiguous
      const int64_t chunk = chunk_for(p1 - p0);
      for (int64_t c0 = 0; c0 < n_panels; c0 += chunk) {
        const int64_t c1 = std::min(n_panels, c0 + chunk);
        // Whether column panel q is 48 columns of one run (C's tiles can be written in place).
        auto whole = [&](int64_t q) { return cols_of(q) == kMicroCols && col(q) % runs.length + kMicroCols <= runs.length; };
        // Where B's slice of column panel q lies for rows [k0, k0 + kc): read in place where few row panels reread
        // it (its rows contiguous, a whole panel), else packed into bp. The block's first row panel reads an in-place
        // slice first: its kernel asks for the next panel's rows meanwhile (prefetch_next).
        auto b_slice = [&](int64_t q, int64_t k0, int64_t kc) -> Slice {
          const int64_t j0 = col(q), run = j0 / runs.length, at = j0 % runs.length;
          const bool rows_contiguous = whole(q) && b.cols > 1 && b.col_stride == 1;
          const float* in_place = b.data + k0 * b.row_stride + run * runs.b_stride + at;
          if (rows_contiguous && few_row_panels) return {in_place, b.row_stride, true};
          float* packed = bp + (q - c0) * kGemmKc * kMicroCols;
          if (rows_contiguous) return {in_place, b.row_stride, true, packed};  // packed by the first row panel
          detail::pack_b_panel(isa, b, runs, k0, kc, j0, packed);
          return {packed, kMicroCols, false};
        };
        auto read = [&](const Slice& sl, int64_t p) -> Read {
          if (p == p0) return {sl.b, sl.plane, sl.in_place, sl.copy};
          if (sl.copy) return {sl.copy, kMicroCols, false, nullptr};
          return {sl.b, sl.plane, false, nullptr};
        };
        // At a K slice's end (last: the sums complete), what finish will read of row panel p's columns [j0, j1),
        // asked for ahead.
        auto prefetch_rows = [&](bool last, int64_t p, int64_t j0, int64_t j1) {
          if constexpr (prefetches)
            if (last)
              for_each_piece(p * kMicroRows, p * kMicroRows + rows_of(p), j0, j1,
                             [&](int64_t i, int64_t j, int64_t end) { finish.prefetch(i, j / runs.length, j % runs.length, end - j); });
        };
        if constexpr (staged) {
          // The chunk's sums in a buffer of its own, 8-row tiles side by side (row stride: the chunk's width), each
          // row panel finished after its last slice; with one slice, one row panel's at a time (in L1).
          const int64_t width = (c1 - c0) * kMicroCols, j_end = std::min(j_last, col(c1));
          const bool one_slice = K <= kGemmKc;
          float* sums = scratch<float>((one_slice ? 1 : p1 - p0) * kMicroRows * width, kScratchGemmC);
          for (int64_t k0 = 0; k0 < K; k0 += kGemmKc) {
            const int64_t kc = std::min(kGemmKc, K - k0);
            slices.clear();
            for (int64_t q = c0; q < c1; ++q) slices.push_back(b_slice(q, k0, kc));
            for (int64_t p = p0; p < p1; ++p) {
              prefetch_rows(k0 + kc >= K, p, col(c0), j_end);
              const float* apanel = a.panel(p, k0);
              float* row = one_slice ? sums : sums + (p - p0) * kMicroRows * width;
              for (int64_t q = c0; q < c1; ++q) {
                const Read r = read(slices[q - c0], p);
                micro_kernel_8x48_taps(isa, 1, kc, &no_offset, r.plane, apanel, r.b, row + (q - c0) * kMicroCols, width,
                                       k0 > 0, cols_of(q), r.prefetch_next, r.copy_b, a.layout, a.ld);
              }
              if (k0 + kc >= K)
                for_each_piece(p * kMicroRows, p * kMicroRows + rows_of(p), col(c0), j_end, [&](int64_t i, int64_t j, int64_t end) {
                  finish(row + (i - p * kMicroRows) * width + (j - col(c0)), i, j / runs.length, j % runs.length, end - j);
                });
            }
          }
          continue;
        }
        // A tile the kernel cannot write into C (short of rows or columns, or across runs) is summed in a tile of its
        // own: every tile of such a panel, and the short last row panel's tile of the others.
        panels.clear();
        int64_t slots = 0;
        for (int64_t q = c0; q < c1; ++q) {
          const int64_t j0 = col(q), run = j0 / runs.length, at = j0 % runs.length;
          const bool in_c = whole(q);
          panels.push_back({in_c, run, at, slots, {}});
          slots += in_c ? (last_rows_short ? 1 : 0) : p1 - p0;
        }
        float* edge = scratch<float>(slots * tile, kScratchGemmC);
        auto edge_of = [&](int64_t p, int64_t q) -> float* {
          const Panel& pn = panels[q - c0];
          if (!pn.in_c) return edge + (pn.first_slot + p - p0) * tile;
          return last_rows_short && p == panels_m - 1 ? edge + pn.first_slot * tile : nullptr;
        };
        // f(p, q, tile) for each tile of its own in the chunk.
        auto for_each_edge = [&](auto&& f) {
          for (int64_t q = c0; q < c1; ++q)
            for (int64_t p = p0; p < p1; ++p)
              if (float* t = edge_of(p, q)) f(p, q, t);
        };
        // A tile of its own starts from C's values (beta 1) or from nothing (beta 0: the first slice overwrites it).
        if (beta != 0.0f)
          for_each_edge([&](int64_t p, int64_t q, float* t) {
            std::fill(t, t + tile, 0.0f);
            runs.for_each_part(col(q), col(q) + cols_of(q), [&](int64_t j, int64_t end) {  // all the tile's rows at once
              copy_rows(isa, c_at(p * kMicroRows, j), ldc, rows_of(p), end - j, t + (j - col(q)), kMicroCols);
            });
          });
        for (int64_t k0 = 0; k0 < K; k0 += kGemmKc) {
          const int64_t kc = std::min(kGemmKc, K - k0);
          const bool accumulate = k0 > 0 || beta != 0.0f;
          for (int64_t q = c0; q < c1; ++q) panels[q - c0].slice = b_slice(q, k0, kc);
          const bool last = k0 + kc >= K;
          auto tile = [&](int64_t p, int64_t q) {
            const float* apanel = a.panel(p, k0);
            const Panel& pn = panels[q - c0];
            const Read r = read(pn.slice, p);
            if (float* t = edge_of(p, q))
              return micro_kernel_8x48_taps(isa, 1, kc, &no_offset, r.plane, apanel, r.b, t, kMicroCols, accumulate,
                                            cols_of(q), r.prefetch_next, r.copy_b, a.layout, a.ld);
            micro_kernel_8x48_taps(isa, 1, kc, &no_offset, r.plane, apanel, r.b,
                                   c.data + pn.run * runs.c_stride + pn.at + p * kMicroRows * ldc, ldc, accumulate,
                                   kMicroCols, r.prefetch_next, r.copy_b, a.layout, a.ld);
          };
          if (few_row_panels) {
            // Few row panels (B read in place where its rows are contiguous): column panel by column panel, so that
            // its slice, rows a map apart, stays in L1 while every row panel reads it (1x1 512 -> 128 at 28 x 28: 0.96x the
            // time, 256 -> 128 at 56 x 56 0.95-0.96x against row panel by row panel, which reread it from L2).
            for (int64_t q = c0; q < c1; ++q)
              for (int64_t p = p0; p < p1; ++p) {
                prefetch_rows(last, p, col(q), col(q) + cols_of(q));
                tile(p, q);
              }
            continue;
          }
          // Packed B: row panel by row panel across the chunk, so that C is written in runs of the chunk's width, 8
          // rows at a time, rather than a tile on each of 8 x 32 rows.
          for (int64_t p = p0; p < p1; ++p) {
            prefetch_rows(last, p, col(c0), std::min(j_last, col(c1)));
            for (int64_t q = c0; q < c1; ++q) tile(p, q);
          }
        }
        // The chunk's tiles in C are finished while the chunk is in L2, a run of panels at a time (rather than each
        // tile's rows after its last slice: calls on 48 floats at a time).
        const int64_t rows_in_c = (last_rows_short ? p1 - 1 : p1) * kMicroRows;
        for (int64_t q = c0; q < c1 && finishes;) {
          int64_t q_end = q;
          while (q_end < c1 && panels[q_end - c0].in_c) ++q_end;
          finish_pieces(p0 * kMicroRows, rows_in_c, col(q), col(q_end));
          q = std::max(q + 1, q_end);
        }
        for_each_edge([&](int64_t p, int64_t q, const float* t) {
          const int64_t r0 = p * kMicroRows, j0 = col(q);
          runs.for_each_part(j0, j0 + cols_of(q), [&](int64_t j, int64_t end) {  // all the tile's rows at once
            copy_rows(isa, t + (j - j0), kMicroCols, rows_of(p), end - j, c_at(r0, j), ldc);
          });
          finish_pieces(r0, r0 + rows_of(p), j0, j0 + cols_of(q));
        });
      }
    }
  });
}

// The same for an A as it lies: read in place for a product of few columns (kInPlaceAColumns), else packed first,
// into the calling thread's scratch.
inline void gemm_packed(Isa isa, const MatrixRef<const float>& a, const MatrixRef<const float>& b,
                        const MatrixRef<float>& c, float beta) {
  if (c.rows == 0 || c.cols == 0) return;
  if (c.cols <= kInPlaceAColumns)
    if (const auto in_place = in_place_a(isa, a)) return gemm_packed(isa, *in_place, b, c, beta);
  gemm_packed(isa, pack_a(isa, a, scratch<float>(packed_a_size(a.rows, a.cols), kScratchGemmA)), b, c, beta);
}

}  // namespace tv::cpu
