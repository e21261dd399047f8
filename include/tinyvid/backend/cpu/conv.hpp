#pragma once
// 2-D convolution on NCHW buffers, by one of four algorithms. choose_conv_algorithm picks it, a pure
// function of the shapes (ConvGeometry), so a test can assert which one runs and the forward and both
// backward passes of one call agree:
// - Gemm1x1: a 1x1 stride-1 unpadded conv is one GEMM on the input as it lies;
// - Winograd3x3: 3x3 stride-1 convs with 16+ channels each way, F(2x2, 3x3) (winograd.hpp);
// - ShiftedGemm: stride 1 or 2 on a zero-padded copy of the input, a sum of one GEMM per kernel tap with no
//   unrolling (with AVX-512 or AVX2, the micro-kernels of microkernel.hpp); a stride-2 input gradient unrolls instead;
// - Im2colGemm: everything else (other strides, dilation, groups, small maps) unrolls the input into
//   columns, a tile of output pixels at a time in per-thread scratch (scratch.hpp) that stays in cache, and
//   multiplies; groups and dilation live in the unroll. (A strided 1x1 conv's forward on tinyvid's GEMM gathers
//   its pixels once and runs as Gemm1x1 does.)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "tinyvid/backend/cpu/conv_epilogue.hpp"
#include "tinyvid/backend/cpu/gemm.hpp"
#include "tinyvid/backend/cpu/loops.hpp"
#include "tinyvid/backend/cpu/microkernel.hpp"
#include "tinyvid/backend/cpu/reduce.hpp"
#include "tinyvid/backend/cpu/scratch.hpp"
#include "tinyvid/backend/cpu/winograd.hpp"
#include "tinyvid/backend/conv_geometry.hpp"
#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

// The geometry is device-neutral (backend/conv_geometry.hpp); tv::cpu::ConvGeometry names it here too.
using ::tv::ConvGeometry;

enum class ConvAlgorithm { Gemm1x1, Winograd3x3, ShiftedGemm, Im2colGemm };

// The algorithm for a shape: a pure function, so a test can assert which one runs.
// - Gemm1x1: a 1x1 stride-1 unpadded conv is one GEMM on the input as it lies.
// - Winograd3x3: a 3x3 stride-1 conv with enough channels for the transforms to pay (winograd.hpp):
//   2.25x fewer multiplies where a gradient may follow, 4x in inference.
// - ShiftedGemm: a stride-1 conv on a zero-padded copy of the input is a sum of KH x KW GEMMs, one per
//   kernel tap, each reading the padded input at a fixed offset: no unrolling at all. A stride-2 conv is the
//   same on the four phases of the padded input (ShiftedLayout). Its outputs are computed on the padded
//   (phase) width and the extra columns dropped, so it is used where they are few. The input gradient of a
//   stride-2 conv unrolls (Im2colGemm's col2im), but a 3x3 one's on an even map runs by phases of gx where the
//   packed GEMM runs (input_gradient_by_phases). The forward of a stride-2 3x3 conv whose weights pass L2 runs
//   as a 1x1 conv on the unrolled batch where the packed GEMM runs (unroll_batch).
// - Im2colGemm: everything else (other strides, dilation, groups, small maps).
inline ConvAlgorithm choose_conv_algorithm(const ConvGeometry& g) {
  const bool pointwise = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  if (pointwise) return ConvAlgorithm::Gemm1x1;
  const bool winograd = g.KH == 3 && g.KW == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.groups == 1 &&
                        g.ph >= 0 && g.ph <= 2 && g.pw >= 0 && g.pw <= 2 && g.C >= 16 && g.Cout >= 16;
  if (winograd) return ConvAlgorithm::Winograd3x3;
  const bool shiftable = g.sh == g.sw && (g.sw == 1 || g.sw == 2) && g.dh == 1 && g.dw == 1 && g.groups == 1 &&
                         g.ph < g.KH && g.pw < g.KW && !(g.KH == 1 && g.KW == 1);
  const bool few_extra_columns = 100 * ((g.W + 2 * g.pw + g.sw - 1) / g.sw) <= 115 * g.OW;  // at most 15% extra work
  return shiftable && few_extra_columns ? ConvAlgorithm::ShiftedGemm : ConvAlgorithm::Im2colGemm;
}

// Output pixels per column block: the unrolled block (K x width) is kept near 512 KB so it stays in
// L2, but never under 256 columns: narrower GEMMs lose more than the cache saves (measured here:
// 512 x 4608 x 49 runs at 129 GFLOP/s on one core, x 196 at 177).
inline int64_t conv_tile_width(const ConvGeometry& g, size_t elem_size) {
  const int64_t budget = 512 * 1024 / static_cast<int64_t>(elem_size);
  const int64_t w = std::max<int64_t>(256, budget / std::max<int64_t>(g.K(), 1));
  return (w + 15) / 16 * 16;
}

namespace detail {

// A stride-2 conv reads every other input column, so its unrolled rows would be strided gathers. Split once
// into even and odd columns (per channel: two planes of H x ceil(W/2)), every unrolled row is a contiguous
// copy from one of them. Worth it from 3 taps wide on (a 1x1/2 conv reads only a quarter of the input).
inline bool use_column_phases(const ConvGeometry& g) { return g.sw == 2 && g.KW >= 3; }
inline int64_t phase_width(const ConvGeometry& g) { return (g.W + 1) / 2; }

// N x C x 2 x H x ceil(W/2): the even columns of each channel, then the odd ones (a last odd column is 0).
template <class T>
std::unique_ptr<T[]> split_column_phases(const ConvGeometry& g, const T* x) {
  const int64_t Wq = phase_width(g), H = g.H, W = g.W;
  std::unique_ptr<T[]> out(new T[static_cast<size_t>(g.N * g.C * 2 * H * Wq)]);
  parallel_for(0, g.N * g.C, 1 + kParallelGrain / std::max<int64_t>(1, g.HW()), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const T* src = x + nc * g.HW();
      T* even = out.get() + nc * 2 * H * Wq;
      T* odd = even + H * Wq;
      for (int64_t y = 0; y < H; ++y) {
        const T* r = src + y * W;
        T* ev = even + y * Wq;
        T* od = odd + y * Wq;
        for (int64_t j = 0; j < W / 2; ++j) {
          ev[j] = r[2 * j];
          od[j] = r[2 * j + 1];
        }
        if (W % 2) ev[W / 2] = r[W - 1], od[W / 2] = T(0);
      }
    }
  });
  return out;
}

// The planes of image n, group grp within split_column_phases' output (null stays null).
template <class T>
const T* phases_of(const ConvGeometry& g, const std::unique_ptr<T[]>& phases, int64_t n, int64_t grp) {
  return phases ? phases.get() + (n * g.C + grp * g.Cg()) * 2 * g.H * phase_width(g) : nullptr;
}

// Unrolls output pixels [j0, j1) of one image-group x (Cg x H x W) into cols (K rows, row stride ld).
// phases: that image-group's split_column_phases planes when use_column_phases(g), else null.
template <class T>
void im2col_tile(const ConvGeometry& g, const T* x, int64_t j0, int64_t j1, T* cols, int64_t ld,
                 const T* phases = nullptr) {
  const int64_t tw = ld, Wq = phase_width(g);
  for (int64_t r = 0; r < g.K(); ++r) {
    const int64_t c = r / (g.KH * g.KW), ki = (r / g.KW) % g.KH, kj = r % g.KW;
    const T* src = x + c * g.HW();
    T* dst = cols + r * tw;
    const int64_t off = kj * g.dw - g.pw;
    for (int64_t j = j0; j < j1;) {
      const int64_t oy = j / g.OW, ox0 = j % g.OW, ox1 = std::min(g.OW, ox0 + (j1 - j));
      const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
      T* d = dst + (j - j0) - ox0;  // d[ox] for ox in [ox0, ox1)
      if (iy < 0 || iy >= g.H) {
        std::fill(d + ox0, d + ox1, T(0));
      } else {
        int64_t lo, hi;
        valid_columns(ox0, ox1, off, g.sw, g.W, lo, hi);
        std::fill(d + ox0, d + lo, T(0));
        const T* row = src + iy * g.W + off;
        if (g.sw == 1) {
          std::copy(row + lo, row + hi, d + lo);
        } else if (phases) {  // input column 2 ox + off lies in plane (off & 1) at ox + (off - (off & 1)) / 2
          const int64_t pc = off & 1;
          const T* prow = phases + ((c * 2 + pc) * g.H + iy) * Wq + (off - pc) / 2;
          std::copy(prow + lo, prow + hi, d + lo);
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) d[ox] = row[ox * g.sw];
        }
        std::fill(d + hi, d + ox1, T(0));
      }
      j += ox1 - ox0;
    }
  }
}

// The adjoint of im2col_tile: adds cols (K rows, row stride ld) back into gx (Cg x H x W).
template <class T>
void col2im_tile(const ConvGeometry& g, const T* cols, int64_t j0, int64_t j1, T* gx, int64_t ld) {
  const int64_t tw = ld;
  for (int64_t r = 0; r < g.K(); ++r) {
    const int64_t c = r / (g.KH * g.KW), ki = (r / g.KW) % g.KH, kj = r % g.KW;
    T* dst = gx + c * g.HW();
    const T* src = cols + r * tw;
    const int64_t off = kj * g.dw - g.pw;
    for (int64_t j = j0; j < j1;) {
      const int64_t oy = j / g.OW, ox0 = j % g.OW, ox1 = std::min(g.OW, ox0 + (j1 - j));
      const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy >= 0 && iy < g.H) {
        int64_t lo, hi;
        valid_columns(ox0, ox1, off, g.sw, g.W, lo, hi);
        T* row = dst + iy * g.W + off;
        const T* s = src + (j - j0) - ox0;
        if (g.sw == 1) {
#pragma omp simd
          for (int64_t ox = lo; ox < hi; ++ox) row[ox] += s[ox];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) row[ox * g.sw] += s[ox];
        }
      }
      j += ox1 - ox0;
    }
  }
}

// Work items: (group, block of output columns). A block is a tile of one image's output pixels, or,
// when an image has fewer pixels than a tile (the small maps of late stages), whole images side by
// side, so that every GEMM is wide enough to run at speed.
struct ColumnBlocks {
  int64_t width;             // columns per block, at most
  int64_t images_per_block;  // > 1: blocks of whole images
  int64_t tiles_per_image;   // when images_per_block == 1
  int64_t per_group;         // blocks per group
  struct Block {
    int64_t grp, n0, n1, j0, j1;  // images [n0, n1), pixels [j0, j1) of each
    int64_t columns() const { return (n1 - n0) * (j1 - j0); }
    bool single_image() const { return n1 - n0 == 1; }
  };
  Block decode(const ConvGeometry& g, int64_t item) const {
    const int64_t grp = item / per_group, blk = item % per_group;
    if (images_per_block > 1) {
      const int64_t n0 = blk * images_per_block;
      return {grp, n0, std::min(g.N, n0 + images_per_block), 0, g.OHW()};
    }
    const int64_t n = blk / tiles_per_image, j0 = (blk % tiles_per_image) * width;
    return {grp, n, n + 1, j0, std::min(g.OHW(), j0 + width)};
  }
  int64_t items(const ConvGeometry& g) const { return g.groups * per_group; }
};

