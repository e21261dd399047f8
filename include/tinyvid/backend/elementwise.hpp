#pragma once
// Dispatch of the elementwise kernels: out = f(x), out = f(a, b) with broadcasting, copy, fill, iota.
// Every function takes already allocated tensors and runs the kernel of their common device; f is a
// functor from backend/functors.hpp (a lambda cannot cross to a GPU).
#include "tinyvid/backend/cpu/elementwise.hpp"
#include "tinyvid/backend/dispatch.hpp"
#include "tinyvid/backend/functors.hpp"

namespace tv::kernel {

// out = f(x) elementwise; x has out's shape (any layout, as out).
template <class T, class U, class F>
void map(const Tensor<T>& x, Tensor<U>& out, F f, const char* op = "map") {
  TV_CHECK(x.shape() == out.shape(), op, ": input of shape ", x.shape(), " for an output of shape ", out.shape());
  TV_DISPATCH(op, device_of(op, x, out), map1(out.shape(), out.data(), out.strides(), x.data(), x.strides(), f));
}

// out = f(a, b) elementwise; a and b broadcast to out's shape (checked by the op beforehand). out may be a or b
// itself (an in-place update) when that operand has out's layout.
template <class T, class U, class F>
void zip(const Tensor<T>& a, const Tensor<T>& b, Tensor<U>& out, F f, const char* op = "zip") {
  const Shape& shape = out.shape();
  TV_DISPATCH(op, device_of(op, a, b, out),
              map2(shape, out.data(), out.strides(), a.data(), broadcast_strides(a.shape(), a.strides(), shape),
                   b.data(), broadcast_strides(b.shape(), b.strides(), shape), f));
}

// out = a + b (gradient accumulation; out may be a).
template <class T>
void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& out) {
  zip(a, b, out, fn::Add{}, "add");
}

// dst = src; src broadcasts to dst's shape. Both on one device (Tensor::to crosses devices).
template <class T>
void copy(const Tensor<T>& src, Tensor<T>& dst) {
  const Shape& shape = dst.shape();
  TV_DISPATCH("copy", device_of("copy", src, dst),
              copy(shape, dst.data(), dst.strides(), src.data(), broadcast_strides(src.shape(), src.strides(), shape)));
}

// Every element of dst = value.
template <class T>
void fill(Tensor<T>& dst, T value) {
  TV_DISPATCH("fill", dst.device(), fill(dst.shape(), dst.data(), dst.strides(), value));
}

// out (contiguous, 1-D) = start, start + step, ... (arange).
template <class T>
void iota(Tensor<T>& out, T start, T step) {
  TV_CHECK(out.is_contiguous(), "iota: expected a contiguous output, got strides ", out.strides());
  TV_DISPATCH("arange", out.device(), iota(out.data(), out.numel(), start, step));
}

}  // namespace tv::kernel
