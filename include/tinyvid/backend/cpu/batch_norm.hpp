#pragma once
// Batch normalization kernels over tensors viewed as channels x rest, with any strides (DNR normalizes
// a narrowed group of frames in place of a whole batch). Per-channel sums accumulate in double.
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tinyvid/backend/cpu/loops.hpp"
#include "tinyvid/backend/cpu/reduce.hpp"
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

// Per-channel mean and biased variance in one pass: sums of (x - k) and (x - k)^2 accumulated in
// double over independent lanes (vectorized), with k the channel's first value. The shift keeps
// E[d^2] - E[d]^2 from cancelling when a channel's mean is large against its spread (PyTorch uses
// Welford's update for the same reason); a test checks a mean 1e6 times the spread.
template <class T>
void channel_stats(const T* x, const ChannelWalk<1>& w, double* mean, double* var) {
  const int64_t m = w.per_channel();
  parallel_for(0, w.channels, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      constexpr int64_t L = 16;
      double s[L] = {}, ss[L] = {};
      double s_tail = 0, ss_tail = 0;
      const double k = m > 0 ? static_cast<double>(*w.run(0, x, c, 0)) : 0.0;
      for (int64_t r = 0; r < w.num_runs(); ++r) {
        const T* p = w.run(0, x, c, r);
        int64_t i = 0;
        if (w.step[0] == 1) {
          for (; i + L <= w.inner; i += L)
            for (int64_t l = 0; l < L; ++l) {
              const double v = static_cast<double>(p[i + l]) - k;
              s[l] += v;
              ss[l] += v * v;
            }
        }
        for (; i < w.inner; ++i) {
          const double v = static_cast<double>(p[i * w.step[0]]) - k;
          s_tail += v;
          ss_tail += v * v;
        }
      }
      for (int64_t l = 0; l < L; ++l) {
        s_tail += s[l];
        ss_tail += ss[l];
      }
      const double d = s_tail / m;
      mean[c] = k + d;
      // Rounding can leave a tiny negative variance: clamp it, but let a NaN (a NaN or infinite input) through,
      // as PyTorch's running_var shows it; std::max(0.0, NaN) would return 0.
      const double v = ss_tail / m - d * d;
      var[c] = v < 0.0 ? 0.0 : v;
    }
  });
}

// y = x * scale[c] + shift[c]: normalization and affine folded into two numbers per channel.
// Operand 0 is y, operand 1 is x.
template <class T>
void channel_affine(T* y, const T* x, const ChannelWalk<2>& w, const T* scale, const T* shift) {
  parallel_for(0, w.channels, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const T a = scale[c], s = shift[c];
      for (int64_t r = 0; r < w.num_runs(); ++r) {
        T* q = w.run(0, y, c, r);
        const T* p = w.run(1, x, c, r);
        if (w.step[0] == 1 && w.step[1] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < w.inner; ++i) q[i] = p[i] * a + s;
        } else {
          for (int64_t i = 0; i < w.inner; ++i) q[i * w.step[0]] = p[i * w.step[1]] * a + s;
        }
      }
    }
  });
}

// Per-channel sums of gy and of gy * (x - mean). Operand 0 is gy, operand 1 is x.
template <class T>
void channel_grad_sums(const T* gy, const T* x, const ChannelWalk<2>& w, const double* mean, double* sum_gy,
                       double* sum_gy_xc) {
  parallel_for(0, w.channels, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      double s = 0, sx = 0;
      const double mu = mean[c];
      for (int64_t r = 0; r < w.num_runs(); ++r) {
        const T* g = w.run(0, gy, c, r);
        const T* p = w.run(1, x, c, r);
        for (int64_t i = 0; i < w.inner; ++i) {
          const double gv = g[i * w.step[0]];
          s += gv;
          sx += gv * (p[i * w.step[1]] - mu);
        }
      }
      sum_gy[c] = s;
      sum_gy_xc[c] = sx;
    }
  });
}

// gx = a[c] * gy + bx[c] * x + k[c]: batch norm's input gradient, rearranged to one fused pass.
// Operand 0 is gx, 1 is gy, 2 is x.
template <class T>
void channel_grad_input(T* gx, const T* gy, const T* x, const ChannelWalk<3>& w, const T* a, const T* bx, const T* k) {
  parallel_for(0, w.channels, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const T ac = a[c], bc = bx[c], kc = k[c];
      for (int64_t r = 0; r < w.num_runs(); ++r) {
        T* q = w.run(0, gx, c, r);
        const T* g = w.run(1, gy, c, r);
        const T* p = w.run(2, x, c, r);
        if (w.step[0] == 1 && w.step[1] == 1 && w.step[2] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < w.inner; ++i) q[i] = ac * g[i] + bc * p[i] + kc;
        } else {
          for (int64_t i = 0; i < w.inner; ++i)
            q[i * w.step[0]] = ac * g[i * w.step[1]] + bc * p[i * w.step[2]] + kc;
        }
      }
    }
  });
}

}  // namespace tv::cpu
