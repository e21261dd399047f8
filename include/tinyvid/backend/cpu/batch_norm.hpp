#pragma once
// Batch normalization kernels over tensors viewed as channels x rest, with any strides (DNR normalizes
// a narrowed group of frames in place of a whole batch). Per-channel sums accumulate in double, over 16 lanes
// whose loops are marked `omp simd`: GCC 12 left them scalar (one float-to-double conversion and add at a time,
// 3-5x slower than the memory).
// The batch_norm_* kernels at the end are what backend/batch_norm.hpp dispatches to: each works on the
// statistics groups of a call (dim 0 cut into groups of `group_rows` entries, the last one possibly smaller;
// group_rows = the whole dim 0 for one group), with the per-group statistics as G x C doubles.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tinyvid/backend/cpu/loops.hpp"
#include "tinyvid/backend/cpu/reduce.hpp"
#include "tinyvid/backend/functors.hpp"
#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

// How K operands of one shape are walked channel by channel: for each channel, runs of `inner`
// elements (stride step[k]) that start at run offsets shared by coalescing all K layouts together.
template <size_t K>
struct ChannelWalk {
  int64_t channels = 0, inner = 1;
  std::array<int64_t, K> channel_stride{}, step{};
  std::array<std::vector<int64_t>, K> runs;

  ChannelWalk(const Shape& shape, const std::array<Shape, K>& strides, int64_t channel_dim) {
    channels = shape[channel_dim];
    Shape rest;
    std::array<Shape, K> rs;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (static_cast<int64_t>(d) == channel_dim) continue;
      rest.push_back(shape[d]);
      for (size_t k = 0; k < K; ++k) rs[k].push_back(strides[k][d]);
    }
    for (size_t k = 0; k < K; ++k) channel_stride[k] = strides[k][channel_dim];
    coalesce<K>(rest, rs);
    step.fill(1);
    if (!rest.empty()) {
      inner = rest.back();
      for (size_t k = 0; k < K; ++k) {
        step[k] = rs[k].back();
        rs[k].pop_back();
      }
      rest.pop_back();
    }
    const int64_t n = numel_of(rest);
    for (size_t k = 0; k < K; ++k) runs[k].assign(n, 0);
    for (int64_t i = 0; i < n; ++i) {
      int64_t r = i;
      for (size_t d = rest.size(); d-- > 0;) {
        const int64_t idx = r % rest[d];
        r /= rest[d];
        for (size_t k = 0; k < K; ++k) runs[k][i] += idx * rs[k][d];
      }
    }
  }
  int64_t per_channel() const { return static_cast<int64_t>(runs[0].size()) * inner; }
  int64_t num_runs() const { return static_cast<int64_t>(runs[0].size()); }
  template <class T>
  T* run(size_t k, T* base, int64_t c, int64_t r) const {
    return base + c * channel_stride[k] + runs[k][r];
  }
};

// The kernels below take the channels in blocks of up to kChannelBlock and walk a block run by run, its channels
// inside: in NCHW a block's runs of one image lie side by side, one stretch of memory, where channel by channel every
// run (one image's map) was a stream of its own that the prefetchers met cold (bench on cold data, 8 images, 2 cores:
// the gradient sums of 512 x 28 x 28 at 22 GB/s channel by channel, 42 by blocks, 43 for reading the same bytes in
// order). Each channel's sums still run over its runs in order, so the results are the channel-by-channel ones.
constexpr int64_t kChannelBlock = 16;

// The sums' lanes run in the data's own type over spans of this many vectors of 16 (16 terms per lane), then are
// added into double lanes. Widening every element to double made the passes bound by the conversions, not by
// memory (8 x 256 x 56 x 56, 2 cores, warm: the gradient sums 2.2-2.6 ms, 20-23 GB/s, against 1.4-1.55 ms so;
// the statistics 0.75-0.80 ms against 0.43-0.45). A span's float sum of 16 terms rounds by at most 16 float ulps
// (about 1e-6) of its terms' magnitudes, the order of the float inputs' own rounding; the spans' sums stay double.
constexpr int64_t kSumSpan = 16;

