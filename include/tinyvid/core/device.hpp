#pragma once
// Devices and their allocators: the one place a Storage gets its memory from.
// The CPU's allocator is here; another device's backend registers its allocator at start-up
// (register_allocator), so a build without that backend says so clearly instead of crashing.
#include <array>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <ostream>
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

// Large buffers are kept for reuse instead of going back to the C library. glibc serves big requests with
// mmap and gives freed memory at the top of its heap back to the OS, so a fresh multi-megabyte buffer costs a
// page fault per 4 KB on first touch; in a training loop, which allocates the same sizes every step, that cost
// exceeded the GEMM filling an LSTM's 4 MB weight gradient. Blocks of 1 MB and more, sizes rounded up to
// 64 KB and reused at exactly that size; at most 1 GB is kept (PyTorch's caching allocator, for host memory).
class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;  // a cache line, and an AVX-512 register
  static constexpr size_t kMinCachedBytes = size_t{1} << 20, kGranule = size_t{1} << 16,
                          kMaxCachedBytes = size_t{1} << 30;

  void* allocate(size_t bytes) override {
    bytes = rounded(bytes);
    if (bytes >= kMinCachedBytes) {
      std::lock_guard<std::mutex> lock(mu_);
      if (const auto it = free_.find(bytes); it != free_.end()) {
        void* p = it->second;
        free_.erase(it);
        cached_ -= bytes;
        return p;
      }
    }
    return std::aligned_alloc(kAlignment, bytes);
  }
  void deallocate(void* p, size_t bytes) override {
    bytes = rounded(bytes);
    if (bytes >= kMinCachedBytes) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= kMaxCachedBytes) {
        free_.emplace(bytes, p);
        cached_ += bytes;
        return;
      }
    }
    std::free(p);
  }
  size_t empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [bytes, p] : free_) std::free(p);
    free_.clear();
    return std::exchange(cached_, 0);
  }
  size_t cached_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  static size_t rounded(size_t bytes) {
    bytes = bytes == 0 ? kAlignment : (bytes + kAlignment - 1) / kAlignment * kAlignment;
    return bytes >= kMinCachedBytes ? (bytes + kGranule - 1) / kGranule * kGranule : bytes;
  }
  mutable std::mutex mu_;
  std::unordered_multimap<size_t, void*> free_;
  size_t cached_ = 0;
};

inline std::array<Allocator*, kNumDevices>& allocators() {
  // Never destroyed: storages freed during exit still find their allocator.
  static auto* table = new std::array<Allocator*, kNumDevices>{new CpuAllocator, nullptr};
  return *table;
}

}  // namespace detail

// Installs the allocator of a device; a backend's library calls it once at start-up.
inline void register_allocator(Device device, Allocator* allocator) {
  detail::allocators()[static_cast<int>(device)] = allocator;
}

inline bool device_available(Device device) { return detail::allocators()[static_cast<int>(device)] != nullptr; }

inline Allocator& allocator(Device device) {
  Allocator* a = detail::allocators()[static_cast<int>(device)];
  TV_CHECK(a != nullptr, "device ", device_name(device),
           " is not available in this build (it has the cpu only; build with -DTINYVID_WITH_CUDA=ON and link "
           "tinyvid::cuda for a GPU)");
  return *a;
}

// Gives the memory every device's allocator keeps for reuse back to the system (torch.cuda.empty_cache,
// for every device); returns how many bytes went back.
inline size_t empty_cache() {
  size_t bytes = 0;
  for (Allocator* a : detail::allocators())
    if (a) bytes += a->empty_cache();
  return bytes;
}

}  // namespace tv
