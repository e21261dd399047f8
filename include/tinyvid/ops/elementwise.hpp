#pragma once
// Elementwise ops with NumPy broadcasting, each forward beside its backward.
// Results are new contiguous tensors; backward passes use fused kernels (map/zip) directly.
#include <cmath>
#include <limits>
#include <type_traits>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/cpu/elementwise.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/reduce.hpp"

namespace tv {

template <class T>
using Grads = std::vector<Tensor<T>>;
template <class T>
using Scalar = std::type_identity_t<T>;  // a scalar argument that does not take part in deduction

namespace detail {

// out = f(x) elementwise, contiguous.
template <class T, class F>
Tensor<T> map(const Tensor<T>& x, F f) {
  Tensor<T> out = Tensor<T>::empty(x.shape());
  cpu::map1(x.shape(), out.data(), out.strides(), x.data(), x.strides(), f);
  return out;
}

// out = f(a, b) elementwise with broadcasting; `op` names the caller in a shape error.
template <class T, class F>
Tensor<T> zip(const Tensor<T>& a, const Tensor<T>& b, const char* op, F f) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor<T> out = Tensor<T>::empty(shape);
  cpu::map2(shape, out.data(), out.strides(), a.data(), broadcast_strides(a.shape(), a.strides(), shape), b.data(),
            broadcast_strides(b.shape(), b.strides(), shape), f);
  return out;
}

// out = g(x) with g an Eigen array expression (vectorized transcendental functions), contiguous.
template <class T, class G>
Tensor<T> map_array(const Tensor<T>& x, G g) {
  Tensor<T> out = Tensor<T>::empty(x.shape());
  cpu::map1_array(x.shape(), out.data(), out.strides(), x.data(), x.strides(), g);
  return out;
}

}  // namespace detail

// ---- binary ----

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "add", [](T x, T y) { return x + y; });
  Shape sa = a.shape(), sb = b.shape();
  autograd::record(out, "AddBackward", {a, b}, [sa, sb](const Tensor<T>& g, const autograd::Node<T>& n) {
    return Grads<T>{n.needs_grad(0) ? sum_to(g, sa) : Tensor<T>(), n.needs_grad(1) ? sum_to(g, sb) : Tensor<T>()};
  });
  return out;
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "sub", [](T x, T y) { return x - y; });
  Shape sa = a.shape(), sb = b.shape();
  autograd::record(out, "SubBackward", {a, b}, [sa, sb](const Tensor<T>& g, const autograd::Node<T>& n) {
    Grads<T> r(2);
    if (n.needs_grad(0)) r[0] = sum_to(g, sa);
    if (n.needs_grad(1)) r[1] = detail::map(sum_to(g, sb), [](T v) { return -v; });
    return r;
  });
  return out;
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "mul", [](T x, T y) { return x * y; });
  autograd::record(out, "MulBackward", {a, b},
                   [sa = autograd::Saved<T>(a), sb = autograd::Saved<T>(b)](const Tensor<T>& g, const autograd::Node<T>& n) {
                     const auto& x = sa.get("mul");
                     const auto& y = sb.get("mul");
                     auto times = [](T u, T v) { return u * v; };
                     Grads<T> r(2);
                     if (n.needs_grad(0)) r[0] = sum_to(detail::zip(g, y, "mul", times), x.shape());
                     if (n.needs_grad(1)) r[1] = sum_to(detail::zip(g, x, "mul", times), y.shape());
                     return r;
                   });
  return out;
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "div", [](T x, T y) { return x / y; });
  autograd::record(out, "DivBackward", {a, b},
                   [sa = autograd::Saved<T>(a), sb = autograd::Saved<T>(b), so = autograd::Saved<T>(out)](
                       const Tensor<T>& g, const autograd::Node<T>& n) {
                     const auto& y = sb.get("div");
                     Grads<T> r(2);
                     if (n.needs_grad(0))
                       r[0] = sum_to(detail::zip(g, y, "div", [](T u, T v) { return u / v; }), sa.get("div").shape());
                     if (n.needs_grad(1)) {  // d(a/b)/db = -(a/b)/b
                       Tensor<T> q = detail::zip(so.get("div"), y, "div", [](T o, T v) { return -o / v; });
                       r[1] = sum_to(detail::zip(g, q, "div", [](T u, T v) { return u * v; }), y.shape());
                     }
                     return r;
                   });
  return out;
}

