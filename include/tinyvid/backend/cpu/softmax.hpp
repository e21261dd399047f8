#pragma once
// softmax and log_softmax over contiguous rows of n elements, forward and backward, numerically stable
// (the row maximum is subtracted first); row sums accumulate in double.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

// The row's maximum, skipping a NaN: a NaN anywhere in the row makes the sum of exponentials NaN, so the whole
// row comes out NaN, as in PyTorch (and +inf gives inf - inf = NaN there too).
template <class T>
T row_max(const T* p, int64_t n) {
  T m = p[0];
  for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}

// Calls row(r) for every row in [0, rows), rows of n elements split across threads.
template <class F>
void for_each_softmax_row(int64_t rows, int64_t n, F&& row) {
  parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) row(r);
  });
}

// y = exp(x - max) / sum, per row.
template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  for_each_softmax_row(rows, n, [=](int64_t r) {
    const T* in = x + r * n;
    T* out = y + r * n;
    const T m = row_max(in, n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += (out[i] = std::exp(in[i] - m));
    const T inv = static_cast<T>(1.0 / s);
    for (int64_t i = 0; i < n; ++i) out[i] *= inv;
  });
}

// y = x - max - log(sum(exp(x - max))), per row.
template <class T>
void log_softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  for_each_softmax_row(rows, n, [=](int64_t r) {
    const T* in = x + r * n;
    T* out = y + r * n;
    const T m = row_max(in, n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(in[i] - m));
    const T lse = static_cast<T>(std::log(s));
    for (int64_t i = 0; i < n; ++i) out[i] = (in[i] - m) - lse;  // this order: exactly <= 0 at the maximum
  });
}

// softmax's backward from its output y and the output gradient g: gx = y * (g - sum(g * y)), per row.
template <class T>
void softmax_backward_rows(const T* y, const T* g, T* gx, int64_t rows, int64_t n) {
  for_each_softmax_row(rows, n, [=](int64_t r) {
    const T* yr = y + r * n;
    const T* gr = g + r * n;
    T* out = gx + r * n;
    double dot = 0;
    for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(gr[i]) * yr[i];
    for (int64_t i = 0; i < n; ++i) out[i] = yr[i] * (gr[i] - static_cast<T>(dot));
  });
}

// log_softmax's backward from its output y and the output gradient g: gx = g - exp(y) * sum(g), per row.
template <class T>
void log_softmax_backward_rows(const T* y, const T* g, T* gx, int64_t rows, int64_t n) {
  for_each_softmax_row(rows, n, [=](int64_t r) {
    const T* yr = y + r * n;
    const T* gr = g + r * n;
    T* out = gx + r * n;
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += gr[i];
    for (int64_t i = 0; i < n; ++i) out[i] = gr[i] - std::exp(yr[i]) * static_cast<T>(total);
  });
}

}  // namespace tv::cpu
