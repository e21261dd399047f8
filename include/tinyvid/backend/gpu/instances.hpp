#pragma once
// Every kernel of backend/cuda.hpp with its definition (backend/gpu/), and the one list of the instances the
// CUDA library compiles: each template for the element types the library uses and, for map1/map2, for every
// functor of backend/functors.hpp. A file that compiles the kernels (src/cuda/kernels.cu on a GPU,
// tests/cuda_sim.cpp on the host) defines launch() first, then writes TINYVID_CUDA_INSTANCES().
#include "tinyvid/backend/functors.hpp"
#include "tinyvid/backend/gpu/batch_norm.hpp"
#include "tinyvid/backend/gpu/conv.hpp"
#include "tinyvid/backend/gpu/elementwise.hpp"
#include "tinyvid/backend/gpu/index.hpp"
#include "tinyvid/backend/gpu/lstm_dnr.hpp"
#include "tinyvid/backend/gpu/memory.hpp"
#include "tinyvid/backend/gpu/optim.hpp"
#include "tinyvid/backend/gpu/pool.hpp"
#include "tinyvid/backend/gpu/reduce.hpp"
#include "tinyvid/backend/gpu/softmax.hpp"

// map1 (out = f(x)) for every unary functor, and copy's identity.
#define TINYVID_CUDA_UNARY(X, T)                                                                             \
  X(T, ::tv::fn::Neg) X(T, ::tv::fn::Exp) X(T, ::tv::fn::Log) X(T, ::tv::fn::Sqrt) X(T, ::tv::fn::Abs)        \
  X(T, ::tv::fn::Relu) X(T, ::tv::fn::Sigmoid) X(T, ::tv::fn::Tanh) X(T, ::tv::fn::Clamp<T>)                \
  X(T, ::tv::fn::PowScalar<T>) X(T, ::tv::fn::AddScalar<T>) X(T, ::tv::fn::MulScalar<T>)                      \
  X(T, ::tv::cuda::Identity)

// map2 (out = f(a, b)) for every binary functor.
#define TINYVID_CUDA_BINARY(X, T)                                                                            \
  X(T, ::tv::fn::Add) X(T, ::tv::fn::Sub) X(T, ::tv::fn::Mul) X(T, ::tv::fn::Div) X(T, ::tv::fn::Pow)        \
  X(T, ::tv::fn::AddScaled<T>) X(T, ::tv::fn::SquaredDiff) X(T, ::tv::fn::ScaledDiff<T>)                     \
  X(T, ::tv::fn::DivGradDivisor) X(T, ::tv::fn::PowGradBase) X(T, ::tv::fn::PowGradExponentLog)             \
  X(T, ::tv::fn::SqrtGrad) X(T, ::tv::fn::AbsGrad) X(T, ::tv::fn::ReluGrad) X(T, ::tv::fn::SigmoidGrad)      \
  X(T, ::tv::fn::TanhGrad) X(T, ::tv::fn::ClampGrad<T>) X(T, ::tv::fn::PowScalarGrad<T>)

#define TINYVID_CUDA_MAP1_INSTANCE(T, F)                                                                     \
  template void map1<T, T, F>(const Shape&, T*, const Shape&, const T*, const Shape&, F);
#define TINYVID_CUDA_MAP2_INSTANCE(T, F)                                                                     \
  template void map2<T, T, F>(const Shape&, T*, const Shape&, const T*, const Shape&, const T*, const Shape&, F);

// The kernels of every element type: copies, fills and ranges.
#define TINYVID_CUDA_ANY_TYPE_INSTANCES(T)                                                                   \
  template void copy<T>(const Shape&, T*, const Shape&, const T*, const Shape&);                              \
  template void fill<T>(const Shape&, T*, const Shape&, T);                                                   \
  template void iota<T>(T*, int64_t, T, T);

