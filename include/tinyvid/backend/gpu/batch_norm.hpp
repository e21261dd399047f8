#pragma once
// The CUDA backend's batch norm (declared in backend/cuda.hpp), the semantics of backend/cpu/batch_norm.hpp:
// statistics in double over the statistics groups of dim 0, channels in any dim, any strides. A ResNet layer
// has few channels (64..2048) and up to ~800k values each, so the per-(group, channel) sums are cut into
// pieces as in gpu/reduce.hpp: piece p of a sum takes its values p, p + pieces, ... (neighbouring threads
// read neighbouring values), a second launch adds each sum's pieces in order. The number of pieces depends
// on the sizes alone, so the results are the same for any grid. The running statistics and
// num_batches_tracked are updated on the device: nothing is read back to the host.
#include <array>
#include <cmath>

#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/functors.hpp"
#include "tinyvid/backend/gpu/elementwise.hpp"
#include "tinyvid/backend/gpu/launch.hpp"
#include "tinyvid/backend/gpu/reduce.hpp"
#include "tinyvid/core/storage.hpp"

namespace tv::cuda {

// Groups of dim 0 with `group_rows` entries each, the last one smaller; 0 rows: one empty group.
inline int64_t bn_group_count(int64_t batch, int64_t group_rows) {
  return group_rows > 0 ? (batch + group_rows - 1) / group_rows : 1;
}
TV_HOST_DEVICE inline int64_t bn_group_rows(int64_t batch, int64_t group_rows, int64_t g) {
  const int64_t left = batch - g * group_rows;
  return group_rows < left ? group_rows : left;
}

// The values of K operands (one shape) by channel c and statistics group g: value e of (g, c) is element
// g * group_elems + e, in row-major order, of the shape without the channel dim (`rest`). The rest's last
// dim after merging is walked with a step, the others (runs) through an Indexer.
template <int K>
struct ChannelGroups {
  Indexer<K> runs;
  int64_t inner = 1;  // values per run
  int64_t step[K] = {}, channel_stride[K] = {};
  int64_t C = 0, G = 1, group_elems = 0, total = 0;

  TV_HOST_DEVICE int64_t count(int64_t g) const {
    const int64_t left = total - g * group_elems;
    return group_elems < left ? group_elems : left;
  }
  // off = the offsets of element q of the rest in channel c.
  TV_HOST_DEVICE void offsets(int64_t c, int64_t q, int64_t (&off)[K]) const {
    const int64_t r = q / inner, j = q - r * inner;
    runs.offsets(r, off);
    for (int k = 0; k < K; ++k) off[k] += c * channel_stride[k] + j * step[k];
  }
};

template <int K>
ChannelGroups<K> channel_groups(const Shape& shape, const std::array<Shape, K>& strides, int64_t channel_dim,
                                int64_t group_rows, const char* op) {
  ChannelGroups<K> w;
  Shape rest;
  std::array<Shape, K> rs;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (static_cast<int64_t>(d) == channel_dim) continue;
    rest.push_back(shape[d]);
    for (int k = 0; k < K; ++k) rs[k].push_back(strides[k][d]);
  }
  for (int k = 0; k < K; ++k) w.channel_stride[k] = strides[k][channel_dim];
  w.C = shape[channel_dim];
  w.G = bn_group_count(shape[0], group_rows);
  w.total = numel_of(rest);
  // A group is whole rows of the rest: groups need the channels outside dim 0 (ops/batch_norm.hpp checks it).
  // 0 rows make one empty group, as on the CPU.
  const int64_t batch = shape[0], rows = group_rows < batch ? group_rows : batch;
  w.group_elems = channel_dim == 0 ? w.total : batch > 0 ? rows * (w.total / batch) : 0;
  coalesce<K>(rest, rs);
  if (!rest.empty()) {
    w.inner = rest.back();
    for (int k = 0; k < K; ++k) {
      w.step[k] = rs[k].back();
      rs[k].pop_back();
    }
    rest.pop_back();
  }
  w.runs = make_indexer<K>(rest, rs, op);
  return w;
}

