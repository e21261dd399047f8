#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the counter-based
// generator of cuRAND and PyTorch's GPU kernels: a pure function of a 64-bit key and a 64-bit counter, so
// element i of a random tensor is the same number whichever thread, device or launch shape computes it.
#include <cstdint>

#include "tinyvid/backend/host_device.hpp"

namespace tv {

struct Philox {
  uint32_t x[4];  // the four 32-bit words of one output

  // The output for the 64-bit counter (the low two counter words) under the 64-bit key.
  TV_HOST_DEVICE static Philox at(uint64_t key, uint64_t counter) {
    return block(static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0, 0,
                 static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32));
  }

  // The full generator: a 128-bit counter (c0..c3), a 64-bit key (k0, k1).
  TV_HOST_DEVICE static Philox block(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
    constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u, kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0, p1 = static_cast<uint64_t>(kMul1) * c2;
      const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
      const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
      c0 = hi1 ^ c1 ^ k0;
      c1 = lo1;
      c2 = hi0 ^ c3 ^ k1;
      c3 = lo0;
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    return {{c0, c1, c2, c3}};
  }

  // A uniform double in [0, 1) from the first two words (53 random bits).
  TV_HOST_DEVICE double uniform() const {
    const uint64_t bits = (static_cast<uint64_t>(x[0]) << 32) | x[1];
    return static_cast<double>(bits >> 11) * 0x1.0p-53;
  }
};

// dropout's rule, one element: keep_scale where the uniform number of (key, i) is >= p, else 0.
template <class T>
TV_HOST_DEVICE T dropout_mask_value(uint64_t key, int64_t i, double p, T keep_scale) {
  return Philox::at(key, static_cast<uint64_t>(i)).uniform() >= p ? keep_scale : T(0);
}

}  // namespace tv
