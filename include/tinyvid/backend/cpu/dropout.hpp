#pragma once
// dropout's mask on the CPU: element i is a pure function of (key, i) (backend/philox.hpp), as on every device.
#include <cstdint>

#include "tinyvid/backend/philox.hpp"
#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

// mask[i] = keep_scale with probability 1 - p, else 0; the same mask for the same key on every device.
template <class T>
void dropout_mask(T* mask, int64_t n, double p, T keep_scale, uint64_t key) {
  parallel_for(0, n, kParallelGrain / 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) mask[i] = dropout_mask_value(key, i, p, keep_scale);
  });
}

}  // namespace tv::cpu
