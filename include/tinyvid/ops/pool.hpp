#pragma once
// Pooling over NCHW as torch.nn.functional: max_pool2d, avg_pool2d, adaptive_avg_pool2d.
#include <cmath>
#include <limits>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/ops/conv.hpp"
#include "tinyvid/ops/creation.hpp"

namespace tv {

namespace detail {

struct PoolGeometry {
  int64_t planes, H, W, KH, KW, sh, sw, ph, pw, OH, OW;
};

// Output size as PyTorch computes it, ceil_mode included (a last window must start inside the input or left padding).
inline int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t span = in + 2 * p - k;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

template <class T>
PoolGeometry pool_geometry(const char* op, const Tensor<T>& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode) {
  TV_CHECK(x.dim() == 4, op, ": expected a 4-D input (N x C x H x W), got shape ", x.shape());
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;  // torch: stride defaults to the kernel size
  TV_CHECK(kernel[0] > 0 && kernel[1] > 0 && stride[0] > 0 && stride[1] > 0, op, ": kernel [", kernel[0], ", ",
           kernel[1], "] and stride [", stride[0], ", ", stride[1], "] must be positive");
  TV_CHECK(padding[0] >= 0 && padding[1] >= 0 && 2 * padding[0] <= kernel[0] && 2 * padding[1] <= kernel[1], op,
           ": padding [", padding[0], ", ", padding[1], "] must be at most half the kernel [", kernel[0], ", ",
           kernel[1], "]");
  PoolGeometry g{x.size(0) * x.size(1), x.size(2), x.size(3), kernel[0], kernel[1], stride[0], stride[1],
                 padding[0], padding[1], 0, 0};
  TV_CHECK(g.H + 2 * g.ph >= g.KH && g.W + 2 * g.pw >= g.KW, op, ": kernel [", g.KH, ", ", g.KW,
           "] is larger than the padded input ", g.H + 2 * g.ph, " x ", g.W + 2 * g.pw, " (input shape ", x.shape(), ")");
  g.OH = pool_out_size(g.H, g.KH, g.sh, g.ph, ceil_mode);
  g.OW = pool_out_size(g.W, g.KW, g.sw, g.pw, ceil_mode);
  return g;
}

}  // namespace detail

// Max over each window; the gradient goes to the (first) maximum of the window, as in PyTorch.
// stride {0, 0} means the kernel size.
template <class T>
Tensor<T> max_pool2d(const Tensor<T>& input, Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0},
                     bool ceil_mode = false) {
  const auto g = detail::pool_geometry("max_pool2d", input, kernel, stride, padding, ceil_mode);
  const Tensor<T> x = input.contiguous();
  Tensor<T> y = Tensor<T>::empty({input.size(0), input.size(1), g.OH, g.OW});
  Tensor<int64_t> argmax = Tensor<int64_t>::empty(y.shape());  // flat index within the input plane
  const T* xp = x.data();
  T* yp = y.data();
  int64_t* ap = argmax.data();
  parallel_for(0, g.planes, std::max<int64_t>(1, kParallelGrain / (g.OH * g.OW * g.KH * g.KW)), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const T* plane = xp + p * g.H * g.W;
      for (int64_t oy = 0; oy < g.OH; ++oy)
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          const int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
          T best = -std::numeric_limits<T>::infinity();
          int64_t arg = -1;
          // A NaN is taken whenever met, so the last NaN of the window wins, as in PyTorch's CPU kernel.
          for (int64_t iy = std::max<int64_t>(y0, 0); iy < std::min(y0 + g.KH, g.H); ++iy)
            for (int64_t ix = std::max<int64_t>(x0, 0); ix < std::min(x0 + g.KW, g.W); ++ix) {
              const T v = plane[iy * g.W + ix];
              if (v > best || std::isnan(v) || arg < 0) {
                best = v;
                arg = iy * g.W + ix;
              }
            }
          yp[(p * g.OH + oy) * g.OW + ox] = best;
          ap[(p * g.OH + oy) * g.OW + ox] = arg;
        }
    }
  });
  autograd::record(y, "MaxPool2dBackward", {input}, [g, argmax, in_shape = input.shape()](const Tensor<T>& grad,
                                                                                          const autograd::Node<T>&) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = zeros<T>(in_shape);
    const int64_t* ap = argmax.data();
    parallel_for(0, g.planes, 1, [&](int64_t b, int64_t e) {  // each plane is its own: no races
      for (int64_t p = b; p < e; ++p)
        for (int64_t o = 0; o < g.OH * g.OW; ++o)
          gx.data()[p * g.H * g.W + ap[p * g.OH * g.OW + o]] += gy.data()[p * g.OH * g.OW + o];
    });
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

// Mean over each window; count_include_pad as PyTorch's default (padding zeros count).
template <class T>
Tensor<T> avg_pool2d(const Tensor<T>& input, Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0},
                     bool ceil_mode = false, bool count_include_pad = true) {
  const auto g = detail::pool_geometry("avg_pool2d", input, kernel, stride, padding, ceil_mode);
  const Tensor<T> x = input.contiguous();
  Tensor<T> y = Tensor<T>::empty({input.size(0), input.size(1), g.OH, g.OW});
  // The window of output (oy, ox), clipped to the input, and the divisor PyTorch uses for it.
  auto window = [g, count_include_pad](int64_t oy, int64_t ox, int64_t& y0, int64_t& y1, int64_t& x0, int64_t& x1) {
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
  };
  parallel_for(0, g.planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t oy = 0; oy < g.OH; ++oy)
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          int64_t y0, y1, x0, x1;
          const int64_t div = window(oy, ox, y0, y1, x0, x1);
          double s = 0;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) s += x.data()[(p * g.H + iy) * g.W + ix];
          y.data()[(p * g.OH + oy) * g.OW + ox] = static_cast<T>(s / div);
        }
  });
  autograd::record(y, "AvgPool2dBackward", {input}, [g, window, in_shape = input.shape()](const Tensor<T>& grad,
                                                                                         const autograd::Node<T>&) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = zeros<T>(in_shape);
    parallel_for(0, g.planes, 1, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p)
        for (int64_t oy = 0; oy < g.OH; ++oy)
          for (int64_t ox = 0; ox < g.OW; ++ox) {
            int64_t y0, y1, x0, x1;
            const T share = gy.data()[(p * g.OH + oy) * g.OW + ox] / static_cast<T>(window(oy, ox, y0, y1, x0, x1));
            for (int64_t iy = y0; iy < y1; ++iy)
              for (int64_t ix = x0; ix < x1; ++ix) gx.data()[(p * g.H + iy) * g.W + ix] += share;
          }
    });
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

