#pragma once
// Module: parameters, buffers and child modules under dotted names exactly like PyTorch's
// (`layer1.0.bn1.running_mean`), train/eval, and state_dict / load_state_dict, so checkpoints
// convert key for key. Modules are held by std::shared_ptr, as libtorch's module holders.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/ops/device.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv::nn {

// Name -> tensor, in registration order (PyTorch's OrderedDict).
template <class T>
using StateDict = std::vector<std::pair<std::string, Tensor<T>>>;

template <class T = float>
class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // All parameters of this module and its children, depth first, in registration order.
  std::vector<Tensor<T>> parameters() const {
    std::vector<Tensor<T>> out;
    for (auto& [name, p] : named_parameters()) out.push_back(p);
    return out;
  }
  // Each parameter once, under its first name, even when a module is shared (as PyTorch's
  // named_parameters); state_dict() keeps every name.
  StateDict<T> named_parameters() const {
    StateDict<T> all, out;
    collect(all, "", /*params=*/true, /*buffers=*/false);
    std::vector<const void*> seen;
    for (auto& [name, t] : all) {
      if (std::find(seen.begin(), seen.end(), t.impl()) != seen.end()) continue;
      seen.push_back(t.impl());
      out.emplace_back(name, t);
    }
    return out;
  }
  StateDict<T> named_buffers() const {
    StateDict<T> out;
    collect(out, "", false, true);
    return out;
  }
  // Parameters and buffers by name, sharing storage with the module (as PyTorch's state_dict()).
  StateDict<T> state_dict() const {
    StateDict<T> out;
    collect(out, "", true, true);
    return out;
  }
  // Copies values into the module's tensors. Strict (the default): every key of the module must be
  // present and no other; in any mode a shape mismatch is an error naming the key and both shapes.
  // The source may live on any device (a checkpoint is read into host tensors): each value is copied to
  // its tensor's device, which keeps its identity.
  void load_state_dict(const StateDict<T>& source, bool strict = true) {
    StateDict<T> own = state_dict();
    std::vector<std::string> missing, unexpected;
    for (const auto& [name, t] : own) {
      auto it = find(source, name);
      if (it == source.end()) {
        missing.push_back(name);
        continue;
      }
      TV_CHECK(it->second.shape() == t.shape(), "load_state_dict: size mismatch for ", name, ": the checkpoint has shape ",
               it->second.shape(), ", the module has shape ", t.shape());
    }
    for (const auto& [name, t] : source)
      if (find(own, name) == own.end()) unexpected.push_back(name);
    if (strict && (!missing.empty() || !unexpected.empty()))
      TV_FAIL("load_state_dict: the state_dict does not match the module: missing keys [", join(missing),
              "], unexpected keys [", join(unexpected), "]");
    NoGradGuard no_grad;
    for (auto& [name, t] : own) {
      auto it = find(source, name);
      if (it != source.end()) t.copy_(it->second.to(t.device()));
    }
  }

  // Training mode for this module and all its children (batch norm statistics, dropout).
  virtual void train(bool on = true) {
    training_ = on;
    for (auto& [name, child] : children_) child->train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // The submodule at a dotted path ("layer1.0.bn1"), or an error naming the missing part.
  std::shared_ptr<Module> submodule(const std::string& path) const {
    const Module* m = this;
    std::shared_ptr<Module> found;
    size_t at = 0;
    while (at <= path.size()) {
      size_t dot = path.find('.', at);
      std::string part = path.substr(at, dot == std::string::npos ? std::string::npos : dot - at);
      found.reset();
      for (auto& [name, child] : m->children_)
        if (name == part) found = child;
      TV_CHECK(found != nullptr, "submodule: no child named '", part, "' in path '", path, "'");
      m = found.get();
      if (dot == std::string::npos) break;
      at = dot + 1;
    }
    return found;
  }

  // Moves parameters, their gradients and buffers to a device in place (PyTorch's module.to(device)): the
  // tensors keep their identity, so an optimizer built before the move still holds them.
  Module& to(Device device) {
    NoGradGuard no_grad;
    auto move = [device](TensorImpl<T>* impl) {
      if (impl == nullptr || impl->storage->device() == device) return;
      const Tensor<T> moved = Tensor<T>::from_storage(impl->storage, impl->shape, impl->strides, impl->offset).to(device);
      impl->storage = moved.storage();
      impl->strides = moved.strides();
      impl->offset = moved.offset();
    };
    for (auto& [name, t] : state_dict()) {
      move(t.impl());
      move(t.impl()->grad.get());
    }
    return *this;
  }

  // Gradients back to none (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad() {
    for (auto& p : parameters()) p.set_grad(Tensor<T>());
  }

 protected:
  Tensor<T> register_parameter(const std::string& name, Tensor<T> t) {
    check_new_name(name);
    t.requires_grad_(true);
    params_.emplace_back(name, t);
    return t;
  }
  // A tensor that is state but not trained (running statistics); may be undefined (not saved then).
  Tensor<T> register_buffer(const std::string& name, Tensor<T> t) {
    check_new_name(name);
    buffers_.emplace_back(name, t);
    return t;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_new_name(name);
    TV_CHECK(m != nullptr, "register_module: module '", name, "' is null");
    children_.emplace_back(name, m);
    return m;
  }
  bool training_ = true;

 private:
  void check_new_name(const std::string& name) const {
    TV_CHECK(!name.empty() && name.find('.') == std::string::npos, "register: invalid name '", name,
             "' (it must be non-empty and contain no '.')");
    auto taken = [&](const auto& list) {
      for (auto& [n, x] : list)
        if (n == name) return true;
      return false;
    };
    TV_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), "register: the name '", name,
             "' is already used in this module");
  }
  void collect(StateDict<T>& out, const std::string& prefix, bool params, bool buffers) const {
    if (params)
      for (auto& [n, t] : params_) out.emplace_back(prefix + n, t);
    if (buffers)
      for (auto& [n, t] : buffers_)
        if (t.defined()) out.emplace_back(prefix + n, t);
    for (auto& [n, child] : children_) child->collect(out, prefix + n + ".", params, buffers);
  }
  static typename StateDict<T>::const_iterator find(const StateDict<T>& d, const std::string& name) {
    for (auto it = d.begin(); it != d.end(); ++it)
      if (it->first == name) return it;
    return d.end();
  }
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
  }

  StateDict<T> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace tv::nn
