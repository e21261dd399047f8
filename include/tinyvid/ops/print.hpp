#pragma once
// Printing like PyTorch: tensor([[ 0.1000, -1.2000], ...]); more than 1000 elements are summarized
// with the first and last 3 entries of each dim. A tensor on another device is copied to the host to be
// printed (printing is a host read the user asked for).
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/ops/device.hpp"

namespace tv {

namespace detail {

struct PrintFormat {
  enum Mode { Integer, Fixed, Scientific } mode = Fixed;
  int width = 1;
};

template <class T>
std::string format_value(T v, const PrintFormat& f) {
  char buf[64];
  if constexpr (std::is_integral_v<T>) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  } else if (std::isnan(v)) {
    std::snprintf(buf, sizeof buf, "nan");
  } else if (std::isinf(v)) {
    std::snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
  } else if (f.mode == PrintFormat::Integer) {
    std::snprintf(buf, sizeof buf, "%.0f.", static_cast<double>(v));
  } else if (f.mode == PrintFormat::Scientific) {
    std::snprintf(buf, sizeof buf, "%.4e", static_cast<double>(v));
  } else {
    std::snprintf(buf, sizeof buf, "%.4f", static_cast<double>(v));
  }
  return buf;
}

constexpr int64_t kSummarizeAbove = 1000, kEdgeItems = 3;

// The indices along a dim that are printed (all, or the edges when summarizing); -1 marks "...".
inline std::vector<int64_t> shown_indices(int64_t n, bool summarize) {
  std::vector<int64_t> idx;
  if (summarize && n > 2 * kEdgeItems) {
    for (int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
    idx.push_back(-1);
    for (int64_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
  } else {
    for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  }
  return idx;
}

template <class T, class F>
void visit_shown(const Tensor<T>& t, bool summarize, int64_t dim, int64_t off, F&& f) {
  if (dim == t.dim()) {
    f(t.data()[off]);
    return;
  }
  for (int64_t i : shown_indices(t.shape()[dim], summarize))
    if (i >= 0) visit_shown(t, summarize, dim + 1, off + i * t.strides()[dim], f);
}

template <class T>
void print_rec(std::ostream& os, const Tensor<T>& t, const PrintFormat& f, bool summarize, int64_t dim, int64_t off,
               int indent) {
  if (dim == t.dim()) {
    std::string s = format_value(t.data()[off], f);
    os << std::string(std::max<int>(0, f.width - static_cast<int>(s.size())), ' ') << s;
    return;
  }
  os << '[';
  auto idx = shown_indices(t.shape()[dim], summarize);
  const bool last_dim = dim == t.dim() - 1;
  for (size_t k = 0; k < idx.size(); ++k) {
    if (k > 0) {
      os << ',';
      if (last_dim) os << ' ';
      else os << std::string(static_cast<size_t>(t.dim() - dim - 1), '\n') << std::string(indent + 1, ' ');
    }
    if (idx[k] < 0) os << "...";
    else print_rec(os, t, f, summarize, dim + 1, off + idx[k] * t.strides()[dim], indent + 1);
  }
  os << ']';
}

}  // namespace detail

template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& x) {
  if (!x.defined()) return os << "tensor(undefined)";
  Tensor<T> t = x;
  if (x.device() != Device::CPU) {
    NoGradGuard no_grad;
    t = x.to(Device::CPU);
  }
  const bool summarize = t.numel() > detail::kSummarizeAbove;
  detail::PrintFormat f;
  if constexpr (std::is_floating_point_v<T>) {
    bool all_int = true;
    double max_abs = 0, min_abs = INFINITY;
    detail::visit_shown(t, summarize, 0, 0, [&](T v) {
      if (!std::isfinite(v)) return;
      all_int = all_int && v == std::nearbyint(v);
      double a = std::abs(static_cast<double>(v));
      max_abs = std::max(max_abs, a);
      if (a > 0) min_abs = std::min(min_abs, a);
    });
    if (all_int && max_abs < 1e8) f.mode = detail::PrintFormat::Integer;
    else if (max_abs > 1e8 || (min_abs < 1e-4) || (min_abs < INFINITY && max_abs / min_abs > 1000))
      f.mode = detail::PrintFormat::Scientific;
  }
  detail::visit_shown(t, summarize, 0, 0, [&](T v) {
    f.width = std::max<int>(f.width, static_cast<int>(detail::format_value(v, f).size()));
  });
  const int indent = 7;  // "tensor("
  os << "tensor(";
  detail::print_rec(os, t, f, summarize, 0, 0, indent);
  if (t.numel() == 0) os << ", size=" << t.shape();
  if (x.device() != Device::CPU) os << ", device='" << device_name(x.device()) << "'";
  if constexpr (std::is_same_v<T, double>) os << ", dtype=float64";
  if (x.grad_fn()) os << ", grad_fn=<" << x.grad_fn()->name() << ">";
  else if (x.requires_grad()) os << ", requires_grad=True";
  return os << ')';
}

}  // namespace tv
