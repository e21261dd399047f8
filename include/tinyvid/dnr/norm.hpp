#pragma once
// Dynamic normalization (../shared/DNR.md): a batch norm without learned affine parameters whose
// output is scaled by a relay cell's hidden state h and shifted by its cell state c, per clip and
// channel: out[n, t, c, y, x] = z[n, t, c, y, x] * h[n, c] + c[n, c]. The relay reads the feature's
// mean per clip and channel, taken before normalization (as the authors' code does).
// - CrossLayerNorm replaces bn1 of every block; one relay cell per stage carries the state from
//   block to block (the stage owns the cell and the state).
// - CrossTemporalNorm replaces bn2; it owns its cell and relays from one group of frames to the
//   next, each group normalized with its own batch statistics and one shared set of running ones.
// - Channel interlacing is TSM's temporal shift (fold 1/8) on the residual branch's input.
#include <memory>
#include <vector>

#include "tinyvid/dnr/relay.hpp"
#include "tinyvid/ops/batch_norm.hpp"
#include "tinyvid/ops/index.hpp"
#include "tinyvid/ops/join.hpp"
#include "tinyvid/ops/reduce.hpp"

namespace tv::dnr {

// Which parts of DNR a model uses and how (DNR.md, "Where the sources disagree"). Each field is a
// `--set key=value` switch of the model registry under the same name.
struct DnrOptions {
  bool cross_layer = true;               // bn1 -> CrossLayerNorm
  bool cross_temporal = true;            // bn2 -> CrossTemporalNorm
  int64_t ct_group_frames = 4;           // frames per relay step d_r (the authors' code: 2)
  bool ct_bidirectional = false;         // also relay from the last group back, average both
  bool ct_shared_direction_cell = false; // bidirectional: one cell for both directions
  bool interlace = true;                 // temporal shift on each block's residual input
  int64_t reduction = 4;                 // the relay projections' bottleneck ratio r
};

// DNR's channel interlacing: 8 channel groups, one frame step, zero fill.
template <class T>
Tensor<T> interlace(const Tensor<T>& x, int64_t frames) {
  return temporal_shift(x, frames, 8);
}

// out = z * h + c with z of shape N x t x C x ... and h, c of shape N x C (broadcast over the rest).
template <class T>
Tensor<T> dynamic_affine(const Tensor<T>& z, const Tensor<T>& h, const Tensor<T>& c) {
  TV_CHECK(z.dim() >= 3 && h.dim() == 2 && h.size(0) == z.size(0) && h.size(1) == z.size(2) && c.shape() == h.shape(),
           "dynamic_affine: expected z of shape N x t x C x ... and h, c of shape N x C, got ", z.shape(), ", ",
           h.shape(), " and ", c.shape());
  Shape per_clip(static_cast<size_t>(z.dim()), 1);
  per_clip[0] = z.size(0);
  per_clip[2] = z.size(2);
  return add(mul(z, h.reshape(per_clip)), c.reshape(per_clip));
}

// The running statistics both norms keep (no weight, no bias), with BatchNorm2d's names.
template <class T = float>
class DynamicNorm : public nn::Module<T> {
 public:
  DynamicNorm(int64_t channels, double momentum, double eps) : channels(channels), momentum(momentum), eps(eps) {
    running_mean = this->register_buffer("running_mean", zeros<T>({channels}));
    running_var = this->register_buffer("running_var", ones<T>({channels}));
    num_batches_tracked = this->register_buffer("num_batches_tracked", zeros<T>({}));
  }
  int64_t channels;
  double momentum, eps;
  Tensor<T> running_mean, running_var, num_batches_tracked;

