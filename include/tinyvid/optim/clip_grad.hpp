#pragma once
// Gradient-norm clipping with exactly torch.nn.utils.clip_grad_norm_'s rule: the norm is taken over all
// grads together, and when max_norm / (total + 1e-6) < 1 every grad is scaled by that coefficient.
// The norm and the scaling run on the grads' device (backend/optim.hpp), the norm kept there in a
// one-element tensor that the scaling kernels read; the one host read is the norm returned, by design
// (PyTorch's .item() of the norm it returns).
#include <cmath>
#include <cstdint>
#include <vector>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/backend/optim.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/ops/device.hpp"

namespace tv::optim {

// Scales the grads of `params` in place so that their total norm is at most about max_norm; returns the total
// norm before clipping (0 when no parameter has a grad). norm_type: any p > 0, or INFINITY for the max norm.
// Parameters without a grad are skipped. As in PyTorch, a non-finite total norm is not an error: the
// coefficient then turns every grad into NaN (or zero for an infinite norm), which a trainer can detect.
template <class T>
double clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm, double norm_type = 2.0) {
  TV_CHECK(max_norm >= 0, "clip_grad_norm: expected max_norm >= 0, got ", max_norm);
  TV_CHECK(norm_type > 0, "clip_grad_norm: expected norm_type > 0 (or INFINITY), got ", norm_type);
  NoGradGuard no_grad;
  std::vector<Tensor<T>> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    TV_CHECK(params[i].defined(), "clip_grad_norm: parameter ", i, " is an undefined tensor");
    Tensor<T> g = params[i].grad();
    if (!g.defined()) continue;
    if (!grads.empty())
      TV_CHECK(g.device() == grads[0].device(), "clip_grad_norm: the grad of parameter ", i, " is on ",
               device_name(g.device()), ", the grads before it on ", device_name(grads[0].device()));
    TV_CHECK(g.is_contiguous(), "clip_grad_norm: the grad of parameter ", i, " (shape ", g.shape(), ", strides ",
             g.strides(), ") is not contiguous");
    grads.push_back(g);
  }
  if (grads.empty()) return 0.0;

  Tensor<double> total = Tensor<double>::empty({}, grads[0].device());
  for (size_t i = 0; i < grads.size(); ++i) kernel::grad_norm_accumulate(grads[i], norm_type, i == 0, total);
  kernel::grad_norm_finish(total, norm_type);
  for (auto& g : grads) kernel::clip_grad_scale(g, total, max_norm);  // reads the norm on the device
  const double norm = total.to(Device::CPU).item();                    // the one host read: the result
  if (!(max_norm / (norm + 1e-6) >= 1.0))  // the grads were scaled (a NaN coefficient scales too)
    for (auto& g : grads) g.storage()->bump_version();
  return norm;
}

}  // namespace tv::optim
