#pragma once
// Per-thread scratch memory, reserved once and reused by every call on that thread, so hot loops
// (im2col tiles, partial sums) allocate nothing.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tv::cpu {

// Slots 0 and 1 are for buffers private to a work item; the named slots hold one call's buffers on
// the calling thread, which is also a worker of the parallel loops inside the call.
enum ScratchSlot : int {
  kScratchWinogradU = 2,
  kScratchWinogradV = 3,
  kScratchWinogradM = 4,
  kScratchPadded = 5,
  kScratchGemmA = 6,  // packed_gemm.hpp: A packed (the calling thread's), a B panel and tail tiles (each worker's)
  kScratchGemmB = 7,
  kScratchGemmC = 8,
  kScratchSlots = 9
};

template <class T>
T* scratch(int64_t n, int slot = 0) {
  thread_local std::vector<T> buffers[kScratchSlots];
  auto& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

}  // namespace tv::cpu