// Blocks of about `width` columns, narrowed until every thread has work.
inline ColumnBlocks column_blocks(const ConvGeometry& g, int64_t width) {
  const int64_t threads = get_num_threads();
  for (;;) {
    ColumnBlocks cb{};
    cb.width = std::max<int64_t>(1, width);
    if (g.OHW() >= cb.width) {
      cb.images_per_block = 1;
      cb.tiles_per_image = (g.OHW() + cb.width - 1) / cb.width;
      cb.per_group = g.N * cb.tiles_per_image;
    } else {
      // Whole images per block, in a number of blocks that the threads share evenly where possible.
      int64_t want = (g.N * g.OHW() + cb.width - 1) / cb.width;
      if (g.groups == 1) want = std::min(g.N, (want + threads - 1) / threads * threads);
      cb.images_per_block = std::max<int64_t>(1, (g.N + want - 1) / want);
      cb.tiles_per_image = 1;
      cb.per_group = (g.N + cb.images_per_block - 1) / cb.images_per_block;
    }
    if (cb.items(g) >= threads || width <= 16) return cb;
    width /= 2;
  }
}

inline ColumnBlocks blocks_for(const ConvGeometry& g, size_t elem_size) { return column_blocks(g, conv_tile_width(g, elem_size)); }

// A conv's weights as the A operand of its GEMMs, one matrix per group: packed once for all column blocks where
// tinyvid's GEMM runs (float with AVX-512, use_own_gemm), or read in place by its kernel on products of few columns
// (kInPlaceWeightColumns); else read as they lie by cpu::gemm.
template <class T>
class WeightOperand {
 public:
  // prepared: where the packed weights are kept across calls (a frozen conv's), or null. columns: the columns of
  // the call's products together (its batch's output pixels), 0 if unknown: up to kInPlaceWeightColumns, weights
  // that are not kept are read in place, not packed.
  template <class MatrixOf>
  WeightOperand(int64_t groups, MatrixOf&& matrix_of, PreparedWeights* prepared = nullptr, int64_t columns = 0)
      : isa_(active_isa()) {
    for (int64_t grp = 0; grp < groups; ++grp) matrices_.push_back(matrix_of(grp));
    if constexpr (std::is_same_v<T, float>)
      if (!prepared && columns > 0 && columns <= kInPlaceWeightColumns && use_own_gemm(isa_))
        if (const auto first = in_place_a(isa_, matrices_[0])) {  // (every group's matrix is laid out as the first)
          for (const auto& m : matrices_) operands_.push_back({m.data, first->rows, first->cols, first->layout, first->ld});
          return;
        }
    if constexpr (std::is_same_v<T, float>)
      if (use_own_gemm(isa_)) {
        const int64_t each = packed_a_size(matrices_[0].rows, matrices_[0].cols);
        auto pack = [&](float* out) {
          for (int64_t grp = 0; grp < groups; ++grp) pack_a(isa_, matrices_[grp], out + grp * each);
        };
        const float* packed = nullptr;
        if (prepared) {
          packed = prepared->get(kPreparedPackedA, groups * each, pack);
        } else {
          buffer_.resize(static_cast<size_t>(groups * each));
          pack(buffer_.data());
          packed = buffer_.data();
        }
        for (int64_t grp = 0; grp < groups; ++grp) operands_.push_back({packed + grp * each, matrices_[grp].rows, matrices_[grp].cols});
      }
  }
  static constexpr int64_t kPreparedPackedA = 1;  // PreparedWeights' tag
  // Packing a conv's weights reads them from memory once per call, a pass the products then wait on; up to this many
  // columns (a batch of 8 at 14 x 14: 1568) the kernel's reading them in place costs less (1x1/2 1024 -> 2048 at
  // 14 x 14: 0.90x the time, its input gradient 0.86x; at 56 x 56 1.02-1.04x, so not there).
  static constexpr int64_t kInPlaceWeightColumns = 4096;
  // c = the group's matrix times b.
  void multiply(int64_t grp, const MatrixRef<const T>& b, const MatrixRef<T>& c) const {
    if constexpr (std::is_same_v<T, float>)
      if (!operands_.empty()) return gemm_packed(isa_, operands_[grp], b, c, 0.0f);
    gemm<T>(matrices_[grp], b, c);
  }
  // The same over a whole batch, b's and c's columns in `runs`, each finished by finish (gemm_packed); only where
  // the weights run on tinyvid's GEMM (packed or in place).
  bool on_own_gemm() const { return !operands_.empty(); }
  template <class Finish = NoFinish>
  void multiply_runs(int64_t grp, const MatrixRef<const float>& b, const MatrixRef<float>& c, const ColumnRuns& runs,
                     Finish&& finish = {}, float beta = 0.0f) const {
    gemm_packed(isa_, operands_[grp], b, c, beta, runs, finish);
  }

 private:
  Isa isa_;
  std::vector<MatrixRef<const T>> matrices_;
  AlignedVector<float> buffer_;
  std::vector<KernelA> operands_;
};

}  // namespace detail

namespace detail {

// Convolution as a sum of shifted GEMMs (see choose_conv_algorithm). Stride 1: the output is computed on
// the padded grid, row oy, column ox of the padded width Wp at linear position oy * Wp + ox, and tap (ki, kj)
// reads the padded input at that position plus ki * Wp + kj. Stride 2: the padded input is split into its
// four phases (even / odd rows x even / odd columns, each Hq x Wq); output (oy, ox) sums tap (ki, kj) of
// phase (ki % 2, kj % 2) at (oy + ki / 2, ox + kj / 2), so the grid is Wq wide and every tap is again a
// fixed offset: no unrolling for the stem and the strided 3x3 convs either.
struct ShiftedLayout {
  int64_t stride, Hp, Wp, Hq, Wq;  // stride (1 or 2), padded size, phase size (the padded size at stride 1)
  int64_t phase_plane, plane, L;   // one phase, one channel's phases (+ slack read by the last taps), grid length
  explicit ShiftedLayout(const ConvGeometry& g)
      : stride(g.sw), Hp(g.H + 2 * g.ph), Wp(g.W + 2 * g.pw), Hq((Hp + stride - 1) / stride), Wq((Wp + stride - 1) / stride),
        phase_plane(Hq * Wq), plane(stride * stride * phase_plane + g.KW + kMicroCols), L(g.OH * Wq) {}
  int64_t tap_offset(const ConvGeometry& g, int64_t t) const {
    const int64_t ki = t / g.KW, kj = t % g.KW;
    return ((ki % stride) * stride + kj % stride) * phase_plane + (ki / stride) * Wq + kj / stride;
  }
};

// f(j, len, out_offset) for each run of grid positions [j, j + len) within [j0, j1) that are real
// outputs (column < OW), with the offset of position j in the OH x OW output plane.
template <class F>
void for_each_valid_run(const ConvGeometry& g, const ShiftedLayout& s, int64_t j0, int64_t j1, F&& f) {
  for (int64_t row = j0 / s.Wq; row * s.Wq < j1; ++row) {
    const int64_t a = std::max(j0, row * s.Wq), b = std::min(j1, row * s.Wq + g.OW);
    if (a < b) f(a, b - a, row * g.OW + (a - row * s.Wq));
  }
}

// Zero-padded copies of all N x C input planes (at stride 2, split into their phases), in the calling
// thread's scratch (reused across calls: a fresh buffer of this size costs more in page faults than the
// copy). With check_finite, `finite` tells whether x holds no infinity or NaN (then the weight gradient may
// read the padded input in place); checked during the copy, while each plane is in cache.
template <class T>
struct PaddedInput {
  const T* data;
  bool finite;
};
// p[0, n) = 0 where n is a row's padding, a float or two: stored one by one (a memset call for each, and the bounds
// divided anew on every row, took 6% of a stride-2 3x3 conv's forward at 56 x 56).
template <class T>
void zero_few(T* p, int64_t n) {
  if (n > 4) return (void)std::fill(p, p + n, T(0));
#pragma GCC unroll 4
  for (int64_t j = 0; j < 4; ++j)
    if (j < n) p[j] = T(0);
}

// Padded rows [r0, r1) of `channels` planes (x: the first channel's input plane, planes: its padded planes, s.plane
// apart): each row's input copied (at stride 2 split into its column phases: padded row r is row r / 2 of the phases
// (r % 2, 0) and (r % 2, 1)), its padding columns zeroed, rows outside the input all zeros. Rows up to s.stride * s.Hq
// (at stride 2, an odd padded height's phase has one row past it: zeros). Every element of those rows is written (the
// buffers are reused, so no fill of the whole: that would double the memory traffic of the copy).
template <class T>
void pad_rows(const ConvGeometry& g, const ShiftedLayout& s, const T* x, T* planes, int64_t channels, int64_t r0, int64_t r1) {
  const int64_t phases = s.stride;  // column phases
  // Column phase pc's columns pc + stride * j outside [pw, pw + W) are padding: j < lo[pc] and j >= hi[pc] (stride 1
  // or 2: one or two phases), once per call: divided anew on every row, AVX2's 3x3/2 at 14 x 14 and 28 x 28 took
  // 1.02-1.035x the time.
  int64_t lo[2], hi[2];
  for (int64_t pc = 0; pc < phases; ++pc) {
    lo[pc] = std::min(s.Wq, (std::max<int64_t>(g.pw - pc, 0) + s.stride - 1) / s.stride);
    hi[pc] = std::min(s.Wq, std::max<int64_t>(lo[pc], (g.pw + g.W - pc + s.stride - 1) / s.stride));
  }
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t r = r0; r < r1; ++r) {
      T* row = planes + c * s.plane + (r % s.stride) * s.stride * s.phase_plane + (r / s.stride) * s.Wq;  // column phase 0
      if (r < g.ph || r >= g.ph + g.H) {
        for (int64_t pc = 0; pc < phases; ++pc) std::fill(row + pc * s.phase_plane, row + pc * s.phase_plane + s.Wq, T(0));
        continue;
      }
      for (int64_t pc = 0; pc < phases; ++pc) {
        zero_few(row + pc * s.phase_plane, lo[pc]);
        zero_few(row + pc * s.phase_plane + hi[pc], s.Wq - hi[pc]);
      }
      const T* src = x + c * g.HW() + (r - g.ph) * g.W;
      if (s.stride == 1) {
        std::copy(src, src + g.W, row + g.pw);
        continue;
      }
      T* even = row + ((g.pw % 2) ? s.phase_plane : 0) + g.pw / 2;  // where input column 0 lands
      T* odd = row + ((g.pw % 2) ? 0 : s.phase_plane) + (g.pw + 1) / 2;  // where input column 1 lands
      const int64_t n_even = (g.W + 1) / 2, n_odd = g.W / 2;
#pragma omp simd
      for (int64_t j = 0; j < n_even; ++j) even[j] = src[2 * j];
#pragma omp simd
      for (int64_t j = 0; j < n_odd; ++j) odd[j] = src[2 * j + 1];
    }
}

