#pragma once
// Copies between devices: the one way a tensor's bytes cross from one device to another (Tensor::to).
#include <cstring>

#include "tinyvid/backend/dispatch.hpp"

namespace tv::kernel {

// dst = src, both contiguous and of one shape, on any two devices. A copy that touches a device other than
// the CPU is that device's kernel (cuda::copy_across, a cudaMemcpy); the CPU-only case is a memcpy.
template <class T>
void copy_across(const Tensor<T>& src, Tensor<T>& dst) {
  TV_CHECK(src.is_contiguous() && dst.is_contiguous() && src.shape() == dst.shape(),
           "copy_across: expected contiguous tensors of one shape, got ", src.shape(), " and ", dst.shape());
  const size_t bytes = static_cast<size_t>(src.numel()) * sizeof(T);
  if (src.device() == Device::CPU && dst.device() == Device::CPU) {
    if (bytes) std::memcpy(dst.data(), src.data(), bytes);
    return;
  }
#ifdef TINYVID_WITH_CUDA
  ::tv::cuda::copy_across(dst.data(), dst.device(), src.data(), src.device(), bytes);
#else
  ::tv::detail::no_kernel("to", src.device() == Device::CPU ? dst.device() : src.device());
#endif
}

}  // namespace tv::kernel
