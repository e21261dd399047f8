#pragma once
// Inference's conv + batch norm (+ residual add, + ReLU) as one conv pass, for the models' eval path
// (models/resnet.hpp): in eval mode a BatchNorm2d with running statistics is y = x * scale + shift per channel,
// which the conv applies to each output row while it is in cache, then the add and the ReLU (conv2d_inference).
// scale and shift are computed at each call from the BN's current tensors (C values: nothing is cached that a
// weight update could leave stale), with batch_norm's own formula.
#include <memory>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/nn/layers.hpp"
#include "tinyvid/ops/batch_norm.hpp"
#include "tinyvid/ops/conv.hpp"
#include "tinyvid/ops/elementwise.hpp"

namespace tv::nn {

// conv, then bn, then + residual (if defined), then ReLU (if relu_after). In eval mode without autograd (inference;
// Grad-CAM++ runs eval with grad on and takes the op-by-op path) and with bn on running statistics, one conv pass
// does it all; otherwise the ops run one by one.
template <class T>
Tensor<T> conv_bn(Conv2d<T>& conv, BatchNorm2d<T>& bn, const Tensor<T>& x, const Tensor<T>& residual = Tensor<T>(),
                  bool relu_after = false) {
  if (!bn.is_training() && !is_grad_enabled() && bn.options.track_running_stats()) {
    auto [scale, shift] = batch_norm_eval_coefficients(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.options.eps());
    const Conv2dOptions& o = conv.options;
    return conv2d_inference(x, conv.weight, conv.bias, ConvFusion<T>{scale, shift, residual, relu_after}, o.stride(),
                            o.padding(), o.dilation(), o.groups());
  }
  Tensor<T> y = bn(conv(x));
  if (residual.defined()) y = add(y, residual);
  return relu_after ? relu(y) : y;
}

}  // namespace tv::nn
