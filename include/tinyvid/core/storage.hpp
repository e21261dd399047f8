#pragma once
// Storage: one refcounted buffer on a device, with a version counter. Its memory comes from the device's
// allocator (core/device.hpp). The version counter lets autograd detect a tensor modified in place after it
// was saved for backward.
#include <cstdint>

#include "tinyvid/core/device.hpp"
#include "tinyvid/core/error.hpp"

namespace tv {

template <class T>
class Storage {
 public:
  // pinned: host memory from pinned_allocator() where there is one (else ordinary host memory).
  explicit Storage(int64_t n, Device device = Device::CPU, bool pinned = false) : size_(n), device_(device) {
    TV_CHECK(!pinned || device == Device::CPU, "storage: pinned memory is host memory, not ", device_name(device));
    TV_CHECK(n >= 0, "storage: negative size ", n);
    TV_CHECK(static_cast<uint64_t>(n) <= (uint64_t(1) << 56) / sizeof(T), "storage: ", n, " elements of ", sizeof(T),
             " bytes is beyond any memory");
    bytes_ = static_cast<size_t>(n) * sizeof(T);
    allocator_ = pinned ? pinned_allocator() : nullptr;
    pinned_ = allocator_ != nullptr;
    if (!allocator_) allocator_ = &allocator(device);
    data_ = static_cast<T*>(allocator_->allocate(bytes_));
    TV_CHECK(data_, "storage: out of memory allocating ", bytes_, " bytes on ", device_name(device), " (", n,
             " elements of ", sizeof(T), " bytes); use a smaller batch, clip or model");
  }
  ~Storage() { allocator_->deallocate(data_, bytes_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  Device device() const { return device_; }
  bool is_pinned() const { return pinned_; }
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  T* data_ = nullptr;
  size_t bytes_ = 0;
  int64_t size_ = 0;
  Device device_ = Device::CPU;
  Allocator* allocator_ = nullptr;  // the one it came from, and goes back to
  bool pinned_ = false;
  uint64_t version_ = 0;
};

}  // namespace tv
