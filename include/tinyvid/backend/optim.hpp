#pragma once
// The optimizers' kernels behind the device seam (backend/cpu/optim.hpp on the CPU), on contiguous tensors
// of one device. Nothing here reads a value on the host: a norm stays in a one-element tensor on the device.
#include "tinyvid/backend/cpu/optim.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::kernel {

// One SGD step of p from its grad g; buf is the momentum buffer (undefined without momentum). The scalars
// are float, as the update computes in float (optim/sgd.hpp).
inline void sgd_step(Tensor<float>& p, const Tensor<float>& g, Tensor<float>& buf, float lr, float momentum,
                     float dampening_keep, float weight_decay, bool decay, bool use_momentum, bool nesterov,
                     bool first_step) {
  TV_DISPATCH("SGD::step", device_of("SGD::step", p, g, buf),
              sgd_step(p.data(), g.data(), buf.defined() ? buf.data() : nullptr, p.numel(), lr, momentum, dampening_keep,
                       weight_decay, decay, use_momentum, nesterov, first_step));
}

// acc (one element) += sum |g|^p, or max with |g| for p = INFINITY; first: acc starts at 0.
template <class T>
void grad_norm_accumulate(const Tensor<T>& g, double p, bool first, Tensor<double>& acc) {
  TV_DISPATCH("clip_grad_norm", device_of("clip_grad_norm", g, acc),
              grad_norm_accumulate<T>(g.data(), g.numel(), p, first, acc.data()));
}

// acc = acc^(1/p) (finite p).
inline void grad_norm_finish(Tensor<double>& acc, double p) {
  TV_DISPATCH("clip_grad_norm", acc.device(), grad_norm_finish(acc.data(), p));
}

// g *= min(1, max_norm / (total + 1e-6)), reading total (one element) on its device.
template <class T>
void clip_grad_scale(Tensor<T>& g, const Tensor<double>& total, double max_norm) {
  TV_DISPATCH("clip_grad_norm", device_of("clip_grad_norm", g, total),
              clip_grad_scale<T>(g.data(), g.numel(), total.data(), max_norm));
}

}  // namespace tv::kernel
