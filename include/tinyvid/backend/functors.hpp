#pragma once
// Elementwise functions as named functors, shared by every device: the CPU kernels call them in their loops
// and a GPU backend compiles the same bodies for its threads (hence TV_HOST_DEVICE). A functor may also have
// array(a), an Eigen array expression the CPU uses for SIMD transcendental functions (exp, tanh, ...): the
// CPU's map1 takes it whenever it exists, so a functor with array() is computed by Eigen's vectorized
// function on the CPU and by operator() elsewhere.
// The set is closed on purpose: a GPU library instantiates its kernels for exactly these.
// Binary functors read (x, y) in operand order; the backward ones name their operands (g: the gradient of
// the output, o: the saved output, v: the saved input).
#include <cmath>

#include "tinyvid/backend/host_device.hpp"

namespace tv::fn {

// ---- unary ----

struct Neg {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return -v; }
};

struct Exp {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return std::exp(v); }
  template <class A>
  auto array(const A& a) const { return a.exp(); }
};

struct Log {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return std::log(v); }
  template <class A>
  auto array(const A& a) const { return a.log(); }
};

struct Sqrt {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return std::sqrt(v); }
};

struct Abs {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return std::abs(v); }
};

// PyTorch's threshold: x <= 0 ? 0 : x, so a NaN stays NaN.
struct Relu {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return v <= T(0) ? T(0) : v; }
};

// 1 / (1 + exp(-v)); Eigen's logistic on the CPU.
struct Sigmoid {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return T(1) / (T(1) + std::exp(-v)); }
  template <class A>
  auto array(const A& a) const { return a.logistic(); }
};

struct Tanh {
  template <class T>
  TV_HOST_DEVICE T operator()(T v) const { return std::tanh(v); }
  template <class A>
  auto array(const A& a) const { return a.tanh(); }
};

// v clamped to [lo, hi]; a NaN stays NaN.
template <class T>
struct Clamp {
  T lo, hi;
  TV_HOST_DEVICE T operator()(T v) const { return v < lo ? lo : (v > hi ? hi : v); }
};

// v ** p.
template <class T>
struct PowScalar {
  T p;
  TV_HOST_DEVICE T operator()(T v) const { return std::pow(v, p); }
};

// v + s.
template <class T>
struct AddScalar {
  T s;
  TV_HOST_DEVICE T operator()(T v) const { return v + s; }
};

// v * s.
template <class T>
struct MulScalar {
  T s;
  TV_HOST_DEVICE T operator()(T v) const { return v * s; }
};

// ---- binary ----

struct Add {
  template <class T>
  TV_HOST_DEVICE T operator()(T x, T y) const { return x + y; }
};

struct Sub {
  template <class T>
  TV_HOST_DEVICE T operator()(T x, T y) const { return x - y; }
};

struct Mul {
  template <class T>
  TV_HOST_DEVICE T operator()(T x, T y) const { return x * y; }
};

struct Div {
  template <class T>
  TV_HOST_DEVICE T operator()(T x, T y) const { return x / y; }
};

struct Pow {
  template <class T>
  TV_HOST_DEVICE T operator()(T x, T y) const { return std::pow(x, y); }
};

// x + alpha * y (add_ with a scale, SGD's updates).
template <class T>
struct AddScaled {
  T alpha;
  TV_HOST_DEVICE T operator()(T x, T y) const { return x + alpha * y; }
};

// (x - y)^2: a squared deviation from a mean (var).
struct SquaredDiff {
  template <class T>
  TV_HOST_DEVICE T operator()(T x, T y) const { return (x - y) * (x - y); }
};

// k (x - y): var's gradient, 2 (x - mean) / n before the incoming gradient.
template <class T>
struct ScaledDiff {
  T k;
  TV_HOST_DEVICE T operator()(T x, T y) const { return k * (x - y); }
};

// ---- derivatives: backward(g, v) = g * f'(v), v the saved input or output ----

// -(a / b) / b from the saved quotient o = a / b and b: d(a / b) / db.
struct DivGradDivisor {
  template <class T>
  TV_HOST_DEVICE T operator()(T o, T v) const { return -o / v; }
};

// d(u ** v) / du = v u^(v - 1), 0 where v == 0.
struct PowGradBase {
  template <class T>
  TV_HOST_DEVICE T operator()(T u, T v) const { return v == T(0) ? T(0) : v * std::pow(u, v - T(1)); }
};

// log(u) for d(u ** v) / dv = u^v log(u), taken as 0 where u == 0 and v >= 0 (as PyTorch).
struct PowGradExponentLog {
  template <class T>
  TV_HOST_DEVICE T operator()(T u, T v) const { return u == T(0) && v >= T(0) ? T(0) : std::log(u); }
};

// sqrt: g / (2 o).
struct SqrtGrad {
  template <class T>
  TV_HOST_DEVICE T operator()(T g, T o) const { return g / (T(2) * o); }
};

// abs: g sign(v), 0 at 0.
struct AbsGrad {
  template <class T>
  TV_HOST_DEVICE T operator()(T g, T v) const { return v > T(0) ? g : (v < T(0) ? -g : T(0)); }
};

// relu: g where o <= 0 is false (o > 0 and NaN), as PyTorch's threshold_backward.
struct ReluGrad {
  template <class T>
  TV_HOST_DEVICE T operator()(T g, T o) const { return o <= T(0) ? T(0) : g; }
};

// sigmoid: g o (1 - o).
struct SigmoidGrad {
  template <class T>
  TV_HOST_DEVICE T operator()(T g, T o) const { return g * o * (T(1) - o); }
};

// tanh: g (1 - o^2).
struct TanhGrad {
  template <class T>
  TV_HOST_DEVICE T operator()(T g, T o) const { return g * (T(1) - o * o); }
};

// clamp: g where lo <= v <= hi (a NaN v gets 0).
template <class T>
struct ClampGrad {
  T lo, hi;
  TV_HOST_DEVICE T operator()(T g, T v) const { return v >= lo && v <= hi ? g : T(0); }
};

// v ** p: g p v^(p - 1), 0 where p == 0.
template <class T>
struct PowScalarGrad {
  T p;
  TV_HOST_DEVICE T operator()(T g, T v) const { return p == T(0) ? T(0) : g * p * std::pow(v, p - T(1)); }
};

// ---- shared by fused kernels ----

// Batch norm's output before any residual and ReLU, x * scale + shift: one expression for every kernel that computes
// it, the forward's and the backward's that recomputes a ReLU's mask from it, so that all round alike (a fused
// multiply-add in each or in none) where they are compiled with the same flags, as in one program's build or the CUDA
// library's (a test holds the CPU's to it).
template <class T>
TV_HOST_DEVICE inline T batch_norm_affine(T x, T scale, T shift) {
  return x * scale + shift;
}

}  // namespace tv::fn
