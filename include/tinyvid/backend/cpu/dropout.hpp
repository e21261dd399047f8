#pragma once
// dropout's mask: each element keep_scale with probability 1 - p, else 0, drawn in order from a host Generator.
#include <cstdint>

#include "tinyvid/core/generator.hpp"

namespace tv::cpu {

// mask[i] = keep_scale when the i-th uniform draw of gen is >= p, else 0; one draw per element, in order,
// so a seed gives the same mask on every machine. Serial on purpose: the generator is one sequence.
template <class T>
void dropout_mask(T* mask, int64_t n, double p, T keep_scale, Generator& gen) {
  for (int64_t i = 0; i < n; ++i) mask[i] = gen.next_double() >= p ? keep_scale : T(0);
}

}  // namespace tv::cpu
