#pragma once
// The CUDA backend as the rest of the library sees it: declarations only. A build with TINYVID_WITH_CUDA
// (CMake's TINYVID_CUDA) links tinyvid::cuda, which defines every function here (src/cuda/, compiled by nvcc
// from the kernels in backend/gpu/); TV_DISPATCH calls them for tensors on Device::CUDA. Each kernel has
// the signature of its CPU twin in backend/cpu/, on device pointers; the templates are compiled for the
// element types and functors listed in backend/gpu/instances.hpp.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tinyvid/backend/conv_geometry.hpp"
#include "tinyvid/backend/pool_geometry.hpp"
#include "tinyvid/core/device.hpp"
#include "tinyvid/core/shape.hpp"

namespace tv::cuda {

// ---- the device (src/cuda/runtime.cu) ----
// Copies `bytes` between any two devices (one of them CUDA): on the backend's stream; a copy to the host
// waits for it, so the host sees the values.
void copy_across(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Waits until every kernel and copy queued so far has finished.
void synchronize();

// ---- elementwise (gpu/elementwise.hpp) ----
template <class T, class U, class F>
void map1(const Shape& shape, U* out, const Shape& out_strides, const T* in, const Shape& in_strides, F f);
template <class T, class U, class F>
void map2(const Shape& shape, U* out, const Shape& out_strides, const T* a, const Shape& a_strides, const T* b,
          const Shape& b_strides, F f);
template <class T>
void copy(const Shape& shape, T* dst, const Shape& dst_strides, const T* src, const Shape& src_strides);
template <class T>
void fill(const Shape& shape, T* dst, const Shape& dst_strides, T value);
template <class T>
void iota(T* out, int64_t n, T start, T step);
template <class T>
void dropout_mask(T* mask, int64_t n, double p, T keep_scale, uint64_t key);

// ---- reductions (gpu/reduce.hpp) ----
template <class T>
void sum(const T* in, const Shape& shape, const Shape& strides, const std::vector<bool>& reduce, T* out, double scale);
template <class T>
void max_along(const T* in, const Shape& shape, const Shape& strides, int64_t dim, T* values, int64_t* indices);
// A host read: index and value land in host memory.
template <class T>
void first_non_finite(const T* p, int64_t n, int64_t* index, T* value);

// ---- softmax (gpu/softmax.hpp) ----
template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n);
template <class T>
void log_softmax_rows(const T* x, T* y, int64_t rows, int64_t n);
template <class T>
void softmax_backward_rows(const T* y, const T* g, T* gx, int64_t rows, int64_t n);
template <class T>
void log_softmax_backward_rows(const T* y, const T* g, T* gx, int64_t rows, int64_t n);

// ---- indexing and losses (gpu/index.hpp); count, first_bad, position, value and hits are host memory ----
template <class T>
void gather(const T* in, const Shape& in_strides, int64_t dim, const int64_t* index, const Shape& index_shape,
            const Shape& index_strides, T* out);
template <class T>
void scatter_add(T* grad_in, const Shape& grad_in_shape, int64_t dim, const int64_t* index, const Shape& index_shape,
                 const Shape& index_strides, const T* grad_out, const Shape& grad_out_strides);
void count_out_of_range(const int64_t* index, const Shape& index_shape, const Shape& index_strides, int64_t n,
                        int64_t* count, int64_t* first_bad);
void find_out_of_range(const int64_t* index, int64_t n, int64_t stride, int64_t bound, int64_t* position,
                       int64_t* value);
template <class T>
void topk_hits(const T* logits, int64_t N, int64_t C, const int64_t* target, int64_t target_stride, int64_t k,
               int64_t* hits);

// ---- matrix products and convolution (gpu/conv.hpp) ----
template <class T>
void batched_gemm(const Shape& batch, const T* a, const Shape& a_batch_strides, int64_t a_rs, int64_t a_cs, const T* b,
                  const Shape& b_batch_strides, int64_t b_rs, int64_t b_cs, T* c, int64_t M, int64_t K, int64_t N);
template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <class T>
void conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx);
template <class T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw);
template <class T>
void conv2d_backward_bias(const ConvGeometry& g, const T* gy, T* gb);

