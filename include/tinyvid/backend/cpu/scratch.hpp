#pragma once
// Per-thread scratch memory, reserved once and reused by every call on that thread, so hot loops
// (im2col tiles, partial sums) allocate nothing.
#include <cstdint>
#include <vector>

namespace tv::cpu {

template <class T>
T* scratch(int64_t n, int slot = 0) {
  thread_local std::vector<T> buffers[2];
  auto& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

}  // namespace tv::cpu