// Channels per block: kChannelBlock, fewer where that would leave a thread without a block.
inline int64_t channel_block_width(int64_t channels) {
  return std::clamp<int64_t>((channels + get_num_threads() - 1) / get_num_threads(), 1, kChannelBlock);
}

// f(c0, c1) for blocks of channels [c0, c1) (channel_block_width), in parallel.
template <size_t K, class F>
void for_channel_blocks(const ChannelWalk<K>& w, F&& f) {
  const int64_t width = channel_block_width(w.channels);
  parallel_for(0, (w.channels + width - 1) / width, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) f(blk * width, std::min(w.channels, (blk + 1) * width));
  });
}

// f(c0, c1, r0, r1) for runs [r0, r1) of blocks of channels [c0, c1), in parallel, for the passes that keep no
// per-channel sums: with few blocks (64 channels are 4) their runs are cut in parts too, so that a thread on a slower
// core does not finish last with a block's worth of work while the other waits.
template <size_t K, class F>
void for_channel_pieces(const ChannelWalk<K>& w, F&& f) {
  if (w.channels == 0) return;  // (no blocks to cut the runs by)
  const int64_t width = channel_block_width(w.channels), blocks = (w.channels + width - 1) / width;
  const int64_t parts = std::clamp<int64_t>((8 * get_num_threads() + blocks - 1) / blocks, 1, std::max<int64_t>(1, w.num_runs()));
  parallel_for(0, blocks * parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t blk = item / parts, part = item % parts;
      f(blk * width, std::min(w.channels, (blk + 1) * width), w.num_runs() * part / parts, w.num_runs() * (part + 1) / parts);
    }
  });
}

// Per-channel mean and biased variance in one pass: sums of (x - k) and (x - k)^2 accumulated over
// independent lanes (in spans of kSumSpan, then in double), with k the channel's first value. The shift keeps
// E[d^2] - E[d]^2 from cancelling when a channel's mean is large against its spread (PyTorch uses
// Welford's update for the same reason); a test checks a mean 1e6 times the spread.
template <class T>
void channel_stats(const T* x, const ChannelWalk<1>& w, double* mean, double* var) {
  const int64_t m = w.per_channel();
  for_channel_blocks(w, [&](int64_t c0, int64_t c1) {
    constexpr int64_t L = 16, kSpan = kSumSpan * L;
    double s[kChannelBlock][L] = {}, ss[kChannelBlock][L] = {};
    double s_tail[kChannelBlock] = {}, ss_tail[kChannelBlock] = {}, k[kChannelBlock] = {};
    for (int64_t c = c0; c < c1; ++c) k[c - c0] = m > 0 ? static_cast<double>(*w.run(0, x, c, 0)) : 0.0;
    for (int64_t r = 0; r < w.num_runs(); ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b = c - c0;
        const T* p = w.run(0, x, c, r);
        const double kc = k[b];
        const T k_t = static_cast<T>(kc);
        int64_t i = 0;
        if (w.step[0] == 1)
          for (const int64_t vec_end = w.inner - w.inner % L; i < vec_end;) {
            T fs[L] = {}, fss[L] = {};
            for (const int64_t span_end = std::min(vec_end, i + kSpan); i < span_end; i += L)
#pragma omp simd
              for (int64_t l = 0; l < L; ++l) {
                const T v = p[i + l] - k_t;
                fs[l] += v;
                fss[l] += v * v;
              }
#pragma omp simd
            for (int64_t l = 0; l < L; ++l) {
              s[b][l] += fs[l];
              ss[b][l] += fss[l];
            }
          }
        for (; i < w.inner; ++i) {
          const double v = static_cast<double>(p[i * w.step[0]]) - kc;
          s_tail[b] += v;
          ss_tail[b] += v * v;
        }
      }
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = c - c0;
      for (int64_t l = 0; l < L; ++l) {
        s_tail[b] += s[b][l];
        ss_tail[b] += ss[b][l];
      }
      const double d = s_tail[b] / m;
      mean[c] = k[b] + d;
      // Rounding can leave a tiny negative variance: clamp it, but let a NaN (a NaN or infinite input) through,
      // as PyTorch's running_var shows it; std::max(0.0, NaN) would return 0.
      const double v = ss_tail[b] / m - d * d;
      var[c] = v < 0.0 ? 0.0 : v;
    }
  });
}

