#pragma once
// The backward walk: count each node's consumers, then run nodes in an order where every node's
// gradient is complete before it runs (Kahn's algorithm, iterative: a ResNet graph has tens of
// thousands of nodes). Saved tensors are freed as the walk goes unless the graph is retained.
#include <algorithm>
#include <unordered_map>
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/elementwise.hpp"

namespace tv {

namespace autograd::detail {

// a + b for gradients of equal shape (either may be an expanded view), as a new tensor on their device.
template <class T>
Tensor<T> add_grads(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = Tensor<T>::empty(a.shape(), a.device());
  kernel::add(a, b, out);
  return out;
}

// A new tensor of `shape` on `device` with every element `value` (an implied gradient, a missing one).
template <class T>
Tensor<T> filled(const Shape& shape, Device device, T value) {
  Tensor<T> out = Tensor<T>::empty(shape, device);
  kernel::fill(out, value);
  return out;
}

// A contiguous copy of g that nobody else sees (no autograd: backward runs with grad mode off).
template <class T>
Tensor<T> copy_of(const Tensor<T>& g) {
  Tensor<T> out = Tensor<T>::empty(g.shape(), g.device());
  kernel::copy(g, out);
  return out;
}

// True when nobody else can see g's memory, so a leaf may keep it as its .grad without a copy.
template <class T>
bool owned_exclusively(const Tensor<T>& g) {
  return g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.is_contiguous() &&
         g.offset() == 0 && g.storage()->size() == g.numel();
}

}  // namespace autograd::detail

template <class T>
std::vector<Tensor<T>> autograd::AccumulateGrad<T>::apply(const Tensor<T>& grad) {
  TensorImpl<T>& leaf = *leaf_;
  if (!leaf.grad) {
    leaf.grad = detail::owned_exclusively(grad) ? grad.impl_ptr() : detail::copy_of(grad).impl_ptr();
  } else {
    Tensor<T> acc(leaf.grad);
    TV_CHECK(acc.shape() == grad.shape(), "backward: gradient of shape ", grad.shape(),
             " cannot be added to the existing .grad of shape ", acc.shape());
    kernel::add(acc, grad, acc);
    acc.storage()->bump_version();
  }
  for (const auto& hook : leaf.grad_hooks) hook.second();  // the engine runs this node once, with the whole sum
  return {};
}

namespace autograd {

// Runs backward from `root` with the given gradient of it (ones for a one-element root).
template <class T>
void backward(const Tensor<T>& root, Tensor<T> gradient, bool retain_graph) {
  TV_CHECK(root.requires_grad(), "backward: the tensor (shape ", root.shape(),
           ") does not require grad and has no grad_fn; call requires_grad_() on an input first");
  if (!gradient.defined()) {
    TV_CHECK(root.numel() == 1, "backward: a gradient can be implied only for a one-element tensor, got shape ",
             root.shape(), "; pass the gradient of this tensor to backward(g)");
    gradient = detail::filled(root.shape(), root.device(), T(1));
  }
  TV_CHECK(gradient.shape() == root.shape(), "backward: gradient of shape ", gradient.shape(),
           " given for a tensor of shape ", root.shape());
  NoGradGuard no_grad;  // backward formulas record nothing
  std::shared_ptr<Node<T>> start = gradient_edge(root);

  std::unordered_map<Node<T>*, int> pending;  // consumers that have not yet sent their gradient
  std::vector<Node<T>*> stack{start.get()};
  pending[start.get()] = 0;
  while (!stack.empty()) {
    Node<T>* n = stack.back();
    stack.pop_back();
    for (const auto& next : n->next) {
      if (!next) continue;
      auto [it, fresh] = pending.try_emplace(next.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(next.get());
    }
  }

  std::unordered_map<Node<T>*, Tensor<T>> grads;
  grads[start.get()] = gradient;
  std::vector<std::shared_ptr<Node<T>>> ready{start};
  while (!ready.empty()) {
    std::shared_ptr<Node<T>> n = std::move(ready.back());
    ready.pop_back();
    auto git = grads.find(n.get());
    Tensor<T> g = git->second;
    grads.erase(git);
    // The gradients gathered so far for this node's inputs that only the engine holds (an input the node reads once),
    // offered for the backward to add into (Node::gathered_gradient).
    std::vector<Tensor<T>> in_grads;
    n->gathered.assign(n->next.size(), Tensor<T>());
    for (size_t i = 0; i < n->next.size(); ++i) {
      if (!n->next[i] || std::count(n->next.begin(), n->next.end(), n->next[i]) != 1) continue;
      auto it = grads.find(n->next[i].get());
      if (it != grads.end() && it->second.impl_ptr().use_count() == 1 && it->second.storage().use_count() == 1)
        n->gathered[i] = it->second;
    }
    std::vector<Tensor<T>> offered;
    {
      struct Withdraw {  // the offers end with the call, also when it throws
        Node<T>& node;
        std::vector<Tensor<T>>& kept;
        ~Withdraw() {
          kept = std::move(node.gathered);
          node.gathered.clear();
        }
      } withdraw{*n, offered};
      in_grads = n->apply(g);
    }
    g = Tensor<T>();
    if (!retain_graph) n->release();
    for (size_t i = 0; i < n->next.size(); ++i) {
      const auto& next = n->next[i];
      if (!next) continue;
      Tensor<T> gi = i < in_grads.size() ? in_grads[i] : Tensor<T>();
      if (!gi.defined()) gi = detail::filled(n->input_shapes[i], n->input_devices[i], T(0));
      TV_CHECK(gi.shape() == n->input_shapes[i], n->name(), ": backward returned a gradient of shape ", gi.shape(),
               " for input ", i, " of shape ", n->input_shapes[i]);
      TV_CHECK(gi.device() == n->input_devices[i], n->name(), ": backward returned a gradient on ",
               device_name(gi.device()), " for input ", i, " on ", device_name(n->input_devices[i]));
      auto [it, fresh] = grads.try_emplace(next.get(), gi);
      const bool added_in = i < offered.size() && offered[i].defined() && offered[i].impl() == gi.impl();
      if (!fresh && !added_in) it->second = detail::add_grads(it->second, gi);
      if (--pending[next.get()] == 0) ready.push_back(next);
    }
  }
}

}  // namespace autograd

template <class T>
void Tensor<T>::backward(const Tensor<T>& gradient, bool retain_graph) const {
  autograd::backward(*this, gradient, retain_graph);
}

}  // namespace tv
