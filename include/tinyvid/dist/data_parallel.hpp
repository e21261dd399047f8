#pragma once
// Data-parallel training's exchange of gradients (PyTorch's DistributedDataParallel, without its wrapper):
// every rank holds the whole model and computes the gradients of its own share of the batch; GradReducer
// sums them over the ranks while backward is still running. Parameters are grouped in buckets of about
// bucket_mb, in the reverse of registration order (roughly the order backward produces their gradients); a
// hook on each parameter notes when its gradient is complete, and a bucket whose gradients are all there is
// copied into one flat host buffer and its all-reduce started at once, on the group's communication thread,
// while the main thread goes on with backward. Buckets start in their fixed order on every rank (collectives
// are matched by order), and finish() waits for them and writes the sums back into .grad.
//
//   tv::dist::broadcast_parameters(pg, model);          // once, before training: rank 0's weights everywhere
//   tv::dist::GradReducer reducer(pg, model.parameters());
//   loss = loss * (local_samples / global_samples);     // the sum over the ranks is the global batch's mean
//   loss.backward();                                    // buckets start as their gradients complete
//   reducer.finish();                                   // every .grad is the sum over the ranks
//   optimizer.step();
//
// Device tensors go through the host (the buffers are host memory); a rank that has nothing to contribute
// (no samples this iteration) calls finish() without a backward and sends zeros.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tinyvid/dist/process_group.hpp"
#include "tinyvid/nn/module.hpp"
#include "tinyvid/ops/device.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv::dist {

// Every rank's parameters and buffers become rank 0's (the weights a run starts from, the running statistics
// a validation uses).
template <class T>
void broadcast_state(ProcessGroup& pg, nn::Module<T>& model) {
  if (pg.size() == 1) return;
  for (auto& [name, t] : model.state_dict()) {
    Tensor<T> host = t.to(Device::CPU).contiguous();
    if (host.is_same(t)) host = host.clone();  // never write into the model's storage behind autograd's back
    pg.broadcast(host.data(), host.numel(), 0);
    NoGradGuard no_grad;
    Tensor<T> target = t;
    target.copy_(host.to(t.device()));
  }
}

// The running statistics of every norm layer (buffers running_mean and running_var) become their average over
// the ranks, each rank's weighted by `weight` (its share of the batch's samples; the weights sum to 1). Each
// rank updated them from its own samples, r_k = (1 - m) r + m s_k, so the average is (1 - m) r + m sum w_k s_k:
// exactly one process's update from the same batch in statistics groups (ops/batch_norm.hpp), where DDP would
// keep rank 0's alone.
template <class T>
void average_running_stats(ProcessGroup& pg, nn::Module<T>& model, double weight) {
  if (pg.size() == 1) return;
  std::vector<Tensor<T>> stats;
  int64_t count = 0;
  for (auto& [name, t] : model.named_buffers()) {
    const bool running = name.ends_with("running_mean") || name.ends_with("running_var");
    if (running) stats.push_back(t), count += t.numel();
  }
  if (count == 0) return;
  Tensor<T> flat = Tensor<T>::empty({count});
  int64_t at = 0;
  for (const Tensor<T>& t : stats) {
    const Tensor<T> host = t.to(Device::CPU).contiguous();
    for (int64_t i = 0; i < host.numel(); ++i) flat.data()[at + i] = static_cast<T>(host.data()[i] * weight);
    at += host.numel();
  }
  pg.all_reduce(flat.data(), count, ReduceOp::Sum);
  NoGradGuard no_grad;
  at = 0;
  for (Tensor<T>& t : stats) {
    t.copy_(flat.narrow(0, at, t.numel()).view(t.shape()).to(t.device()));
    at += t.numel();
  }
}

struct ReducerOptions {
  double bucket_mb = 25;  // PyTorch DDP's bucket_cap_mb
};

