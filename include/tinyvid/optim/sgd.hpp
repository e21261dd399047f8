#pragma once
// Stochastic gradient descent with exactly torch.optim.SGD's update, step for step:
//   g = grad + weight_decay * p                       (only when weight_decay != 0)
//   buf = g on a parameter's first step, else buf = momentum * buf + (1 - dampening) * g
//   g = g + momentum * buf (nesterov) or g = buf      (only when momentum != 0)
//   p -= lr * g
// Parameters whose grad() is undefined are skipped and their momentum buffer is left as it is.
// The update is one fused kernel per parameter on its device (backend/optim.hpp); a step reads nothing on
// the host. A momentum buffer lives on its parameter's device.
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/backend/optim.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/ops/device.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv::optim {

// Options in libtorch's style: SGDOptions(0.1).momentum(0.9).weight_decay(1e-4).nesterov(true).
// Each name is a setter (returns *this for chaining) and, without an argument, a getter.
class SGDOptions {
 public:
  explicit SGDOptions(double lr) : lr_(lr) {}

  SGDOptions& lr(double v) { lr_ = v; return *this; }
  SGDOptions& momentum(double v) { momentum_ = v; return *this; }
  SGDOptions& dampening(double v) { dampening_ = v; return *this; }
  SGDOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  SGDOptions& nesterov(bool v) { nesterov_ = v; return *this; }

  double lr() const { return lr_; }
  double momentum() const { return momentum_; }
  double dampening() const { return dampening_; }
  double weight_decay() const { return weight_decay_; }
  bool nesterov() const { return nesterov_; }

 private:
  double lr_;
  double momentum_ = 0;
  double dampening_ = 0;
  double weight_decay_ = 0;
  bool nesterov_ = false;
};

class SGD {
 public:
  SGD(std::vector<Tensor<float>> params, SGDOptions options)
      : params_(std::move(params)), options_(options), momentum_buffers_(params_.size()) {
    TV_CHECK(!params_.empty(), "SGD: got an empty parameter list");
    TV_CHECK(options_.lr() >= 0, "SGD: expected lr >= 0, got ", options_.lr());
    TV_CHECK(options_.momentum() >= 0, "SGD: expected momentum >= 0, got ", options_.momentum());
    TV_CHECK(options_.weight_decay() >= 0, "SGD: expected weight_decay >= 0, got ", options_.weight_decay());
    TV_CHECK(!options_.nesterov() || (options_.momentum() > 0 && options_.dampening() == 0),
             "SGD: nesterov momentum needs momentum > 0 and dampening 0, got momentum ", options_.momentum(),
             " and dampening ", options_.dampening());
    std::unordered_set<const void*> seen;
    for (size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      TV_CHECK(p.defined(), "SGD: parameter ", i, " is an undefined tensor");
      TV_CHECK(p.is_leaf(), "SGD: parameter ", i, " (shape ", p.shape(),
               ") is not a leaf tensor; optimize the leaf it was computed from");
      check_contiguous(p, "parameter", i);
      TV_CHECK(seen.insert(p.impl()).second, "SGD: parameter ", i, " (shape ", p.shape(),
               ") appears more than once in the parameter list");
    }
  }

  // Sets every parameter's grad to undefined (PyTorch's set_to_none): the next backward allocates fresh
  // grads and step() skips parameters that got none.
  void zero_grad() {
    for (auto& p : params_) p.set_grad(Tensor<float>());
  }

  void step() {
    NoGradGuard no_grad;
    const bool decay = options_.weight_decay() != 0;
    const bool momentum = options_.momentum() != 0;
    const bool nesterov = options_.nesterov();
    // The step's scalars in float: PyTorch also converts them to the tensors' dtype before the update.
    const float lr = static_cast<float>(options_.lr()), mom = static_cast<float>(options_.momentum()),
                dampening_keep = static_cast<float>(1.0 - options_.dampening()),
                weight_decay = static_cast<float>(options_.weight_decay());
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor<float>& p = params_[i];
      Tensor<float> g = p.grad();
      if (!g.defined()) continue;
      TV_CHECK(g.shape() == p.shape(), "SGD::step: parameter ", i, " has shape ", p.shape(),
               " but its grad has shape ", g.shape());
      check_contiguous(g, "grad of parameter", i);
      check_contiguous(p, "parameter", i);  // it may have been restrided since construction
      Tensor<float>& buf = momentum_buffers_[i];
      const bool first_step = momentum && !buf.defined();
      if (first_step) buf = Tensor<float>::empty(p.shape(), p.device());
      Tensor<float> no_buf;
      kernel::sgd_step(p, g, momentum ? buf : no_buf, lr, mom, dampening_keep, weight_decay, decay, momentum, nesterov,
                       first_step);
      p.storage()->bump_version();  // autograd must see that saved copies of p are stale
    }
  }

  double lr() const { return options_.lr(); }
  // A schedule calls this before each step.
  void set_lr(double lr) {
    TV_CHECK(lr >= 0, "SGD::set_lr: expected lr >= 0, got ", lr);
    options_.lr(lr);
  }
  const SGDOptions& options() const { return options_; }
  const std::vector<Tensor<float>>& parameters() const { return params_; }

  // A copy of the momentum buffers, one per parameter in order, for a checkpoint; an undefined tensor marks
  // a buffer not yet initialised (its parameter has had no step with a grad, or momentum is 0).
  std::vector<Tensor<float>> momentum_buffers() const {
    std::vector<Tensor<float>> out(momentum_buffers_.size());
    for (size_t i = 0; i < out.size(); ++i)
      if (momentum_buffers_[i].defined()) out[i] = copy_of(momentum_buffers_[i], momentum_buffers_[i].device());
    return out;
  }

  // Restores buffers saved by momentum_buffers(): one per parameter, each either undefined or empty
  // (not yet initialised) or of its parameter's shape, on any device (each is copied to its parameter's).
  // Checks everything before changing anything.
  void load_momentum_buffers(const std::vector<Tensor<float>>& buffers) {
    TV_CHECK(buffers.size() == params_.size(), "SGD::load_momentum_buffers: expected ", params_.size(),
             " buffers (one per parameter), got ", buffers.size());
    std::vector<Tensor<float>> loaded(buffers.size());
    for (size_t i = 0; i < buffers.size(); ++i) {
      const auto& b = buffers[i];
      if (!b.defined()) continue;
      const bool matches = b.shape() == params_[i].shape();
      if (!matches && b.numel() == 0) continue;  // an empty placeholder: not yet initialised
      TV_CHECK(matches, "SGD::load_momentum_buffers: buffer ", i, " has shape ", b.shape(),
               ", expected the shape of parameter ", i, ", ", params_[i].shape(),
               " (or an undefined/empty tensor for a buffer not yet initialised)");
      loaded[i] = copy_of(b, params_[i].device());
    }
    momentum_buffers_ = std::move(loaded);
  }

 private:
  static void check_contiguous(const Tensor<float>& t, const char* what, size_t i) {
    TV_CHECK(t.is_contiguous(), "SGD: the ", what, " ", i, " (shape ", t.shape(), ", strides ", t.strides(),
             ") is not contiguous; the fused update needs contiguous parameters and grads");
  }
  // A fresh contiguous copy on `device` with no autograd links, so a checkpoint and the optimizer never share
  // memory.
  static Tensor<float> copy_of(const Tensor<float>& src, Device device) {
    NoGradGuard no_grad;
    if (src.device() != device) return src.contiguous().to(device).detach();  // to() copies across devices
    auto out = Tensor<float>::empty(src.shape(), device);
    out.copy_(src);
    return out;
  }

  std::vector<Tensor<float>> params_;
  SGDOptions options_;
  std::vector<Tensor<float>> momentum_buffers_;  // undefined until a parameter's first step with momentum
};

}  // namespace tv::optim
