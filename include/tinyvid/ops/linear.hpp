#pragma once
// linear: y = x W^T + b for x of shape [..., in], as torch.nn.functional.linear.
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/matmul.hpp"

namespace tv {

template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = Tensor<T>()) {
  TV_CHECK(weight.dim() == 2, "linear: expected a weight of shape out x in, got ", weight.shape());
  TV_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input of shape ", x.shape(), " has ",
           x.dim() ? x.size(-1) : 0, " features, but the weight of shape ", weight.shape(), " expects ", weight.size(1));
  Tensor<T> y = matmul(x, weight.t());
  if (bias.defined()) {
    TV_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias of shape ", bias.shape(),
             " does not match ", weight.size(0), " output features");
    y = add(y, bias);
  }
  return y;
}

}  // namespace tv