// Walks values e = first, first + jump, ... < end of (g, c) (e relative to the group's start), keeping the run's
// offsets between steps: a division only when a step leaves the run.
template <int K>
struct GroupCursor {
  const ChannelGroups<K>& w;
  int64_t c, base, r, j;
  int64_t run[K];
  TV_HOST_DEVICE GroupCursor(const ChannelGroups<K>& walk, int64_t g, int64_t ch, int64_t first)
      : w(walk), c(ch), base(g * walk.group_elems) {
    const int64_t q = base + first;
    r = q / w.inner;
    j = q - r * w.inner;
    locate();
  }
  TV_HOST_DEVICE void locate() {
    w.runs.offsets(r, run);
    for (int k = 0; k < K; ++k) run[k] += c * w.channel_stride[k];
  }
  TV_HOST_DEVICE int64_t at(int k) const { return run[k] + j * w.step[k]; }
  TV_HOST_DEVICE void advance(int64_t jump) {
    j += jump;
    if (j >= w.inner) {
      r += j / w.inner;
      j %= w.inner;
      locate();
    }
  }
};

// The shift of channel c's sums in group g: its first value (0 for an empty group), as on the CPU, so that
// E[d^2] - E[d]^2 does not cancel when the mean is large against the spread.
template <class T>
TV_HOST_DEVICE double bn_shift(const ChannelGroups<1>& w, const T* x, int64_t g, int64_t c) {
  if (w.count(g) == 0) return 0.0;
  int64_t off[1];
  w.offsets(c, g * w.group_elems, off);
  return static_cast<double>(x[off[0]]);
}

// Loads a thread issues before it adds them up: a GPU thread waits for a load only where it uses the value, so
// these are in flight together.
inline constexpr int kBnLoads = 4;

// How many pieces each (group, channel) sum of up to `elements` values is cut into: reduce.hpp's choice, at most
// 1024, as the second launch has one thread per sum, which adds its pieces one after another.
inline int64_t bn_pieces(int64_t outputs, int64_t elements) {
  const int64_t p = sum_pieces(outputs, elements);
  return p < 1024 ? p : 1024;
}

// partial[p * outputs + o] and partial[(pieces + p) * outputs + o]: piece p's sums of (x - k) and (x - k)^2
// for output o = g * C + c.
template <class T>
struct BnStatsPiecesKernel {
  ChannelGroups<1> w;
  const T* x;
  int64_t pieces;
  double* partial;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t outputs = w.G * w.C;
    for (int64_t i = t.global(); i < outputs * pieces; i += t.stride()) {
      const int64_t o = i / pieces, p = i - o * pieces, g = o / w.C, c = o - g * w.C;
      const int64_t n = w.count(g);
      const double k = bn_shift(w, x, g, c);
      double s = 0.0, ss = 0.0;
      if (p < n) {
        GroupCursor<1> cur(w, g, c, p);
        for (int64_t e = p; e < n; e += kBnLoads * pieces) {
          T v[kBnLoads];
          for (int u = 0; u < kBnLoads; ++u)
            if (e + u * pieces < n) {
              v[u] = x[cur.at(0)];
              cur.advance(pieces);
            }
          for (int u = 0; u < kBnLoads; ++u)
            if (e + u * pieces < n) {
              const double d = static_cast<double>(v[u]) - k;
              s += d;
              ss += d * d;
            }
        }
      }
      partial[p * outputs + o] = s;
      partial[(pieces + p) * outputs + o] = ss;
    }
  }
};

template <class T>
struct BnStatsFinishKernel {
  ChannelGroups<1> w;
  const T* x;
  int64_t pieces;
  const double* partial;
  double* mean;
  double* var;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t outputs = w.G * w.C;
    for (int64_t o = t.global(); o < outputs; o += t.stride()) {
      const int64_t g = o / w.C, c = o - g * w.C;
      double s = 0.0, ss = 0.0;
      for (int64_t p = 0; p < pieces; ++p) {
        s += partial[p * outputs + o];
        ss += partial[(pieces + p) * outputs + o];
      }
      const double m = static_cast<double>(w.count(g));
      const double d = s / m;
      mean[o] = bn_shift(w, x, g, c) + d;
      // Clamps a tiny negative variance left by rounding, but lets a NaN through (v < 0 is false for it).
      const double v = ss / m - d * d;
      var[o] = v < 0.0 ? 0.0 : v;
    }
  }
};

