#pragma once
// The CUDA backend's pooling over contiguous planes (declared in backend/cuda.hpp): max and average pooling
// with PyTorch's windows, adaptive average pooling, and their backward passes, the same arithmetic as the
// CPU's (cpu/pool.hpp). A forward is one thread per output element. A backward is one thread per input
// element, which gathers the outputs whose windows hold it (for max pooling, those whose argmax is it) in
// the CPU's order, the outputs in row-major order: no two threads write one element, and each sum is the
// CPU's bit for bit.
#include <cstdint>
#include <limits>

#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/gpu/launch.hpp"

namespace tv::cuda {

// The outputs [lo, hi] along one axis whose windows (start o * stride - pad, size k) hold input i; empty
// when lo > hi. Clipping a window to the input changes nothing here: i is inside the input.
TV_HOST_DEVICE inline void pool_outputs_of(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t outputs,
                                           int64_t& lo, int64_t& hi) {
  const int64_t first = i + pad - k + 1;  // the window must reach i: o * stride + k - 1 >= i + pad
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  hi = (i + pad) / stride;  // and start at or before it
  hi = hi < outputs - 1 ? hi : outputs - 1;
}

// Max over each window, and the flat index of the maximum within its input plane; a NaN is taken whenever met
// (the last NaN of the window wins), as on the CPU.
template <class T>
struct MaxPoolKernel {
  const T* x;
  T* y;
  int64_t* argmax;
  PoolGeometry g;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t n = g.planes * g.OH * g.OW;
    for (int64_t o = t.global(); o < n; o += t.stride()) {
      const int64_t ox = o % g.OW, oy = (o / g.OW) % g.OH, p = o / (g.OW * g.OH);
      const int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
      const int64_t iy0 = y0 > 0 ? y0 : 0, iy1 = y0 + g.KH < g.H ? y0 + g.KH : g.H;
      const int64_t ix0 = x0 > 0 ? x0 : 0, ix1 = x0 + g.KW < g.W ? x0 + g.KW : g.W;
      const T* plane = x + p * g.H * g.W;
      T best = -std::numeric_limits<T>::infinity();
      int64_t arg = -1;
      for (int64_t iy = iy0; iy < iy1; ++iy)
        for (int64_t ix = ix0; ix < ix1; ++ix) {
          const T v = plane[iy * g.W + ix];
          if (v > best || v != v || arg < 0) {
            best = v;
            arg = iy * g.W + ix;
          }
        }
      y[o] = best;
      if (argmax) argmax[o] = arg;  // none in inference
    }
  }
};

template <class T>
void max_pool2d(const T* x, T* y, int64_t* argmax, const PoolGeometry& geometry) {
  launch_n("max_pool2d", geometry.planes * geometry.OH * geometry.OW, MaxPoolKernel<T>{x, y, argmax, geometry});
}

// gx[i] = the sum of the gradients of the outputs whose window holds i and whose argmax is i.
template <class T>
struct MaxPoolBackwardKernel {
  const T* gy;
  const int64_t* argmax;
  T* gx;
  PoolGeometry g;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t n = g.planes * g.H * g.W;
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      const int64_t ix = i % g.W, iy = (i / g.W) % g.H, p = i / (g.W * g.H), at = iy * g.W + ix;
      int64_t oy0, oy1, ox0, ox1;
      pool_outputs_of(iy, g.KH, g.sh, g.ph, g.OH, oy0, oy1);
      pool_outputs_of(ix, g.KW, g.sw, g.pw, g.OW, ox0, ox1);
      const T* gp = gy + p * g.OH * g.OW;
      const int64_t* ap = argmax + p * g.OH * g.OW;
      T acc = T(0);
      for (int64_t oy = oy0; oy <= oy1; ++oy)
        for (int64_t ox = ox0; ox <= ox1; ++ox)
          if (ap[oy * g.OW + ox] == at) acc += gp[oy * g.OW + ox];
      gx[i] = acc;
    }
  }
};

template <class T>
void max_pool2d_backward(const T* gy, const int64_t* argmax, T* gx, const PoolGeometry& geometry) {
  launch_n("max_pool2d_backward", geometry.planes * geometry.H * geometry.W,
           MaxPoolBackwardKernel<T>{gy, argmax, gx, geometry});
}

// The window of output (oy, ox) clipped to the input, and its divisor: the window's size within the padded
// input when count_include_pad, else the clipped window's (cpu::avg_pool_window).
TV_HOST_DEVICE inline int64_t avg_pool_window_of(const PoolGeometry& g, bool count_include_pad, int64_t oy,
                                                 int64_t ox, int64_t& y0, int64_t& y1, int64_t& x0, int64_t& x1) {
  y0 = oy * g.sh - g.ph;
  x0 = ox * g.sw - g.pw;
  y1 = y0 + g.KH < g.H + g.ph ? y0 + g.KH : g.H + g.ph;
  x1 = x0 + g.KW < g.W + g.pw ? x0 + g.KW : g.W + g.pw;
  const int64_t padded = (y1 - y0) * (x1 - x0);
  y0 = y0 > 0 ? y0 : 0;
  x0 = x0 > 0 ? x0 : 0;
  y1 = y1 < g.H ? y1 : g.H;
  x1 = x1 < g.W ? x1 : g.W;
  return count_include_pad ? padded : (y1 - y0) * (x1 - x0);
}

