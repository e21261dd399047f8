#pragma once
// Shapes and strides: run-time vectors of int64, row-major ("contiguous") by default.
#include <algorithm>
#include <array>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "tinyvid/core/error.hpp"

namespace tv {

// A list of sizes (or strides). A type of its own, so `std::cout << x.shape()` finds its printer.
struct Shape : std::vector<int64_t> {
  using std::vector<int64_t>::vector;
  Shape(const std::vector<int64_t>& v) : std::vector<int64_t>(v) {}  // NOLINT: implicit on purpose
};

// Two sizes, one per spatial dim (height, width): kernel sizes, strides, paddings of convs and pools.
using Pair = std::array<int64_t, 2>;

inline std::ostream& operator<<(std::ostream& os, const Shape& s) {
  return os << static_cast<const std::vector<int64_t>&>(s);
}

inline std::string to_string(const Shape& s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

// The element count; a product past int64 would wrap to a small or zero size (a tensor whose storage is
// smaller than its shape), so it is an error.
inline int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n)) TV_FAIL("shape ", s, " has more elements than a 64-bit count holds");
  return n;
}

inline Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

inline bool is_contiguous_layout(const Shape& shape, const Shape& strides) {
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

// Wraps a possibly negative dim into [0, ndim); `op` names the caller for the error message.
inline int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = ndim == 0 ? 1 : ndim;
  TV_CHECK(dim >= -n && dim < n, op, ": dim ", dim, " is out of range for a tensor with ", ndim,
           " dims (expected a dim in [", -n, ", ", n - 1, "])");
  return dim < 0 ? dim + n : dim;
}

// NumPy broadcasting of two shapes; the error names the op and both shapes.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    TV_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
             " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides that read a tensor of shape `from`/`strides` as if it had the broadcast shape `to`.
inline Shape broadcast_strides(const Shape& from, const Shape& strides, const Shape& to) {
  Shape out(to.size(), 0);
  size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) out[lead + i] = from[i] == 1 ? 0 : strides[i];
  return out;
}

}  // namespace tv