// The kernels of a floating type (float, double).
#define TINYVID_CUDA_FLOATING_INSTANCES(T)                                                                   \
  TINYVID_CUDA_ANY_TYPE_INSTANCES(T)                                                                         \
  TINYVID_CUDA_UNARY(TINYVID_CUDA_MAP1_INSTANCE, T)                                                          \
  TINYVID_CUDA_BINARY(TINYVID_CUDA_MAP2_INSTANCE, T)                                                         \
  template void dropout_mask<T>(T*, int64_t, double, T, uint64_t);                                           \
  template void sum<T>(const T*, const Shape&, const Shape&, const std::vector<bool>&, T*, double);           \
  template void max_along<T>(const T*, const Shape&, const Shape&, int64_t, T*, int64_t*);                    \
  template void first_non_finite<T>(const T*, int64_t, int64_t*, T*);                                         \
  template void softmax_rows<T>(const T*, T*, int64_t, int64_t);                                              \
  template void log_softmax_rows<T>(const T*, T*, int64_t, int64_t);                                          \
  template void softmax_backward_rows<T>(const T*, const T*, T*, int64_t, int64_t);                           \
  template void log_softmax_backward_rows<T>(const T*, const T*, T*, int64_t, int64_t);                       \
  template void gather<T>(const T*, const Shape&, int64_t, const int64_t*, const Shape&, const Shape&, T*);   \
  template void scatter_add<T>(T*, const Shape&, int64_t, const int64_t*, const Shape&, const Shape&, const T*, \
                               const Shape&);                                                                \
  template void topk_hits<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, int64_t, int64_t*);         \
  template void batched_gemm<T>(const Shape&, const T*, const Shape&, int64_t, int64_t, const T*, const Shape&, \
                                int64_t, int64_t, T*, int64_t, int64_t, int64_t);                            \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*);                     \
  template void conv2d_backward_input<T>(const ConvGeometry&, const T*, const T*, T*);                        \
  template void conv2d_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*);                       \
  template void conv2d_backward_bias<T>(const ConvGeometry&, const T*, T*);                                   \
  template void batch_norm_stats<T>(const T*, const Shape&, const Shape&, int64_t, int64_t, double*, double*); \
  template void batch_norm_running_stats<T>(const T*, int64_t, const T*, int64_t, int64_t, double*, double*); \
  template void batch_norm_update_running<T>(const double*, const double*, int64_t, int64_t, int64_t, int64_t, \
                                             double, T*, int64_t, T*, int64_t, T*);                          \
  template void batch_norm_coefficients<T>(const double*, const double*, int64_t, int64_t, const T*, int64_t,  \
                                           const T*, int64_t, double, double*, T*, T*);                      \
  template void batch_norm_apply<T>(T*, const Shape&, const T*, const Shape&, const Shape&, int64_t, int64_t, \
                                    const T*, const T*, const T*, const Shape&, bool);                       \
  template void batch_norm_backward<T>(const T*, const Shape&, const T*, const Shape&, const Shape&, int64_t,  \
                                       int64_t, int64_t, const double*, const double*, const T*, int64_t,    \
                                       bool, T*, const Shape&, T*, T*, const T*, const T*, const T*,         \
                                       const Shape&, T*, const Shape&);                                      \
  template void max_pool2d<T>(const T*, T*, int64_t*, const PoolGeometry&);                                   \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, const PoolGeometry&);                    \
  template void avg_pool2d<T>(const T*, T*, const PoolGeometry&, bool);                                       \
  template void avg_pool2d_backward<T>(const T*, T*, const PoolGeometry&, bool);                              \
  template void adaptive_avg_pool2d<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);            \
  template void adaptive_avg_pool2d_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);   \
  template void lstm_gates<T>(const T*, const T*, T*, T*, T*, int64_t, int64_t, bool);                        \
  template void lstm_gates_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t, bool); \
  template void dynamic_affine_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, \
                                          int64_t);                                                          \
  template void dynamic_affine_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t, \
                                           int64_t, int64_t);                                                \
  template void grad_norm_accumulate<T>(const T*, int64_t, double, bool, double*);                            \
  template void clip_grad_scale<T>(T*, int64_t, const double*, double);

// Everything, in namespace tv::cuda.
#define TINYVID_CUDA_INSTANCES()                                                                             \
  namespace tv::cuda {                                                                                       \
  TINYVID_CUDA_FLOATING_INSTANCES(float)                                                                     \
  TINYVID_CUDA_FLOATING_INSTANCES(double)                                                                    \
  TINYVID_CUDA_ANY_TYPE_INSTANCES(int64_t)                                                                   \
  /* what Tensor<int64_t>'s own members reach: gradient accumulation, add_, mul_, sum */                      \
  TINYVID_CUDA_MAP2_INSTANCE(int64_t, ::tv::fn::Add)                                                         \
  TINYVID_CUDA_MAP2_INSTANCE(int64_t, ::tv::fn::AddScaled<int64_t>)                                          \
  TINYVID_CUDA_MAP1_INSTANCE(int64_t, ::tv::fn::MulScalar<int64_t>)                                          \
  template void sum<int64_t>(const int64_t*, const Shape&, const Shape&, const std::vector<bool>&, int64_t*, double); \
  }
