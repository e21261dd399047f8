#pragma once
// The seam between ops and devices. Every kernel an op needs is reached through one dispatch function in
// backend/<family>.hpp (namespace tv::kernel) that takes tensors, finds their common device and calls the
// kernel of that name in the device's namespace: tv::cpu:: here, tv::cuda:: in a CUDA build. Kernels of
// every device share their signature (raw pointers, sizes and strides), so one call line serves them all:
//
//   template <class T> void softmax_rows(const Tensor<T>& x, Tensor<T>& y) {
//     TV_DISPATCH("softmax", device_of("softmax", x, y), softmax_rows(x.data(), y.data(), rows, n));
//   }
#include "tinyvid/core/device.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/tensor.hpp"

#ifdef TINYVID_WITH_CUDA
#include "tinyvid/backend/cuda.hpp"
#define TV_DISPATCH_CUDA_CASE(call)  \
  case ::tv::Device::CUDA:           \
    ::tv::cuda::call;                \
    break;
#else
#define TV_DISPATCH_CUDA_CASE(call)
#endif

// Runs `call` from the kernel namespace of `device`; `op` names the operation if that device has no kernel.
#define TV_DISPATCH(op, device, call)                           \
  do {                                                          \
    switch (device) {                                           \
      case ::tv::Device::CPU:                                   \
        ::tv::cpu::call;                                        \
        break;                                                  \
        TV_DISPATCH_CUDA_CASE(call)                             \
      default:                                                  \
        ::tv::detail::no_kernel(op, device);                    \
    }                                                           \
  } while (0)

namespace tv {

namespace detail {
[[noreturn]] inline void no_kernel(const char* op, Device device) {
  TV_FAIL(op, ": no kernel for device ", device_name(device), " in this build");
}
}  // namespace detail

// The device shared by an op's tensors (undefined ones are skipped, e.g. an absent bias); tensors on two
// devices are an error naming the op and both devices, as PyTorch's "Expected all tensors to be on the same device".
template <class... Ts>
Device device_of(const char* op, const Ts&... tensors) {
  bool found = false;
  Device device = Device::CPU;
  auto visit = [&](const auto& t) {
    if (!t.defined()) return;
    const Device d = t.device();
    TV_CHECK(!found || d == device, op, ": expected all tensors on one device, got ", device_name(device), " and ",
             device_name(d));
    found = true;
    device = d;
  };
  (visit(tensors), ...);
  return device;
}

}  // namespace tv