// y = x * scale[c] + shift[c]: normalization and affine folded into two numbers per channel; then, in the same
// pass, + residual (operand 2, when K is 3) and ReLU, each in the order and arithmetic of the ops it replaces (add,
// relu), so the result is theirs bit for bit. Operand 0 is y, operand 1 is x.
template <class T, size_t K>
void channel_affine(T* y, const T* x, const T* residual, const ChannelWalk<K>& w, const T* scale, const T* shift,
                    bool relu) {
  static_assert(K == 2 || K == 3);
  constexpr bool has_residual = K == 3;
  auto pass = [&](auto relu_after) {
    for_channel_pieces(w, [&](int64_t c0, int64_t c1, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) {
          const T a = scale[c], s = shift[c];
          T* q = w.run(0, y, c, r);
          const T* p = w.run(1, x, c, r);
          const T* res = has_residual ? w.run(K - 1, residual, c, r) : nullptr;
          auto at = [&](int64_t i, int64_t step0, int64_t step1, int64_t step2) {
            T v = fn::batch_norm_affine(p[i * step1], a, s);
            if constexpr (has_residual) v = v + res[i * step2];
            if constexpr (relu_after) v = v <= T(0) ? T(0) : v;
            q[i * step0] = v;
          };
          const int64_t step2 = has_residual ? w.step[K - 1] : 1;
          if (w.step[0] == 1 && w.step[1] == 1 && step2 == 1) {
#pragma omp simd
            for (int64_t i = 0; i < w.inner; ++i) at(i, 1, 1, 1);
          } else {
            for (int64_t i = 0; i < w.inner; ++i) at(i, w.step[0], w.step[1], step2);
          }
        }
    });
  };
  if (relu) pass(std::true_type{});
  else pass(std::false_type{});
}

// The ReLU a batch norm's forward applied to its output (batch_norm's relu option without a residual), folded into
// the backward: the gradient reaching the batch norm is gy where batch_norm_affine(x, scale, shift) <= 0 is false
// (ReluGrad's test on y), recomputed from x with the forward's own per-channel scale and shift, so that the backward's
// passes read gy and x as they would without the ReLU. A separate ReLU backward read gy and y and wrote that gradient,
// which both passes read back: three of the eight reads and writes of the activation's size. scale null: no ReLU.
template <class T>
struct ReluAfter {
  const T* scale = nullptr;
  const T* shift = nullptr;
  ReluAfter at(int64_t offset) const { return scale ? ReluAfter{scale + offset, shift + offset} : ReluAfter{}; }
};

// gy where the ReLU (if any) let it through, else 0: the ReLU's input gradient, by ReluGrad's test. (One expression:
// written as an if constexpr around ReluGrad's call, GCC 12 left the sums' loop over it scalar, 7x slower.)
template <bool Masked, class T>
inline T through_relu(T g, T x, T scale, T shift) {
  return Masked && fn::batch_norm_affine(x, scale, shift) <= T(0) ? T(0) : g;
}

// The ReLU after a residual (batch_norm's relu with a residual), folded into the backward's sums pass: its mask is
// the forward's output, out <= 0 (ReluGrad's test), and the gradient it lets through, the residual's too, is written
// to g as the pass reads it. A ReLU backward of its own read gy and out and wrote g, which the sums pass then read
// back: one of the eight reads and writes of the activation's size that the two passes made. out null: no such ReLU.
template <class T>
struct ReluOut {
  const T* out = nullptr;
  T* g = nullptr;
};