// The slack after a channel's phases (read by the last taps of the grid's last positions): zeros.
template <class T>
void zero_slack(const ShiftedLayout& s, T* planes, int64_t channels) {
  for (int64_t c = 0; c < channels; ++c)
    std::fill(planes + c * s.plane + s.stride * s.stride * s.phase_plane, planes + (c + 1) * s.plane, T(0));
}

template <class T>
PaddedInput<T> pad_planes(const ConvGeometry& g, const ShiftedLayout& s, const T* x, bool check_finite = false) {
  T* xp = scratch<T>(g.N * g.C * s.plane, kScratchPadded);
  std::vector<char> finite(static_cast<size_t>(g.N * g.C), 1);
  parallel_for(0, g.N * g.C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      if (check_finite) finite[nc] = all_finite(x + nc * g.HW(), g.HW());
      pad_rows(g, s, x + nc * g.HW(), xp + nc * s.plane, 1, 0, s.stride * s.Hq);
      zero_slack(s, xp + nc * s.plane, 1);
    }
  });
  return {xp, std::all_of(finite.begin(), finite.end(), [](char f) { return f != 0; })};
}

// shifted_forward_micro's blocked schedule: where the packed weights pass this many floats (1 MB: Zen 5's L2), in
// slices of this many channels of one tap (a weight panel's slice: 8 KB), groups' sums up to this many floats (768 KB;
// it runs where the packed GEMM does not, with AVX2: 384 KB streamed the weights twice as often, 5-6% slower).
constexpr int64_t kShiftedWeightsInCache = 256 * 1024, kShiftedSlice = 128, kShiftedGroupFloats = 192 * 1024;
// The unblocked schedule's groups of column panels: their slices of B (K x 48 floats each) up to this many bytes.
constexpr int64_t kShiftedGroupBytes = 256 * 1024;
// A plain output (no bias, no epilogue) of at least this many bytes, whose rows are whole 16-float vectors and at
// least 96 wide, is written by streaming stores with AVX-512, panels cut along its rows (the stem at batch 8: 25.7 MB).
constexpr int64_t kShiftedStreamBytes = 16 << 20;

inline int64_t shifted_tile_width(const ConvGeometry& g, const ShiftedLayout& s) {
  const int64_t w = std::max<int64_t>(256, (256 * 1024 / 4) / std::max<int64_t>(g.Cout, 1));
  return std::min((w + 15) / 16 * 16, s.L);
}

// The same computation with the 8 x 48 micro-kernel: weights packed once into 8-row panels (k runs over
// taps, then channels); B is read in place, 48 consecutive floats of the padded input per tap and channel.
inline void shifted_forward_micro(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y,
                                  Isa isa, const ConvEpilogue<float>& ep) {
  const ShiftedLayout s(g);
  const int64_t taps = g.KH * g.KW, M = g.Cout, C = g.C, K = taps * C, panels_m = M / kMicroRows;
  const bool weights_past_l2 = M * K > kShiftedWeightsInCache && C % kShiftedSlice == 0;
  const bool plain = !bias && !ep.scale && !ep.residual && !ep.relu;
  // (Streaming stores are AVX-512's: the AVX2 kernels would write through a tile of their own and a copy, the stem
  // 2-4% slower than the plain path.)
  const bool streamed = isa == Isa::Avx512 && !weights_past_l2 && plain && g.OW % 16 == 0 && g.OW >= 2 * kMicroCols &&
                        g.N * M * g.OHW() * int64_t{sizeof(float)} >= kShiftedStreamBytes;
  // (The streamed path pads the rows it reads itself.)
  const PaddedInput<float> xp = streamed ? PaddedInput<float>{nullptr, true} : pad_planes(g, s, x);
  // ap[mb][k][i] = w[mb * 8 + i][c][tap], k = tap * C + c, in the calling thread's scratch (a fresh 9.4 MB for
  // layer4's weights cost page faults and a fill every call). Channel by channel of a panel: its 8 rows' taps (8
  // lines of w, each read on for the next channels) go out as 8 floats per tap (one float per write, taps C x 8
  // floats apart, took 1.6 times as long).
  float* ap = scratch<float>(M * K, kScratchGemmA);
  parallel_for(0, panels_m, 1, [&](int64_t b, int64_t e) {
    for (int64_t mb = b; mb < e; ++mb)
      for (int64_t c = 0; c < C; ++c) {
        const float* rows = w + (mb * kMicroRows * C + c) * taps;  // row i at rows + i * C * taps
        float* out = ap + (mb * K + c) * kMicroRows;                // tap t at out + t * C * 8
        for (int64_t t = 0; t < taps; ++t)
#pragma GCC unroll 8
          for (int64_t i = 0; i < kMicroRows; ++i) out[t * C * kMicroRows + i] = rows[i * C * taps + t];
      }
  });
  std::vector<int64_t> tap_offset(taps);
  for (int64_t t = 0; t < taps; ++t) tap_offset[t] = s.tap_offset(g, t);
  const int64_t panels_n = (s.L + kMicroCols - 1) / kMicroCols;
  // The 8 rows of output channel panel mb, bias and epilogue added, from the kernel's tile ct of column panel
  // [j0, j1) of image n: only the grid's valid columns go out.
  auto write_tile = [&](const float* ct, int64_t n, int64_t mb, int64_t j0, int64_t j1) {
    for_each_valid_run(g, s, j0, j1, [&](int64_t j, int64_t len, int64_t out_at) {
      for (int64_t i = 0; i < kMicroRows; ++i) {
        const int64_t k = mb * kMicroRows + i;
        const int64_t at = (n * M + k) * g.OHW() + out_at;
        ep.store(ct + i * kMicroCols + (j - j0), bias ? bias[k] : 0.0f, y + at, at, len, k);
      }
    });
  };
  if (weights_past_l2) {
    // Weights past L2 (the stride-2 3x3 convs of ResNet's layer3 and layer4: 2.4 and 9.4 MB): per column panel,
    // all of them streamed from L3 for 48 columns of output ran at 120-230 GFLOP/s. Here a group of column panels
    // goes through K in slices of kShiftedSlice channels of one tap, each slice of a weight panel (8 KB, L1) serving
    // every panel of the group, the group's sums in tiles of their own (L2). The panels run along the batch's grids
    // side by side, so that a panel may span two images: panels of each image's grid alone ended in a short one
    // (3x3/2 512 at 14: 48 + 8 columns for a grid of 56).
    const int64_t columns = g.N * s.L, total = (columns + kMicroCols - 1) / kMicroCols, threads = get_num_threads();
    // The output channel panels in one share per thread, each share over every column panel: each thread streams its
    // share of the weights alone, and the shares are equal where column panels would not be (3x3/2 512 at 14: 10).
    const int64_t shares = std::min(threads, panels_m), share_panels = (panels_m + shares - 1) / shares;
    const int64_t most = std::max<int64_t>(1, kShiftedGroupFloats / (share_panels * kMicroRows * kMicroCols));
    const int64_t groups = std::min(total, std::max((total + most - 1) / most, (threads + shares - 1) / shares));
    const int64_t per_group = (total + groups - 1) / groups;  // at most; group grp: [grp * total / groups, ...)
    // f(n, j, end) for each image's part [j, end) of grid columns [j0, j1) of the batch (j, end: within image n's grid).
    auto for_each_image_part = [&](int64_t j0, int64_t j1, auto&& f) {
      ColumnRuns{s.L}.for_each_part(j0, j1, [&](int64_t j, int64_t end) {
        const int64_t n = j / s.L;
        f(n, j - n * s.L, end - n * s.L);
      });
    };
    parallel_for(0, shares * groups, 1, [&](int64_t b, int64_t e) {
      float* tiles = scratch<float>(per_group * share_panels * kMicroRows * kMicroCols, kScratchGemmC);  // [panel][mb][8 x 48]
      float* bp = scratch<float>(per_group * kShiftedSlice * kMicroCols, kScratchGemmB);  // [panel][row][48]
      for (int64_t item = b; item < e; ++item) {
        const int64_t share = item / groups, grp = item % groups;
        const int64_t mb0 = share * panels_m / shares, mb1 = (share + 1) * panels_m / shares, rows = mb1 - mb0;
        const int64_t q0 = grp * total / groups, q1 = (grp + 1) * total / groups;
        auto tile_of = [&](int64_t q, int64_t mb) { return tiles + ((q - q0) * rows + mb - mb0) * kMicroRows * kMicroCols; };
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t c0 = 0; c0 < C; c0 += kShiftedSlice) {
            const int64_t k0 = t * C + c0, no_offset = 0;
            // The slice's rows of each panel packed contiguous (48 floats, rows `plane` apart in place): read in
            // place, every kernel call missed L1 on each row.
            for (int64_t q = q0; q < q1; ++q) {
              const int64_t j0 = q * kMicroCols, j1 = std::min(columns, j0 + kMicroCols);
              float* out = bp + (q - q0) * kShiftedSlice * kMicroCols;
              const int64_t n = j0 / s.L;
              auto src_of = [&](int64_t image, int64_t j) { return xp.data + (image * C + c0) * s.plane + tap_offset[t] + j; };
              if (j1 - j0 == kMicroCols && j1 <= (n + 1) * s.L) {
                pack_rows_48(src_of(n, j0 - n * s.L), s.plane, kShiftedSlice, out);
                continue;
              }
              for_each_image_part(j0, j1, [&](int64_t image, int64_t j, int64_t end) {
                copy_rows(isa, src_of(image, j), s.plane, kShiftedSlice, end - j, out + (image * s.L + j - j0), kMicroCols);
              });
            }
            for (int64_t q = q0; q < q1; ++q) {
              const int64_t width = std::min(kMicroCols, columns - q * kMicroCols);
              for (int64_t mb = mb0; mb < mb1; ++mb)
                micro_kernel_8x48_taps(isa, 1, kShiftedSlice, &no_offset, kMicroCols, ap + (mb * K + k0) * kMicroRows,
                                       bp + (q - q0) * kShiftedSlice * kMicroCols, tile_of(q, mb), kMicroCols, k0 > 0, width);
            }
          }
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t j0 = q * kMicroCols;
          for_each_image_part(j0, std::min(columns, j0 + kMicroCols), [&](int64_t n, int64_t j, int64_t end) {
            for (int64_t mb = mb0; mb < mb1; ++mb) write_tile(tile_of(q, mb) + (n * s.L + j - j0), n, mb, j, end);
          });
        }
      }
    });
    return;
  }
  // A thread's panels go in groups whose slices of B stay in L2 (the stem: 9 panels of 147 rows), each group output
  // channel panel by output channel panel: the stores then run down 8 output rows at a time, 48 floats further on each
  // call, rather than across all Cout rows (the stem writes 64 rows of 25.7 MB once: its forward 0-4% faster).
  const int64_t group = std::clamp<int64_t>(kShiftedGroupBytes / (K * kMicroCols * int64_t{sizeof(float)}), 1, 16);
  if (streamed) {
    // Column panels within one output row (the stem's 112 columns: 48, 48, and the last 16 of up to three rows of one
    // image in one call, where a row's 16 alone ran at two thirds of the tile's rate), so that the kernel writes y
    // itself, whole aligned lines, by streaming stores (bench_conv's stem forward: 278 -> 307 GFLOP/s, PyTorch 382).
    // Each thread pads the input rows its output rows read, into one image's planes of its own, just before: they
    // stay in L2 for the kernels (padding the batch in a pass of its own wrote 5 MB for the stem, 4% of its time).
    const int64_t row_panels = (g.OW + kMicroCols - 1) / kMicroCols, rows_per_group = std::max<int64_t>(1, group / row_panels);
    const int64_t full_cols = g.OW % kMicroCols == 16 ? g.OW - 16 : g.OW;
    parallel_for(0, g.N * g.OH, rows_per_group, [&](int64_t b, int64_t e) {
      float* own = scratch<float>(C * s.plane, kScratchPadded);
      zero_slack(s, own, C);
      int64_t image = -1, padded_from = 0, padded_to = 0;  // own holds image's padded rows [padded_from, padded_to)
      for (int64_t r0 = b, r1; r0 < e; r0 = r1) {
        r1 = std::min({e, r0 + rows_per_group, (r0 / g.OH + 1) * g.OH});  // rows of one image
        const int64_t from = r0 % g.OH * g.sh, to = std::min(s.stride * s.Hq, (r1 - 1) % g.OH * g.sh + (g.KH - 1) * g.dh + 1);
        if (r0 / g.OH != image || from < padded_from || from > padded_to) image = r0 / g.OH, padded_from = padded_to = from;
        if (to > padded_to) {
          pad_rows(g, s, x + image * C * g.HW(), own, C, std::max(from, padded_to), to);
          padded_to = to;
        }
        // The input rows the next rows will pad, asked for while the kernels run on these.
        for (int64_t r = to; r < std::min(to + rows_per_group * g.sh, g.ph + g.H); ++r)
          if (r >= g.ph)
            for (int64_t c = 0; c < C; ++c)
              for (int64_t v = 0; v < g.W; v += 16) __builtin_prefetch(x + ((image * C + c) * g.H + r - g.ph) * g.W + v, 0, 3);
        // Each panel of B through every output channel panel while it is in L1 (channel panel by channel panel over
        // the rows, the rows' B came from L2 eight times: the stem 1% slower).
        auto a_of = [&](int64_t mb) { return ap + mb * K * kMicroRows; };
        auto b_at = [&](int64_t r, int64_t x0) { return own + r % g.OH * s.Wq + x0; };
        auto y_at = [&](int64_t mb, int64_t r, int64_t x0) { return y + (r / g.OH * M + mb * kMicroRows) * g.OHW() + r % g.OH * g.OW + x0; };
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t x0 = 0; x0 < full_cols; x0 += kMicroCols)
            for (int64_t mb = 0; mb < panels_m; ++mb)
              micro_kernel_8x48_stream(isa, taps, C, tap_offset.data(), s.plane, a_of(mb), b_at(r, x0), y_at(mb, r, x0), g.OHW(),
                                       std::min(kMicroCols, full_cols - x0));
        for (int64_t r = r0; r < r1 && full_cols < g.OW;) {
          const int64_t count = std::min({int64_t{3}, r1 - r, g.OH - r % g.OH});  // rows of one image
          for (int64_t mb = 0; mb < panels_m; ++mb)
            micro_kernel_8x16_stacked_stream(isa, taps, C, tap_offset.data(), s.plane, a_of(mb), b_at(r, full_cols), s.Wq,
                                             y_at(mb, r, full_cols), g.OHW(), g.OW, count);
          r += count;
        }
      }
      stream_fence();
    });
    return;
  }
  parallel_for(0, g.N * panels_n, group, [&](int64_t b, int64_t e) {
    alignas(64) float ct[kMicroRows * kMicroCols];
    for (int64_t g0 = b; g0 < e; g0 += group)
      for (int64_t mb = 0; mb < panels_m; ++mb)
        for (int64_t it = g0; it < std::min(e, g0 + group); ++it) {
          const int64_t n = it / panels_n, j0 = (it % panels_n) * kMicroCols, j1 = std::min(s.L, j0 + kMicroCols);
          // (A last, narrower panel on a narrower kernel: 7 x 7 outputs are a grid of 56 columns, 64 of them computed.)
          micro_kernel_8x48_taps(isa, taps, C, tap_offset.data(), s.plane, ap + mb * K * kMicroRows,
                                 xp.data + n * C * s.plane + j0, ct, kMicroCols, false, j1 - j0);
          // The tile's 8 rows go out right away: spread over the kernel calls, the stores drain while the next
          // tile computes (all 64 rows at the end stalled on the output lines: 16% of the stem's time).
          write_tile(ct, n, mb, j0, j1);
        }
  });
}

