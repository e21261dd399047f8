#pragma once
// Collectives on tensors, in place: every rank passes its tensor of one shape, as the raw collectives pass
// buffers of one count.
//
//   tv::dist::broadcast(pg, param, 0);                    // rank 0's initial weights everywhere
//   tv::dist::all_reduce(pg, grad, tv::dist::ReduceOp::Sum);
//
// A contiguous CPU tensor is sent from its own memory. Any other (a view with gaps, a device tensor) goes
// through a contiguous host copy that is written back with copy_; a device-native group (NCCL) will spare
// device tensors the trip. The write is not recorded by autograd, as an optimizer step is not: a parameter
// that requires grad may be broadcast.
#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/dist/process_group.hpp"
#include "tinyvid/ops/device.hpp"
#include "tinyvid/ops/inplace.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv::dist {

namespace detail {
// f(host pointer, count) on t's values, then t holds what f left there.
template <class T, class F>
void on_host_values(Tensor<T>& t, const char* op, F&& f) {
  TV_CHECK(t.defined(), op, ": the tensor is undefined");
  if (t.device() == Device::CPU && t.is_contiguous()) {
    f(t.data(), t.numel());
    t.storage()->bump_version();  // as copy_ would: autograd must see that saved values changed
    return;
  }
  NoGradGuard no_grad;
  Tensor<T> host = t.to(Device::CPU).contiguous();  // a copy: t itself is not a contiguous CPU tensor
  f(host.data(), host.numel());
  t.copy_(host.to(t.device()));
}
}  // namespace detail

// t of rank `root` to every rank.
template <class T>
void broadcast(ProcessGroup& pg, Tensor<T>& t, int root) {
  detail::on_host_values(t, "broadcast", [&](T* data, int64_t n) { pg.broadcast(data, n, root); });
}

// t = the elementwise sum (or max) of t over the ranks, on every rank.
template <class T>
void all_reduce(ProcessGroup& pg, Tensor<T>& t, ReduceOp op) {
  detail::on_host_values(t, "all_reduce", [&](T* data, int64_t n) { pg.all_reduce(data, n, op); });
}

}  // namespace tv::dist