// Per-channel sums of gy and of gy * (x - mean), over independent lanes as in channel_stats: one accumulator
// each was bound by the add latency (42 of a TSN-R50 training step's 1.18 s, the statistics pass 19); gy after
// the ReLU's mask where relu says so. Operand 0 is gy, operand 1 is x; with K = 4, gy passes the ReLU of
// ReluOut first (operand 2 its output, operand 3 the gradient written). The spans take x - mean with the mean
// rounded to T; the sums then add (mean_t - mean) * sum(gy), so that the result is the sum about the exact mean.
template <class T, size_t K>
void channel_grad_sums(const T* gy, const T* x, const ChannelWalk<K>& w, const double* mean, double* sum_gy,
                       double* sum_gy_xc, ReluAfter<T> relu = {}, ReluOut<T> relu_out = {}) {
  static_assert(K == 2 || K == 4);
  constexpr bool kOut = K == 4;
  auto pass = [&](auto masked) {
    constexpr bool Masked = decltype(masked)::value;
    for_channel_blocks(w, [&](int64_t c0, int64_t c1) {
      constexpr int64_t L = 16, kSpan = kSumSpan * L;
      double s[kChannelBlock][L] = {}, sx[kChannelBlock][L] = {};
      double s_tail[kChannelBlock] = {}, sx_tail[kChannelBlock] = {};
      for (int64_t r = 0; r < w.num_runs(); ++r)
        for (int64_t c = c0; c < c1; ++c) {
          const int64_t b = c - c0;
          const double mu = mean[c];
          const T mu_t = static_cast<T>(mu);
          const T ra = Masked ? relu.scale[c] : T(0), rs = Masked ? relu.shift[c] : T(0);
          const T* g = w.run(0, gy, c, r);
          const T* p = w.run(1, x, c, r);
          const T* o = kOut ? w.run(K - 2, relu_out.out, c, r) : nullptr;
          T* q = kOut ? w.run(K - 1, relu_out.g, c, r) : nullptr;
          // gy's element i (each operand's step given) through whichever ReLU there is; ReluOut's also writes it to q.
          auto through = [&](int64_t i, int64_t step_g, int64_t step_x, int64_t step_o, int64_t step_q) {
            if constexpr (kOut) {
              const T gv = fn::ReluGrad{}(g[i * step_g], o[i * step_o]);
              q[i * step_q] = gv;
              return gv;
            } else {
              return through_relu<Masked>(g[i * step_g], p[i * step_x], ra, rs);
            }
          };
          int64_t i = 0;
          bool contiguous = w.step[0] == 1 && w.step[1] == 1;
          if constexpr (kOut) contiguous = contiguous && w.step[2] == 1 && w.step[3] == 1;
          if (contiguous)
            for (const int64_t vec_end = w.inner - w.inner % L; i < vec_end;) {
              T fs[L] = {}, fsx[L] = {};
              for (const int64_t span_end = std::min(vec_end, i + kSpan); i < span_end; i += L)
#pragma omp simd
                for (int64_t l = 0; l < L; ++l) {
                  const T gv = through(i + l, 1, 1, 1, 1);
                  fs[l] += gv;
                  fsx[l] += gv * (p[i + l] - mu_t);
                }
#pragma omp simd
              for (int64_t l = 0; l < L; ++l) {
                s[b][l] += fs[l];
                sx[b][l] += fsx[l];
              }
            }
          const int64_t step_o = kOut ? w.step[K - 2] : 0, step_q = kOut ? w.step[K - 1] : 0;
          for (; i < w.inner; ++i) {
            const double gv = through(i, w.step[0], w.step[1], step_o, step_q);
            s_tail[b] += gv;
            sx_tail[b] += gv * (p[i * w.step[1]] - mu);
          }
        }
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b = c - c0;
        double sv = 0, sxv = 0;
        for (int64_t l = 0; l < L; ++l) {
          sv += s[b][l];
          sxv += sx[b][l];
        }
        sum_gy[c] = s_tail[b] + sv;
        sum_gy_xc[c] = sx_tail[b] + sxv + (static_cast<double>(static_cast<T>(mean[c])) - mean[c]) * sv;
      }
    });
  };
  if constexpr (kOut) pass(std::false_type{});  // (ReluOut's ReLU is the only one)
  else if (relu.scale) pass(std::true_type{});
  else pass(std::false_type{});
}