// y = sum over taps of W_tap (Cout x C) times the shifted padded input, then the valid columns + bias.
template <class T>
void shifted_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, const ConvEpilogue<T>& ep = {}) {
  if constexpr (std::is_same_v<T, float>)
    if (const Isa isa = active_isa(); has_micro_kernels(isa) && g.Cout % kMicroRows == 0)
      return shifted_forward_micro(g, x, w, bias, y, isa, ep);
  const ShiftedLayout s(g);
  const PaddedInput<T> xp = pad_planes(g, s, x);
  const int64_t taps = g.KH * g.KW, K = g.Cout, C = g.C;
  AlignedVector<T> wt(static_cast<size_t>(taps * K * C));  // wt[tap][k][c]
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < taps; ++t) wt[(t * K + k) * C + c] = w[(k * C + c) * taps + t];
  const int64_t tw = shifted_tile_width(g, s), tiles = (s.L + tw - 1) / tw;
  parallel_for(0, g.N * tiles, 1, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t n = it / tiles, j0 = (it % tiles) * tw, j1 = std::min(s.L, j0 + tw), cols = j1 - j0;
      T* acc = scratch<T>(K * cols);
      for (int64_t t = 0; t < taps; ++t) {
        const T* src = xp.data + n * C * s.plane + s.tap_offset(g, t) + j0;
        gemm<T>({wt.data() + t * K * C, K, C, C, 1}, {src, C, cols, s.plane, 1}, {acc, K, cols, cols, 1},
                t == 0 ? T(0) : T(1));
      }
      // Keep the columns that are real outputs, a row segment at a time.
      for_each_valid_run(g, s, j0, j1, [&](int64_t j, int64_t len, int64_t out_at) {
        for (int64_t k = 0; k < K; ++k) {
          const int64_t at = (n * K + k) * g.OHW() + out_at;
          ep.store(acc + k * cols + (j - j0), bias ? bias[k] : T(0), y + at, at, len, k);
        }
      });
    }
  });
}

// The kernels of a conv's input gradient (a conv of gy): w (Cout x C x taps) with its channel axes swapped and each
// kernel flipped, [c][k][taps - 1 - tap]; row by row in parallel (element by element in w's order on one thread, it
// took 1.2 of the 6.8 ms input gradient of a 3x3 512 -> 512 at 7 x 7, 0.46 ms so). (Winograd's input gradient reads
// w in place instead: winograd::Kernels3x3.)
template <class T>
AlignedVector<T> flipped_transposed_kernels(const T* w, int64_t Cout, int64_t C, int64_t taps) {
  AlignedVector<T> out(static_cast<size_t>(C * Cout * taps));
  parallel_for(0, C, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      for (int64_t k = 0; k < Cout; ++k) {
        const T* src = w + (k * C + c) * taps;
        T* dst = out.data() + (c * Cout + k) * taps;
        for (int64_t tap = 0; tap < taps; ++tap) dst[taps - 1 - tap] = src[tap];
      }
  });
  return out;
}

// The input gradient of a stride-1 conv is a stride-1 conv of gy with the kernel flipped and its
// channel axes swapped, padded by KH - 1 - ph: the forward above, reused.
template <class T>
void shifted_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  ConvGeometry t = g;
  t.C = g.Cout;
  t.H = g.OH;
  t.W = g.OW;
  t.Cout = g.C;
  t.ph = g.KH - 1 - g.ph;
  t.pw = g.KW - 1 - g.pw;
  t.OH = g.H;
  t.OW = g.W;
  const AlignedVector<T> flipped = flipped_transposed_kernels(w, g.Cout, g.C, g.KH * g.KW);
  shifted_forward(t, gy, flipped.data(), static_cast<const T*>(nullptr), gx);
}

// The weight gradient with the broadcast micro-kernel, vectorized over output channels (Cout a multiple of
// 16): gw (Cout x C*taps) is accumulated transposed, G[c * taps + t][o], over grid pixels: the shifted input rows
// times gy^T packed 64 channels per pixel, zero where the grid column is not an output. Where the input holds an
// infinity or NaN the rows are copied with those columns zeroed too (0 * inf is NaN, and PyTorch never forms those
// products).

// Valid grid columns [lo, hi) of a chunk, and where lo lands in gy.
struct GridRun {
  int64_t lo, hi, out_at;
};
inline std::vector<GridRun> grid_runs(const ConvGeometry& g, const ShiftedLayout& s, int64_t j0, int64_t j1) {
  std::vector<GridRun> runs;
  for_each_valid_run(g, s, j0, j1, [&](int64_t j, int64_t run, int64_t out_at) { runs.push_back({j - j0, j - j0 + run, out_at}); });
  return runs;
}

// Image n's gy^T on a chunk of `len` grid columns, in blocks of 64 channels: ap[block][pixel][channel within the
// block], zero on the columns that are not outputs.
inline void pack_gy_on_grid(const ConvGeometry& g, Isa isa, const float* gy, int64_t n, int64_t len,
                            const std::vector<GridRun>& runs, float* ap) {
  const int64_t M = g.Cout;
  std::fill(ap, ap + M * len, 0.0f);
  for (const GridRun& run : runs) {
    const int64_t run_len = run.hi - run.lo;
    for (int64_t m0 = 0; m0 < M; m0 += 16) {  // 16 channels x 16 pixels at a time
      const int64_t mb = m0 / kBroadcastCols, width = std::min(kBroadcastCols, M - mb * kBroadcastCols);
      const float* src = gy + (n * M + m0) * g.OHW() + run.out_at;
      float* dst = ap + mb * kBroadcastCols * len + run.lo * width + m0 % kBroadcastCols;
      int64_t i = 0;
      for (; i + 16 <= run_len; i += 16) transpose_16x16(isa, src + i, g.OHW(), dst + i * width, width);
      for (; i < run_len; ++i)
        for (int64_t m = 0; m < 16; ++m) dst[i * width + m] = src[m * g.OHW() + i];
    }
  }
}

