#pragma once
// Elementwise ops with NumPy broadcasting, each forward beside its backward.
// Results are new contiguous tensors on the inputs' device; backward passes use fused kernels (map/zip)
// directly. Every elementwise function is a named functor of backend/functors.hpp.
#include <cmath>
#include <limits>
#include <type_traits>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/backend/functors.hpp"
#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/reduce.hpp"

namespace tv {

template <class T>
using Grads = std::vector<Tensor<T>>;
template <class T>
using Scalar = std::type_identity_t<T>;  // a scalar argument that does not take part in deduction

namespace detail {

// out = f(x) elementwise, contiguous, on x's device; `op` names the caller in an error.
template <class T, class F>
Tensor<T> map(const Tensor<T>& x, F f, const char* op = "map") {
  Tensor<T> out = Tensor<T>::empty(x.shape(), x.device());
  kernel::map(x, out, f, op);
  return out;
}

// out = f(a, b) elementwise with broadcasting; `op` names the caller in a shape or device error.
template <class T, class F>
Tensor<T> zip(const Tensor<T>& a, const Tensor<T>& b, const char* op, F f) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor<T> out = Tensor<T>::empty(shape, device_of(op, a, b));
  kernel::zip(a, b, out, f, op);
  return out;
}

}  // namespace detail

// ---- binary ----

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "add", fn::Add{});
  Shape sa = a.shape(), sb = b.shape();
  autograd::record(out, "AddBackward", {a, b}, [sa, sb](const Tensor<T>& g, const autograd::Node<T>& n) {
    return Grads<T>{n.needs_grad(0) ? sum_to(g, sa) : Tensor<T>(), n.needs_grad(1) ? sum_to(g, sb) : Tensor<T>()};
  });
  return out;
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "sub", fn::Sub{});
  Shape sa = a.shape(), sb = b.shape();
  autograd::record(out, "SubBackward", {a, b}, [sa, sb](const Tensor<T>& g, const autograd::Node<T>& n) {
    Grads<T> r(2);
    if (n.needs_grad(0)) r[0] = sum_to(g, sa);
    if (n.needs_grad(1)) r[1] = detail::map(sum_to(g, sb), fn::Neg{}, "sub");
    return r;
  });
  return out;
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "mul", fn::Mul{});
  autograd::record(out, "MulBackward", {a, b},
                   [sa = autograd::Saved<T>(a), sb = autograd::Saved<T>(b)](const Tensor<T>& g, const autograd::Node<T>& n) {
                     const auto& x = sa.get("mul");
                     const auto& y = sb.get("mul");
                     Grads<T> r(2);
                     if (n.needs_grad(0)) r[0] = sum_to(detail::zip(g, y, "mul", fn::Mul{}), x.shape());
                     if (n.needs_grad(1)) r[1] = sum_to(detail::zip(g, x, "mul", fn::Mul{}), y.shape());
                     return r;
                   });
  return out;
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "div", fn::Div{});
  autograd::record(out, "DivBackward", {a, b},
                   [sa = autograd::Saved<T>(a), sb = autograd::Saved<T>(b), so = autograd::Saved<T>(out)](
                       const Tensor<T>& g, const autograd::Node<T>& n) {
                     const auto& y = sb.get("div");
                     Grads<T> r(2);
                     if (n.needs_grad(0))
                       r[0] = sum_to(detail::zip(g, y, "div", fn::Div{}), sa.get("div").shape());
                     if (n.needs_grad(1)) {  // d(a/b)/db = -(a/b)/b
                       Tensor<T> q = detail::zip(so.get("div"), y, "div", fn::DivGradDivisor{});
                       r[1] = sum_to(detail::zip(g, q, "div", fn::Mul{}), y.shape());
                     }
                     return r;
                   });
  return out;
}

// a ** b elementwise.
template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::zip(a, b, "pow", fn::Pow{});
  autograd::record(out, "PowBackward", {a, b},
                   [sa = autograd::Saved<T>(a), sb = autograd::Saved<T>(b), so = autograd::Saved<T>(out)](
                       const Tensor<T>& g, const autograd::Node<T>& n) {
                     const auto& x = sa.get("pow");
                     const auto& y = sb.get("pow");
                     Grads<T> r(2);
                     if (n.needs_grad(0)) {
                       Tensor<T> d = detail::zip(x, y, "pow", fn::PowGradBase{});
                       r[0] = sum_to(detail::zip(g, d, "pow", fn::Mul{}), x.shape());
                     }
                     if (n.needs_grad(1)) {  // out * log(a), taken as 0 where a == 0 and b >= 0 (as PyTorch)
                       Tensor<T> lg = detail::zip(x, y, "pow", fn::PowGradExponentLog{});
                       Tensor<T> d = detail::zip(so.get("pow"), lg, "pow", fn::Mul{});
                       r[1] = sum_to(detail::zip(g, d, "pow", fn::Mul{}), y.shape());
                     }
                     return r;
                   });
  return out;
}

