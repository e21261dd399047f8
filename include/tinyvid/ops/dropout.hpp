#pragma once
// dropout as torch.nn.functional.dropout: in training, zero each element with probability p and
// scale the rest by 1 / (1 - p); identity in eval. The mask is counter-based: one key drawn from a seeded
// tv::Generator, then each element a function of (key, index) alone (backend/dropout.hpp), so a seed gives
// the same mask on the CPU and a GPU.
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/dropout.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/elementwise.hpp"

namespace tv {

template <class T>
Tensor<T> dropout(const Tensor<T>& x, double p, bool training, Generator& gen = default_generator()) {
  TV_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  Tensor<T> mask = Tensor<T>::empty(x.shape(), x.device());
  const T keep_scale = p == 1.0 ? T(0) : static_cast<T>(1.0 / (1.0 - p));
  kernel::dropout_mask(mask, p, keep_scale, gen);
  return mul(x, mask);
}

}  // namespace tv