template <class T>
void batch_norm_stats(const T* x, const Shape& shape, const Shape& strides, int64_t channel_dim, int64_t group_rows,
                      double* mean, double* var) {
  const ChannelGroups<1> w = channel_groups<1>(shape, {strides}, channel_dim, group_rows, "batch_norm");
  const int64_t outputs = w.G * w.C;
  if (outputs == 0) return;
  const int64_t pieces = bn_pieces(outputs, w.count(0));
  Storage<double> partial(2 * pieces * outputs, Device::CUDA);
  launch_n("batch_norm", outputs * pieces, BnStatsPiecesKernel<T>{w, x, pieces, partial.data()});
  launch_n("batch_norm", outputs, BnStatsFinishKernel<T>{w, x, pieces, partial.data(), mean, var});
}

template <class T>
struct BnRunningStatsKernel {
  const T* running_mean;
  int64_t rm_stride;
  const T* running_var;
  int64_t rv_stride, C;
  double* mean;
  double* var;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t c = t.global(); c < C; c += t.stride()) {
      mean[c] = static_cast<double>(running_mean[c * rm_stride]);
      var[c] = static_cast<double>(running_var[c * rv_stride]);
    }
  }
};

template <class T>
void batch_norm_running_stats(const T* running_mean, int64_t rm_stride, const T* running_var, int64_t rv_stride,
                              int64_t C, double* mean, double* var) {
  launch_n("batch_norm", C, BnRunningStatsKernel<T>{running_mean, rm_stride, running_var, rv_stride, C, mean, var});
}

// One thread: num_batches_tracked counts the batch, before the update reads it.
template <class T>
struct BnCountBatchKernel {
  T* num_batches_tracked;
  TV_HOST_DEVICE void operator()(Thread t) const {
    if (t.global() == 0) *num_batches_tracked = *num_batches_tracked + T(1);
  }
};

template <class T>
struct BnUpdateRunningKernel {
  const double* mean;
  const double* var;
  int64_t C, batch, group_rows, per_row, G;
  double momentum;
  T* running_mean;
  int64_t rm_stride;
  T* running_var;
  int64_t rv_stride;
  const T* num_batches_tracked;  // counted already; null: none
  TV_HOST_DEVICE void operator()(Thread t) const {
    double mom = momentum;
    if (num_batches_tracked && mom < 0) mom = 1.0 / static_cast<double>(*num_batches_tracked);  // cumulative
    const int64_t M = batch * per_row;
    for (int64_t c = t.global(); c < C; c += t.stride()) {
      double batch_mean = 0, batch_var = 0;
      for (int64_t g = 0; g < G; ++g) {  // the groups' (mean, unbiased variance), weighted by their sizes
        const double m = static_cast<double>(bn_group_rows(batch, group_rows, g) * per_row);
        batch_mean += m / M * mean[g * C + c];
        batch_var += m / M * var[g * C + c] * m / (m - 1);
      }
      T& rm = running_mean[c * rm_stride];
      T& rv = running_var[c * rv_stride];
      rm = static_cast<T>((1 - mom) * rm + mom * batch_mean);
      rv = static_cast<T>((1 - mom) * rv + mom * batch_var);
    }
  }
};

template <class T>
void batch_norm_update_running(const double* mean, const double* var, int64_t C, int64_t batch, int64_t group_rows,
                               int64_t per_row, double momentum, T* running_mean, int64_t rm_stride, T* running_var,
                               int64_t rv_stride, T* num_batches_tracked) {
  if (num_batches_tracked) launch("batch_norm", Launch{1, 1}, BnCountBatchKernel<T>{num_batches_tracked});
  launch_n("batch_norm",
           C, BnUpdateRunningKernel<T>{mean, var, C, batch, group_rows, per_row, bn_group_count(batch, group_rows),
                                       momentum, running_mean, rm_stride, running_var, rv_stride, num_batches_tracked});
}

