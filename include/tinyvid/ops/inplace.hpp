#pragma once
// In-place writes: fill_, copy_, add_, mul_. They record no history (an optimizer step, an init);
// on a tensor that requires grad they are allowed only with grad mode off.
#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/backend/functors.hpp"
#include "tinyvid/core/tensor.hpp"

namespace tv {

namespace detail {
template <class T>
void check_inplace(const Tensor<T>& t, const char* op) {
  TV_CHECK(!(is_grad_enabled() && t.requires_grad()), op, ": in-place write to a tensor that requires grad (shape ",
           t.shape(), "); do it under tv::NoGradGuard, as an optimizer step does");
  for (int64_t d = 0; d < t.dim(); ++d)
    TV_CHECK(t.stride(d) != 0 || t.size(d) <= 1, op, ": the tensor (shape ", t.shape(), ", strides ", t.strides(),
             ") is an expanded view whose elements share memory; write to a contiguous() copy instead");
}
}  // namespace detail

template <class T>
Tensor<T>& Tensor<T>::fill_(T value) {
  detail::check_inplace(*this, "fill_");
  kernel::fill(*this, value);
  storage()->bump_version();
  return *this;
}

// Copies src into this tensor; src broadcasts to this tensor's shape and is on its device (use .to() first).
template <class T>
Tensor<T>& Tensor<T>::copy_(const Tensor<T>& src) {
  detail::check_inplace(*this, "copy_");
  Shape b = broadcast_shapes(shape(), src.shape(), "copy_");
  TV_CHECK(b == shape(), "copy_: source of shape ", src.shape(), " does not broadcast to destination shape ", shape());
  kernel::copy(src, *this);
  storage()->bump_version();
  return *this;
}

// this += alpha * other; other broadcasts to this tensor's shape.
template <class T>
Tensor<T>& Tensor<T>::add_(const Tensor<T>& other, T alpha) {
  detail::check_inplace(*this, "add_");
  Shape b = broadcast_shapes(shape(), other.shape(), "add_");
  TV_CHECK(b == shape(), "add_: operand of shape ", other.shape(), " does not broadcast to shape ", shape());
  kernel::zip(*this, other, *this, fn::AddScaled<T>{alpha}, "add_");
  storage()->bump_version();
  return *this;
}

template <class T>
Tensor<T>& Tensor<T>::mul_(T value) {
  detail::check_inplace(*this, "mul_");
  kernel::map(*this, *this, fn::MulScalar<T>{value}, "mul_");
  storage()->bump_version();
  return *this;
}

}  // namespace tv