// Mean over each window (sums in double).
template <class T>
struct AvgPoolKernel {
  const T* x;
  T* y;
  PoolGeometry g;
  bool count_include_pad;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t n = g.planes * g.OH * g.OW;
    for (int64_t o = t.global(); o < n; o += t.stride()) {
      const int64_t ox = o % g.OW, oy = (o / g.OW) % g.OH, p = o / (g.OW * g.OH);
      int64_t y0, y1, x0, x1;
      const int64_t div = avg_pool_window_of(g, count_include_pad, oy, ox, y0, y1, x0, x1);
      const T* plane = x + p * g.H * g.W;
      double s = 0;
      for (int64_t iy = y0; iy < y1; ++iy)
        for (int64_t ix = x0; ix < x1; ++ix) s += plane[iy * g.W + ix];
      y[o] = static_cast<T>(s / div);
    }
  }
};

template <class T>
void avg_pool2d(const T* x, T* y, const PoolGeometry& geometry, bool count_include_pad) {
  launch_n("avg_pool2d", geometry.planes * geometry.OH * geometry.OW,
           AvgPoolKernel<T>{x, y, geometry, count_include_pad});
}

// gx[i] = the sum over the windows holding i of their gradient divided by their divisor.
template <class T>
struct AvgPoolBackwardKernel {
  const T* gy;
  T* gx;
  PoolGeometry g;
  bool count_include_pad;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t n = g.planes * g.H * g.W;
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      const int64_t ix = i % g.W, iy = (i / g.W) % g.H, p = i / (g.W * g.H);
      int64_t oy0, oy1, ox0, ox1;
      pool_outputs_of(iy, g.KH, g.sh, g.ph, g.OH, oy0, oy1);
      pool_outputs_of(ix, g.KW, g.sw, g.pw, g.OW, ox0, ox1);
      const T* gp = gy + p * g.OH * g.OW;
      T acc = T(0);
      for (int64_t oy = oy0; oy <= oy1; ++oy)
        for (int64_t ox = ox0; ox <= ox1; ++ox) {
          int64_t y0, y1, x0, x1;
          const int64_t div = avg_pool_window_of(g, count_include_pad, oy, ox, y0, y1, x0, x1);
          acc += gp[oy * g.OW + ox] / static_cast<T>(div);
        }
      gx[i] = acc;
    }
  }
};

template <class T>
void avg_pool2d_backward(const T* gy, T* gx, const PoolGeometry& geometry, bool count_include_pad) {
  launch_n("avg_pool2d_backward", geometry.planes * geometry.H * geometry.W,
           AvgPoolBackwardKernel<T>{gy, gx, geometry, count_include_pad});
}

// PyTorch's adaptive windows: output o of `out` covers inputs [floor(o in / out), ceil((o + 1) in / out)).
TV_HOST_DEVICE inline int64_t adaptive_begin(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
TV_HOST_DEVICE inline int64_t adaptive_stop(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

// The outputs [lo, hi] whose adaptive windows hold input i: the window's end passes i for
// o >= floor(i out / in), its start is at or before i for o <= floor(((i + 1) out - 1) / in).
TV_HOST_DEVICE inline void adaptive_outputs_of(int64_t i, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = (i * out) / in;
  hi = ((i + 1) * out - 1) / in;
  hi = hi < out - 1 ? hi : out - 1;
}

// Mean over each adaptive window (sums in double).
template <class T>
struct AdaptiveAvgPoolKernel {
  const T* x;
  T* y;
  int64_t planes, H, W, OH, OW;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t n = planes * OH * OW;
    for (int64_t o = t.global(); o < n; o += t.stride()) {
      const int64_t ox = o % OW, oy = (o / OW) % OH, p = o / (OW * OH);
      const int64_t y0 = adaptive_begin(oy, H, OH), y1 = adaptive_stop(oy, H, OH);
      const int64_t x0 = adaptive_begin(ox, W, OW), x1 = adaptive_stop(ox, W, OW);
      double s = 0;
      for (int64_t iy = y0; iy < y1; ++iy) {
        const T* row = x + (p * H + iy) * W;
        for (int64_t ix = x0; ix < x1; ++ix) s += row[ix];
      }
      y[o] = static_cast<T>(s / ((y1 - y0) * (x1 - x0)));
    }
  }
};

template <class T>
void adaptive_avg_pool2d(const T* x, T* y, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  launch_n("adaptive_avg_pool2d", planes * OH * OW, AdaptiveAvgPoolKernel<T>{x, y, planes, H, W, OH, OW});
}

// gx[i] = the sum over the adaptive windows holding i of their gradient divided by their size.
template <class T>
struct AdaptiveAvgPoolBackwardKernel {
  const T* gy;
  T* gx;
  int64_t planes, H, W, OH, OW;
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t n = planes * H * W;
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      const int64_t ix = i % W, iy = (i / W) % H, p = i / (W * H);
      int64_t oy0, oy1, ox0, ox1;
      adaptive_outputs_of(iy, H, OH, oy0, oy1);
      adaptive_outputs_of(ix, W, OW, ox0, ox1);
      const T* gp = gy + p * OH * OW;
      T acc = T(0);
      for (int64_t oy = oy0; oy <= oy1; ++oy) {
        const int64_t rows = adaptive_stop(oy, H, OH) - adaptive_begin(oy, H, OH);
        for (int64_t ox = ox0; ox <= ox1; ++ox) {
          const int64_t cols = adaptive_stop(ox, W, OW) - adaptive_begin(ox, W, OW);
          acc += gp[oy * OW + ox] / static_cast<T>(rows * cols);
        }
      }
      gx[i] = acc;
    }
  }
};

template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  launch_n("adaptive_avg_pool2d_backward", planes * H * W,
           AdaptiveAvgPoolBackwardKernel<T>{gy, gx, planes, H, W, OH, OW});
}

}  // namespace tv::cuda
