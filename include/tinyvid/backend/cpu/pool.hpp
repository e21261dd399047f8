#pragma once
// Pooling kernels over contiguous planes (N x C of them, each H x W): max and average pooling with
// PyTorch's windows, adaptive average pooling, and their backward passes. Planes are split across threads;
// a backward writes each plane of gx whole (zeros, then the window gradients), so planes never race.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "tinyvid/backend/cpu/loops.hpp"
#include "tinyvid/backend/cpu/scratch.hpp"
#include "tinyvid/backend/pool_geometry.hpp"
#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

// max_pool2d without the argmax, in the same order (the same values, NaN included), in two passes per plane: each
// input row's maxima over the window's columns (once per row, where every window went over its rows itself: a third
// fewer strided reads, which stay scalar, for ResNet's 3 / stride 2), then each output row's maximum over its window's
// rows, a contiguous select that compilers vectorize. (ResNet-50's forward on 2 threads: 6-8 ms with the argmax, 3.8
// ms without it in one pass; the stem's pool alone at batch 8, later: 2.8 ms in one pass, 1.9 ms in two.)
template <class T>
void max_pool2d_values(const T* x, T* y, const PoolGeometry& geometry) {
  const int64_t grain = kParallelGrain / (geometry.OH * geometry.OW * geometry.KH * geometry.KW);
  parallel_for(0, geometry.planes, std::max<int64_t>(1, grain), [&](int64_t b, int64_t e) {
    const PoolGeometry g = geometry;  // a local copy: no store through a pointer can change it
    T* across = scratch<T>(g.H * g.OW);  // row iy's maxima over each output column's window columns
    // v replaces m where v is larger or NaN (the window's last NaN wins, as in PyTorch's CPU kernel).
    auto take = [](T v, T m) { return v > m || v != v ? v : m; };
    for (int64_t p = b; p < e; ++p) {
      const T* plane = x + p * g.H * g.W;
      for (int64_t iy = 0; iy < g.H; ++iy) {
        const T* row = plane + iy * g.W;
        T* best = across + iy * g.OW;
        std::fill(best, best + g.OW, -std::numeric_limits<T>::infinity());
        for (int64_t kx = 0; kx < g.KW; ++kx) {
          const int64_t off = kx - g.pw, sw = g.sw;
          int64_t lo, hi;
          valid_columns(0, g.OW, off, sw, g.W, lo, hi);
#pragma omp simd
          for (int64_t ox = lo; ox < hi; ++ox) best[ox] = take(row[ox * sw + off], best[ox]);
        }
      }
      for (int64_t oy = 0; oy < g.OH; ++oy) {
        T* best = y + (p * g.OH + oy) * g.OW;
        std::fill(best, best + g.OW, -std::numeric_limits<T>::infinity());
        const int64_t y0 = oy * g.sh - g.ph;
        for (int64_t iy = std::max<int64_t>(y0, 0); iy < std::min(y0 + g.KH, g.H); ++iy) {
          const T* row = across + iy * g.OW;
#pragma omp simd
          for (int64_t ox = 0; ox < g.OW; ++ox) best[ox] = take(row[ox], best[ox]);
        }
      }
    }
  });
}

