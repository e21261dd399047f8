#pragma once
// Creating tensors: zeros, ones, full, arange, from values, and seeded random ones. Each takes the device to
// create on last (Device::CPU by default), as PyTorch's device=; the *_like ones keep their input's device.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/backend/transfer.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/core/tensor.hpp"

namespace tv {

namespace detail {
// `host` (a new contiguous CPU tensor) on `device`: itself on the CPU, else a copy there.
template <class T>
Tensor<T> moved_to(const Tensor<T>& host, Device device) {
  if (device == Device::CPU) return host;
  Tensor<T> out = Tensor<T>::empty(host.shape(), device);
  kernel::copy_across(host, out);
  return out;
}
}  // namespace detail

template <class T>
Tensor<T> empty(const Shape& shape, Device device = Device::CPU) {
  return Tensor<T>::empty(shape, device);
}

template <class T>
Tensor<T> full(const Shape& shape, std::type_identity_t<T> value, Device device = Device::CPU) {
  Tensor<T> t = Tensor<T>::empty(shape, device);
  kernel::fill(t, static_cast<T>(value));
  return t;
}

template <class T>
Tensor<T> zeros(const Shape& shape, Device device = Device::CPU) {
  return full<T>(shape, T(0), device);
}

template <class T>
Tensor<T> ones(const Shape& shape, Device device = Device::CPU) {
  return full<T>(shape, T(1), device);
}

template <class T>
Tensor<T> empty_like(const Tensor<T>& x) {
  return Tensor<T>::empty(x.shape(), x.device());
}
template <class T>
Tensor<T> zeros_like(const Tensor<T>& x) {
  return zeros<T>(x.shape(), x.device());
}
template <class T>
Tensor<T> ones_like(const Tensor<T>& x) {
  return ones<T>(x.shape(), x.device());
}
template <class T>
Tensor<T> full_like(const Tensor<T>& x, std::type_identity_t<T> value) {
  return full<T>(x.shape(), value, x.device());
}

// A one-element tensor with no dims (what torch.tensor(3.0) gives).
template <class T>
Tensor<T> scalar_tensor(std::type_identity_t<T> value, Device device = Device::CPU) {
  return full<T>({}, value, device);
}

// A tensor holding `values`; `shape` defaults to 1-D. tv::tensor<float>({1, 2, 3, 4}, {2, 2}). The values are
// host memory: they are written on the CPU and copied to `device`.
template <class T>
Tensor<T> tensor(const std::vector<T>& values, Shape shape = {-1}, Device device = Device::CPU) {
  if (shape.size() == 1 && shape[0] == -1) shape[0] = static_cast<int64_t>(values.size());
  TV_CHECK(numel_of(shape) == static_cast<int64_t>(values.size()), "tensor: ", values.size(),
           " values do not fill shape ", shape, " (", numel_of(shape), " elements)");
  Tensor<T> t = Tensor<T>::empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return detail::moved_to(t, device);
}

// Values start, start + step, ... below end (as torch.arange).
template <class T>
Tensor<T> arange(std::type_identity_t<T> start, std::type_identity_t<T> end, std::type_identity_t<T> step = T(1),
                 Device device = Device::CPU) {
  TV_CHECK(step != T(0), "arange: step must be nonzero");
  TV_CHECK((end - start) / step >= 0, "arange: the range [", start, ", ", end, ") with step ", step, " is empty the wrong way");
  auto n = static_cast<int64_t>(std::ceil(static_cast<double>(end - start) / static_cast<double>(step)));
  Tensor<T> t = Tensor<T>::empty({n}, device);
  kernel::iota(t, static_cast<T>(start), static_cast<T>(step));
  return t;
}
template <class T>
Tensor<T> arange(std::type_identity_t<T> end, Device device = Device::CPU) {
  return arange<T>(T(0), end, T(1), device);
}

// Uniform in [lo, hi), drawn in row-major order from `gen` (or the default generator). The generator is a host
// one, so the values are drawn on the CPU and copied to `device`: one seed gives one tensor on every device.
template <class T>
Tensor<T> uniform(const Shape& shape, double lo = 0.0, double hi = 1.0, Generator& gen = default_generator(),
                  Device device = Device::CPU) {
  Tensor<T> t = Tensor<T>::empty(shape);
  std::generate_n(t.data(), t.numel(), [&] { return static_cast<T>(gen.uniform(lo, hi)); });
  return detail::moved_to(t, device);
}

// Normal with the given mean and standard deviation, drawn in row-major order (on the CPU, as uniform).
template <class T>
Tensor<T> normal(const Shape& shape, double mean = 0.0, double std = 1.0, Generator& gen = default_generator(),
                 Device device = Device::CPU) {
  Tensor<T> t = Tensor<T>::empty(shape);
  std::generate_n(t.data(), t.numel(), [&] { return static_cast<T>(mean + std * gen.normal()); });
  return detail::moved_to(t, device);
}

}  // namespace tv
