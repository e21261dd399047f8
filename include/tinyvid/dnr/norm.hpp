#pragma once
// Dynamic normalization (docs/DNR.md, "Dynamic normalization"): a batch norm without learned affine parameters whose
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

#include "tinyvid/backend/dnr.hpp"
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

// out[n, t, k, ...] = z[n, t, k, ...] * scale[n, g, k] + shift[n, g, k], g = t / (t_len / G): the
// dynamic affine of each clip, channel and group of frames, in one pass over z (forward) and one
// over z and the gradient (backward: the input's gradient and both per-clip sums together).
// z: N x t_len x C x ..., scale and shift: N x G x C (G = 1: one pair for all frames).
template <class T>
Tensor<T> dynamic_affine(const Tensor<T>& z, const Tensor<T>& scale, const Tensor<T>& shift) {
  TV_CHECK(z.dim() >= 3 && scale.dim() == 3 && scale.size(0) == z.size(0) && scale.size(2) == z.size(2) &&
               scale.size(1) >= 1 && z.size(1) % scale.size(1) == 0 && shift.shape() == scale.shape(),
           "dynamic_affine: expected z of shape N x T x C x ... and scale, shift of shape N x G x C with G dividing T, got ",
           z.shape(), ", ", scale.shape(), " and ", shift.shape());
  const Device device = device_of("dynamic_affine", z, scale, shift);
  const int64_t N = z.size(0), C = z.size(2), G = scale.size(1);
  const Tensor<T> zc = z.contiguous(), sc = scale.contiguous(), hc = shift.contiguous();
  Tensor<T> out = Tensor<T>::empty(z.shape(), device);
  kernel::dynamic_affine_forward(zc, sc, hc, out);
  autograd::record(out, "DynamicAffineBackward", {z, scale, shift},
                   [zs = autograd::Saved<T>(zc), sc, N, C, G](const Tensor<T>& grad, const autograd::Node<T>& node) {
                     const Tensor<T> g = grad.contiguous(), zv = zs.get("dynamic_affine");
                     Tensor<T> gz, ga, gb;
                     if (node.needs_grad(0)) gz = Tensor<T>::empty(zv.shape(), g.device());
                     if (node.needs_grad(1) || node.needs_grad(2)) {
                       ga = Tensor<T>::empty({N, G, C}, g.device());
                       gb = Tensor<T>::empty({N, G, C}, g.device());
                     }
                     kernel::dynamic_affine_backward(g, zv, sc, gz, ga, gb);
                     return std::vector<Tensor<T>>{gz, ga, gb};
                   });
  return out;
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
  int64_t stats_group_clips = 0;  // > 0: training statistics over groups of this many clips (batch_norm)
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
  // Standardized with the batch's statistics (training) or the running ones (eval); clips in dim 0,
  // channels in dim 2. count: this call counts the batch in num_batches_tracked (once per forward).
  Tensor<T> standardize(const Tensor<T>& x, bool count) {
    BatchNormFuncOptions<T> o;
    o.training(this->is_training()).momentum(momentum).eps(eps).channel_dim(2).stats_group_clips(stats_group_clips);
    if (count) o.num_batches_tracked(num_batches_tracked);
    return batch_norm(x, running_mean, running_var, o);
  }
  // Eval: the running statistics' standardization folded into the dynamic affine, one pass over y:
  // y * (h / std) + (c - mean h / std); h, c: N x G x C.
  Tensor<T> affine_with_running_stats(const Tensor<T>& y5, const Tensor<T>& h, const Tensor<T>& c) const {
    const Tensor<T> inv_std = div(ones_like(running_var), sqrt(add(running_var, static_cast<T>(eps))));
    const Tensor<T> scale = mul(h, inv_std);
    return dynamic_affine(y5, scale, sub(c, mul(scale, running_mean)));
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
    const int64_t N = y5.size(0);
    const Tensor<T> h = state.h.reshape({N, 1, this->channels}), c = state.c.reshape({N, 1, this->channels});
    if (this->is_training()) return dynamic_affine(this->standardize(y5, true), h, c).reshape(y.shape());
    return this->affine_with_running_stats(y5, h, c).reshape(y.shape());
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
    std::vector<Tensor<T>> hs(groups), cs(groups);
    for (int64_t g = 0; g < groups; ++g) {
      hs[g] = forward_states[g].h;
      cs[g] = forward_states[g].c;
      if (bidirectional) {
        hs[g] = mul(add(hs[g], backward_states[g].h), T(0.5));
        cs[g] = mul(add(cs[g], backward_states[g].c), T(0.5));
      }
    }
    if (!this->is_training())  // one set of running statistics for all groups: one pass over y
      return this->affine_with_running_stats(y5, stack(hs, 1), stack(cs, 1)).reshape(y.shape());
    std::vector<Tensor<T>> out(groups);
    const int64_t N = y5.size(0);
    for (int64_t g = 0; g < groups; ++g)
      out[g] = dynamic_affine(this->standardize(part[g], g == 0), hs[g].reshape({N, 1, this->channels}),
                              cs[g].reshape({N, 1, this->channels}));
    return cat(out, 1).reshape(y.shape());
  }
  int64_t group_frames;
  bool bidirectional;
  std::shared_ptr<RelayCell<T>> relay, relay_backward;
};

}  // namespace tv::dnr
