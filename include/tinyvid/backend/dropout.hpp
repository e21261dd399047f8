#pragma once
// Dispatch of dropout's mask. The mask is counter-based (backend/philox.hpp): one 64-bit key drawn from the
// host Generator, then element i depends on (key, i) alone, so a seed gives the same mask on the CPU and a
// GPU, for any thread count or launch shape, and no mask crosses between devices.
#include "tinyvid/backend/cpu/dropout.hpp"
#include "tinyvid/backend/dispatch.hpp"
#include "tinyvid/core/generator.hpp"

namespace tv::kernel {

// Fills the contiguous `mask` with keep_scale (probability 1 - p) or 0; draws one number from gen.
template <class T>
void dropout_mask(Tensor<T>& mask, double p, T keep_scale, Generator& gen) {
  TV_CHECK(mask.is_contiguous(), "dropout: expected a contiguous mask, got strides ", mask.strides());
  const uint64_t key = gen.next_u64();
  TV_DISPATCH("dropout", mask.device(), dropout_mask<T>(mask.data(), mask.numel(), p, keep_scale, key));
}

}  // namespace tv::kernel