template <class T>
struct BnCoefficientsKernel {
  const double* mean;
  const double* var;
  int64_t n, C;
  const T* weight;
  int64_t w_stride;
  const T* bias;
  int64_t b_stride;
  double eps;
  double* invstd;
  T* scale;
  T* shift;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      const int64_t c = i % C;
      const double is = 1.0 / std::sqrt(var[i] + eps);
      const double wv = weight ? static_cast<double>(weight[c * w_stride]) : 1.0;
      const double bv = bias ? static_cast<double>(bias[c * b_stride]) : 0.0;
      invstd[i] = is;
      scale[i] = static_cast<T>(wv * is);
      shift[i] = static_cast<T>(bv - mean[i] * wv * is);
    }
  }
};

template <class T>
void batch_norm_coefficients(const double* mean, const double* var, int64_t G, int64_t C, const T* weight,
                             int64_t w_stride, const T* bias, int64_t b_stride, double eps, double* invstd, T* scale,
                             T* shift) {
  launch_n("batch_norm", G * C,
           BnCoefficientsKernel<T>{mean, var, G * C, C, weight, w_stride, bias, b_stride, eps, invstd, scale, shift});
}

// The strides of a pretend operand whose offset is the channel index: 1 along channel_dim, 0 elsewhere.
inline Shape channel_index_strides(size_t ndim, int64_t channel_dim) {
  Shape s(ndim, 0);
  s[channel_dim] = 1;
  return s;
}

// Element i's statistics group: elements (row-major) come in groups of group_size.
TV_HOST_DEVICE inline int64_t bn_group_of(int64_t i, int64_t G, int64_t group_size) {
  return G > 1 ? i / group_size : 0;
}

// Elements in each full statistics group of the whole shape (row-major order): rows of dim 0.
inline int64_t bn_group_size(const Shape& shape, int64_t G, int64_t group_rows) {
  const int64_t n = numel_of(shape);
  return G > 1 ? group_rows * (n / shape[0]) : n;
}

// y = x * scale[g, c] + shift[g, c] (+ residual) (then ReLU), one thread per element, in the CPU kernel's order.
// Operands: y, x, the channel index, the residual (x's strides again where there is none: not read).
template <class T>
struct BnApplyKernel {
  Indexer<4> at;
  T* y;
  const T* x;
  const T* scale;
  const T* shift;
  const T* residual;
  bool relu;
  int64_t n, C, G, group_size;
  TV_HOST_DEVICE void operator()(Thread t) const {
    int64_t off[4];
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      at.offsets(i, off);
      const int64_t o = bn_group_of(i, G, group_size) * C + off[2];
      T v = fn::batch_norm_affine(x[off[1]], scale[o], shift[o]);
      if (residual) v = v + residual[off[3]];
      if (relu) v = v <= T(0) ? T(0) : v;
      y[off[0]] = v;
    }
  }
};

template <class T>
void batch_norm_apply(T* y, const Shape& y_strides, const T* x, const Shape& shape, const Shape& x_strides,
                      int64_t channel_dim, int64_t group_rows, const T* scale, const T* shift, const T* residual,
                      const Shape& r_strides, bool relu) {
  const int64_t n = numel_of(shape), G = bn_group_count(shape[0], group_rows);
  if (n == 0) return;
  launch_n("batch_norm", n,
           BnApplyKernel<T>{make_indexer<4>(shape,
                                            {y_strides, x_strides, channel_index_strides(shape.size(), channel_dim),
                                             residual ? r_strides : x_strides},
                                            "batch_norm"),
                            y, x, scale, shift, residual, relu, n, shape[channel_dim], G,
                            bn_group_size(shape, G, group_rows)});
}