// a ** b elementwise.
template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "pow", [](T x, T y) { return std::pow(x, y); });
  autograd::record(out, "PowBackward", {a, b},
                   [sa = autograd::Saved<T>(a), sb = autograd::Saved<T>(b), so = autograd::Saved<T>(out)](
                       const Tensor<T>& g, const autograd::Node<T>& n) {
                     const auto& x = sa.get("pow");
                     const auto& y = sb.get("pow");
                     auto times = [](T u, T v) { return u * v; };
                     Grads<T> r(2);
                     if (n.needs_grad(0)) {
                       Tensor<T> d = detail::zip(x, y, "pow", [](T u, T v) { return v == T(0) ? T(0) : v * std::pow(u, v - T(1)); });
                       r[0] = sum_to(detail::zip(g, d, "pow", times), x.shape());
                     }
                     if (n.needs_grad(1)) {  // out * log(a), taken as 0 where a == 0 and b >= 0 (as PyTorch)
                       Tensor<T> lg = detail::zip(x, y, "pow", [](T u, T v) { return u == T(0) && v >= T(0) ? T(0) : std::log(u); });
                       Tensor<T> d = detail::zip(so.get("pow"), lg, "pow", times);
                       r[1] = sum_to(detail::zip(g, d, "pow", times), y.shape());
                     }
                     return r;
                   });
  return out;
}

// ---- unary: out = f(x), backward g * f'(x) computed from whichever of x or out is cheaper ----

namespace detail {
// Records `out` = f(x) with the derivative written as grad_times(g, v), where v is the saved input
// or output, whichever the derivative is cheaper from.
enum class SaveFrom { Input, Output };
template <class T, class D>
Tensor<T> record_unary(const Tensor<T>& x, Tensor<T> out, const char* name, SaveFrom from, D grad_times) {
  if (autograd::any_requires_grad<T>({x})) {
    autograd::Saved<T> saved(from == SaveFrom::Input ? x : out);
    autograd::record(out, name, {x}, [saved, name, grad_times](const Tensor<T>& g, const autograd::Node<T>&) {
      return Grads<T>{zip(g, saved.get(name), name, grad_times)};
    });
  }
  return out;
}
}  // namespace detail

template <class T>
Tensor<T> neg(const Tensor<T>& x) {
  Tensor<T> out = detail::map(x, [](T v) { return -v; });
  autograd::record(out, "NegBackward", {x}, [](const Tensor<T>& g, const autograd::Node<T>&) {
    return Grads<T>{detail::map(g, [](T v) { return -v; })};
  });
  return out;
}

template <class T>
Tensor<T> exp(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map_array(x, [](const auto& a) { return a.exp(); }), "ExpBackward",
                              detail::SaveFrom::Output, [](T g, T o) { return g * o; });
}

template <class T>
Tensor<T> log(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map_array(x, [](const auto& a) { return a.log(); }), "LogBackward",
                              detail::SaveFrom::Input, [](T g, T v) { return g / v; });
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, [](T v) { return std::sqrt(v); }), "SqrtBackward",
                              detail::SaveFrom::Output, [](T g, T o) { return g / (T(2) * o); });
}

template <class T>
Tensor<T> abs(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, [](T v) { return std::abs(v); }), "AbsBackward",
                              detail::SaveFrom::Input, [](T g, T v) { return v > T(0) ? g : (v < T(0) ? -g : T(0)); });
}

// PyTorch's threshold: x <= 0 ? 0 : x, so a NaN stays NaN (a corrupt weight or input must reach the loss and
// its NaN check, not turn into plausible scores), and the gradient passes where out <= 0 is false: out > 0
// and NaN, as PyTorch's threshold_backward. One compare and a blend: still vectorized.
template <class T>
Tensor<T> relu(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, [](T v) { return v <= T(0) ? T(0) : v; }), "ReluBackward",
                              detail::SaveFrom::Output, [](T g, T o) { return o <= T(0) ? T(0) : g; });
}