class GradReducer {
 public:
  GradReducer(ProcessGroup& pg, std::vector<Tensor<float>> params, ReducerOptions o = {})
      : pg_(pg), params_(std::move(params)) {
    const auto cap = static_cast<int64_t>(o.bucket_mb * (1 << 20) / sizeof(float));
    for (size_t i = params_.size(); i-- > 0;) {
      TV_CHECK(params_[i].requires_grad() && params_[i].is_leaf(), "GradReducer: parameter ", i,
               " is not a leaf that requires grad");
      if (buckets_.empty() || (buckets_.back().count > 0 && buckets_.back().count + params_[i].numel() > cap))
        buckets_.emplace_back();
      Bucket& b = buckets_.back();
      slot_.push_back({buckets_.size() - 1, b.count});
      b.params.push_back(i);
      b.count += params_[i].numel();
    }
    std::reverse(slot_.begin(), slot_.end());  // slot_[i] belongs to params_[i]
    // Pinned when the gradients live on a GPU, so that their copies to and from it are direct.
    const bool on_gpu = !params_.empty() && params_.front().device() != Device::CPU;
    for (Bucket& b : buckets_) b.flat = on_gpu ? Tensor<float>::empty_pinned({b.count}) : Tensor<float>::empty({b.count});
    if (pg_.size() == 1) return;  // nothing to exchange: no hooks, finish() returns at once
    for (size_t i = 0; i < params_.size(); ++i)
      hooks_.push_back(params_[i].register_post_accumulate_grad_hook([this, i] { ready(i); }));
  }
  ~GradReducer() {
    for (size_t i = 0; i < hooks_.size(); ++i) params_[i].remove_grad_hook(hooks_[i]);
  }
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Starts what backward left (the buckets of parameters without a gradient this time send zeros), waits for
  // every bucket and writes the sums into .grad. Returns the seconds spent waiting: the communication that
  // backward did not hide.
  double finish() {
    if (pg_.size() == 1) return 0;
    for (Bucket& b : buckets_) b.ready = static_cast<int64_t>(b.params.size());
    launch_ready();
    const auto t0 = std::chrono::steady_clock::now();
    for (Bucket& b : buckets_) b.work->wait();
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    NoGradGuard no_grad;
    for (Bucket& b : buckets_) {
      for (size_t i : b.params) {
        Tensor<float>& p = params_[i];
        const Tensor<float> sum = b.flat.narrow(0, slot_[i].offset, p.numel()).view(p.shape()).to(p.device());
        if (p.grad().defined()) {
          Tensor<float> g = p.grad();
          g.copy_(sum);
        } else {
          p.set_grad(sum.device() == Device::CPU ? sum.clone() : sum);
        }
      }
      b.ready = 0;
      b.work.reset();
    }
    next_ = 0;
    return waited;
  }

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_, in the order they sit in flat
    int64_t count = 0;           // elements
    Tensor<float> flat;          // the host buffer the all-reduce sums in place
    int64_t ready = 0;           // parameters whose gradient is complete
    std::shared_ptr<Work> work;
  };
  struct Slot {
    size_t bucket;
    int64_t offset;
  };

  void ready(size_t i) {
    Bucket& b = buckets_[slot_[i].bucket];
    ++b.ready;
    if (b.ready == static_cast<int64_t>(b.params.size())) launch_ready();
  }

  // Starts the complete buckets from the next one on, in order, so that every rank starts the same sequence.
  void launch_ready() {
    while (next_ < buckets_.size() && buckets_[next_].ready >= static_cast<int64_t>(buckets_[next_].params.size())) {
      Bucket& b = buckets_[next_++];
      for (size_t i : b.params) {
        float* dst = b.flat.data() + slot_[i].offset;
        const Tensor<float> g = params_[i].grad();
        if (!g.defined()) {
          std::memset(dst, 0, static_cast<size_t>(params_[i].numel()) * sizeof(float));
          continue;
        }
        const Tensor<float> host = g.to(Device::CPU).contiguous();
        std::memcpy(dst, host.data(), static_cast<size_t>(host.numel()) * sizeof(float));
      }
      b.work = pg_.all_reduce_async(b.flat.data(), b.count, ReduceOp::Sum);
    }
  }

  ProcessGroup& pg_;
  std::vector<Tensor<float>> params_;
  std::vector<Bucket> buckets_;
  std::vector<Slot> slot_;
  std::vector<uint64_t> hooks_;
  size_t next_ = 0;  // the next bucket to start
};

}  // namespace tv::dist