 protected:
  // y (N*T x C x H x W) as N x T x C x H x W, after checking it.
  Tensor<T> clips(const Tensor<T>& y, int64_t frames, const char* who) const {
    TV_CHECK(y.dim() == 4 && y.size(1) == channels, who, ": expected an input of shape N*T x ", channels,
             " x H x W, got ", y.shape());
    TV_CHECK(frames >= 1 && y.size(0) % frames == 0, who, ": the batch dim ", y.size(0),
             " is not a multiple of the frames per clip, ", frames);
    return y.reshape({y.size(0) / frames, frames, channels, y.size(2), y.size(3)});
  }
  // Standardized with the batch's statistics (training) or the running ones (eval); channels in dim 2.
  Tensor<T> standardize(const Tensor<T>& x) {
    return batch_norm(x, running_mean, running_var, Tensor<T>(), Tensor<T>(), this->is_training(), momentum, eps, 2);
  }
  void count_batch() {
    if (!this->is_training()) return;
    NoGradGuard no_grad;
    num_batches_tracked.add_(ones<T>({}));
  }
};

// bn1 of a DNR block: ordinary batch statistics over all frames; the stage's relay cell reads the
// clip means of y and moves the stage's state one step.
template <class T = float>
class CrossLayerNorm : public DynamicNorm<T> {
 public:
  explicit CrossLayerNorm(int64_t channels, double momentum = 0.1, double eps = 1e-5)
      : DynamicNorm<T>(channels, momentum, eps) {}
  Tensor<T> forward(const Tensor<T>& y, int64_t frames, RelayCell<T>& cell, RelayState<T>& state) {
    const Tensor<T> y5 = this->clips(y, frames, "CrossLayerNorm");
    state = cell(mean(y5, {1, 3, 4}), state);
    this->count_batch();
    return dynamic_affine(this->standardize(y5), state.h, state.c).reshape(y.shape());
  }
};

// bn2 of a DNR block: the frames of a clip cut into groups of `group_frames`, relayed in temporal
// order (and back, when bidirectional), each group standardized with its own batch statistics.
template <class T = float>
class CrossTemporalNorm : public DynamicNorm<T> {
 public:
  CrossTemporalNorm(int64_t channels, const DnrOptions& o, double momentum = 0.1, double eps = 1e-5,
                    Generator& gen = default_generator())
      : DynamicNorm<T>(channels, momentum, eps), group_frames(o.ct_group_frames), bidirectional(o.ct_bidirectional) {
    TV_CHECK(group_frames >= 1, "CrossTemporalNorm: ct_group_frames must be at least 1, got ", group_frames);
    relay = this->register_module("relay", std::make_shared<RelayCell<T>>(channels, o.reduction, gen));
    if (bidirectional && !o.ct_shared_direction_cell)
      relay_backward = this->register_module("relay_backward", std::make_shared<RelayCell<T>>(channels, o.reduction, gen));
  }
  Tensor<T> forward(const Tensor<T>& y, int64_t frames) {
    const Tensor<T> y5 = this->clips(y, frames, "CrossTemporalNorm");
    TV_CHECK(frames % group_frames == 0, "CrossTemporalNorm: ", frames, " frames per clip do not split into groups of ",
             group_frames, " (ct_group_frames)");
    const int64_t groups = frames / group_frames;
    std::vector<Tensor<T>> part(groups), pooled(groups);
    for (int64_t g = 0; g < groups; ++g) {
      part[g] = y5.narrow(1, g * group_frames, group_frames);
      pooled[g] = mean(part[g], {1, 3, 4});
    }
    std::vector<RelayState<T>> forward_states(groups), backward_states;
    RelayState<T> state;
    for (int64_t g = 0; g < groups; ++g) forward_states[g] = state = (*relay)(pooled[g], state);
    if (bidirectional) {
      RelayCell<T>& cell = relay_backward ? *relay_backward : *relay;
      backward_states.resize(groups);
      state = {};
      for (int64_t g = groups - 1; g >= 0; --g) backward_states[g] = state = cell(pooled[g], state);
    }
    this->count_batch();
    std::vector<Tensor<T>> out(groups);
    for (int64_t g = 0; g < groups; ++g) {
      Tensor<T> h = forward_states[g].h, c = forward_states[g].c;
      if (bidirectional) {
        h = mul(add(h, backward_states[g].h), T(0.5));
        c = mul(add(c, backward_states[g].c), T(0.5));
      }
      out[g] = dynamic_affine(this->standardize(part[g]), h, c);
    }
    return cat(out, 1).reshape(y.shape());
  }
  int64_t group_frames;
  bool bidirectional;
  std::shared_ptr<RelayCell<T>> relay, relay_backward;
};

}  // namespace tv::dnr
