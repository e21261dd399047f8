#pragma once
// Inference's conv + batch norm (+ residual add, + ReLU) as one conv pass, for the models' eval path
// (models/resnet.hpp): in eval mode a BatchNorm2d with running statistics is y = x * scale + shift per channel,
// which the conv applies to each output row while it is in cache, then the add and the ReLU (conv2d_inference).
// scale and shift are computed at each call from the BN's current tensors (C values: nothing is cached that a
// weight update could leave stale), with batch_norm's own formula.
#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/nn/layers.hpp"
#include "tinyvid/ops/batch_norm.hpp"
#include "tinyvid/ops/conv.hpp"
#include "tinyvid/ops/elementwise.hpp"

namespace tv::nn {

namespace detail {
inline std::atomic<bool>& fused_inference_flag() {
  static std::atomic<bool> on{true};
  return on;
}
inline std::atomic<int64_t>& fused_conv_bn_counter() {
  static std::atomic<int64_t> n{0};
  return n;
}
}  // namespace detail

// Whether conv_bn may fuse, in inference and in training (default on; off runs every model op by op, to compare:
// bench_models --unfused).
inline void set_fused_inference(bool on) { detail::fused_inference_flag() = on; }
inline bool fused_inference() { return detail::fused_inference_flag(); }
// How many fused conv passes conv_bn has run in this process (tests check that a model takes the path).
inline int64_t fused_conv_bn_count() { return detail::fused_conv_bn_counter(); }

// conv, then bn, then + residual (if defined), then ReLU (if relu_after). In eval mode without autograd (inference;
// Grad-CAM++ computes its first stages so, and the rest with grad, op by op) and with bn on running statistics,
// one conv pass does it all (a residual handed over with std::move may be overwritten with the result:
// conv2d_inference); otherwise (training) the conv, then the batch norm with the add and the ReLU in its output pass
// (batch_norm's residual and relu options). Unfused (set_fused_inference(false)), op by op.
template <class T>
Tensor<T> conv_bn(Conv2d<T>& conv, BatchNorm2d<T>& bn, const Tensor<T>& x, Tensor<T> residual = Tensor<T>(),
                  bool relu_after = false) {
  if (fused_inference() && !bn.is_training() && !is_grad_enabled() && bn.options.track_running_stats()) {
    ++detail::fused_conv_bn_counter();
    auto [scale, shift] = batch_norm_eval_coefficients(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.options.eps());
    const Conv2dOptions& o = conv.options;
    return conv2d_inference(x, conv.weight, conv.bias, ConvFusion<T>{scale, shift, std::move(residual), relu_after}, o.stride(),
                            o.padding(), o.dilation(), o.groups(), conv.weight_cache.get());
  }
  if (fused_inference()) return bn.forward(conv(x), bn.func_options().residual(residual).relu(relu_after));
  Tensor<T> y = bn(conv(x));
  if (residual.defined()) y = add(y, residual);
  return relu_after ? relu(y) : y;
}

// Freezes a model for inference, as torch.jit.freeze does for PyTorch's best inference path: each Conv2d of it keeps
// its weights as the CPU kernels use them (packed for the GEMM, Winograd-transformed) from its first fused call on, so
// later calls skip that work (TSN-R50, 8 x 224: 0.206 -> 0.202 s per forward). The memory is kept until train() or
// freeze(m, false): 193 MB for TSN-R50, twice its weights (Winograd's F(4x4, 3x3) keeps 4x its 3x3 kernels). The
// values are the unfrozen ones, bit for bit. A weight changed through its ops (copy_, an optimizer's step,
// load_state_dict) is seen at the next call; one written through data() is not: freeze again after such writes. A
// frozen model runs one call at a time (its convs' prepared weights are refilled in place where an input's size
// changes Winograd's layout).
template <class T>
void freeze(Module<T>& m, bool on = true) {
  if (auto* conv = dynamic_cast<Conv2d<T>*>(&m)) {
    if (!on) conv->weight_cache.reset();
    else if (conv->weight_cache) conv->weight_cache->clear();  // frozen again: prepared afresh (after raw writes)
    else conv->weight_cache = std::make_shared<kernel::ConvWeightCache>();
  }
  for (auto& [name, child] : m.named_children()) freeze(*child, on);
}

// The memory nn::freeze keeps for m's convs, in bytes.
template <class T>
int64_t frozen_bytes(const Module<T>& m) {
  int64_t bytes = 0;
  if (auto* conv = dynamic_cast<const Conv2d<T>*>(&m); conv && conv->weight_cache) bytes += conv->weight_cache->bytes();
  for (const auto& [name, child] : m.named_children()) bytes += frozen_bytes(*child);
  return bytes;
}

}  // namespace tv::nn