// gy where a ReLU after the batch norm let it through (relu_scale null: no ReLU), from x with the forward's scale
// and shift of output o, as the CPU's ReluAfter.
template <class T>
TV_HOST_DEVICE inline T bn_relu_gradient(T g, T x, const T* relu_scale, const T* relu_shift, int64_t o) {
  return relu_scale ? fn::ReluGrad{}(g, fn::batch_norm_affine(x, relu_scale[o], relu_shift[o])) : g;
}

// partial[p * outputs + o] and partial[(pieces + p) * outputs + o]: piece p's sums of gy and gy * (x - mean)
// for output o = g * C + c (gy through the ReLU's mask where relu_scale is given). Operands: gy, x.
template <class T>
struct BnGradPiecesKernel {
  ChannelGroups<2> w;
  const T* gy;
  const T* x;
  const double* mean;
  int64_t pieces;
  double* partial;
  const T* relu_scale;
  const T* relu_shift;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t outputs = w.G * w.C;
    for (int64_t i = t.global(); i < outputs * pieces; i += t.stride()) {
      const int64_t o = i / pieces, p = i - o * pieces, g = o / w.C, c = o - g * w.C;
      const int64_t n = w.count(g);
      const double mu = mean[o];
      double s = 0.0, sx = 0.0;
      if (p < n) {
        GroupCursor<2> cur(w, g, c, p);
        for (int64_t e = p; e < n; e += kBnLoads * pieces) {
          T gv[kBnLoads], xv[kBnLoads];
          for (int u = 0; u < kBnLoads; ++u)
            if (e + u * pieces < n) {
              xv[u] = x[cur.at(1)];
              gv[u] = bn_relu_gradient(gy[cur.at(0)], xv[u], relu_scale, relu_shift, o);
              cur.advance(pieces);
            }
          for (int u = 0; u < kBnLoads; ++u)
            if (e + u * pieces < n) {
              const double gd = static_cast<double>(gv[u]);
              s += gd;
              sx += gd * (xv[u] - mu);
            }
        }
      }
      partial[p * outputs + o] = s;
      partial[(pieces + p) * outputs + o] = sx;
    }
  }
};

// Per output o = g * C + c: sums[o] = the sum of gy, sums[outputs + o] = of gy * (x - mean); with coef, the
// input gradient's gx = a * gy + bx * x + k folded per (g, c), as on the CPU.
template <class T>
struct BnGradFinishKernel {
  const double* partial;
  int64_t pieces, C, G, batch, group_rows, per_row;
  const double* mean;
  const double* invstd;
  const T* weight;
  int64_t w_stride;
  bool use_batch_stats;
  double* sums;
  T* coef;  // a, bx, k: G x C each; null: no gx wanted
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t outputs = G * C;
    for (int64_t o = t.global(); o < outputs; o += t.stride()) {
      double s = 0.0, sx = 0.0;
      for (int64_t p = 0; p < pieces; ++p) {
        s += partial[p * outputs + o];
        sx += partial[(pieces + p) * outputs + o];
      }
      sums[o] = s;
      sums[outputs + o] = sx;
      if (!coef) continue;
      const int64_t g = o / C, c = o - g * C;
      const double m = static_cast<double>(bn_group_rows(batch, group_rows, g) * per_row);
      const double is = invstd[o];
      const double wc = weight ? static_cast<double>(weight[c * w_stride]) : 1.0;
      coef[o] = static_cast<T>(wc * is);
      if (use_batch_stats) {  // the batch statistics depend on x too
        const double is3 = is * is * is;
        coef[outputs + o] = static_cast<T>(-wc * is3 * sx / m);
        coef[2 * outputs + o] = static_cast<T>(-wc * is * s / m + wc * is3 * sx * mean[o] / m);
      } else {
        coef[outputs + o] = T(0);
        coef[2 * outputs + o] = T(0);
      }
    }
  }
};