// ---- unary: out = f(x), backward g * f'(x) computed from whichever of x or out is cheaper ----

namespace detail {
// Records `out` = f(x) with the derivative written as grad_times(g, v) (a functor of backend/functors.hpp),
// where v is the saved input or output, whichever the derivative is cheaper from.
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
  Tensor<T> out = detail::map(x, fn::Neg{}, "neg");
  autograd::record(out, "NegBackward", {x}, [](const Tensor<T>& g, const autograd::Node<T>&) {
    return Grads<T>{detail::map(g, fn::Neg{}, "neg")};
  });
  return out;
}

template <class T>
Tensor<T> exp(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, fn::Exp{}, "exp"), "ExpBackward", detail::SaveFrom::Output,
                              fn::Mul{});
}

template <class T>
Tensor<T> log(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, fn::Log{}, "log"), "LogBackward", detail::SaveFrom::Input,
                              fn::Div{});
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, fn::Sqrt{}, "sqrt"), "SqrtBackward", detail::SaveFrom::Output,
                              fn::SqrtGrad{});
}

template <class T>
Tensor<T> abs(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, fn::Abs{}, "abs"), "AbsBackward", detail::SaveFrom::Input,
                              fn::AbsGrad{});
}

// PyTorch's threshold: x <= 0 ? 0 : x, so a NaN stays NaN (a corrupt weight or input must reach the loss and
// its NaN check, not turn into plausible scores), and the gradient passes where out <= 0 is false: out > 0
// and NaN, as PyTorch's threshold_backward. One compare and a blend: still vectorized.
template <class T>
Tensor<T> relu(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, fn::Relu{}, "relu"), "ReluBackward", detail::SaveFrom::Output,
                              fn::ReluGrad{});
}

template <class T>
Tensor<T> sigmoid(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, fn::Sigmoid{}, "sigmoid"), "SigmoidBackward", detail::SaveFrom::Output,
                              fn::SigmoidGrad{});
}

template <class T>
Tensor<T> tanh(const Tensor<T>& x) {
  return detail::record_unary(x, detail::map(x, fn::Tanh{}, "tanh"), "TanhBackward", detail::SaveFrom::Output,
                              fn::TanhGrad{});
}

// Clamps to [lo, hi]; the gradient passes where lo <= x <= hi (as PyTorch). Use +-infinity for no bound.
// A NaN element stays NaN with gradient 0, as in PyTorch; a NaN bound is refused (it would clamp nothing).
template <class T>
Tensor<T> clamp(const Tensor<T>& x, Scalar<T> lo, Scalar<T> hi) {
  TV_CHECK(!std::isnan(lo) && !std::isnan(hi), "clamp: expected bounds that are numbers, got min ", lo, ", max ", hi);
  TV_CHECK(!(lo > hi), "clamp: min ", lo, " is greater than max ", hi);
  return detail::record_unary(x, detail::map(x, fn::Clamp<T>{lo, hi}, "clamp"), "ClampBackward",
                              detail::SaveFrom::Input, fn::ClampGrad<T>{lo, hi});
}

template <class T>
Tensor<T> pow(const Tensor<T>& x, Scalar<T> p) {
  return detail::record_unary(x, detail::map(x, fn::PowScalar<T>{p}, "pow"), "PowBackward", detail::SaveFrom::Input,
                              fn::PowScalarGrad<T>{p});
}

// ---- with a scalar ----

template <class T>
Tensor<T> add(const Tensor<T>& x, Scalar<T> s) {
  Tensor<T> out = detail::map(x, fn::AddScalar<T>{s}, "add");
  autograd::record(out, "AddBackward", {x}, [](const Tensor<T>& g, const autograd::Node<T>&) { return Grads<T>{g}; });
  return out;
}

template <class T>
Tensor<T> mul(const Tensor<T>& x, Scalar<T> s) {
  Tensor<T> out = detail::map(x, fn::MulScalar<T>{s}, "mul");
  autograd::record(out, "MulBackward", {x}, [s](const Tensor<T>& g, const autograd::Node<T>&) {
    return Grads<T>{detail::map(g, fn::MulScalar<T>{s}, "mul")};
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
