#pragma once
// What a conv's output pass does after adding the bias, for the eval path's fused convs (ops/conv.hpp,
// conv2d_inference): an eval batch norm's per-channel y * scale + shift, a residual laid out as the output, then
// ReLU. Each output row is finished while it is in cache, with the unfused ops' arithmetic in their order (conv +
// bias, batch norm, add, relu), so no intermediate tensor is written.
#include <cstdint>
#include <type_traits>

namespace tv::cpu {

template <class T>
struct ConvEpilogue {
  const T* scale = nullptr;     // per output channel, with shift; none when null
  const T* shift = nullptr;
  const T* residual = nullptr;  // N x Cout x OH x OW, as the output; none when null
  bool relu = false;            // PyTorch's threshold: x <= 0 ? 0 : x (a NaN stays NaN)

  // Finishes out[0, len), output channel k, which is element `at` onwards of the output: one pass over the row (the
  // GEMM calls it on pieces of rows still in L2, where three passes cost more than the arithmetic).
  void apply(T* out, int64_t at, int64_t len, int64_t k) const {
    const T a = scale ? scale[k] : T(1), s = scale ? shift[k] : T(0);
    const T* r = residual ? residual + at : nullptr;
    auto pass = [&](auto has_scale, auto has_residual) {
#pragma omp simd
      for (int64_t q = 0; q < len; ++q) {
        T v = out[q];
        if constexpr (has_scale) v = v * a + s;  // as batch_norm_apply
        if constexpr (has_residual) v += r[q];
        if (relu) v = v <= T(0) ? T(0) : v;
        out[q] = v;
      }
    };
    using Yes = std::true_type;
    using No = std::false_type;
    if (scale && residual) pass(Yes{}, Yes{});
    else if (scale) pass(Yes{}, No{});
    else if (residual) pass(No{}, Yes{});
    else if (relu) pass(No{}, No{});
  }
};

}  // namespace tv::cpu