// Rows [r0, r0 + nr) of B for image n's chunk at grid column j0: row c * taps + t is channel c's padded input at tap t,
// read in place (row_at), or copied into `copies` (nr x len) with the columns that are not outputs zeroed where the
// input is not finite.
inline void grid_rows(const ConvGeometry& g, const ShiftedLayout& s, const PaddedInput<float>& xp, const int64_t* tap_offset,
                      int64_t n, int64_t j0, int64_t len, const std::vector<GridRun>& runs, int64_t r0, int64_t nr,
                      float* copies, const float** row_at) {
  const int64_t taps = g.KH * g.KW;
  const float* img = xp.data + n * g.C * s.plane + j0;
  for (int64_t r = 0; r < nr; ++r) {
    const float* src = img + ((r0 + r) / taps) * s.plane + tap_offset[(r0 + r) % taps];
    if (xp.finite) {
      row_at[r] = src;
      continue;
    }
    float* dst = copies + r * len;
    int64_t at = 0;
    for (const GridRun& run : runs) {
      std::fill(dst + at, dst + run.lo, 0.0f);
      std::copy(src + run.lo, src + run.hi, dst + run.lo);
      at = run.hi;
    }
    std::fill(dst + at, dst + len, 0.0f);
    row_at[r] = dst;
  }
}

// C (nr x M, rows ldc apart) += rows row_at (nr of them, len pixels) times ap (pack_gy_on_grid's layout).
inline void broadcast_product(Isa isa, int64_t M, int64_t nr, int64_t len, const float* const* row_at, const float* ap,
                              float* c, int64_t ldc) {
  for (int64_t mb = 0; mb * kBroadcastCols < M; ++mb) {
    const int64_t width = std::min(kBroadcastCols, M - mb * kBroadcastCols);
    for (int64_t r = 0; r < nr; r += kBroadcastRows)
      micro_kernel_broadcast(isa, std::min(kBroadcastRows, nr - r), width, len, row_at + r, ap + mb * kBroadcastCols * len,
                             c + r * ldc + mb * kBroadcastCols, ldc);
  }
}

constexpr int64_t kGridChunk = 256, kGridRowBlock = 48;  // grid pixels per work item; rows of B at a time

// Where an image's grid is one chunk, work items own blocks of G's rows (below); elsewhere they are chunks of grid
// pixels, each thread summing its own partial G (R x M), added in thread order at the end.
inline void shifted_backward_weight_micro(const ConvGeometry& g, const float* x, const float* gy, float* gw, Isa isa) {
  const ShiftedLayout s(g);
  const PaddedInput<float> xp = pad_planes(g, s, x, /*check_finite=*/true);
  const int64_t taps = g.KH * g.KW, M = g.Cout, R = taps * g.C;
  std::vector<int64_t> tap_offset(taps);
  for (int64_t t = 0; t < taps; ++t) tap_offset[t] = s.tap_offset(g, t);
  const bool nested = omp_in_parallel();
  if (s.L <= kGridChunk && !nested) {
    // Small maps (an image's grid is one chunk: the stride-2 3x3s at 14 x 14 and 7 x 7 outputs): there, a few dozen
    // pixels per item made each thread's partial G (9.4 MB for 512 -> 512) go through memory once per image (108
    // GFLOP/s). Instead every image's gy^T is packed first, then each work item owns a block of G's rows and sums it
    // over all images in a tile of its own (L2), written once, each element summed by one item in one order.
    const int64_t len = s.L;
    const std::vector<GridRun> runs = grid_runs(g, s, 0, len);  // the same in every image
    float* ap = scratch<float>(g.N * M * len, kScratchGemmA);
    parallel_for(0, g.N, 1, [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) pack_gy_on_grid(g, isa, gy, n, len, runs, ap + n * M * len);
    });
    parallel_for(0, (R + kGridRowBlock - 1) / kGridRowBlock, 1, [&](int64_t b, int64_t e) {
      float* tile = scratch<float>(kGridRowBlock * M, 1);
      float* copies = scratch<float>(kGridRowBlock * len, 0);
      const float* row_at[kGridRowBlock];
      for (int64_t blk = b; blk < e; ++blk) {
        const int64_t r0 = blk * kGridRowBlock, nr = std::min(kGridRowBlock, R - r0);
        std::fill(tile, tile + nr * M, 0.0f);
        for (int64_t n = 0; n < g.N; ++n) {
          grid_rows(g, s, xp, tap_offset.data(), n, 0, len, runs, r0, nr, copies, row_at);
          broadcast_product(isa, M, nr, len, row_at, ap + n * M * len, tile, M);
        }
        for (int64_t m = 0; m < M; ++m)
          for (int64_t r = 0; r < nr; ++r) gw[m * R + r0 + r] = tile[r * M + m];
      }
    });
    return;
  }
  const int64_t chunks = (s.L + kGridChunk - 1) / kGridChunk, items = g.N * chunks;
  const int threads = nested ? 1 : static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), items)));
  AlignedVector<float> partials(static_cast<size_t>(threads) * R * M, 0.0f);
  parallel_for_static(0, items, 1, [&](int64_t b, int64_t e) {
    float* mine = partials.data() + static_cast<int64_t>(nested ? 0 : omp_get_thread_num()) * R * M;
    float* ap = scratch<float>(M * kGridChunk, 1);
    float* copies = scratch<float>(kGridRowBlock * kGridChunk, 0);
    const float* row_at[kGridRowBlock];
    for (int64_t it = b; it < e; ++it) {
      const int64_t n = it / chunks, j0 = (it % chunks) * kGridChunk, len = std::min(s.L, j0 + kGridChunk) - j0;
      const std::vector<GridRun> runs = grid_runs(g, s, j0, j0 + len);
      pack_gy_on_grid(g, isa, gy, n, len, runs, ap);
      for (int64_t r0 = 0; r0 < R; r0 += kGridRowBlock) {
        const int64_t nr = std::min(kGridRowBlock, R - r0);
        grid_rows(g, s, xp, tap_offset.data(), n, j0, len, runs, r0, nr, copies, row_at);
        broadcast_product(isa, M, nr, len, row_at, ap, mine + r0 * M, M);
      }
    }
  });
  // The partials added in thread order, transposed into gw, the rows of gw split across threads.
  parallel_for(0, M, 1 + kParallelGrain / R, [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m)
      for (int64_t r = 0; r < R; ++r) {
        float sum = partials[r * M + m];
        for (int tr = 1; tr < threads; ++tr) sum += partials[tr * R * M + r * M + m];
        gw[m * R + r] = sum;
      }
  });
}

// gw[tap] (Cout x C) = sum over images and tiles of gy on the padded grid (zeros in the extra columns)
// times the shifted padded input, transposed. Per-thread partials, added in thread order.
template <class T>
void shifted_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  if constexpr (std::is_same_v<T, float>)
    if (const Isa isa = active_isa(); has_micro_kernels(isa) && g.Cout % 16 == 0)
      return shifted_backward_weight_micro(g, x, gy, gw, isa);
  const ShiftedLayout s(g);
  const PaddedInput<T> xp = pad_planes(g, s, x);
  const int64_t taps = g.KH * g.KW, K = g.Cout, C = g.C;
  const int64_t tw = shifted_tile_width(g, s), tiles = (s.L + tw - 1) / tw, items = g.N * tiles;
  const bool nested = omp_in_parallel();
  const int threads = nested ? 1 : static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), items)));
  const int64_t wsize = taps * K * C;
  AlignedVector<T> partials(static_cast<size_t>(threads) * wsize, T(0));
  parallel_for_static(0, items, 1, [&](int64_t b, int64_t e) {
    T* mine = partials.data() + static_cast<int64_t>(nested ? 0 : omp_get_thread_num()) * wsize;
    std::vector<char> is_output;
    for (int64_t it = b; it < e; ++it) {
      const int64_t n = it / tiles, j0 = (it % tiles) * tw, j1 = std::min(s.L, j0 + tw), cols = j1 - j0;
      T* gyp = scratch<T>(K * cols);
      std::fill(gyp, gyp + K * cols, T(0));
      for_each_valid_run(g, s, j0, j1, [&](int64_t j, int64_t len, int64_t out_at) {
        for (int64_t k = 0; k < K; ++k) std::copy_n(gy + (n * K + k) * g.OHW() + out_at, len, gyp + k * cols + (j - j0));
      });
      // The shifted input with the grid's extra columns zeroed (they read the next row's pixels: gy is
      // zero there, but 0 * inf would still be NaN), transposed in the GEMM.
      is_output.assign(static_cast<size_t>(cols), 0);
      for_each_valid_run(g, s, j0, j1, [&](int64_t j, int64_t run, int64_t) { std::fill_n(is_output.begin() + (j - j0), run, 1); });
      T* xs = scratch<T>(C * cols, 1);
      for (int64_t t = 0; t < taps; ++t) {
        const T* src = xp.data + n * C * s.plane + s.tap_offset(g, t) + j0;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t k = 0; k < cols; ++k) xs[c * cols + k] = is_output[k] ? src[c * s.plane + k] : T(0);
        gemm<T>({gyp, K, cols, cols, 1}, {xs, cols, C, 1, cols}, {mine + t * K * C, K, C, C, 1}, T(1));
      }
    }
  });
  for (int tr = 1; tr < threads; ++tr)
    for (int64_t i = 0; i < wsize; ++i) partials[i] += partials[tr * wsize + i];
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < C; ++c) gw[(k * C + c) * taps + t] = partials[(t * K + k) * C + c];
}

// f(step) with a column step of 2 (the downsamples') as a compile-time constant, so that the loops over it vectorize;
// any other step at run time.
template <class F>
void with_column_step(int64_t step, F&& f) {
  if (step == 2) f(std::integral_constant<int64_t, 2>{});
  else f(step);
}

