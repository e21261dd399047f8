#pragma once
// What a conv's output pass does: the bias, then for the eval path's fused convs (ops/conv.hpp,
// conv2d_inference): an eval batch norm's per-channel y * scale + shift, a residual laid out as the output, then
// ReLU. Each output row is finished while it is in cache, with the unfused ops' arithmetic in their order (conv +
// bias, batch norm, add, relu), so no intermediate tensor is written.
#include <cstdint>
#include <type_traits>

namespace tv::cpu {

// Asks for the cache lines of p[0, len) in L2; for_write: owned, for a pass that reads and then writes them (a
// residual added in place), so that its stores do not wait for the line to change hands.
template <class T>
[[gnu::always_inline]] inline void prefetch_lines(const T* p, int64_t len, bool for_write = false) {
  constexpr int64_t line = 64 / sizeof(T);
  for (int64_t q = 0; q < len + line; q += line) {  // one line past: p + len - 1's where p starts inside a line
#if defined(__x86_64__)
    // (GCC 12 deleted __builtin_prefetch here once inlined: it counts the loop as free of effects)
    if (for_write) asm volatile("prefetchw %0" : : "m"(*reinterpret_cast<const char*>(p + q)));
    else asm volatile("prefetcht1 %0" : : "m"(*reinterpret_cast<const char*>(p + q)));  // into L2
#else
    __builtin_prefetch(p + q, for_write ? 1 : 0, 2);
#endif
  }
}

template <class T>
struct ConvEpilogue {
  const T* scale = nullptr;     // per output channel, with shift; none when null
  const T* shift = nullptr;
  const T* residual = nullptr;  // N x Cout x OH x OW, as the output; none when null
  bool relu = false;            // PyTorch's threshold: x <= 0 ? 0 : x (a NaN stays NaN)

  // out[q] = src[q] + bias, finished, for q < len: output channel k, element `at` onwards of the output (src may be
  // out). One pass over a piece of a row while it is in cache: the GEMM calls it on pieces of rows still in L2, where
  // three passes cost more than the arithmetic, and the shifted convs on the valid runs of each 8-row tile, where a
  // copy and a pass of its own cost the stem's fused output 17% of its time. Always inlined: called, it cost the
  // stem's plain output 3%.
  [[gnu::always_inline]] void store(const T* src, T bias, T* out, int64_t at, int64_t len, int64_t k) const {
    const T a = scale ? scale[k] : T(1), s = scale ? shift[k] : T(0);
    const T* r = residual ? residual + at : nullptr;
    auto pass = [&](auto has_scale, auto has_residual, auto has_relu) {
#pragma omp simd
      for (int64_t q = 0; q < len; ++q) {
        T v = src[q] + bias;
        if constexpr (has_scale) v = v * a + s;  // as batch_norm_apply
        if constexpr (has_residual) v += r[q];
        if constexpr (has_relu) v = v <= T(0) ? T(0) : v;
        out[q] = v;
      }
    };
    using Yes = std::true_type;
    using No = std::false_type;
    auto with_relu = [&](auto has_scale, auto has_residual) {
      if (relu) pass(has_scale, has_residual, Yes{});
      else pass(has_scale, has_residual, No{});
    };
    if (scale && residual) with_relu(Yes{}, Yes{});
    else if (scale) with_relu(Yes{}, No{});
    else if (residual) with_relu(No{}, Yes{});
    else if (relu || src != out || bias != T(0)) with_relu(No{}, No{});
  }

  // Whether store leaves its input as it is (no batch norm, residual or ReLU; the bias aside).
  bool plain() const { return !scale && !residual && !relu; }

  // Asks for the residual of out[0, len) of `at` in L2 before store reads it: the GEMM calls it while the tiles it
  // finishes are summed. Read only at finish time, each row's few cache lines (rows a map apart) were misses that no
  // hardware prefetcher had run ahead of: the residual cost a 1x1 conv at 56 x 56 half as much time as its product.
  void prefetch(int64_t at, int64_t len) const {
    if (residual) prefetch_lines(residual + at, len);
  }
};

}  // namespace tv::cpu