// ---- batch norm (gpu/batch_norm.hpp) ----
template <class T>
void batch_norm_stats(const T* x, const Shape& shape, const Shape& strides, int64_t channel_dim, int64_t group_rows,
                      double* mean, double* var);
template <class T>
void batch_norm_running_stats(const T* running_mean, int64_t rm_stride, const T* running_var, int64_t rv_stride,
                              int64_t C, double* mean, double* var);
template <class T>
void batch_norm_update_running(const double* mean, const double* var, int64_t C, int64_t batch, int64_t group_rows,
                               int64_t per_row, double momentum, T* running_mean, int64_t rm_stride, T* running_var,
                               int64_t rv_stride, T* num_batches_tracked);
template <class T>
void batch_norm_coefficients(const double* mean, const double* var, int64_t G, int64_t C, const T* weight,
                             int64_t w_stride, const T* bias, int64_t b_stride, double eps, double* invstd, T* scale,
                             T* shift);
template <class T>
void batch_norm_apply(T* y, const Shape& y_strides, const T* x, const Shape& shape, const Shape& x_strides,
                      int64_t channel_dim, int64_t group_rows, const T* scale, const T* shift, const T* residual,
                      const Shape& r_strides, bool relu);
template <class T>
void batch_norm_backward(const T* gy, const Shape& gy_strides, const T* x, const Shape& shape, const Shape& x_strides,
                         int64_t channel_dim, int64_t group_rows, int64_t per_row, const double* mean,
                         const double* invstd, const T* weight, int64_t w_stride, bool use_batch_stats, T* gx,
                         const Shape& gx_strides, T* gw, T* gb, const T* relu_scale, const T* relu_shift,
                         const T* relu_out, const Shape& ro_strides, T* g_out, const Shape& go_strides);

// ---- pools (gpu/pool.hpp) ----
template <class T>
void max_pool2d(const T* x, T* y, int64_t* argmax, const PoolGeometry& geometry);
template <class T>
void max_pool2d_backward(const T* gy, const int64_t* argmax, T* gx, const PoolGeometry& geometry);
template <class T>
void avg_pool2d(const T* x, T* y, const PoolGeometry& geometry, bool count_include_pad);
template <class T>
void avg_pool2d_backward(const T* gy, T* gx, const PoolGeometry& geometry, bool count_include_pad);
template <class T>
void adaptive_avg_pool2d(const T* x, T* y, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW);
template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW);

// ---- recurrent and DNR (gpu/lstm.hpp, gpu/dnr.hpp) ----
template <class T>
void lstm_gates(const T* z_all, const T* c_all, T* out, T* activated, T* act_c, int64_t N, int64_t H, bool sigmoid_cell);
template <class T>
void lstm_gates_backward(const T* grad, const T* activated, const T* act_c, const T* c_in, T* d_gates, T* d_c, int64_t N,
                         int64_t H, bool sigmoid_cell);
template <class T>
void dynamic_affine_forward(const T* z, const T* scale, const T* shift, T* out, int64_t N, int64_t Tn, int64_t C,
                            int64_t G, int64_t inner);
template <class T>
void dynamic_affine_backward(const T* g, const T* z, const T* scale, T* gz, T* gscale, T* gshift, int64_t N, int64_t Tn,
                             int64_t C, int64_t G, int64_t inner);

// ---- optimizers (gpu/optim.hpp) ----
void sgd_step(float* p, const float* grad, float* buf, int64_t n, float lr, float momentum, float dampening_keep,
              float weight_decay, bool decay, bool use_momentum, bool nesterov, bool first_step);
template <class T>
void grad_norm_accumulate(const T* x, int64_t n, double p, bool first, double* acc);
void grad_norm_finish(double* acc, double p);
template <class T>
void clip_grad_scale(T* x, int64_t n, const double* total, double max_norm);

}  // namespace tv::cuda
