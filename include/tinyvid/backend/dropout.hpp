#pragma once
// Dispatch of dropout's mask. The Generator is host state (a std::mt19937_64 sequence), so the mask is drawn
// on the host whatever the device: a tensor on another device gets the host mask copied across, which keeps
// every seed's mask bit-identical to the CPU's. A GPU kernel must not draw from its own generator unless the
// masks may differ from the CPU's: a counter-based one (Philox, keyed by a seed and an offset taken from gen)
// would avoid the copy but give other masks for the same seed.
#include "tinyvid/backend/cpu/dropout.hpp"
#include "tinyvid/backend/dispatch.hpp"
#include "tinyvid/backend/transfer.hpp"

namespace tv::kernel {

// Fills the contiguous `mask` with keep_scale (probability 1 - p) or 0, one draw of gen per element in order.
template <class T>
void dropout_mask(Tensor<T>& mask, double p, T keep_scale, Generator& gen) {
  TV_CHECK(mask.is_contiguous(), "dropout: expected a contiguous mask, got strides ", mask.strides());
  if (mask.device() == Device::CPU) {
    cpu::dropout_mask(mask.data(), mask.numel(), p, keep_scale, gen);
    return;
  }
  Tensor<T> host = Tensor<T>::empty(mask.shape(), Device::CPU);
  cpu::dropout_mask(host.data(), host.numel(), p, keep_scale, gen);
  copy_across(host, mask);
}

}  // namespace tv::kernel
