#pragma once
// Storage: one aligned, refcounted buffer with a device tag and a version counter.
// The version counter lets autograd detect a tensor modified in place after it was saved for backward.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

#include "tinyvid/core/error.hpp"

namespace tv {

enum class Device { CPU, CUDA };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

namespace detail {

// Large buffers are kept for reuse instead of going back to the C library. glibc serves big requests with
// mmap and gives freed memory at the top of its heap back to the OS, so a fresh multi-megabyte buffer costs a
// page fault per 4 KB on first touch; in a training loop, which allocates the same sizes every step, that cost
// exceeded the GEMM filling an LSTM's 4 MB weight gradient. Blocks of 1 MB and more, sizes rounded up to
// 64 KB and reused at exactly that size; at most 1 GB is kept, and tv::empty_cache() gives it all back
// (PyTorch's torch.cuda.empty_cache, for host memory).
class LargeBlockCache {
 public:
  static constexpr size_t kMinBytes = size_t{1} << 20, kGranule = size_t{1} << 16, kMaxCachedBytes = size_t{1} << 30;
  static LargeBlockCache& instance() {
    static auto* cache = new LargeBlockCache;  // never destroyed: storages freed during exit still find it
    return *cache;
  }
  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = free_.find(bytes);
    if (it == free_.end()) return nullptr;
    void* p = it->second;
    free_.erase(it);
    cached_ -= bytes;
    return p;
  }
  // false: the cache is full, the caller frees the block.
  bool keep(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + bytes > kMaxCachedBytes) return false;
    free_.emplace(bytes, p);
    cached_ += bytes;
    return true;
  }
  void release_all() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [bytes, p] : free_) std::free(p);
    free_.clear();
    cached_ = 0;
  }
  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  std::mutex mu_;
  std::unordered_multimap<size_t, void*> free_;
  size_t cached_ = 0;
};

}  // namespace detail

// Frees the large buffers kept for reuse (see detail::LargeBlockCache); returns how many bytes went back.
inline size_t empty_cache() {
  auto& cache = detail::LargeBlockCache::instance();
  const size_t bytes = cache.cached_bytes();
  cache.release_all();
  return bytes;
}

template <class T>
class Storage {
 public:
  static constexpr size_t kAlignment = 64;  // a cache line, and an AVX-512 register

  explicit Storage(int64_t n, Device device = Device::CPU) : size_(n), device_(device) {
    TV_CHECK(n >= 0, "storage: negative size ", n);
    TV_CHECK(device == Device::CPU, "storage: device ", device_name(device),
             " is not available in this build");
    TV_CHECK(static_cast<uint64_t>(n) <= (uint64_t(1) << 56) / sizeof(T), "storage: ", n, " elements of ", sizeof(T),
             " bytes is beyond any memory");
    size_t bytes = (static_cast<size_t>(n) * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
    if (bytes == 0) bytes = kAlignment;
    using Cache = detail::LargeBlockCache;
    if (bytes >= Cache::kMinBytes) {
      bytes = (bytes + Cache::kGranule - 1) / Cache::kGranule * Cache::kGranule;
      data_ = static_cast<T*>(Cache::instance().take(bytes));
    }
    if (!data_) data_ = static_cast<T*>(std::aligned_alloc(kAlignment, bytes));
    TV_CHECK(data_, "storage: out of memory allocating ", bytes, " bytes (", n, " elements of ", sizeof(T),
             " bytes); use a smaller batch, clip or model");
    bytes_ = bytes;
  }
  ~Storage() {
    if (bytes_ >= detail::LargeBlockCache::kMinBytes && detail::LargeBlockCache::instance().keep(data_, bytes_)) return;
    std::free(data_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  Device device() const { return device_; }
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  T* data_ = nullptr;
  size_t bytes_ = 0;  // allocated, a multiple of kAlignment (of the cache's granule for large blocks)
  int64_t size_ = 0;
  Device device_ = Device::CPU;
  uint64_t version_ = 0;
};

}  // namespace tv
