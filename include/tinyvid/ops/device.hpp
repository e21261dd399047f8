#pragma once
// Tensor::to(device): a differentiable copy to another device (its gradient goes back to where it came from).
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/transfer.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

template <class T>
Tensor<T> Tensor<T>::to(Device target) const {
  if (device() == target) return *this;
  const Tensor<T> src = contiguous();
  Tensor<T> out = Tensor<T>::empty(shape(), target);
  kernel::copy_across(src, out);
  const Device from = device();
  autograd::record(out, "ToCopyBackward", {*this}, [from](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{g.to(from)};
  });
  return out;
}

}  // namespace tv
