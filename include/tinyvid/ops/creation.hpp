#pragma once
// Creating tensors: zeros, ones, full, arange, from values, and seeded random ones.
#include <cmath>
#include <type_traits>
#include <vector>

#include "tinyvid/backend/cpu/elementwise.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/core/tensor.hpp"

namespace tv {

template <class T>
Tensor<T> empty(const Shape& shape) {
  return Tensor<T>::empty(shape);
}

template <class T>
Tensor<T> full(const Shape& shape, std::type_identity_t<T> value) {
  Tensor<T> t = Tensor<T>::empty(shape);
  cpu::fill(t.shape(), t.data(), t.strides(), value);
  return t;
}

template <class T>
Tensor<T> zeros(const Shape& shape) {
  return full<T>(shape, T(0));
}

template <class T>
Tensor<T> ones(const Shape& shape) {
  return full<T>(shape, T(1));
}

template <class T>
Tensor<T> empty_like(const Tensor<T>& x) {
  return Tensor<T>::empty(x.shape());
}
template <class T>
Tensor<T> zeros_like(const Tensor<T>& x) {
  return zeros<T>(x.shape());
}
template <class T>
Tensor<T> ones_like(const Tensor<T>& x) {
  return ones<T>(x.shape());
}
template <class T>
Tensor<T> full_like(const Tensor<T>& x, std::type_identity_t<T> value) {
  return full<T>(x.shape(), value);
}

// A one-element tensor with no dims (what torch.tensor(3.0) gives).
template <class T>
Tensor<T> scalar_tensor(std::type_identity_t<T> value) {
  return full<T>({}, value);
}

// A tensor holding `values`; `shape` defaults to 1-D. tv::tensor<float>({1, 2, 3, 4}, {2, 2}).
template <class T>
Tensor<T> tensor(const std::vector<T>& values, Shape shape = {-1}) {
  if (shape.size() == 1 && shape[0] == -1) shape[0] = static_cast<int64_t>(values.size());
  TV_CHECK(numel_of(shape) == static_cast<int64_t>(values.size()), "tensor: ", values.size(),
           " values do not fill shape ", shape, " (", numel_of(shape), " elements)");
  Tensor<T> t = Tensor<T>::empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

// Values start, start + step, ... below end (as torch.arange).
template <class T>
Tensor<T> arange(std::type_identity_t<T> start, std::type_identity_t<T> end, std::type_identity_t<T> step = T(1)) {
  TV_CHECK(step != T(0), "arange: step must be nonzero");
  TV_CHECK((end - start) / step >= 0, "arange: the range [", start, ", ", end, ") with step ", step, " is empty the wrong way");
  auto n = static_cast<int64_t>(std::ceil(static_cast<double>(end - start) / static_cast<double>(step)));
  Tensor<T> t = Tensor<T>::empty({n});
  for (int64_t i = 0; i < n; ++i) t.data()[i] = static_cast<T>(start + static_cast<T>(i) * step);
  return t;
}
template <class T>
Tensor<T> arange(std::type_identity_t<T> end) {
  return arange<T>(T(0), end, T(1));
}

// Uniform in [lo, hi), drawn in row-major order from `gen` (or the default generator).
template <class T>
Tensor<T> uniform(const Shape& shape, double lo = 0.0, double hi = 1.0, Generator& gen = default_generator()) {
  Tensor<T> t = Tensor<T>::empty(shape);
  T* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(gen.uniform(lo, hi));
  return t;
}

// Normal with the given mean and standard deviation, drawn in row-major order.
template <class T>
Tensor<T> normal(const Shape& shape, double mean = 0.0, double std = 1.0, Generator& gen = default_generator()) {
  Tensor<T> t = Tensor<T>::empty(shape);
  T* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(mean + std * gen.normal());
  return t;
}

}  // namespace tv
