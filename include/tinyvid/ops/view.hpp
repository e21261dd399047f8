#pragma once
// Views share storage with their base (a write through one is seen by the other) and are
// differentiable: each backward maps the view's gradient back onto the base's shape.
#include <algorithm>
#include <numeric>
#include <optional>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/inplace.hpp"

namespace tv {

template <class T>
Tensor<T> sum_to(const Tensor<T>& x, const Shape& shape);  // ops/reduce.hpp

namespace detail {

template <class T>
Tensor<T> make_view(const Tensor<T>& base, Shape shape, Shape strides, int64_t offset) {
  return Tensor<T>::from_storage(base.storage(), std::move(shape), std::move(strides), offset);
}

// Replaces one -1 in `shape` by what makes it hold `numel` elements.
inline Shape infer_shape(Shape shape, int64_t numel, const char* op, const Shape& from) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      TV_CHECK(infer < 0, op, ": only one dim can be -1, got shape ", shape);
      infer = static_cast<int64_t>(i);
    } else {
      TV_CHECK(shape[i] >= 0, op, ": invalid size ", shape[i], " in shape ", shape);
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    TV_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape, " is invalid for a tensor of shape ", from,
             " (", numel, " elements)");
    shape[infer] = numel / known;
  }
  TV_CHECK(numel_of(shape) == numel, op, ": shape ", shape, " is invalid for a tensor of shape ", from, " (",
           numel, " elements)");
  return shape;
}