// The pixels a 1x1 conv without padding reads, every sh-th row and sw-th column of image n's channel c, written as
// an OH x OW plane at dst_of(n, c): a strided conv's products then read them as a plain matrix. (A plain loop:
// im2col_tile does the same with per-row bounds for padding, and cost the 1x1/2 rows at 28x28 and 14x14 7% of their
// forward in bench_conv.) Column stride 2 compile-time (with_column_step): 8 x 512 x 28 x 28 at stride 2, 2 threads,
// 0.26 -> 0.12 ms.
template <class DstOf>
void gather_1x1_pixels(const ConvGeometry& g, const float* x, DstOf&& dst_of) {
  with_column_step(g.sw, [&](auto sw) {
    parallel_for(0, g.N * g.C, 1 + kParallelGrain / std::max<int64_t>(1, g.OHW()), [&](int64_t b, int64_t e) {
      for (int64_t nc = b; nc < e; ++nc) {
        float* dst = dst_of(nc / g.C, nc % g.C);
        for (int64_t oy = 0; oy < g.OH; ++oy) {
          const float* src = x + nc * g.HW() + oy * g.sh * g.W;
          float* row = dst + oy * g.OW;
#pragma omp simd
          for (int64_t ox = 0; ox < g.OW; ++ox) row[ox] = src[ox * sw];
        }
      }
    });
  });
}

// The inverse for gradients: x (N x C x H x W) = zeros, with plane (n, c) of `compact` (OH x OW each) on every sh-th
// row and sw-th column; each row of x written once (column stride 2 compile-time, as in the gather: 8 x 512 x 28 x 28
// at stride 2, 0.35 -> 0.26 ms).
inline void spread_1x1_pixels(const ConvGeometry& g, const float* compact, float* x) {
  with_column_step(g.sw, [&](auto sw) {
    parallel_for(0, g.N * g.C, 1 + kParallelGrain / std::max<int64_t>(1, g.HW()), [&](int64_t b, int64_t e) {
      for (int64_t nc = b; nc < e; ++nc) {
        const float* src = compact + nc * g.OHW();
        for (int64_t iy = 0; iy < g.H; ++iy) {
          float* row = x + nc * g.HW() + iy * g.W;
          std::fill(row, row + g.W, 0.0f);
          if (iy % g.sh != 0 || iy / g.sh >= g.OH) continue;
          const float* in = src + (iy / g.sh) * g.OW;
#pragma omp simd
          for (int64_t ox = 0; ox < g.OW; ++ox) row[ox * sw] = in[ox];
        }
      }
    });
  });
}

}  // namespace detail

namespace detail {
// cols[n][c * KH * KW + tap][j] = image n's input under tap (ki, kj) of output pixel j (0 in the padding), for
// groups == 1: every image unrolled at once through a table of source offsets shared by all planes. (im2col_tile,
// which copies runs of a row, called memmove on 7 floats at a time here: unrolling took 45% of the product's time.)
inline void unroll_images(const ConvGeometry& g, const float* x, float* cols) {
  const int64_t taps = g.KH * g.KW, OHW = g.OHW();
  std::vector<int32_t> source(static_cast<size_t>(taps * OHW));  // offset in the input plane, or -1
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t j = 0; j < OHW; ++j) {
      const int64_t iy = j / g.OW * g.sh - g.ph + t / g.KW * g.dh, ix = j % g.OW * g.sw - g.pw + t % g.KW * g.dw;
      source[t * OHW + j] = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W ? static_cast<int32_t>(iy * g.W + ix) : -1;
    }
  parallel_for(0, g.N * g.C, 1 + kParallelGrain / std::max<int64_t>(1, taps * OHW), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const float* plane = x + nc * g.HW();
      float* out = cols + nc * taps * OHW;  // (n, c)'s rows: n * C * taps + c * taps
      for (int64_t q = 0; q < taps * OHW; ++q) out[q] = source[q] >= 0 ? plane[source[q]] : 0.0f;
    }
  });
}

// Stride-2 3x3 convs whose weights pass L2 (layer3's and layer4's in ResNet-50): the whole batch unrolled once and one
// packed product, as a 1x1 conv (the GEMM's blocking keeps a slice of the weights in L2 for every column).
inline bool unroll_batch(const ConvGeometry& g) {
  return use_own_gemm(active_isa()) && g.groups == 1 && g.sh == 2 && g.sw == 2 && g.KH == 3 && g.KW == 3 && g.dh == 1 &&
         g.dw == 1 && g.Cout * g.K() * 4 > (1 << 20);
}
}  // namespace detail

// y (N x Cout x OH x OW) = conv(x, w) + bias; x, w, y contiguous; bias may be null.
// y = conv(x, w) + bias, each output row then finished by ep (batch norm, residual, ReLU: the eval path's fused convs).
// inference: no gradient will be taken of y, so a Winograd conv may run F(4x4, 3x3), which rounds more (winograd.hpp).
// y may be ep.residual's memory (the result added in place, ops/conv.hpp's conv2d_inference): the 1x1 product then
// stages its sums apart from y; the other paths, which write sums into y, read a copy of the residual.
// prepared: a frozen conv's weights as its path uses them, kept across calls (filled at the first), or null.
template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, ConvEpilogue<T> ep = {},
                    bool inference = false, PreparedWeights* prepared = nullptr) {
  if (g.N * g.Cout * g.OHW() == 0) return;  // an empty batch or output: nothing to compute
  const bool in_place = ep.residual && ep.residual == y;
  AlignedVector<T> residual_copy;
  auto unaliased = [&] {
    if (in_place && residual_copy.empty()) {
      residual_copy.assign(ep.residual, ep.residual + g.N * g.Cout * g.OHW());
      ep.residual = residual_copy.data();
    }
  };
  const ConvAlgorithm algo = choose_conv_algorithm(g);
  const bool unrolled_batch = std::is_same_v<T, float> && detail::unroll_batch(g);
  if (algo == ConvAlgorithm::Winograd3x3) {
    unaliased();
    const auto kernels = winograd::Kernels3x3<T>::of(w, g.C);
    if (inference) return winograd::forward<winograd::F4x4>(x, g.N, g.C, g.H, g.W, g.ph, g.pw, kernels, g.Cout, bias, y, ep, prepared);
    return winograd::forward<winograd::F2x2>(x, g.N, g.C, g.H, g.W, g.ph, g.pw, kernels, g.Cout, bias, y, ep, prepared);
  }
  if (algo == ConvAlgorithm::ShiftedGemm && !unrolled_batch) {
    unaliased();
    return detail::shifted_forward(g, x, w, bias, y, ep);
  }
  const bool pointwise = algo == ConvAlgorithm::Gemm1x1;
  const detail::WeightOperand<T> weights(
      g.groups, [&](int64_t grp) { return MatrixRef<const T>{w + grp * g.Cog() * g.K(), g.Cog(), g.K(), g.K(), 1}; }, prepared,
      g.N * g.OHW());
  if constexpr (std::is_same_v<T, float>)
    if ((unrolled_batch || (g.KH == 1 && g.KW == 1 && g.ph == 0 && g.pw == 0)) && weights.on_own_gemm()) {
      // One product over the batch: no copies, each tile finished in cache. A strided 1x1 conv reads every sh-th
      // row and sw-th column: those pixels are gathered once (a quarter of the input at stride 2), then the same;
      // unroll_batch's convs unroll every image once (K = C x 9 rows of B per image).
      const int64_t HW = g.OHW(), K = g.K();  // B's rows per image and group (Cg for 1x1)
      const float* xin = x;
      if (unrolled_batch) {
        float* cols = scratch<float>(g.N * K * HW, kScratchPadded);
        detail::unroll_images(g, x, cols);
        xin = cols;
      } else if (!pointwise) {
        float* gathered = scratch<float>(g.N * g.C * HW, kScratchPadded);
        detail::gather_1x1_pixels(g, x, [&](int64_t n, int64_t c) { return gathered + (n * g.C + c) * HW; });
        xin = gathered;
      }
      // Row i of a group's product is output channel first + i: bias and epilogue added (gemm_packed's finish), the
      // epilogue's residual asked for ahead (its prefetch). The kernels write their sums straight into y, and the
      // finish goes over them there while they are in L2; where y is the residual, the sums are staged apart (a
      // pass of its own over y: slower where y is new memory, 2.3 -> 2.6-2.7 ms for 1x1 64 -> 256 at 56 x 56).
      auto multiply = [&](auto finish) {
        for (int64_t grp = 0; grp < g.groups; ++grp) {
          if constexpr (requires { finish.first; }) finish.first = grp * g.Cog();
          weights.multiply_runs(grp, {xin + grp * K * HW, K, g.N * HW, HW, 1}, {y + grp * g.Cog() * HW, g.Cog(), g.N * HW, HW, 1},
                                {HW, g.groups * K * HW, g.Cout * HW}, finish);
        }
      };
      struct Finish {
        float* y;
        const float* bias;
        const ConvEpilogue<float>& ep;
        int64_t first, Cout, HW;
        int64_t at_of(int64_t i, int64_t n, int64_t at) const { return (n * Cout + first + i) * HW + at; }
        void operator()(float* row, int64_t i, int64_t n, int64_t at, int64_t len) const {
          ep.store(row, bias ? bias[first + i] : 0.0f, row, at_of(i, n, at), len, first + i);
        }
        void prefetch(int64_t i, int64_t n, int64_t at, int64_t len) const { ep.prefetch(at_of(i, n, at), len); }
      };
      struct StagedFinish : Finish {
        static constexpr bool staged() { return true; }  // gemm_packed: the sums in a buffer of their own, y written here
        // y is the residual: its lines asked for owned (1x1 64 -> 256 at 56 x 56 in place: 2.9-3.1 -> 2.6-2.7 ms
        // against read-only).
        void prefetch(int64_t i, int64_t n, int64_t at, int64_t len) const {
          prefetch_lines(this->y + this->at_of(i, n, at), len, true);
        }
        void operator()(const float* sums, int64_t i, int64_t n, int64_t at, int64_t len) const {
          const int64_t to = this->at_of(i, n, at);
          this->ep.store(sums, this->bias ? this->bias[this->first + i] : 0.0f, this->y + to, to, len, this->first + i);
        }
      };
      const Finish finish{y, bias, ep, 0, g.Cout, HW};
      if (in_place) multiply(StagedFinish{finish});
      else if (bias || !ep.plain()) multiply(finish);
      else multiply(NoFinish{});  // nothing to do after the product: no calls per piece of a row
      return;
    }
  unaliased();
  const auto blocks = detail::blocks_for(g, sizeof(T));
  const auto phases = detail::use_column_phases(g) ? detail::split_column_phases(g, x) : nullptr;
  parallel_for(0, blocks.items(g), 1, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const auto blk = blocks.decode(g, it);
      const int64_t cols_n = blk.columns(), span = blk.j1 - blk.j0;
      // B: the input as it lies (1x1, one image) or unrolled into scratch.
      MatrixRef<const T> bm{x + (blk.n0 * g.C + blk.grp * g.Cg()) * g.HW() + blk.j0, g.K(), cols_n, g.HW(), 1};
      if (!(pointwise && blk.single_image())) {
        T* cols = scratch<T>(g.K() * cols_n, 0);
        for (int64_t n = blk.n0; n < blk.n1; ++n)
          detail::im2col_tile(g, x + (n * g.C + blk.grp * g.Cg()) * g.HW(), blk.j0, blk.j1, cols + (n - blk.n0) * span, cols_n,
                              detail::phases_of(g, phases, n, blk.grp));
        bm = {cols, g.K(), cols_n, cols_n, 1};
      }
      // C: straight into y for one image, else into scratch and then each image's rows.
      T* out = blk.single_image() ? y + (blk.n0 * g.Cout + blk.grp * g.Cog()) * g.OHW() + blk.j0 : scratch<T>(g.Cog() * cols_n, 1);
      const int64_t ldo = blk.single_image() ? g.OHW() : cols_n;
      weights.multiply(blk.grp, bm, {out, g.Cog(), cols_n, ldo, 1});
      for (int64_t n = blk.n0; n < blk.n1; ++n)
        for (int64_t o = 0; o < g.Cog(); ++o) {
          const int64_t o_all = blk.grp * g.Cog() + o, at = (n * g.Cout + o_all) * g.OHW() + blk.j0;
          ep.store(out + o * ldo + (n - blk.n0) * span, bias ? bias[o_all] : T(0), y + at, at, span, o_all);
        }
    }
  });
}