// gx = a[c] * gy + bx[c] * x + k[c]: batch norm's input gradient, rearranged to one fused pass; gy after the ReLU's
// mask where relu says so. Operand 0 is gx, 1 is gy, 2 is x.
template <class T>
void channel_grad_input(T* gx, const T* gy, const T* x, const ChannelWalk<3>& w, const T* a, const T* bx, const T* k,
                        ReluAfter<T> relu = {}) {
  auto pass = [&](auto masked) {
    constexpr bool Masked = decltype(masked)::value;
    for_channel_pieces(w, [&](int64_t c0, int64_t c1, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) {
          const T ac = a[c], bc = bx[c], kc = k[c];
          const T ra = Masked ? relu.scale[c] : T(0), rs = Masked ? relu.shift[c] : T(0);
          T* q = w.run(0, gx, c, r);
          const T* g = w.run(1, gy, c, r);
          const T* p = w.run(2, x, c, r);
          if (w.step[0] == 1 && w.step[1] == 1 && w.step[2] == 1) {
#pragma omp simd
            for (int64_t i = 0; i < w.inner; ++i) q[i] = ac * through_relu<Masked>(g[i], p[i], ra, rs) + bc * p[i] + kc;
          } else {
            for (int64_t i = 0; i < w.inner; ++i) {
              const T pv = p[i * w.step[2]];
              q[i * w.step[0]] = ac * through_relu<Masked>(g[i * w.step[1]], pv, ra, rs) + bc * pv + kc;
            }
          }
        }
    });
  };
  if (relu.scale) pass(std::true_type{});
  else pass(std::false_type{});
}

// ---- batch norm over statistics groups ----

// Groups of dim 0 (batch entries) with `group_rows` each, the last one smaller; 0 rows: one empty group.
inline int64_t stats_group_count(int64_t batch, int64_t group_rows) {
  return group_rows > 0 ? (batch + group_rows - 1) / group_rows : 1;
}
inline int64_t stats_group_rows(int64_t batch, int64_t group_rows, int64_t g) {
  return std::min(group_rows, batch - g * group_rows);
}
inline Shape with_rows(Shape s, int64_t rows) {
  s[0] = rows;
  return s;
}

// mean, var (G x C): each group's per-channel mean and biased variance.
template <class T>
void batch_norm_stats(const T* x, const Shape& shape, const Shape& strides, int64_t channel_dim, int64_t group_rows,
                      double* mean, double* var) {
  const int64_t C = shape[channel_dim], G = stats_group_count(shape[0], group_rows);
  for (int64_t g = 0; g < G; ++g)
    channel_stats(x + g * group_rows * strides[0],
                  ChannelWalk<1>(with_rows(shape, stats_group_rows(shape[0], group_rows, g)), {strides}, channel_dim),
                  mean + g * C, var + g * C);
}

// mean, var (C) = the running statistics, in double (evaluation mode).
template <class T>
void batch_norm_running_stats(const T* running_mean, int64_t rm_stride, const T* running_var, int64_t rv_stride,
                              int64_t C, double* mean, double* var) {
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = running_mean[c * rm_stride];
    var[c] = running_var[c * rv_stride];
  }
}

