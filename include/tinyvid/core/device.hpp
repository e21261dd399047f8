#pragma once
// Devices and their allocators: the one place a Storage gets its memory from.
// The CPU's allocator is here; a CUDA build asks the CUDA library for its allocator on first use, so a build
// or a machine without a GPU says so clearly instead of crashing.
#include <array>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <ostream>
#include <string>
#include <unordered_map>
#include <utility>

#include "tinyvid/core/error.hpp"

namespace tv {

enum class Device { CPU, CUDA };
inline constexpr int kNumDevices = 2;

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
inline std::ostream& operator<<(std::ostream& os, Device d) { return os << device_name(d); }

// Memory for one device. allocate() returns memory aligned to at least 64 bytes or nullptr when out of memory.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  // Gives cached blocks back to the system; returns how many bytes went back.
  virtual size_t empty_cache() { return 0; }
  // Bytes held for reuse, not in use by any storage.
  virtual size_t cached_bytes() const { return 0; }
};

namespace detail {

// Keeps freed blocks for reuse at their (rounded) size instead of giving them back to the system, which is
// slow in both places it is used. On the CPU, glibc serves big requests with mmap and gives freed memory at
// the top of its heap back to the OS, so a fresh multi-megabyte buffer costs a page fault per 4 KB on first
// touch (in an LSTM's training step that exceeded the GEMM filling its 4 MB weight gradient). On a GPU,
// cudaMalloc and cudaFree synchronise the device. A training step allocates the same sizes every time, so
// exact-size reuse finds its blocks (PyTorch's caching allocators do the same, with block splitting).
// When the system is out of memory, the cache is emptied and the request tried once more.
class CachingAllocator : public Allocator {
 public:
  struct Policy {
    size_t alignment;         // every size is a multiple of it
    size_t min_cached_bytes;  // smaller blocks go straight back to the system
    size_t large_bytes;       // from this size on, sizes are rounded up to `granule`
    size_t granule;
    size_t max_cached_bytes;  // the cache never holds more
  };
  explicit CachingAllocator(Policy policy) : policy_(policy) {}

  void* allocate(size_t bytes) override {
    bytes = rounded(bytes);
    if (bytes >= policy_.min_cached_bytes) {
      std::lock_guard<std::mutex> lock(mu_);
      if (const auto it = free_.find(bytes); it != free_.end()) {
        void* p = it->second;
        free_.erase(it);
        cached_ -= bytes;
        return p;
      }
    }
    void* p = system_allocate(bytes);
    if (!p && empty_cache() > 0) p = system_allocate(bytes);
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    bytes = rounded(bytes);
    if (bytes >= policy_.min_cached_bytes) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= policy_.max_cached_bytes) {
        free_.emplace(bytes, p);
        cached_ += bytes;
        return;
      }
    }
    system_free(p);
  }
  size_t empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& entry : free_) system_free(entry.second);
    free_.clear();
    return std::exchange(cached_, 0);
  }
  size_t cached_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }
  size_t rounded(size_t bytes) const {
    const size_t a = policy_.alignment, g = policy_.granule;
    bytes = bytes == 0 ? a : (bytes + a - 1) / a * a;
    return bytes >= policy_.large_bytes ? (bytes + g - 1) / g * g : bytes;
  }

 protected:
  // The system's allocation: memory aligned to policy.alignment, or nullptr when out of memory.
  virtual void* system_allocate(size_t bytes) = 0;
  virtual void system_free(void* p) = 0;

 private:
  Policy policy_;
  mutable std::mutex mu_;
  std::unordered_multimap<size_t, void*> free_;
  size_t cached_ = 0;
};

// Host memory: blocks of 64 KB and more are cached, sizes from 1 MB on rounded up to 64 KB, at most 1 GB kept. From
// 64 KB rather than 1 MB: glibc gave the blocks under 1 MB back to the OS as well (ResNet-50's last stage, 8 x 512 x 7 x
// 7 floats = 0.8 MB), and a TSN-R50 eval forward page-faulted 2.9 MB anew each time (0.96-0.97x the forward's time
// with them cached).
class CpuAllocator final : public CachingAllocator {
 public:
  static constexpr size_t kAlignment = 64;  // a cache line, and an AVX-512 register
  CpuAllocator() : CachingAllocator({kAlignment, size_t{1} << 16, size_t{1} << 20, size_t{1} << 16, size_t{1} << 30}) {}

