#pragma once
// What a conv's output pass does after adding the bias, for the eval path's fused convs (ops/conv.hpp,
// conv2d_inference): an eval batch norm's per-channel y * scale + shift, a residual laid out as the output, then
// ReLU. Each output row is finished while it is in cache, with the unfused ops' arithmetic in their order (conv +
// bias, batch norm, add, relu), so no intermediate tensor is written.
#include <cstdint>

namespace tv::cpu {

template <class T>
struct ConvEpilogue {
  const T* scale = nullptr;     // per output channel, with shift; none when null
  const T* shift = nullptr;
  const T* residual = nullptr;  // N x Cout x OH x OW, as the output; none when null
  bool relu = false;            // PyTorch's threshold: x <= 0 ? 0 : x (a NaN stays NaN)

  // Finishes out[0, len), output channel k, which is element `at` onwards of the output.
  void apply(T* out, int64_t at, int64_t len, int64_t k) const {
    if (scale) {
      const T a = scale[k], s = shift[k];
#pragma omp simd
      for (int64_t q = 0; q < len; ++q) out[q] = out[q] * a + s;  // as batch_norm_apply
    }
    if (residual) {
      const T* r = residual + at;
#pragma omp simd
      for (int64_t q = 0; q < len; ++q) out[q] += r[q];
    }
    if (relu) {
#pragma omp simd
      for (int64_t q = 0; q < len; ++q) out[q] = out[q] <= T(0) ? T(0) : out[q];
    }
  }
};

}  // namespace tv::cpu