// running = (1 - momentum) running + momentum batch, in place, with the batch's statistics the groups'
// (mean, unbiased variance) averaged, weighted by their sizes. num_batches_tracked (may be null) counts
// one more batch first; a negative momentum is then a cumulative average, 1 / num_batches_tracked.
template <class T>
void batch_norm_update_running(const double* mean, const double* var, int64_t C, int64_t batch, int64_t group_rows,
                               int64_t per_row, double momentum, T* running_mean, int64_t rm_stride, T* running_var,
                               int64_t rv_stride, T* num_batches_tracked) {
  if (num_batches_tracked) {
    *num_batches_tracked = *num_batches_tracked + T(1);
    if (momentum < 0) momentum = 1.0 / static_cast<double>(*num_batches_tracked);
  }
  const int64_t G = stats_group_count(batch, group_rows), M = batch * per_row;
  for (int64_t c = 0; c < C; ++c) {
    double batch_mean = 0, batch_var = 0;
    for (int64_t g = 0; g < G; ++g) {
      const double m = static_cast<double>(stats_group_rows(batch, group_rows, g) * per_row);
      batch_mean += m / M * mean[g * C + c];
      batch_var += m / M * var[g * C + c] * m / (m - 1);  // each group's unbiased variance
    }
    T& rm = running_mean[c * rm_stride];
    T& rv = running_var[c * rv_stride];
    rm = static_cast<T>((1 - momentum) * rm + momentum * batch_mean);
    rv = static_cast<T>((1 - momentum) * rv + momentum * batch_var);
  }
}

// Per group and channel (G x C): invstd, and the normalization and affine folded into y = x * scale + shift.
// weight and bias may be null (1 and 0).
template <class T>
void batch_norm_coefficients(const double* mean, const double* var, int64_t G, int64_t C, const T* weight,
                             int64_t w_stride, const T* bias, int64_t b_stride, double eps, double* invstd, T* scale,
                             T* shift) {
  for (int64_t i = 0; i < G * C; ++i) {
    const int64_t c = i % C;
    const double is = 1.0 / std::sqrt(var[i] + eps);
    const double wv = weight ? weight[c * w_stride] : 1.0;
    const double bv = bias ? bias[c * b_stride] : 0.0;
    invstd[i] = is;
    scale[i] = static_cast<T>(wv * is);
    shift[i] = static_cast<T>(bv - mean[i] * wv * is);
  }
}

// y = x * scale[g, c] + shift[g, c] (+ residual) (then ReLU), group by group; y, x and the residual (may be null) of
// one shape, any strides.
template <class T>
void batch_norm_apply(T* y, const Shape& y_strides, const T* x, const Shape& shape, const Shape& x_strides,
                      int64_t channel_dim, int64_t group_rows, const T* scale, const T* shift, const T* residual,
                      const Shape& r_strides, bool relu) {
  const int64_t C = shape[channel_dim], G = stats_group_count(shape[0], group_rows);
  for (int64_t g = 0; g < G; ++g) {
    const Shape gshape = with_rows(shape, stats_group_rows(shape[0], group_rows, g));
    T* yg = y + g * group_rows * y_strides[0];
    const T* xg = x + g * group_rows * x_strides[0];
    if (residual)
      channel_affine(yg, xg, residual + g * group_rows * r_strides[0],
                     ChannelWalk<3>(gshape, {y_strides, x_strides, r_strides}, channel_dim), scale + g * C, shift + g * C,
                     relu);
    else
      channel_affine(yg, xg, static_cast<const T*>(nullptr), ChannelWalk<2>(gshape, {y_strides, x_strides}, channel_dim),
                     scale + g * C, shift + g * C, relu);
  }
}

