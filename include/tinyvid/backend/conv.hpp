#pragma once
// conv2d's kernels behind the device seam: each takes the call's geometry and already allocated, contiguous
// tensors, and runs the kernel of their device (backend/cpu/conv.hpp on the CPU).
#include <cstdint>
#include <memory>
#include <type_traits>

#include "tinyvid/backend/batch_norm.hpp"
#include "tinyvid/backend/conv_geometry.hpp"
#include "tinyvid/backend/cpu/conv.hpp"
#include "tinyvid/backend/dispatch.hpp"
#include "tinyvid/backend/elementwise.hpp"

namespace tv::kernel {

// y (N x Cout x OH x OW) = conv(x, w) + bias; bias may be undefined. inference: no gradient will be taken of y
// (the CPU may then run its faster Winograd variant, which rounds more; other devices ignore it).
template <class T>
void conv2d_forward(const ConvGeometry& g, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, Tensor<T>& y,
                    bool inference = false) {
  const Device device = device_of("conv2d", x, w, bias, y);
  if (inference && device == Device::CPU)
    return cpu::conv2d_forward<T>(g, x.data(), w.data(), bias.defined() ? bias.data() : nullptr, y.data(), {}, true);
  TV_DISPATCH("conv2d", device,
              conv2d_forward<T>(g, x.data(), w.data(), bias.defined() ? bias.data() : nullptr, y.data()));
}

// Whether conv2d_forward_fused adds a residual in place without a copy where y is the residual's memory: on the CPU,
// a float 1x1 conv without padding on the packed GEMM (other paths read a copy of the residual).
template <class T>
bool conv2d_adds_in_place(const ConvGeometry& g, Device device) {
  return std::is_same_v<T, float> && device == Device::CPU && g.KH == 1 && g.KW == 1 && g.ph == 0 && g.pw == 0 &&
         cpu::use_own_gemm(cpu::active_isa());
}

// A frozen conv's weights as its kernels use them (packed, transformed), kept across calls (nn::freeze): valid for
// one weight tensor's storage and offset at one version. A change through the tensor's ops (copy_, an optimizer's
// step, load_state_dict) bumps the version and the next call prepares them again; a raw write through data() is not
// seen. The storage is held weakly, not by its address alone: new weights in a freed one's memory (the host allocator
// hands freed blocks back) start at the same version. Devices other than the CPU keep nothing.
class ConvWeightCache {
 public:
  // The CPU's prepared weights for w, emptied first if they were made for other weights or an older version.
  template <class T>
  cpu::PreparedWeights* for_weight(const Tensor<T>& w) {
    const void* source = w.data();
    const uint64_t version = w.storage()->version();
    if (source != source_ || version != version_ || storage_.lock() != w.storage()) {
      cpu_.clear();
      source_ = source;
      version_ = version;
      storage_ = w.storage();
    }
    return &cpu_;
  }
  void clear() {
    cpu_.clear();
    source_ = nullptr;
    storage_.reset();
  }
  int64_t bytes() const { return static_cast<int64_t>(cpu_.data.size() * sizeof(float)); }

 private:
  cpu::PreparedWeights cpu_;
  const void* source_ = nullptr;
  uint64_t version_ = 0;
  std::weak_ptr<void> storage_;
};

// The eval path's fused conv: y = conv(x, w) + bias, then y * scale + shift per output channel (an eval batch
// norm; scale and shift undefined for none), + residual (y's shape; may be undefined), then ReLU if relu. The CPU
// finishes each output row in cache (cpu::ConvEpilogue); other devices run the conv, then batch_norm_apply's pass
// (batch norm, residual and ReLU), or the add and ReLU kernels where there is no batch norm. y may be the residual's
// memory: the result is then added in place. cache: a frozen conv's prepared weights, or null.
template <class T>
void conv2d_forward_fused(const ConvGeometry& g, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias,
                          const Tensor<T>& scale, const Tensor<T>& shift, const Tensor<T>& residual, bool relu, Tensor<T>& y,
                          ConvWeightCache* cache = nullptr) {
  auto ptr = [](const Tensor<T>& t) { return t.defined() ? t.data() : nullptr; };
  if (device_of("conv2d", x, w, bias, scale, shift, residual, y) == Device::CPU)
    return cpu::conv2d_forward<T>(g, x.data(), w.data(), ptr(bias), y.data(), {ptr(scale), ptr(shift), ptr(residual), relu},
                                  true, std::is_same_v<T, float> && cache ? cache->for_weight(w) : nullptr);
  Tensor<T> r = residual;  // y may be residual's memory (conv2d_inference), which the conv below overwrites
  if (r.defined() && r.data() == y.data()) {
    r = Tensor<T>::empty(residual.shape(), residual.device());
    copy(residual, r);
  }
  conv2d_forward(g, x, w, bias, y);
  if (scale.defined()) return batch_norm_apply(y, 1, y.size(0), scale, shift, r, relu, y);
  if (r.defined()) add(y, r, y);
  if (relu) map(y, y, fn::Relu{}, "relu");
}

// gx (N x C x H x W, overwritten) = the gradient of the input.
template <class T>
void conv2d_backward_input(const ConvGeometry& g, const Tensor<T>& gy, const Tensor<T>& w, Tensor<T>& gx) {
  TV_DISPATCH("conv2d backward", device_of("conv2d backward", gy, w, gx),
              conv2d_backward_input<T>(g, gy.data(), w.data(), gx.data()));
}

// Whether conv2d_backward_input_add can add this conv's input gradient into gx (contiguous, the input's shape):
// on the CPU, where its path can (cpu::input_gradient_adds).
template <class T>
bool conv2d_input_gradient_adds(const ConvGeometry& g, const Tensor<T>& gx) {
  return gx.device() == Device::CPU && gx.is_contiguous() && gx.shape() == Shape{g.N, g.C, g.H, g.W} &&
         cpu::input_gradient_adds<T>(g);
}

// gx += the gradient of the input (where conv2d_input_gradient_adds).
template <class T>
void conv2d_backward_input_add(const ConvGeometry& g, const Tensor<T>& gy, const Tensor<T>& w, Tensor<T>& gx) {
  TV_CHECK(device_of("conv2d backward", gy, w, gx) == Device::CPU, "conv2d backward: adding into gx runs on the CPU");
  cpu::conv2d_backward_input<T>(g, gy.data(), w.data(), gx.data(), true);
}

// gw (Cout x C/groups x KH x KW, overwritten) = the gradient of the weight.
template <class T>
void conv2d_backward_weight(const ConvGeometry& g, const Tensor<T>& x, const Tensor<T>& gy, Tensor<T>& gw) {
  TV_DISPATCH("conv2d backward", device_of("conv2d backward", x, gy, gw),
              conv2d_backward_weight<T>(g, x.data(), gy.data(), gw.data()));
}

// gb (Cout, overwritten) = the gradient of the bias.
template <class T>
void conv2d_backward_bias(const ConvGeometry& g, const Tensor<T>& gy, Tensor<T>& gb) {
  TV_DISPATCH("conv2d backward", device_of("conv2d backward", gy, gb), conv2d_backward_bias<T>(g, gy.data(), gb.data()));
}

}  // namespace tv::kernel