namespace detail {
// gw = gy x^T for a 1x1 conv (any stride) on maps of at most 8 x 8 outputs (ResNet's last stage), as one product
// whose K runs over every image's pixels: gy's rows packed straight from each image, x's (strided) pixels gathered
// once. Column blocks of one image each gave K = 49, so every tile of gw was loaded and stored per 49 multiply-adds
// and summed again across threads (bench: 145-153 against 185-209 GFLOP/s for 2048 -> 512 and 512 -> 2048 at 7 x 7).
// Each element of gw is one work item's, so the result does not depend on the thread count.
inline void pointwise_backward_weight_small_maps(Isa isa, const ConvGeometry& g, const float* x, const float* gy,
                                                  float* gw) {
  const int64_t HW = g.OHW(), K = g.N * HW;
  float* packed = scratch<float>(packed_a_size(g.Cout, K), kScratchGemmA);
  parallel_for(0, g.Cout / kMicroRows, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t n = 0; n < g.N; ++n)
        pack_8_rows(isa, gy + (n * g.Cout + p * kMicroRows) * HW, HW, HW, packed + (p * K + n * HW) * kMicroRows);
  });
  float* pixels = scratch<float>(g.C * K, kScratchPadded);  // [c][n * HW + j]
  gather_1x1_pixels(g, x, [&](int64_t n, int64_t c) { return pixels + c * K + n * HW; });
  gemm_packed(isa, KernelA{packed, g.Cout, K}, {pixels, K, g.C, 1, K}, {gw, g.Cout, g.C, g.C, 1}, 0.0f);
}

// The gradient of the output for one block as a matrix (Cog x columns): gy itself for one image,
// else the images' rows gathered side by side into scratch slot 1.
template <class T>
MatrixRef<const T> gy_block(const ConvGeometry& g, const ColumnBlocks::Block& blk, const T* gy) {
  const int64_t cols_n = blk.columns(), span = blk.j1 - blk.j0;
  if (blk.single_image())
    return {gy + (blk.n0 * g.Cout + blk.grp * g.Cog()) * g.OHW() + blk.j0, g.Cog(), cols_n, g.OHW(), 1};
  T* buf = scratch<T>(g.Cog() * cols_n, 1);
  for (int64_t n = blk.n0; n < blk.n1; ++n)
    for (int64_t o = 0; o < g.Cog(); ++o)
      std::copy_n(gy + (n * g.Cout + blk.grp * g.Cog() + o) * g.OHW() + blk.j0, span, buf + o * cols_n + (n - blk.n0) * span);
  return {buf, g.Cog(), cols_n, cols_n, 1};
}
}  // namespace detail

namespace detail {
// Whether a conv's input gradient runs by phases of gx (input_gradient_by_phases): the 3x3 stride-2 convs with
// padding 1 of ResNet's downsampling blocks, on maps of even size, where tinyvid's GEMM runs.
inline bool input_gradient_by_phases(const ConvGeometry& g, Isa isa) {
  return g.KH == 3 && g.KW == 3 && g.sh == 2 && g.sw == 2 && g.ph == 1 && g.pw == 1 && g.dh == 1 && g.dw == 1 &&
         g.groups == 1 && g.H == 2 * g.OH && g.W == 2 * g.OW && g.C % kMicroRows == 0 && use_own_gemm(isa) &&
         !omp_in_parallel();
}

// gx of a conv of input_gradient_by_phases, phase by phase. Input row 2u reads kernel row 1 at output row u; row
// 2u + 1 reads row 2 at u and row 0 at u + 1; the same for columns. So phase (a, b) of gx (rows 2u + a, columns
// 2v + b) is one product of its 1, 2 or 4 taps' kernels (C x taps * Cout) with as many copies of gy shifted by 0 or
// 1 row and column (zero past the end), each element of gx written once by the product's finish. The four shifted
// copies lie in one tensor in the order (0, 1), (0, 0), (1, 0), (1, 1), so that every phase's are consecutive.
// Unrolled into 9 taps and summed back (im2col, GEMM, col2im), the GEMM's K was only gy's channels, and col2im added
// 9 overlapping columns into every element of gx: 203-266 GFLOP/s on ResNet-50's three.
inline void input_gradient_by_phases(Isa isa, const ConvGeometry& g, const float* gy, const float* w, float* gx) {
  const int64_t OH = g.OH, OW = g.OW, HW = OH * OW, Cout = g.Cout;
  constexpr int64_t kShift[4][2] = {{0, 1}, {0, 0}, {1, 0}, {1, 1}};  // the copies' (row, column) shifts
  // Phase (a, b) reads copies [first_copy(b), first_copy(b) + taps(a, b)).
  auto first_copy = [](int64_t b) { return 1 - b; };
  auto taps = [](int64_t a, int64_t b) { return (a + 1) * (b + 1); };
  AlignedVector<float> shifted(static_cast<size_t>(g.N * 4 * Cout * HW));  // [n][copy][o][u][v]
  parallel_for(0, g.N * 4 * Cout, 1 + kParallelGrain / HW, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / (4 * Cout), copy = plane / Cout % 4, o = plane % Cout;
      const int64_t di = kShift[copy][0], dj = kShift[copy][1];
      const float* in = gy + (n * Cout + o) * HW;
      float* out = shifted.data() + plane * HW;
      for (int64_t u = 0; u < OH; ++u) {
        float* row = out + u * OW;
        if (u + di >= OH) {
          std::fill_n(row, OW, 0.0f);
          continue;
        }
        std::copy_n(in + (u + di) * OW + dj, OW - dj, row);
        if (dj) row[OW - 1] = 0.0f;
      }
    }
  });
  // Each phase's sums, written to their places in gx.
  struct Scatter {
    float* gx;
    int64_t C, H, W, OW, a, b;
    static constexpr bool staged() { return true; }
    void operator()(const float* sums, int64_t c, int64_t n, int64_t at, int64_t len) const {
      float* plane = gx + (n * C + c) * H * W;
      for (int64_t end = at + len; at < end;) {  // row by row of the phase
        const int64_t u = at / OW, v = at % OW, span = std::min(end - at, OW - v);
        float* to = plane + (2 * u + a) * W + 2 * v + b;
        for (int64_t q = 0; q < span; ++q) to[2 * q] = sums[q];
        sums += span, at += span;
      }
    }
  };
  // The phases' kernels (C x taps * Cout, column t * Cout + o the tap of copy first + t from output o), packed as
  // the GEMM reads them (8-row panels: [c / 8][k][c % 8]), from w's [o][c][3][3] in tiles of 8 channels by kTile
  // outputs: read element by element down o, w's 9 floats of a channel lay a whole kernel apart (512 -> 512: 12% of
  // the pass), and packing a plain copy was another pass over the weights.
  constexpr int64_t kTile = 64;
  std::array<AlignedVector<float>, 4> packed;  // phase a * 2 + b
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 2; ++b) packed[a * 2 + b].resize(static_cast<size_t>(g.C * taps(a, b) * Cout));
  parallel_for(0, g.C / kMicroRows, 1, [&](int64_t p0, int64_t p1) {
    float tile[9][kTile][kMicroRows];  // [tap][o][c]
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t o0 = 0; o0 < Cout; o0 += kTile) {
        const int64_t on = std::min(kTile, Cout - o0);
        for (int64_t o = 0; o < on; ++o)
          for (int64_t r = 0; r < kMicroRows; ++r)
            for (int64_t tap = 0; tap < 9; ++tap) tile[tap][o][r] = w[((o0 + o) * g.C + p * kMicroRows + r) * 9 + tap];
        for (int64_t a = 0; a < 2; ++a)
          for (int64_t b = 0; b < 2; ++b) {
            const int64_t first = first_copy(b), K = taps(a, b) * Cout;
            for (int64_t t = 0; t < taps(a, b); ++t) {
              const int64_t di = kShift[first + t][0], dj = kShift[first + t][1];
              const int64_t kh = a == 0 ? 1 : (di == 0 ? 2 : 0), kw = b == 0 ? 1 : (dj == 0 ? 2 : 0);
              std::copy_n(&tile[kh * 3 + kw][0][0], on * kMicroRows,
                          packed[a * 2 + b].data() + (p * K + t * Cout + o0) * kMicroRows);
            }
          }
      }
  });
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 2; ++b) {
      const int64_t first = first_copy(b), K = taps(a, b) * Cout;
      gemm_packed(isa, KernelA{packed[a * 2 + b].data(), g.C, K}, {shifted.data() + first * Cout * HW, K, g.N * HW, HW, 1},
                  {gx, g.C, g.N * HW, HW, 1}, 0.0f, {HW, 4 * Cout * HW, g.C * HW}, Scatter{gx, g.C, g.H, g.W, OW, a, b});
    }
}
}  // namespace detail

// Whether conv2d_backward_input can add the gradient into gx (`adds`) rather than overwrite it: a 1x1 stride-1
// conv's one product over the batch (float, where tinyvid's GEMM runs), which then reads gx as C (beta 1). A
// bottleneck block's input gets its gradient from the block's first conv and from the shortcut; added in the
// product, the sum of the two costs no pass of its own (the autograd engine offers the shortcut's gradient: engine.hpp).
template <class T>
bool input_gradient_adds(const ConvGeometry& g) {
  if constexpr (!std::is_same_v<T, float>) return false;
  return choose_conv_algorithm(g) == ConvAlgorithm::Gemm1x1 && g.N * g.Cout * g.OHW() > 0 && use_own_gemm(active_isa()) &&
         !omp_in_parallel();
}