// Mean over PyTorch's adaptive windows: rows floor(i H / OH) to ceil((i + 1) H / OH), likewise columns.
// adaptive_avg_pool2d(x, {1, 1}) is the global average pool.
template <class T>
Tensor<T> adaptive_avg_pool2d(const Tensor<T>& input, Pair output_size) {
  TV_CHECK(input.dim() == 4, "adaptive_avg_pool2d: expected a 4-D input (N x C x H x W), got shape ", input.shape());
  TV_CHECK(output_size[0] > 0 && output_size[1] > 0, "adaptive_avg_pool2d: output size [", output_size[0], ", ",
           output_size[1], "] must be positive");
  const int64_t planes = input.size(0) * input.size(1), H = input.size(2), W = input.size(3);
  const int64_t OH = output_size[0], OW = output_size[1];
  const Tensor<T> x = input.contiguous();
  Tensor<T> y = Tensor<T>::empty({input.size(0), input.size(1), OH, OW});
  auto start = [](int64_t i, int64_t in, int64_t out) { return (i * in) / out; };
  auto end = [](int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; };
  parallel_for(0, planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t y0 = start(oy, H, OH), y1 = end(oy, H, OH), x0 = start(ox, W, OW), x1 = end(ox, W, OW);
          double s = 0;
          for (int64_t iy = y0; iy < y1; ++iy) {
            const T* row = x.data() + (p * H + iy) * W;
            for (int64_t ix = x0; ix < x1; ++ix) s += row[ix];
          }
          y.data()[(p * OH + oy) * OW + ox] = static_cast<T>(s / ((y1 - y0) * (x1 - x0)));
        }
  });
  autograd::record(y, "AdaptiveAvgPool2dBackward", {input}, [=, in_shape = input.shape()](const Tensor<T>& grad,
                                                                                        const autograd::Node<T>&) {
    const Tensor<T> gy = grad.contiguous();
    Tensor<T> gx = zeros<T>(in_shape);
    parallel_for(0, planes, 1, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            const int64_t y0 = start(oy, H, OH), y1 = end(oy, H, OH), x0 = start(ox, W, OW), x1 = end(ox, W, OW);
            const T share = gy.data()[(p * OH + oy) * OW + ox] / static_cast<T>((y1 - y0) * (x1 - x0));
            for (int64_t iy = y0; iy < y1; ++iy)
              for (int64_t ix = x0; ix < x1; ++ix) gx.data()[(p * H + iy) * W + ix] += share;
          }
    });
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

}  // namespace tv