// Strides that view (shape, strides) as `target` without copying, if there are any (PyTorch's rule:
// each run of dims that is contiguous in memory may be split or merged freely).
inline std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& target) {
  Shape out(target.size());
  if (numel_of(shape) == 0 || shape.empty()) return contiguous_strides(target);
  int64_t view_d = static_cast<int64_t>(target.size()) - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= target[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// The gradient of a view that picks a region of its base: zeros, with the region set to g.
template <class T, class ViewFn>
Tensor<T> region_backward(const Tensor<T>& g, const Shape& base_shape, ViewFn view_of) {
  Tensor<T> out = zeros<T>(base_shape, g.device());
  Tensor<T> region = view_of(out);
  kernel::copy(g, region);
  return out;
}

}  // namespace detail

template <class T>
Tensor<T> Tensor<T>::view(const Shape& shape_in) const {
  Shape target = detail::infer_shape(shape_in, numel(), "view", shape());
  auto st = detail::view_strides(shape(), strides(), target);
  TV_CHECK(st.has_value(), "view: cannot view a tensor of shape ", shape(), " and strides ", strides(), " as shape ",
           target, " without a copy; use reshape()");
  Tensor<T> out = detail::make_view(*this, target, *st, offset());
  Shape in_shape = shape();
  autograd::record(out, "ViewBackward", {*this}, [in_shape](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{g.reshape(in_shape)};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::reshape(const Shape& shape_in) const {
  Shape target = detail::infer_shape(shape_in, numel(), "reshape", shape());
  if (detail::view_strides(shape(), strides(), target)) return view(target);
  return contiguous().view(target);
}

template <class T>
Tensor<T> Tensor<T>::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  TV_CHECK(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape target(shape().begin(), shape().begin() + s);
  target.push_back(std::accumulate(shape().begin() + s, shape().begin() + e + 1, int64_t{1}, std::multiplies<>()));
  target.insert(target.end(), shape().begin() + e + 1, shape().end());
  return reshape(target);
}

template <class T>
Tensor<T> Tensor<T>::permute(const Shape& dims) const {
  const int64_t n = dim();
  TV_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: expected ", n, " dims for a tensor of shape ", shape(),
           ", got ", dims);
  Shape new_shape(n), new_strides(n), inverse(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = wrap_dim(dims[i], n, "permute");
    TV_CHECK(inverse[d] < 0, "permute: dim ", dims[i], " is repeated in ", dims);
    inverse[d] = i;
    new_shape[i] = shape()[d];
    new_strides[i] = strides()[d];
  }
  Tensor<T> out = detail::make_view(*this, new_shape, new_strides, offset());
  autograd::record(out, "PermuteBackward", {*this}, [inverse](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{g.permute(inverse)};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::transpose(int64_t d0, int64_t d1) const {
  Shape dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  if (dim() == 0) return permute(dims);
  std::swap(dims[wrap_dim(d0, dim(), "transpose")], dims[wrap_dim(d1, dim(), "transpose")]);
  return permute(dims);
}

template <class T>
Tensor<T> Tensor<T>::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  TV_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = shape()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape new_shape = shape(), new_strides = strides();
  new_shape[d] = (end - start + step - 1) / step;
  new_strides[d] *= step;
  Tensor<T> out = detail::make_view(*this, new_shape, new_strides, offset() + start * strides()[d]);
  Shape in_shape = shape();
  autograd::record(out, "SliceBackward", {*this}, [=](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{
        detail::region_backward(g, in_shape, [&](const Tensor<T>& b) { return b.slice(d, start, end, step); })};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  const int64_t n = shape()[d];
  if (start < 0 && start >= -n) start += n;
  TV_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ", start + length,
           ") is out of bounds for dim ", d, " of size ", n, " (shape ", shape(), ")");
  return slice(d, start, start + length);
}

template <class T>
Tensor<T> Tensor<T>::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t n = shape()[d];
  TV_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", d, " of size ", n,
           " (shape ", shape(), ")");
  if (index < 0) index += n;
  return narrow(d, index, 1).squeeze(d);
}

template <class T>
Tensor<T> Tensor<T>::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape new_shape = shape(), new_strides = strides();
  int64_t st = d < dim() ? strides()[d] * shape()[d] : 1;
  new_shape.insert(new_shape.begin() + d, 1);
  new_strides.insert(new_strides.begin() + d, st);
  return view_as_layout_(new_shape, new_strides);
}

template <class T>
Tensor<T> Tensor<T>::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0 || shape()[d] != 1) return view_as_layout_(shape(), strides());
  Shape new_shape = shape(), new_strides = strides();
  new_shape.erase(new_shape.begin() + d);
  new_strides.erase(new_strides.begin() + d);
  return view_as_layout_(new_shape, new_strides);
}

template <class T>
Tensor<T> Tensor<T>::squeeze() const {
  Shape new_shape, new_strides;
  for (int64_t i = 0; i < dim(); ++i)
    if (shape()[i] != 1) {
      new_shape.push_back(shape()[i]);
      new_strides.push_back(strides()[i]);
    }
  return view_as_layout_(new_shape, new_strides);
}

template <class T>
Tensor<T> Tensor<T>::expand(const Shape& target_in) const {
  Shape target = target_in;
  TV_CHECK(target.size() >= shape().size(), "expand: cannot expand shape ", shape(), " to fewer dims ", target_in);
  const size_t lead = target.size() - shape().size();
  Shape new_strides(target.size(), 0);
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      TV_CHECK(target[i] >= 0, "expand: a new leading dim cannot be ", target[i], " (target ", target_in, ")");
      continue;
    }
    int64_t have = shape()[i - lead];
    if (target[i] == -1) target[i] = have;
    TV_CHECK(have == target[i] || have == 1, "expand: shape ", shape(), " cannot be expanded to ", target_in,
             " (dim ", i, ": ", have, " vs ", target[i], ")");
    new_strides[i] = have == target[i] ? strides()[i - lead] : 0;
  }
  Tensor<T> out = detail::make_view(*this, target, new_strides, offset());
  Shape in_shape = shape();
  autograd::record(out, "ExpandBackward", {*this}, [in_shape](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{sum_to(g, in_shape)};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::clone() const {
  Tensor<T> out = Tensor<T>::empty(shape(), device());
  kernel::copy(*this, out);
  autograd::record(out, "CloneBackward", {*this}, [](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{g};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::contiguous() const {
  return is_contiguous() ? *this : clone();
}

template <class T>
Tensor<T> Tensor<T>::detach() const {
  return detail::make_view(*this, shape(), strides(), offset());
}

// A view with the same elements under another layout (unsqueeze/squeeze); backward reshapes back.
template <class T>
Tensor<T> Tensor<T>::view_as_layout_(const Shape& new_shape, const Shape& new_strides) const {
  Tensor<T> out = detail::make_view(*this, new_shape, new_strides, offset());
  Shape in_shape = shape();
  autograd::record(out, "ViewBackward", {*this}, [in_shape](const Tensor<T>& g, const autograd::Node<T>&) {
    return std::vector<Tensor<T>>{g.reshape(in_shape)};
  });
  return out;
}

}  // namespace tv