// max_pool2d with the argmax, output row by output row: Stride the column stride when known at compile time (0: read
// from geometry), Index the positions' type while a row is built.
template <class T, int64_t Stride, class Index>
void max_pool2d_rows(const T* x, T* y, int64_t* argmax, const PoolGeometry& geometry) {
  const int64_t grain = kParallelGrain / (geometry.OH * geometry.OW * geometry.KH * geometry.KW);
  parallel_for(0, geometry.planes, std::max<int64_t>(1, grain), [&](int64_t b, int64_t e) {
    const int64_t H = geometry.H, W = geometry.W, OH = geometry.OH, OW = geometry.OW;
    const int64_t sw = Stride ? Stride : geometry.sw;
    Index* arg = scratch<Index>(OW, 0);
    for (int64_t p = b; p < e; ++p) {
      const T* plane = x + p * H * W;
      for (int64_t oy = 0; oy < OH; ++oy) {
        // Window tap by window tap (rows of the window, then columns: the order of the plain loop, so the first
        // maximum still wins), each tap over the outputs whose column is inside the input: branch-free selects over a
        // row, where a branch per element cost 4% of a ResNet-50 forward.
        T* best = y + (p * OH + oy) * OW;
        std::fill(best, best + OW, -std::numeric_limits<T>::infinity());
        std::fill(arg, arg + OW, Index(-1));
        const int64_t y0 = oy * geometry.sh - geometry.ph;
        const int64_t iy0 = std::max<int64_t>(y0, 0), iy1 = std::min(y0 + geometry.KH, H);
        for (int64_t iy = iy0; iy < iy1; ++iy) {
          const T* row = plane + iy * W;
          for (int64_t kx = 0; kx < geometry.KW; ++kx) {
            const int64_t off = kx - geometry.pw;  // input column ox * sw + off
            int64_t lo, hi;
            valid_columns(0, OW, off, sw, W, lo, hi);
            const Index at = static_cast<Index>(iy * W + off);
            for (int64_t ox = lo; ox < hi; ++ox) {
              const T v = row[ox * sw + off];
              const bool take = v > best[ox] || v != v || arg[ox] < 0;  // NaN wins, as in PyTorch
              best[ox] = take ? v : best[ox];
              arg[ox] = take ? static_cast<Index>(at + static_cast<Index>(ox * sw)) : arg[ox];
            }
          }
        }
        int64_t* out = argmax + (p * OH + oy) * OW;
        for (int64_t ox = 0; ox < OW; ++ox) out[ox] = arg[ox];
      }
    }
  });
}

// Max over each window into y (planes x OH x OW) and the flat index of the maximum within its input plane into
// argmax (unless null: inference); a NaN is taken whenever met, so the last NaN of the window wins, as in PyTorch's
// CPU kernel.
template <class T>
void max_pool2d(const T* x, T* y, int64_t* argmax, const PoolGeometry& geometry) {
  if (!argmax) return max_pool2d_values(x, y, geometry);
  // A row's positions in 32 bits where a plane's positions fit, widened to the argmax's 64 bits once per row, and the
  // common strides as compile-time constants, so that the row's selects and strided reads vectorize: the stem's pool
  // (8 x 64 x 112 x 112, 2 threads) 3.89-4.76 -> 2.71-3.38 ms, against 64-bit positions and a run-time stride.
  if (geometry.H * geometry.W > std::numeric_limits<int32_t>::max()) return max_pool2d_rows<T, 0, int64_t>(x, y, argmax, geometry);
  if (geometry.sw == 2) return max_pool2d_rows<T, 2, int32_t>(x, y, argmax, geometry);
  if (geometry.sw == 1) return max_pool2d_rows<T, 1, int32_t>(x, y, argmax, geometry);
  return max_pool2d_rows<T, 0, int32_t>(x, y, argmax, geometry);
}

// gx (planes x H x W, overwritten) = each output gradient gy added at its window's maximum (argmax).
template <class T>
void max_pool2d_backward(const T* gy, const int64_t* argmax, T* gx, const PoolGeometry& geometry) {
  parallel_for(0, geometry.planes, 1, [&](int64_t b, int64_t e) {
    const PoolGeometry g = geometry;  // a local copy: no store through a pointer can change it
    for (int64_t p = b; p < e; ++p) {
      T* plane = gx + p * g.H * g.W;
      std::fill(plane, plane + g.H * g.W, T(0));
      const T* gp = gy + p * g.OH * g.OW;
      const int64_t* ap = argmax + p * g.OH * g.OW;
      for (int64_t o = 0; o < g.OH * g.OW; ++o) plane[ap[o]] += gp[o];
    }
  });
}