// gw[c], gb[c]: the groups' sums added in group order.
template <class T>
struct BnGradParamsKernel {
  const double* sums;
  const double* invstd;
  int64_t C, G;
  T* gw;
  T* gb;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t outputs = G * C;
    for (int64_t c = t.global(); c < C; c += t.stride()) {
      double dw = 0.0, db = 0.0;
      for (int64_t g = 0; g < G; ++g) {
        dw += sums[outputs + g * C + c] * invstd[g * C + c];
        db += sums[g * C + c];
      }
      if (gw) gw[c] = static_cast<T>(dw);
      if (gb) gb[c] = static_cast<T>(db);
    }
  }
};

// gx = a[g, c] * gy + bx[g, c] * x + k[g, c], one thread per element (gy through the ReLU's mask where relu_scale
// is given). Operands: gx, gy, x, the channel index.
template <class T>
struct BnGradInputKernel {
  Indexer<4> at;
  T* gx;
  const T* gy;
  const T* x;
  const T* coef;
  int64_t n, C, G, group_size;
  const T* relu_scale;
  const T* relu_shift;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t outputs = G * C;
    int64_t off[4];
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      at.offsets(i, off);
      const int64_t o = bn_group_of(i, G, group_size) * C + off[3];
      const T xv = x[off[2]];
      gx[off[0]] = coef[o] * bn_relu_gradient(gy[off[1]], xv, relu_scale, relu_shift, o) + coef[outputs + o] * xv +
                   coef[2 * outputs + o];
    }
  }
};

template <class T>
void batch_norm_backward(const T* gy, const Shape& gy_strides, const T* x, const Shape& shape, const Shape& x_strides,
                         int64_t channel_dim, int64_t group_rows, int64_t per_row, const double* mean,
                         const double* invstd, const T* weight, int64_t w_stride, bool use_batch_stats, T* gx,
                         const Shape& gx_strides, T* gw, T* gb, const T* relu_scale, const T* relu_shift,
                         const T* relu_out, const Shape& ro_strides, T* g_out, const Shape& go_strides) {
  if (relu_out) {  // the ReLU after a residual: its gradient first (the residual's too), then read as gy
    map2(shape, g_out, go_strides, gy, gy_strides, relu_out, ro_strides, fn::ReluGrad{});
    return batch_norm_backward(static_cast<const T*>(g_out), go_strides, x, shape, x_strides, channel_dim, group_rows, per_row, mean, invstd, weight,
                               w_stride, use_batch_stats, gx, gx_strides, gw, gb, relu_scale, relu_shift,
                               static_cast<const T*>(nullptr), ro_strides, static_cast<T*>(nullptr), go_strides);
  }
  const ChannelGroups<2> w = channel_groups<2>(shape, {gy_strides, x_strides}, channel_dim, group_rows, "batch_norm");
  const int64_t outputs = w.G * w.C;
  if (outputs == 0) return;
  const int64_t pieces = bn_pieces(outputs, w.count(0));
  Storage<double> partial(2 * pieces * outputs, Device::CUDA), sums(2 * outputs, Device::CUDA);
  Storage<T> coef(gx ? 3 * outputs : 1, Device::CUDA);
  launch_n("batch_norm backward", outputs * pieces,
           BnGradPiecesKernel<T>{w, gy, x, mean, pieces, partial.data(), relu_scale, relu_shift});
  launch_n("batch_norm backward", outputs,
           BnGradFinishKernel<T>{partial.data(), pieces, w.C, w.G, shape[0], group_rows, per_row, mean, invstd, weight,
                                 w_stride, use_batch_stats, sums.data(), gx ? coef.data() : nullptr});
  if (gw || gb)
    launch_n("batch_norm backward", w.C, BnGradParamsKernel<T>{sums.data(), invstd, w.C, w.G, gw, gb});
  if (!gx) return;
  const int64_t n = numel_of(shape);
  launch_n("batch_norm backward", n,
           BnGradInputKernel<T>{make_indexer<4>(shape,
                                                {gx_strides, gy_strides, x_strides,
                                                 channel_index_strides(shape.size(), channel_dim)},
                                                "batch_norm backward"),
                                gx, gy, x, coef.data(), n, w.C, w.G, bn_group_size(shape, w.G, group_rows), relu_scale,
                                relu_shift});
}

}  // namespace tv::cuda