// gx (N x C x H x W) = the gradient of the input, from gy and w: overwritten, or, with `adds` (where
// input_gradient_adds), added to what gx holds.
template <class T>
void conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx, bool adds = false) {
  TV_CHECK(!adds || input_gradient_adds<T>(g), "conv2d_backward_input: this conv's path cannot add into gx");
  if (g.N * g.Cout * g.OHW() == 0) {
    std::fill(gx, gx + g.N * g.C * g.HW(), T(0));
    return;
  }
  const ConvAlgorithm algo = choose_conv_algorithm(g);
  if (algo == ConvAlgorithm::Winograd3x3) return winograd::backward_input(gy, g.N, g.C, g.H, g.W, g.ph, g.pw, w, g.Cout, gx);
  if (algo == ConvAlgorithm::ShiftedGemm && g.sw == 1) return detail::shifted_backward_input(g, gy, w, gx);
  if constexpr (std::is_same_v<T, float>)
    if (const Isa isa = active_isa(); detail::input_gradient_by_phases(g, isa))
      return detail::input_gradient_by_phases(isa, g, gy, w, gx);
  const bool pointwise = algo == ConvAlgorithm::Gemm1x1;
  const auto blocks = detail::blocks_for(g, sizeof(T));
  // Blocks of one image's tiles overlap in gx (col2im), so such tiles run in order within one work
  // item; blocks of whole images never overlap. A 1x1 conv's tiles write disjoint columns.
  const bool item_per_image = !pointwise && blocks.images_per_block == 1 && blocks.tiles_per_image > 1;
  const int64_t per_item = item_per_image ? blocks.tiles_per_image : 1;
  const detail::WeightOperand<T> weights_t(
      g.groups, [&](int64_t grp) { return MatrixRef<const T>{w + grp * g.Cog() * g.K(), g.K(), g.Cog(), 1, g.K()}; },  // W^T
      nullptr, g.N * g.OHW());
  if constexpr (std::is_same_v<T, float>)
    if (g.KH == 1 && g.KW == 1 && g.ph == 0 && g.pw == 0 && weights_t.on_own_gemm()) {
      // One product over the batch, as the forward. A strided conv's gradient falls on every sh-th row and sw-th
      // column: computed compact, then spread over gx with the zeros between, in one pass (a fill of gx and a
      // scatter per column block ran the 1x1/2 downsamples' input gradient at 220 GFLOP/s).
      const int64_t HW = g.OHW();
      float* out = pointwise ? gx : scratch<float>(g.N * g.C * HW, kScratchPadded);
      for (int64_t grp = 0; grp < g.groups; ++grp)
        weights_t.multiply_runs(grp, {gy + grp * g.Cog() * HW, g.Cog(), g.N * HW, HW, 1},
                                {out + grp * g.Cg() * HW, g.Cg(), g.N * HW, HW, 1}, {HW, g.Cout * HW, g.C * HW}, NoFinish{},
                                adds ? 1.0f : 0.0f);
      if (!pointwise) detail::spread_1x1_pixels(g, out, gx);
      return;
    }
  if (!pointwise) std::fill(gx, gx + g.N * g.C * g.HW(), T(0));
  parallel_for(0, blocks.items(g) / per_item, 1, [&](int64_t b, int64_t e) {
    for (int64_t it = b * per_item; it < e * per_item; ++it) {
      const auto blk = blocks.decode(g, it);
      const int64_t cols_n = blk.columns(), span = blk.j1 - blk.j0;
      const MatrixRef<const T> gyb = detail::gy_block(g, blk, gy);
      if (pointwise && blk.single_image()) {
        weights_t.multiply(blk.grp, gyb, {gx + (blk.n0 * g.C + blk.grp * g.Cg()) * g.HW() + blk.j0, g.Cg(), cols_n, g.HW(), 1});
        continue;
      }
      T* cols = scratch<T>(g.K() * cols_n, 0);
      weights_t.multiply(blk.grp, gyb, {cols, g.K(), cols_n, cols_n, 1});
      for (int64_t n = blk.n0; n < blk.n1; ++n) {
        T* gxg = gx + (n * g.C + blk.grp * g.Cg()) * g.HW();
        if (pointwise) {  // 1x1: the columns are the gradient, laid out as the input
          for (int64_t c = 0; c < g.Cg(); ++c) std::copy_n(cols + c * cols_n + (n - blk.n0) * span, span, gxg + c * g.HW() + blk.j0);
        } else {
          detail::col2im_tile(g, cols + (n - blk.n0) * span, blk.j0, blk.j1, gxg, cols_n);
        }
      }
    }
  });
}

// A weight gradient's work items are summed in at most this many runs of their own (conv2d_backward_weight), whose
// sums (but the first) take at most about this many elements of memory besides gw.
constexpr int64_t kWeightGradLeaves = 16;
constexpr int64_t kWeightGradSumElements = int64_t{1} << 20;

// gw (Cout x Cg x KH x KW, overwritten) = the gradient of the weight: fixed runs of work items, each summed into a
// sum of its own, the sums added in order at the end.
template <class T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  if (g.N * g.Cout * g.OHW() == 0) {
    std::fill(gw, gw + g.Cout * g.K(), T(0));
    return;
  }
  const ConvAlgorithm algo = choose_conv_algorithm(g);
  if (algo == ConvAlgorithm::Winograd3x3) return winograd::backward_weight(x, g.N, g.C, g.H, g.W, g.ph, g.pw, gy, g.Cout, gw);
  if (algo == ConvAlgorithm::ShiftedGemm) return detail::shifted_backward_weight(g, x, gy, gw);
  if constexpr (std::is_same_v<T, float>)
    if (const Isa isa = active_isa(); g.KH == 1 && g.KW == 1 && g.ph == 0 && g.pw == 0 && g.groups == 1 &&
                                      g.OHW() <= 64 && g.Cout % kMicroRows == 0 && use_own_gemm(isa) && !omp_in_parallel())
      return detail::pointwise_backward_weight_small_maps(isa, g, x, gy, gw);
  if constexpr (std::is_same_v<T, float>)
    if (g.KH == 1 && g.KW == 1 && g.ph == 0 && g.pw == 0 && (g.sh > 1 || g.sw > 1)) {
      // A strided 1x1 conv's weight gradient is the stride-1 one's over the pixels it reads, gathered once plane by
      // plane: column blocks that gathered their own read each input row a plane after the last, waiting on memory
      // row by row (im2col_tile: 9% of 1x1/2 256 -> 512 at 56 x 56's forward and backward).
      float* gathered = scratch<float>(g.N * g.C * g.OHW(), kScratchPadded);
      detail::gather_1x1_pixels(g, x, [&](int64_t n, int64_t c) { return gathered + (n * g.C + c) * g.OHW(); });
      ConvGeometry pixels = g;
      pixels.H = g.OH, pixels.W = g.OW, pixels.sh = pixels.sw = 1;
      return conv2d_backward_weight(pixels, static_cast<const float*>(gathered), gy, gw);
    }
  const bool pointwise = algo == ConvAlgorithm::Gemm1x1;
  const auto blocks = detail::blocks_for(g, sizeof(T));
  const int64_t items = blocks.items(g), wsize = g.Cout * g.K();
  // The items are summed in `leaves` fixed runs, each into a sum of its own (the first into gw itself), which the
  // threads claim as they come free (parallel_for); the sums are then added in order, so the result does not depend
  // on which thread ran which run. More runs than threads let the thread on a faster core take over a slower one's
  // (with one fixed share per thread the faster waited: 14-19% of the region's thread time in a TSN-R50 training
  // step), as many as the sums' memory allows (kWeightGradSumElements), a multiple of the thread count so that threads
  // of equal speed finish together. Each run's first product overwrites (beta 0): nothing is zeroed first.
  const int64_t threads = omp_in_parallel() ? 1 : std::min<int64_t>(get_num_threads(), items);
  const int64_t most = std::min({items, kWeightGradLeaves, 1 + kWeightGradSumElements / std::max<int64_t>(wsize, 1)});
  const int64_t leaves = threads * std::max<int64_t>(1, most / threads);
  AlignedVector<T> sums(static_cast<size_t>(leaves - 1) * wsize);  // (uninitialized: see CacheAligned)
  std::vector<char> started(static_cast<size_t>(leaves * g.groups), 0);  // [leaf][group]: summed into
  const auto phases = detail::use_column_phases(g) ? detail::split_column_phases(g, x) : nullptr;
  parallel_for(0, leaves, 1, [&](int64_t l0, int64_t l1) {
    for (int64_t leaf = l0; leaf < l1; ++leaf) {
      T* mine = leaf == 0 ? gw : sums.data() + (leaf - 1) * wsize;
      for (int64_t it = items * leaf / leaves; it < items * (leaf + 1) / leaves; ++it) {
        const auto blk = blocks.decode(g, it);
        const int64_t cols_n = blk.columns(), span = blk.j1 - blk.j0;
        const MatrixRef<const T> gyb = detail::gy_block(g, blk, gy);
        MatrixRef<T> gwg{mine + blk.grp * g.Cog() * g.K(), g.Cog(), g.K(), g.K(), 1};
        const T beta = std::exchange(started[leaf * g.groups + blk.grp], 1) ? T(1) : T(0);
        if (pointwise && blk.single_image()) {  // gy x^T
          gemm<T>(gyb, {x + (blk.n0 * g.C + blk.grp * g.Cg()) * g.HW() + blk.j0, cols_n, g.K(), 1, g.HW()}, gwg, beta);
          continue;
        }
        T* cols = scratch<T>(g.K() * cols_n, 0);
        for (int64_t n = blk.n0; n < blk.n1; ++n)
          detail::im2col_tile(g, x + (n * g.C + blk.grp * g.Cg()) * g.HW(), blk.j0, blk.j1, cols + (n - blk.n0) * span, cols_n,
                              detail::phases_of(g, phases, n, blk.grp));
        gemm<T>(gyb, {cols, cols_n, g.K(), 1, cols_n}, gwg, beta);  // gy cols^T
      }
    }
  });
  // The other runs' sums added in order, the elements split across threads; a group a run never reached is skipped,
  // and one the first run never reached starts from zero.
  const int64_t per_group = g.Cog() * g.K();
  parallel_for(0, wsize, kParallelGrain, [&](int64_t b, int64_t e) {
    for (int64_t i0 = b; i0 < e;) {  // run by run within one group
      const int64_t grp = i0 / per_group, i1 = std::min(e, (grp + 1) * per_group);
      if (!started[grp]) std::fill(gw + i0, gw + i1, T(0));
      for (int64_t leaf = 1; leaf < leaves; ++leaf) {
        if (!started[leaf * g.groups + grp]) continue;
        const T* p = sums.data() + (leaf - 1) * wsize;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) gw[i] += p[i];
      }
      i0 = i1;
    }
  });
}

// gb (Cout) = the gradient of the bias: gy (N x Cout x OH x OW, contiguous) summed over all but the channels.
template <class T>
void conv2d_backward_bias(const ConvGeometry& g, const T* gy, T* gb) {
  const Shape shape{g.N, g.Cout, g.OH, g.OW};
  sum(gy, shape, contiguous_strides(shape), {true, false, true, true}, gb);
}

}  // namespace tv::cpu
