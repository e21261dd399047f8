#pragma once
// Tensor<T>: a shape, strides and an offset over shared Storage<T>, plus the autograd fields.
// A Tensor is a handle: copying it shares the same tensor (as in PyTorch). Views share storage.
// Shape methods (view, permute, narrow, ...) are members and are defined in ops/view.hpp;
// math is free functions in ops/ (tv::exp(x), tv::sum(x, {1}), a + b).
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/shape.hpp"
#include "tinyvid/core/storage.hpp"

namespace tv {

namespace autograd {
template <class T>
class Node;
}

template <class T>
struct TensorImpl {
  std::shared_ptr<Storage<T>> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl<T>> grad;
  std::shared_ptr<autograd::Node<T>> grad_fn;            // set on results of differentiable ops
  std::weak_ptr<autograd::Node<T>> grad_accumulator;     // leaves: the node that adds into .grad
  // Leaves: called once per backward, after its gradient has been added into .grad (data-parallel training
  // starts reducing a parameter's gradient while backward goes on), each under the id it was registered with.
  std::vector<std::pair<uint64_t, std::function<void()>>> grad_hooks;
};

template <class T>
class Tensor {
 public:
  using value_type = T;

  Tensor() = default;  // an undefined tensor: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl<T>> impl) : impl_(std::move(impl)) {}

  // A new contiguous tensor; its values are uninitialized (use tv::zeros and friends instead).
  static Tensor empty(const Shape& shape, Device device = Device::CPU) { return allocated(shape, device, false, "empty"); }
  // A new contiguous host tensor in pinned memory (torch.empty(..., pin_memory=True)): a GPU copies from it
  // asynchronously. Ordinary host memory where there is no GPU (is_pinned() then says false).
  static Tensor empty_pinned(const Shape& shape) { return allocated(shape, Device::CPU, true, "empty_pinned"); }
  // A tensor that shares `storage` with the given layout (no autograd history).
  static Tensor from_storage(std::shared_ptr<Storage<T>> storage, Shape shape, Shape strides,
                             int64_t offset) {
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = std::move(storage);
    impl->shape = std::move(shape);
    impl->strides = std::move(strides);
    impl->offset = offset;
    return Tensor(std::move(impl));
  }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  const Shape& sizes() const { return shape(); }
  int64_t size(int64_t dim) const { return shape()[wrap_dim(dim, this->dim(), "size")]; }
  const Shape& strides() const { return checked().strides; }
  int64_t stride(int64_t dim) const { return strides()[wrap_dim(dim, this->dim(), "stride")]; }
  int64_t offset() const { return checked().offset; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t numel() const { return numel_of(shape()); }
  Device device() const { return checked().storage->device(); }
  bool is_pinned() const { return checked().storage->is_pinned(); }
  bool is_contiguous() const { return is_contiguous_layout(shape(), strides()); }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  T* data() { return checked().storage->data() + impl_->offset; }
  const T* data() const { return checked().storage->data() + impl_->offset; }
  const std::shared_ptr<Storage<T>>& storage() const { return checked().storage; }
  TensorImpl<T>* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl<T>>& impl_ptr() const { return impl_; }

  // ---- host reads: the CPU only. A device tensor is read with an explicit .to(Device::CPU) first, so every
  // device-to-host synchronisation is visible in the code that causes it. ----
  // Element access by multi-index (bounds checked), for tests and small loops.
  T& at(std::initializer_list<int64_t> idx) { return host_data("at")[element_offset(idx)]; }
  const T& at(std::initializer_list<int64_t> idx) const { return host_data("at")[element_offset(idx)]; }
  // The single value of a one-element tensor.
  T item() const {
    TV_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
    return *host_data("item");
  }
  // The values in logical (row-major) order.
  std::vector<T> to_vector() const;

  // A copy on `device` (this tensor itself when it is there already, as PyTorch's Tensor.to); differentiable.
  // Defined in ops/device.hpp.
  Tensor to(Device device) const;

  // ---- autograd (defined in autograd/) ----
  bool requires_grad() const { return checked().requires_grad; }
  Tensor& requires_grad_(bool on = true) {
    TV_CHECK(!on || std::is_floating_point_v<T>, "requires_grad_: only floating-point tensors can require grad");
    TV_CHECK(on || !checked().grad_fn, "requires_grad_(false): only leaf tensors can be changed; use detach()");
    checked().requires_grad = on;
    return *this;
  }
  bool is_leaf() const { return !checked().grad_fn; }
  Tensor grad() const { return Tensor(checked().grad); }
  void set_grad(const Tensor& g) { checked().grad = g.impl_; }
  const std::shared_ptr<autograd::Node<T>>& grad_fn() const { return checked().grad_fn; }
  // A leaf's hook, called by each backward once this leaf's .grad holds its whole gradient (PyTorch's
  // register_post_accumulate_grad_hook); returns the id that remove_grad_hook takes.
  uint64_t register_post_accumulate_grad_hook(std::function<void()> hook) {
    TV_CHECK(requires_grad() && is_leaf(), "register_post_accumulate_grad_hook: only a leaf that requires grad "
             "accumulates a gradient (shape ", shape(), ")");
    static uint64_t next_id = 0;  // not thread-safe, as registering a hook during backward is not
    checked().grad_hooks.emplace_back(++next_id, std::move(hook));
    return next_id;
  }
  void remove_grad_hook(uint64_t id) {
    auto& hooks = checked().grad_hooks;
    std::erase_if(hooks, [id](const auto& h) { return h.first == id; });
  }
  // Reverse-mode differentiation from this tensor; `gradient` may be omitted for a one-element tensor.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

  // ---- views and copies (defined in ops/view.hpp) ----
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor detach() const;

  // ---- in place (no autograd; defined in ops/inplace.hpp); each bumps the storage version ----
  Tensor& fill_(T value);
  Tensor& zero_() { return fill_(T(0)); }
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& other, T alpha = T(1));
  Tensor& mul_(T value);

