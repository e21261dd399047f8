#pragma once
// The graph: each result of a differentiable op points to a Node that turns the gradient of that
// result into gradients of the op's inputs. Every op has one differentiable output.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/core/tensor.hpp"

namespace tv::autograd {

template <class T>
class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  // Frees a long chain iteratively: a recursive chain of destructors would overflow the stack.
  virtual ~Node() {
    std::vector<std::shared_ptr<Node>> stack = std::move(next);
    while (!stack.empty()) {
      std::shared_ptr<Node> n = std::move(stack.back());
      stack.pop_back();
      if (n && n.use_count() == 1) {
        for (auto& e : n->next) stack.push_back(std::move(e));
        n->next.clear();
      }
    }
  }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Gradients of the inputs, one per input; an entry may be undefined where needs_grad(i) is false.
  virtual std::vector<Tensor<T>> apply(const Tensor<T>& grad_output) = 0;
  // Frees what the node saved for backward (called after backward unless the graph is retained).
  virtual void release() {}

  const std::string& name() const { return name_; }
  // The mask every backward receives: only inputs that need a gradient get one computed.
  bool needs_grad(size_t input) const { return input < next.size() && next[input] != nullptr; }

  // The gradient the engine has gathered so far for input i from the input's other consumers, where it alone holds
  // it (undefined otherwise): a backward may add its gradient into this tensor and return it, instead of returning a
  // new one that the engine would then add (a conv's input gradient: ops/conv.hpp).
  const Tensor<T>& gathered_gradient(size_t input) const {
    static const Tensor<T> none;
    return input < gathered.size() ? gathered[input] : none;
  }

  std::vector<std::shared_ptr<Node>> next;  // the node of each input; null where no gradient is needed
  std::vector<Shape> input_shapes;          // to check the shape of every gradient an op returns
  std::vector<Device> input_devices;        // and its device
  std::vector<Tensor<T>> gathered;          // set by the engine for the call of apply: see gathered_gradient

 private:
  std::string name_;
};

// The sink for a leaf: adds the incoming gradient into leaf.grad.
template <class T>
class AccumulateGrad final : public Node<T> {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl<T>> leaf)
      : Node<T>("AccumulateGrad"), leaf_(std::move(leaf)) {}
  std::vector<Tensor<T>> apply(const Tensor<T>& grad) override;  // engine.hpp
  const std::shared_ptr<TensorImpl<T>>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl<T>> leaf_;
};

// A node whose backward is a callable `(grad_output, node) -> grads`, kept beside the op's forward.
template <class T, class F>
class FunctionNode final : public Node<T> {
 public:
  FunctionNode(std::string name, F fn) : Node<T>(std::move(name)) { fn_.emplace(std::move(fn)); }
  std::vector<Tensor<T>> apply(const Tensor<T>& grad) override {
    TV_CHECK(fn_.has_value(), this->name(),
             ": backward through a graph a second time, after its saved tensors were freed; "
             "pass retain_graph=true to the first backward()");
    return (*fn_)(grad, static_cast<const Node<T>&>(*this));
  }
  void release() override { fn_.reset(); }

 private:
  std::optional<F> fn_;
};

// A tensor saved for backward: detached (no reference cycle through its own grad_fn), with the
// storage version at save time so that a later in-place write is an error, not a wrong gradient.
template <class T>
class Saved {
 public:
  Saved() = default;
  explicit Saved(const Tensor<T>& t) : tensor_(t.detach()), version_(t.storage()->version()) {}
  const Tensor<T>& get(const char* op) const {
    TV_CHECK(tensor_.storage()->version() == version_, op,
             ": a tensor saved for backward was modified in place afterwards (version ", version_,
             " at save, now ", tensor_.storage()->version(), "); clone it before modifying it");
    return tensor_;
  }

 private:
  Tensor<T> tensor_;
  uint64_t version_ = 0;
};

// The node that receives the gradient of `t`: its grad_fn, or the leaf's accumulator.
template <class T>
std::shared_ptr<Node<T>> gradient_edge(const Tensor<T>& t) {
  TensorImpl<T>* impl = t.impl();
  if (impl->grad_fn) return impl->grad_fn;
  if (!impl->requires_grad) return nullptr;
  if (auto acc = impl->grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<AccumulateGrad<T>>(t.impl_ptr());
  impl->grad_accumulator = acc;
  return acc;
}

// True when an op on these inputs must record history.
template <class T>
bool any_requires_grad(const std::vector<Tensor<T>>& inputs) {
  if (!is_grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// Makes `out` the result of op `name` on `inputs`, with `backward(grad_out, node) -> grads`.
// Does nothing when grad mode is off or no input requires grad (so a backward capturing saved
// tensors costs nothing then).
template <class T, class F>
void record(Tensor<T>& out, const char* name, const std::vector<Tensor<T>>& inputs, F backward) {
  if (!any_requires_grad(inputs)) return;
  auto node = std::make_shared<FunctionNode<T, F>>(name, std::move(backward));
  node->next.reserve(inputs.size());
  for (const auto& t : inputs) {
    node->next.push_back(t.defined() ? gradient_edge(t) : nullptr);
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
    node->input_devices.push_back(t.defined() ? t.device() : Device::CPU);
  }
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
}

}  // namespace tv::autograd
