#pragma once
// Per-thread scratch memory, reserved once and reused by every call on that thread, so hot loops
// (im2col tiles, partial sums) allocate nothing; 64-byte aligned.
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include "tinyvid/core/device.hpp"

namespace tv::cpu {

// An allocator for buffers the vector kernels read: 64-byte (cache-line) aligned, and cached for reuse
// (device.hpp's kernel_buffer_allocator). malloc gives 16, and a buffer whose rows start 16 bytes into a line splits
// every 64-byte load across two lines: Winograd's 3x3 64 -> 64 at 56x56 ran at 135 instead of 295 GFLOP/s on 2 cores
// whenever its scratch landed that way. Kept: from the system allocator instead, for buffers kept long rather than
// reused call by call, whose memory goes back when they are dropped (the cache would keep it).
template <class T, bool Kept = false>
struct CacheAligned {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = CacheAligned<U, Kept>;
  };
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U, Kept>&) {}
  T* allocate(size_t n) {
    if constexpr (Kept) return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
    if (void* p = ::tv::detail::kernel_buffer_allocator().allocate(n * sizeof(T))) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  void deallocate(T* p, size_t n) {
    if constexpr (Kept) ::operator delete(p, std::align_val_t(64));
    else ::tv::detail::kernel_buffer_allocator().deallocate(p, n * sizeof(T));
  }
  // A new element without a value is left uninitialized, as with `new T[n]`: a buffer the kernels overwrite is not
  // zeroed first (4 MB of packed weights per call of a 1x1 2048 -> 512 conv). Ask for zeros with vector(n, T(0)).
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) ::new (static_cast<void*>(p)) U;
    else ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const CacheAligned<U, Kept>&) const { return true; }
};

template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

// A conv's weights prepared for one of its paths (packed for the GEMM, or Winograd-transformed) and kept across calls:
// a frozen conv's (nn::freeze), as PyTorch's frozen modules keep their prepacked weights. `tag` names the path and
// layout that filled it; a call that takes another path or layout (Winograd on an input of another size) refills it. Whoever
// holds it checks that the weights did not change (backend/conv.hpp's ConvWeightCache).
struct PreparedWeights {
  int64_t tag = 0;  // 0: empty
  std::vector<float, CacheAligned<float, true>> data;  // (system memory: see CacheAligned)
  // The n prepared floats for `want`, made by fill(data) first where they are not there.
  template <class Fill>
  const float* get(int64_t want, int64_t n, Fill&& fill) {
    if (tag != want || static_cast<int64_t>(data.size()) != n) {
      tag = 0;
      data.resize(static_cast<size_t>(n));
      fill(data.data());
      tag = want;
    }
    return data.data();
  }
  void clear() {
    tag = 0;
    data = decltype(data)();  // (its memory freed, not kept as capacity)
  }
};

// Slots 0 and 1 are for buffers private to a work item; the named slots hold one call's buffers on
// the calling thread, which is also a worker of the parallel loops inside the call (and, in Winograd's chunked
// forward and grouped weight gradient, every worker's own V and M).
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
  thread_local AlignedVector<T> buffers[kScratchSlots];
  auto& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

}  // namespace tv::cpu