// The gradients of batch_norm from gy (x's shape, any strides): gx (may be null; x's shape, gx_strides), gw and
// gb (C each; may be null). mean and invstd are the forward's (G x C); weight may be null (1). With
// use_batch_stats the statistics depend on x too (training); else they are constants (the running ones). With
// relu_scale and relu_shift (G x C, the forward's scale and shift; may be null), gy is the gradient of the ReLU that
// followed the batch norm (ReluAfter). With relu_out (x's shape, ro_strides; may be null), gy is the gradient of the
// ReLU after a residual whose output relu_out is, and g_out (go_strides) gets the gradient it lets through (ReluOut).
template <class T>
void batch_norm_backward(const T* gy, const Shape& gy_strides, const T* x, const Shape& shape, const Shape& x_strides,
                         int64_t channel_dim, int64_t group_rows, int64_t per_row, const double* mean,
                         const double* invstd, const T* weight, int64_t w_stride, bool use_batch_stats, T* gx,
                         const Shape& gx_strides, T* gw, T* gb, const T* relu_scale, const T* relu_shift,
                         const T* relu_out, const Shape& ro_strides, T* g_out, const Shape& go_strides) {
  const int64_t C = shape[channel_dim], G = stats_group_count(shape[0], group_rows);
  const ReluAfter<T> relu{relu_scale, relu_shift};
  std::vector<double> sum_gy(C), sum_gy_xc(C), dw(C), db(C);
  std::vector<T> a(C), bx(C), k(C);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t rows = stats_group_rows(shape[0], group_rows, g);
    const Shape gshape = with_rows(shape, rows);
    const T* gy_g = gy + g * group_rows * gy_strides[0];
    const T* x_g = x + g * group_rows * x_strides[0];
    const double* mean_g = mean + g * C;
    const double* invstd_g = invstd + g * C;
    if (relu_out) {  // the input gradient then reads the ReLU's gradient, written by the sums pass
      T* g_g = g_out + g * group_rows * go_strides[0];
      channel_grad_sums(gy_g, x_g,
                        ChannelWalk<4>(gshape, {gy_strides, x_strides, ro_strides, go_strides}, channel_dim), mean_g,
                        sum_gy.data(), sum_gy_xc.data(), {}, ReluOut<T>{relu_out + g * group_rows * ro_strides[0], g_g});
      gy_g = g_g;
    } else {
      channel_grad_sums(gy_g, x_g, ChannelWalk<2>(gshape, {gy_strides, x_strides}, channel_dim), mean_g, sum_gy.data(),
                        sum_gy_xc.data(), relu.at(g * C));
    }
    for (int64_t c = 0; c < C; ++c) {
      dw[c] += sum_gy_xc[c] * invstd_g[c];
      db[c] += sum_gy[c];
    }
    if (!gx) continue;
    const double m = static_cast<double>(rows * per_row);
    for (int64_t c = 0; c < C; ++c) {
      const double is = invstd_g[c];
      const double wc = weight ? weight[c * w_stride] : 1.0;
      a[c] = static_cast<T>(wc * is);
      if (use_batch_stats) {  // the batch statistics depend on x too
        const double is3 = is * is * is;
        bx[c] = static_cast<T>(-wc * is3 * sum_gy_xc[c] / m);
        k[c] = static_cast<T>(-wc * is * sum_gy[c] / m + wc * is3 * sum_gy_xc[c] * mean_g[c] / m);
      } else {
        bx[c] = T(0);
        k[c] = T(0);
      }
    }
    channel_grad_input(gx + g * group_rows * gx_strides[0], gy_g, x_g,
                       ChannelWalk<3>(gshape, {gx_strides, relu_out ? go_strides : gy_strides, x_strides}, channel_dim),
                       a.data(), bx.data(), k.data(), relu.at(g * C));
  }
  if (gw)
    for (int64_t c = 0; c < C; ++c) gw[c] = static_cast<T>(dw[c]);
  if (gb)
    for (int64_t c = 0; c < C; ++c) gb[c] = static_cast<T>(db[c]);
}

}  // namespace tv::cpu
