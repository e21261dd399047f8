#pragma once
// Storage: one aligned, refcounted buffer with a device tag and a version counter.
// The version counter lets autograd detect a tensor modified in place after it was saved for backward.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "tinyvid/core/error.hpp"

namespace tv {

enum class Device { CPU, CUDA };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

template <class T>
class Storage {
 public:
  static constexpr size_t kAlignment = 64;  // a cache line, and an AVX-512 register

  explicit Storage(int64_t n, Device device = Device::CPU) : size_(n), device_(device) {
    TV_CHECK(n >= 0, "storage: negative size ", n);
    TV_CHECK(device == Device::CPU, "storage: device ", device_name(device),
             " is not available in this build");
    size_t bytes = (static_cast<size_t>(n) * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
    if (bytes == 0) bytes = kAlignment;
    data_ = static_cast<T*>(std::aligned_alloc(kAlignment, bytes));
    if (!data_) throw std::bad_alloc();
  }
  ~Storage() { std::free(data_); }
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
  int64_t size_ = 0;
  Device device_ = Device::CPU;
  uint64_t version_ = 0;
};

}  // namespace tv