// The window of output (oy, ox), clipped to the input, and the divisor PyTorch uses for it: the window's size
// within the padded input when count_include_pad, else the clipped window's.
inline int64_t avg_pool_window(const PoolGeometry& g, bool count_include_pad, int64_t oy, int64_t ox, int64_t& y0,
                               int64_t& y1, int64_t& x0, int64_t& x1) {
  y0 = oy * g.sh - g.ph;
  x0 = ox * g.sw - g.pw;
  y1 = std::min(y0 + g.KH, g.H + g.ph);
  x1 = std::min(x0 + g.KW, g.W + g.pw);
  const int64_t padded = (y1 - y0) * (x1 - x0);
  y0 = std::max<int64_t>(y0, 0);
  x0 = std::max<int64_t>(x0, 0);
  y1 = std::min(y1, g.H);
  x1 = std::min(x1, g.W);
  return count_include_pad ? padded : (y1 - y0) * (x1 - x0);
}

// Mean over each window (sums in double).
template <class T>
void avg_pool2d(const T* x, T* y, const PoolGeometry& geometry, bool count_include_pad) {
  parallel_for(0, geometry.planes, 1, [&](int64_t b, int64_t e) {
    const PoolGeometry g = geometry;  // a local copy: no store through a pointer can change it
    for (int64_t p = b; p < e; ++p)
      for (int64_t oy = 0; oy < g.OH; ++oy)
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          int64_t y0, y1, x0, x1;
          const int64_t div = avg_pool_window(g, count_include_pad, oy, ox, y0, y1, x0, x1);
          double s = 0;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) s += x[(p * g.H + iy) * g.W + ix];
          y[(p * g.OH + oy) * g.OW + ox] = static_cast<T>(s / div);
        }
  });
}

// gx (overwritten) = each output gradient divided by its window's divisor, added over the window.
template <class T>
void avg_pool2d_backward(const T* gy, T* gx, const PoolGeometry& geometry, bool count_include_pad) {
  parallel_for(0, geometry.planes, 1, [&](int64_t b, int64_t e) {
    const PoolGeometry g = geometry;  // a local copy: no store through a pointer can change it
    for (int64_t p = b; p < e; ++p) {
      std::fill(gx + p * g.H * g.W, gx + (p + 1) * g.H * g.W, T(0));
      for (int64_t oy = 0; oy < g.OH; ++oy)
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          int64_t y0, y1, x0, x1;
          const int64_t div = avg_pool_window(g, count_include_pad, oy, ox, y0, y1, x0, x1);
          const T share = gy[(p * g.OH + oy) * g.OW + ox] / static_cast<T>(div);
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) gx[(p * g.H + iy) * g.W + ix] += share;
        }
    }
  });
}

// PyTorch's adaptive windows: output i of `out` covers inputs floor(i in / out) to ceil((i + 1) in / out).
inline int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// Mean over the adaptive windows of planes x H x W into planes x OH x OW (sums in double).
template <class T>
void adaptive_avg_pool2d(const T* x, T* y, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  parallel_for(0, planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t y0 = adaptive_start(oy, H, OH), y1 = adaptive_end(oy, H, OH), x0 = adaptive_start(ox, W, OW),
                        x1 = adaptive_end(ox, W, OW);
          double s = 0;
          for (int64_t iy = y0; iy < y1; ++iy) {
            const T* row = x + (p * H + iy) * W;
            for (int64_t ix = x0; ix < x1; ++ix) s += row[ix];
          }
          y[(p * OH + oy) * OW + ox] = static_cast<T>(s / ((y1 - y0) * (x1 - x0)));
        }
  });
}

// gx (overwritten) = each output gradient divided by its window's size, added over the window.
template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  parallel_for(0, planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      std::fill(gx + p * H * W, gx + (p + 1) * H * W, T(0));
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t y0 = adaptive_start(oy, H, OH), y1 = adaptive_end(oy, H, OH), x0 = adaptive_start(ox, W, OW),
                        x1 = adaptive_end(ox, W, OW);
          const T share = gy[(p * OH + oy) * OW + ox] / static_cast<T>((y1 - y0) * (x1 - x0));
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) gx[(p * H + iy) * W + ix] += share;
        }
    }
  });
}

}  // namespace tv::cpu