 private:
  void* system_allocate(size_t bytes) override { return std::aligned_alloc(kAlignment, bytes); }
  void system_free(void* p) override { std::free(p); }
};

inline std::array<Allocator*, kNumDevices>& allocators() {
  // Never destroyed: storages freed during exit still find their allocator.
  static auto* table = new std::array<Allocator*, kNumDevices>{new CpuAllocator, nullptr};
  return *table;
}

// Host memory for the CPU kernels' own buffers (cpu::AlignedVector: packed weights, per-thread partial sums, scratch),
// cached as tensors' memory is, so that the buffers a training step asks for at the same sizes every step are not
// page-faulted in anew each time (those faults were 4% of a ResNet-50 step's time). An allocator of its own: a
// test's register_allocator never sees a buffer it did not hand out.
inline Allocator& kernel_buffer_allocator() {
  static Allocator* const a = new CpuAllocator;  // never destroyed: thread-local buffers are freed at thread exit
  return *a;
}

// The pinned host allocator once found (pinned_allocator()), so that empty_cache() reaches it.
inline Allocator*& allocators_pinned() {
  static Allocator* pinned = nullptr;
  return pinned;
}

}  // namespace detail

#ifdef TINYVID_WITH_CUDA
namespace cuda {
// The CUDA library's caching allocator for the current GPU (src/cuda/runtime.cu), or nullptr with `why` set
// when this machine has no usable GPU (no device, no driver, a driver too old).
Allocator* device_allocator(std::string& why);
// Page-locked host memory (cudaHostAlloc), or nullptr without a usable GPU. A block freed while a copy from it
// may still be queued is handed out again only after that copy has finished.
Allocator* pinned_host_allocator();
}  // namespace cuda
#endif

namespace detail {
// The allocator of `device`, or nullptr with `why` set. The CUDA library is asked once, on first use.
inline Allocator* find_allocator(Device device, std::string& why) {
  if (Allocator* a = allocators()[static_cast<int>(device)]) return a;
#ifdef TINYVID_WITH_CUDA
  if (device == Device::CUDA) {
    static std::string cuda_why;
    static Allocator* const cuda = ::tv::cuda::device_allocator(cuda_why);
    if (cuda) allocators()[static_cast<int>(device)] = cuda;  // so that empty_cache() reaches it
    why = "device cuda is not available: " + cuda_why;
    return cuda;
  }
#endif
  why = std::string("device ") + device_name(device) +
        " is not available in this build (it has the cpu only; configure with -DTINYVID_CUDA=ON on a machine "
        "with the CUDA Toolkit for a GPU)";
  return nullptr;
}
}  // namespace detail

// Host memory a GPU copies from without staging (PyTorch's pinned memory), so that a batch's upload is queued
// on the stream and the host goes on at once; nullptr where there is no GPU to copy to. The loader's batches
// come from it when they are bound for a GPU (LoaderOptions::pin_memory).
inline Allocator* pinned_allocator() {
  Allocator*& slot = detail::allocators_pinned();
  if (slot) return slot;
#ifdef TINYVID_WITH_CUDA
  slot = ::tv::cuda::pinned_host_allocator();
#endif
  return slot;
}

// Installs an allocator for a device in place of the backend's own (tests give a device host memory this way);
// nullptr removes it again.
inline void register_allocator(Device device, Allocator* allocator) {
  detail::allocators()[static_cast<int>(device)] = allocator;
}

// Whether tensors can be made on `device`: the CPU always; CUDA in a CUDA build on a machine with a GPU.
inline bool device_available(Device device) {
  std::string why;
  return detail::find_allocator(device, why) != nullptr;
}

inline Allocator& allocator(Device device) {
  std::string why;
  Allocator* a = detail::find_allocator(device, why);
  TV_CHECK(a != nullptr, why);
  return *a;
}

// Gives the memory every device's allocator keeps for reuse back to the system (torch.cuda.empty_cache,
// for every device); returns how many bytes went back.
inline size_t empty_cache() {
  size_t bytes = 0;
  for (Allocator* a : detail::allocators())
    if (a) bytes += a->empty_cache();
  if (Allocator* pinned = detail::allocators_pinned()) bytes += pinned->empty_cache();
  return bytes + detail::kernel_buffer_allocator().empty_cache();
}

}  // namespace tv