 private:
  static Tensor allocated(const Shape& shape, Device device, bool pinned, const char* op) {
    for (int64_t d : shape) TV_CHECK(d >= 0, op, ": negative size in shape ", shape);
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = std::make_shared<Storage<T>>(numel_of(shape), device, pinned);
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    return Tensor(std::move(impl));
  }
  Tensor view_as_layout_(const Shape& shape, const Shape& strides) const;
  TensorImpl<T>& checked() const {
    TV_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  T* host_data(const char* op) const {
    TV_CHECK(device() == Device::CPU, op, ": the tensor (shape ", shape(), ") is on ", device_name(device()),
             "; read it on the host with .to(tv::Device::CPU) first");
    return checked().storage->data() + impl_->offset;
  }
  int64_t element_offset(std::initializer_list<int64_t> idx) const {
    TV_CHECK(static_cast<int64_t>(idx.size()) == dim(), "at: expected ", dim(), " indices, got ", idx.size());
    int64_t off = 0, i = 0;
    for (int64_t v : idx) {
      TV_CHECK(v >= 0 && v < shape()[i], "at: index ", v, " is out of range for dim ", i, " of size ",
               shape()[i], " (shape ", shape(), ")");
      off += v * strides()[i++];
    }
    return off;
  }

  std::shared_ptr<TensorImpl<T>> impl_;
};

// Calls f(offset) for the storage offset of every element, in logical order; used by slow paths only.
template <class F>
void for_each_offset(const Shape& shape, const Shape& strides, F&& f) {
  int64_t n = numel_of(shape);
  if (n == 0) return;
  const size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t k = 0; k < n; ++k) {
    f(off);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= (shape[d] - 1) * strides[d];
      idx[d] = 0;
    }
  }
}

template <class T>
std::vector<T> Tensor<T>::to_vector() const {
  std::vector<T> out;
  out.reserve(numel());
  const T* p = host_data("to_vector");
  for_each_offset(shape(), strides(), [&](int64_t off) { out.push_back(p[off]); });
  return out;
}

}  // namespace tv
