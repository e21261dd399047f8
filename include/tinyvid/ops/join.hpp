#pragma once
// Joining and splitting along a dim: cat, stack, split, chunk. Splits are views.
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/dispatch.hpp"
#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/ops/view.hpp"

namespace tv {

template <class T>
Tensor<T> cat(const std::vector<Tensor<T>>& xs, int64_t dim = 0) {
  TV_CHECK(!xs.empty(), "cat: expected at least one tensor");
  const Shape& first = xs[0].shape();
  const int64_t d = wrap_dim(dim, xs[0].dim(), "cat");
  Shape out_shape = first;
  out_shape[d] = 0;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = xs[i].shape();
    bool ok = s.size() == first.size();
    for (size_t k = 0; ok && k < s.size(); ++k) ok = static_cast<int64_t>(k) == d || s[k] == first[k];
    TV_CHECK(ok, "cat: tensor ", i, " has shape ", s, ", but tensor 0 has shape ", first,
             "; all sizes must match except along dim ", d);
    sizes.push_back(s[d]);
    out_shape[d] += s[d];
    device_of("cat", xs[0], xs[i]);  // one device for all
  }
  Tensor<T> out = Tensor<T>::empty(out_shape, xs[0].device());
  int64_t at = 0;
  for (const auto& x : xs) {
    Tensor<T> region = Tensor<T>::from_storage(out.storage(), x.shape(), out.strides(), at * out.strides()[d]);
    kernel::copy(x, region);
    at += x.shape()[d];
  }
  autograd::record(out, "CatBackward", xs, [d, sizes](const Tensor<T>& g, const autograd::Node<T>& n) {
    std::vector<Tensor<T>> r(sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (n.needs_grad(i)) r[i] = g.narrow(d, start, sizes[i]);
      start += sizes[i];
    }
    return r;
  });
  return out;
}

// Joins equally shaped tensors along a new dim.
template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& xs, int64_t dim = 0) {
  TV_CHECK(!xs.empty(), "stack: expected at least one tensor");
  std::vector<Tensor<T>> parts;
  for (size_t i = 0; i < xs.size(); ++i) {
    TV_CHECK(xs[i].shape() == xs[0].shape(), "stack: tensor ", i, " has shape ", xs[i].shape(),
             ", but tensor 0 has shape ", xs[0].shape(), "; stack needs equal shapes");
    parts.push_back(xs[i].unsqueeze(dim));
  }
  return cat(parts, wrap_dim(dim, xs[0].dim() + 1, "stack"));
}

// Pieces of the given sizes along dim (they must add up to its length), as views.
template <class T>
std::vector<Tensor<T>> split(const Tensor<T>& x, const std::vector<int64_t>& sizes, int64_t dim = 0) {
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    TV_CHECK(s >= 0, "split: negative size ", s);
    total += s;
  }
  TV_CHECK(total == x.size(d), "split: sizes add up to ", total, " but dim ", d, " has length ", x.size(d),
           " (shape ", x.shape(), ")");
  std::vector<Tensor<T>> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, start, s));
    start += s;
  }
  return out;
}

// Pieces of split_size along dim (the last may be shorter), as torch.split(x, int).
template <class T>
std::vector<Tensor<T>> split(const Tensor<T>& x, int64_t split_size, int64_t dim = 0) {
  TV_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  const int64_t n = x.size(dim);
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < n; at += split_size) sizes.push_back(std::min(split_size, n - at));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, dim);
}

// `chunks` pieces of ceil(n / chunks) along dim (fewer when they run out), as torch.chunk.
template <class T>
std::vector<Tensor<T>> chunk(const Tensor<T>& x, int64_t chunks, int64_t dim = 0) {
  TV_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  const int64_t n = x.size(dim);
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

}  // namespace tv
