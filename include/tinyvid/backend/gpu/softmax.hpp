#pragma once
// The CUDA backend's softmax and log_softmax over contiguous rows (declared in backend/cuda.hpp): one
// thread per row, the same arithmetic as the CPU's (the row maximum first, sums in double). The rows here
// are a batch's class scores, a few hundred values each.
#include <cmath>

#include "tinyvid/backend/gpu/launch.hpp"

namespace tv::cuda {

enum class SoftmaxKind { Softmax, LogSoftmax, SoftmaxBackward, LogSoftmaxBackward };

template <class T, SoftmaxKind Kind>
struct SoftmaxRowsKernel {
  const T* a;  // x forward; y backward
  const T* g;  // the output gradient (backward)
  T* out;
  int64_t rows, n;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t r = t.global(); r < rows; r += t.stride()) {
      const T* in = a + r * n;
      T* o = out + r * n;
      if constexpr (Kind == SoftmaxKind::Softmax || Kind == SoftmaxKind::LogSoftmax) {
        T m = in[0];  // a NaN is skipped here but makes the sum NaN, so the row comes out NaN
        for (int64_t i = 1; i < n; ++i) m = in[i] > m ? in[i] : m;
        double s = 0;
        if constexpr (Kind == SoftmaxKind::Softmax) {
          for (int64_t i = 0; i < n; ++i) s += (o[i] = std::exp(in[i] - m));
          const T inv = static_cast<T>(1.0 / s);
          for (int64_t i = 0; i < n; ++i) o[i] *= inv;
        } else {
          for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(in[i] - m));
          const T lse = static_cast<T>(std::log(s));
          for (int64_t i = 0; i < n; ++i) o[i] = (in[i] - m) - lse;
        }
      } else {
        const T* gr = g + r * n;
        double acc = 0;
        if constexpr (Kind == SoftmaxKind::SoftmaxBackward) {  // gx = y * (g - sum(g * y))
          for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(gr[i]) * in[i];
          for (int64_t i = 0; i < n; ++i) o[i] = in[i] * (gr[i] - static_cast<T>(acc));
        } else {  // gx = g - exp(y) * sum(g)
          for (int64_t i = 0; i < n; ++i) acc += gr[i];
          for (int64_t i = 0; i < n; ++i) o[i] = gr[i] - std::exp(in[i]) * static_cast<T>(acc);
        }
      }
    }
  }
};

template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  launch_n("softmax", rows, SoftmaxRowsKernel<T, SoftmaxKind::Softmax>{x, nullptr, y, rows, n});
}
template <class T>
void log_softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  launch_n("log_softmax", rows, SoftmaxRowsKernel<T, SoftmaxKind::LogSoftmax>{x, nullptr, y, rows, n});
}
template <class T>
void softmax_backward_rows(const T* y, const T* g, T* gx, int64_t rows, int64_t n) {
  launch_n("softmax_backward", rows, SoftmaxRowsKernel<T, SoftmaxKind::SoftmaxBackward>{y, g, gx, rows, n});
}
template <class T>
void log_softmax_backward_rows(const T* y, const T* g, T* gx, int64_t rows, int64_t n) {
  launch_n("log_softmax_backward", rows, SoftmaxRowsKernel<T, SoftmaxKind::LogSoftmaxBackward>{y, g, gx, rows, n});
}

}  // namespace tv::cuda
