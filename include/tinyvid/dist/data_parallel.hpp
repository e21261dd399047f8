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
// Parameters on a GPU take the device path where there is a DeviceCommunicator (dist/nccl.hpp: NCCL's, in a
// build with TINYVID_WITH_NCCL, one GPU per rank): the buckets are flat device tensors, a gradient is copied into
// its bucket by the backend's copy kernel, the bucket is summed by NCCL on its own stream while backward goes on
// (ordered after the kernels that wrote the gradients), and finish() waits for the sums (bounded by the group's
// timeout) and copies them back on the device. Without one (a build without NCCL, two ranks sharing a GPU,
// TINYVID_NCCL=0) device gradients go through pinned host buffers and the group, the host path; path() says
// which, path_reason() why not NCCL. A rank that has nothing to contribute (no samples this iteration) calls
// finish() without a backward and sends zeros.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tinyvid/dist/nccl.hpp"
#include "tinyvid/dist/process_group.hpp"
#include "tinyvid/dist/tensor_ops.hpp"
#include "tinyvid/nn/module.hpp"
#include "tinyvid/ops/device.hpp"
#include "tinyvid/ops/inplace.hpp"
#include "tinyvid/ops/join.hpp"

namespace tv::dist {

// Every rank's parameters and buffers become rank 0's (the weights a run starts from, the running statistics
// a validation uses). Contiguous device tensors go by the device communicator where there is one.
template <class T>
void broadcast_state(ProcessGroup& pg, nn::Module<T>& model) {
  if (pg.size() == 1) return;
  auto state = model.state_dict();
  DeviceCommunicator* comm = nullptr;
  for (auto& [name, t] : state)
    if (t.device() != Device::CPU) {  // every rank's model is on the same device: all ask, or none
      comm = device_communicator(pg);
      break;
    }
  for (auto& [name, t] : state) {
    if (comm && t.device() != Device::CPU && t.is_contiguous()) {
      comm->start_broadcast(t.data(), t.numel(), 0);
      t.storage()->bump_version();  // as copy_ would: autograd must see that saved values changed
    } else {
      broadcast(pg, t, 0);
    }
  }
  if (comm) comm->wait();
}

// The running statistics of every norm layer (buffers running_mean and running_var) become their average over
// the ranks, each rank's weighted by `weight` (its share of the batch's samples; the weights sum to 1). Each
// rank updated them from its own samples, r_k = (1 - m) r + m s_k, so the average is (1 - m) r + m sum w_k s_k:
// exactly one process's update from the same batch in statistics groups (ops/batch_norm.hpp), where DDP would
// keep rank 0's alone.
template <class T>
void average_running_stats(ProcessGroup& pg, nn::Module<T>& model, double weight) {
  if (pg.size() == 1) return;
  NoGradGuard no_grad;
  std::vector<Tensor<T>> stats, flat_views;
  for (auto& [name, t] : model.named_buffers())
    if (name.ends_with("running_mean") || name.ends_with("running_var"))
      stats.push_back(t), flat_views.push_back(t.reshape({-1}));
  if (stats.empty()) return;
  // One all-reduce for all of them: each rank's values scaled by its weight, summed.
  Tensor<T> flat = cat(flat_views, 0);
  flat.mul_(static_cast<T>(weight));
  DeviceCommunicator* comm = flat.device() != Device::CPU ? device_communicator(pg) : nullptr;
  if (comm)
    comm->all_reduce_sum(flat.data(), flat.numel());  // flat is a fresh contiguous tensor
  else
    all_reduce(pg, flat, ReduceOp::Sum);
  int64_t at = 0;
  for (Tensor<T>& t : stats) {
    t.copy_(flat.narrow(0, at, t.numel()).view(t.shape()));
    at += t.numel();
  }
}

struct ReducerOptions {
  double bucket_mb = 25;  // PyTorch DDP's bucket_cap_mb
  // The communicator for parameters on a GPU; nullptr: device_communicator(pg) (NCCL's where the build has it).
  DeviceCommunicator* device_comm = nullptr;
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
    if (pg_.size() == 1) return;  // nothing to exchange: no buffers, no hooks, finish() returns at once
    const bool on_gpu = !params_.empty() && params_.front().device() != Device::CPU;
    const bool one_gpu = on_gpu && std::all_of(params_.begin(), params_.end(), [&](const Tensor<float>& p) {
                           return p.device() == params_.front().device();
                         });
    if (one_gpu) {  // every rank's parameters are on the same device: all ask, or none
      comm_ = o.device_comm ? o.device_comm : device_communicator(pg_, &path_reason_);
    } else if (on_gpu) {
      path_reason_ = "the parameters are on more than one device";
    }
    path_ = comm_ ? comm_->name() : "host";
    // Device buffers for the communicator; else host buffers, pinned when the gradients live on a GPU, so that
    // their copies to and from it are direct.
    for (Bucket& b : buckets_)
      b.flat = comm_    ? Tensor<float>::empty({b.count}, params_.front().device())
               : on_gpu ? Tensor<float>::empty_pinned({b.count})
                        : Tensor<float>::empty({b.count});
    for (size_t i = 0; i < params_.size(); ++i)
      hooks_.push_back(params_[i].register_post_accumulate_grad_hook([this, i] { ready(i); }));
  }
  ~GradReducer() {
    for (size_t i = 0; i < hooks_.size(); ++i) params_[i].remove_grad_hook(hooks_[i]);
    // Sums still in flight (backward failed midway) finish before the backend reuses the buckets' memory.
    if (comm_) comm_->join();
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
    if (comm_) return finish_on_device();
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

  // How gradients are summed: "nccl" (the device communicator's name: in GPU memory), "host" (host buffers
  // through the group), "none" (one rank: nothing to exchange); for the trainer's log.
  const char* path() const { return path_; }
  // Why parameters on a GPU take the host path ("ranks 0 and 1 share one GPU ..."); empty otherwise.
  const std::string& path_reason() const { return path_reason_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_, in the order they sit in flat
    int64_t count = 0;           // elements
    Tensor<float> flat;          // the buffer the all-reduce sums in place: on the device with comm_, else host
    int64_t ready = 0;           // parameters whose gradient is complete
    std::shared_ptr<Work> work;
  };
  struct Slot {
    size_t bucket;
    int64_t offset;
  };

  // The device path's end of finish(): the host waits for the sums (the seconds are those the GPU waited for
  // them after backward's kernels, the communication backward did not hide), then they are copied back by
  // kernels queued behind the sums.
  double finish_on_device() {
    const double waited = comm_->wait();
    NoGradGuard no_grad;
    for (Bucket& b : buckets_) {
      for (size_t i : b.params) {
        Tensor<float>& p = params_[i];
        const Tensor<float> sum = b.flat.narrow(0, slot_[i].offset, p.numel()).view(p.shape());
        if (p.grad().defined()) {
          Tensor<float> g = p.grad();
          g.copy_(sum);
        } else {
          p.set_grad(sum.clone());  // its own memory: the bucket is refilled next time
        }
      }
      b.ready = 0;
    }
    next_ = 0;
    return waited;
  }

  void ready(size_t i) {
    Bucket& b = buckets_[slot_[i].bucket];
    ++b.ready;
    if (b.ready == static_cast<int64_t>(b.params.size())) launch_ready();
  }

  // Starts the complete buckets from the next one on, in order, so that every rank starts the same sequence.
  void launch_ready() {
    while (next_ < buckets_.size() && buckets_[next_].ready >= static_cast<int64_t>(buckets_[next_].params.size())) {
      Bucket& b = buckets_[next_++];
      if (comm_) {  // on the device: the backend's copy kernels, then the sum on the communicator's stream
        NoGradGuard no_grad;
        for (size_t i : b.params) {
          Tensor<float> dst = b.flat.narrow(0, slot_[i].offset, params_[i].numel()).view(params_[i].shape());
          const Tensor<float> g = params_[i].grad();
          if (g.defined())
            dst.copy_(g);
          else
            dst.zero_();
        }
        comm_->start_all_reduce_sum(b.flat.data(), b.count);
        continue;
      }
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
  DeviceCommunicator* comm_ = nullptr;  // the device path's; not owned (device_communicator keeps NCCL's)
  const char* path_ = "none";
  std::string path_reason_;
};

}  // namespace tv::dist