template <class T>
Tensor<T> sigmoid(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map_array(x, [](const auto& a) { return a.logistic(); }), "SigmoidBackward",
                              detail::SaveFrom::Output, [](T g, T o) { return g * o * (T(1) - o); });
}

template <class T>
Tensor<T> tanh(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map_array(x, [](const auto& a) { return a.tanh(); }), "TanhBackward",
                              detail::SaveFrom::Output, [](T g, T o) { return g * (T(1) - o * o); });
}

// Clamps to [lo, hi]; the gradient passes where lo <= x <= hi (as PyTorch). Use +-infinity for no bound.
// A NaN element stays NaN with gradient 0, as in PyTorch; a NaN bound is refused (it would clamp nothing).
template <class T>
Tensor<T> clamp(const Tensor<T>& x, Scalar<T> lo, Scalar<T> hi) {
  TV_CHECK(!std::isnan(lo) && !std::isnan(hi), "clamp: expected bounds that are numbers, got min ", lo, ", max ", hi);
  TV_CHECK(!(lo > hi), "clamp: min ", lo, " is greater than max ", hi);
  return detail::record_unary(x, detail::map(x, [lo, hi](T v) { return v < lo ? lo : (v > hi ? hi : v); }),
                              "ClampBackward", detail::SaveFrom::Input,
                              [lo, hi](T g, T v) { return v >= lo && v <= hi ? g : T(0); });
}

template <class T>
Tensor<T> pow(const Tensor<T>& x, Scalar<T> p) {
  return detail::record_unary(x, detail::map(x, [p](T v) { return std::pow(v, p); }), "PowBackward",
                              detail::SaveFrom::Input,
                              [p](T g, T v) { return p == T(0) ? T(0) : g * p * std::pow(v, p - T(1)); });
}

// ---- with a scalar ----

template <class T>
Tensor<T> add(const Tensor<T>& x, Scalar<T> s) {
  Tensor<T> out = detail::map(x, [s](T v) { return v + s; });
  autograd::record(out, "AddBackward", {x}, [](const Tensor<T>& g, const autograd::Node<T>&) { return Grads<T>{g}; });
  return out;
}

template <class T>
Tensor<T> mul(const Tensor<T>& x, Scalar<T> s) {
  Tensor<T> out = detail::map(x, [s](T v) { return v * s; });
  autograd::record(out, "MulBackward", {x}, [s](const Tensor<T>& g, const autograd::Node<T>&) {
    return Grads<T>{detail::map(g, [s](T v) { return v * s; })};
  });
  return out;
}

template <class T>
Tensor<T> sub(const Tensor<T>& x, Scalar<T> s) { return add(x, -s); }
template <class T>
Tensor<T> div(const Tensor<T>& x, Scalar<T> s) { return mul(x, T(1) / s); }

// ---- operators ----
template <class T> Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return add(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return sub(a, b); }
template <class T> Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return mul(a, b); }
template <class T> Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) { return div(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a) { return neg(a); }
template <class T> Tensor<T> operator+(const Tensor<T>& a, Scalar<T> s) { return add(a, s); }
template <class T> Tensor<T> operator+(Scalar<T> s, const Tensor<T>& a) { return add(a, s); }
template <class T> Tensor<T> operator-(const Tensor<T>& a, Scalar<T> s) { return sub(a, s); }
template <class T> Tensor<T> operator-(Scalar<T> s, const Tensor<T>& a) { return add(neg(a), s); }
template <class T> Tensor<T> operator*(const Tensor<T>& a, Scalar<T> s) { return mul(a, s); }
template <class T> Tensor<T> operator*(Scalar<T> s, const Tensor<T>& a) { return mul(a, s); }
template <class T> Tensor<T> operator/(const Tensor<T>& a, Scalar<T> s) { return div(a, s); }
template <class T> Tensor<T> operator/(Scalar<T> s, const Tensor<T>& a) { return mul(pow(a, T(-1)), s); }

}  // namespace tv
