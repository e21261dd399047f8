#pragma once
// Dispatch of the loss and metric kernels. Both return host numbers by design; on a GPU each is one
// device-to-host synchronisation (a reduction to one or two numbers, then a copy back).
#include <utility>

#include "tinyvid/backend/cpu/loss.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::kernel {

// The first index of the 1-D `index` outside [0, bound) as {position, value}; {-1, 0} when all are in range.
inline std::pair<int64_t, int64_t> find_out_of_range(const char* op, const Tensor<int64_t>& index, int64_t bound) {
  TV_CHECK(index.dim() == 1, op, ": expected 1-D indices, got shape ", index.shape());
  int64_t position = -1, value = 0;
  TV_DISPATCH(op, device_of(op, index),
              find_out_of_range(index.data(), index.size(0), index.stride(0), bound, &position, &value));
  return {position, value};
}

// How many rows of logits (N x C, contiguous) have their target (N indices in [0, C)) among the k largest.
template <class T>
int64_t topk_hits(const Tensor<T>& logits, const Tensor<int64_t>& target, int64_t k) {
  TV_CHECK(logits.dim() == 2 && logits.is_contiguous() && target.dim() == 1 && target.size(0) == logits.size(0),
           "topk_hits: expected contiguous logits N x C and N targets, got ", logits.shape(), " and ", target.shape());
  int64_t hits = 0;
  TV_DISPATCH("topk_accuracy", device_of("topk_accuracy", logits, target),
              topk_hits<T>(logits.data(), logits.size(0), logits.size(1), target.data(), target.stride(0), k, &hits));
  return hits;
}

}  // namespace tv::kernel
