#pragma once
// The CUDA backend's matrix products and 2-D convolution (declared in backend/cuda.hpp). Every product is
// one strided-batched gemm() (gpu/blas.hpp, cuBLAS on a GPU); the kernels here only move data around it:
// - batched_gemm hands each operand to gemm where it lies when it has unit stride along one of its dims and
//   its batch dims fold into one stride, and otherwise makes a contiguous copy first;
// - conv2d unrolls the input into columns (im2col, one thread per column element) for a chunk of images at
//   a time, so the scratch stays bounded, and multiplies each image-group by its weights; a 1x1 stride-1
//   unpadded conv multiplies the input as it lies. The input gradient goes back from the columns by a
//   gather (each input pixel sums the column entries it was copied to), the weight gradient sums the
//   images' products in gemm's C (beta 1), the bias gradient is a sum over all but the channels.
// Where the library has cuDNN (gpu/dnn.hpp), its convolutions take the three products instead; the tests'
// host stand-in has none, so this file's own path is the one they check.
#include <climits>
#include <optional>

#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/gpu/blas.hpp"
#include "tinyvid/backend/gpu/dnn.hpp"
#include "tinyvid/backend/gpu/elementwise.hpp"
#include "tinyvid/backend/gpu/launch.hpp"
#include "tinyvid/backend/gpu/reduce.hpp"
#include "tinyvid/core/storage.hpp"

namespace tv::cuda {

namespace detail {

// The stride s with offset(i) = i * s for every row-major index i of `batch`, when there is one (dims of
// size 1 do not count; a batch broadcast along every dim has s = 0).
inline bool single_batch_stride(const Shape& batch, const Shape& strides, int64_t& s) {
  s = 0;
  int64_t span = 1;
  bool first = true;
  for (size_t d = batch.size(); d-- > 0;) {
    if (batch[d] == 1) continue;
    if (first) s = strides[d], first = false;
    else if (strides[d] != s * span) return false;
    span *= batch[d];
  }
  return true;
}

// How gemm reads a rows x cols matrix with element (i, j) at i * rs + j * cs: row-major with leading
// dimension ld (trans false), or the row-major cols x rows transpose (trans true). False when it can read it
// neither way (no unit stride, overlapping rows or columns, or a leading dimension past cuBLAS's int). The
// leading dimension always covers the stored row, as cuBLAS checks even when the other dim is 1.
inline bool blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool& trans, int64_t& ld) {
  if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= cols)) {
    trans = false;
    ld = rows <= 1 ? (cols > 1 ? cols : 1) : rs;
  } else if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= rows)) {
    trans = true;
    ld = cols <= 1 ? (rows > 1 ? rows : 1) : cs;
  } else {
    return false;
  }
  return ld <= INT_MAX;
}

// One operand of batched_gemm ready for gemm: the pointer, transpose, leading dimension and batch stride,
// through a contiguous copy in `copy` when it cannot go as it lies. A matrix the batch broadcasts is copied
// once (batch stride 0).
template <class T>
const T* blas_operand(const Shape& batch, const T* p, const Shape& batch_strides, int64_t rows, int64_t cols,
                      int64_t rs, int64_t cs, std::optional<Storage<T>>& copy, bool& trans, int64_t& ld,
                      int64_t& stride) {
  const bool merged = single_batch_stride(batch, batch_strides, stride);
  if (merged && blas_layout(rows, cols, rs, cs, trans, ld)) return p;
  const bool once = merged && stride == 0;
  Shape shape = once ? Shape{} : batch, src = once ? Shape{} : batch_strides;
  shape.push_back(rows), shape.push_back(cols);
  src.push_back(rs), src.push_back(cs);
  copy.emplace(numel_of(shape), Device::CUDA);
  cuda::copy(shape, copy->data(), contiguous_strides(shape), p, src);
  trans = false;
  ld = cols;
  stride = once ? 0 : rows * cols;
  return copy->data();
}

// C_sq = op(A_sq) op(B_sq) + beta C_sq for every image s < S and group q < G, X_sq = X + s * x_s + q * x_q:
// one batched gemm per group over the images, or per image over the groups, whichever makes fewer calls.
template <class T>
void gemm_grid(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, int64_t a_s, int64_t a_q,
               const T* B, int64_t ldb, int64_t b_s, int64_t b_q, T beta, T* C, int64_t ldc, int64_t c_s, int64_t c_q,
               int64_t S, int64_t G) {
  if (G <= S) {
    for (int64_t q = 0; q < G; ++q)
      gemm<T>(ta, tb, M, N, K, T(1), A + q * a_q, lda, a_s, B + q * b_q, ldb, b_s, beta, C + q * c_q, ldc, c_s, S);
  } else {
    for (int64_t s = 0; s < S; ++s)
      gemm<T>(ta, tb, M, N, K, T(1), A + s * a_s, lda, a_q, B + s * b_s, ldb, b_q, beta, C + s * c_s, ldc, c_q, G);
  }
}

// Elements of unrolled input (columns) held at once, 128 MB in float: the images are unrolled a chunk at a
// time, as many as this holds (one at least, however large).
inline constexpr int64_t kColumnBudget = int64_t{1} << 25;

inline bool is_pointwise(const ConvGeometry& g) {
  return g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

// Rows of one image's columns: C * KH * KW, group q's K() rows from q * K() on (row (c * KH + ki) * KW + kj).
inline int64_t column_rows(const ConvGeometry& g) { return g.C * g.KH * g.KW; }

// Images per chunk: as many as the column budget holds, at least one.
inline int64_t images_per_chunk(const ConvGeometry& g) {
  const int64_t per_image = column_rows(g) * g.OHW();
  const int64_t n = per_image > 0 ? kColumnBudget / per_image : g.N;
  return n < 1 ? 1 : (n < g.N ? n : g.N);
}

}  // namespace detail

// c[i] = a[i] * b[i] over the batch; c contiguous (M x N matrices one after another).
template <class T>
void batched_gemm(const Shape& batch, const T* a, const Shape& a_batch_strides, int64_t a_rs, int64_t a_cs, const T* b,
                  const Shape& b_batch_strides, int64_t b_rs, int64_t b_cs, T* c, int64_t M, int64_t K, int64_t N) {
  const int64_t nb = numel_of(batch);
  if (nb == 0 || M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum; cuBLAS would also reject the leading dimensions of empty operands
    const Shape all{nb * M * N};
    fill(all, c, contiguous_strides(all), T(0));
    return;
  }
  std::optional<Storage<T>> a_copy, b_copy;
  bool ta = false, tb = false;
  int64_t lda = 0, ldb = 0, sa = 0, sb = 0;
  const T* ap = detail::blas_operand(batch, a, a_batch_strides, M, K, a_rs, a_cs, a_copy, ta, lda, sa);
  const T* bp = detail::blas_operand(batch, b, b_batch_strides, K, N, b_rs, b_cs, b_copy, tb, ldb, sb);
  gemm<T>(ta, tb, M, N, K, T(1), ap, lda, sa, bp, ldb, sb, T(0), c, N, M * N, nb);
}

// cols (images x column_rows x OHW) = the unrolled input of `images` images from x; zero where a tap falls in
// the padding.
template <class T>
struct Im2colKernel {
  const T* x;
  T* cols;
  ConvGeometry g;
  int64_t n;  // elements of cols
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t ohw = g.OH * g.OW, rows = g.C * g.KH * g.KW;
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      const int64_t p = i % ohw, q = i / ohw, r = q % rows, img = q / rows;
      const int64_t kj = r % g.KW, ki = (r / g.KW) % g.KH, c = r / (g.KW * g.KH);
      const int64_t iy = (p / g.OW) * g.sh - g.ph + ki * g.dh, ix = (p % g.OW) * g.sw - g.pw + kj * g.dw;
      const bool inside = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
      cols[i] = inside ? x[((img * g.C + c) * g.H + iy) * g.W + ix] : T(0);
    }
  }
};

// gx (images x C x H x W) = im2col's adjoint of cols: each input pixel sums, in tap order, the column
// entries that were copied from it.
template <class T>
struct Col2imKernel {
  const T* cols;
  T* gx;
  ConvGeometry g;
  int64_t n;  // elements of gx
  TV_HOST_DEVICE void operator()(Thread t) const {
    const int64_t ohw = g.OH * g.OW;
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      const int64_t ix = i % g.W, q = i / g.W, iy = q % g.H, nc = q / g.H;  // nc = img * C + c
      const T* src = cols + nc * g.KH * g.KW * ohw;  // channel c's first row in image img's columns
      T acc = T(0);
      for (int64_t ki = 0; ki < g.KH; ++ki) {
        const int64_t yy = iy + g.ph - ki * g.dh;  // = oy * sh for the output row that reads iy at tap ki
        if (yy < 0 || yy % g.sh != 0 || yy / g.sh >= g.OH) continue;
        for (int64_t kj = 0; kj < g.KW; ++kj) {
          const int64_t xx = ix + g.pw - kj * g.dw;
          if (xx < 0 || xx % g.sw != 0 || xx / g.sw >= g.OW) continue;
          acc += src[(ki * g.KW + kj) * ohw + (yy / g.sh) * g.OW + xx / g.sw];
        }
      }
      gx[i] = acc;
    }
  }
};

// y (N x Cout x OHW) = (overwrite ? 0 : y) + bias per channel (bias may be null).
template <class T>
struct AddBiasKernel {
  T* y;
  const T* bias;
  int64_t n, ohw, cout;
  bool overwrite;
  TV_HOST_DEVICE void operator()(Thread t) const {
    for (int64_t i = t.global(); i < n; i += t.stride()) {
      const T b = bias ? bias[(i / ohw) % cout] : T(0);
      y[i] = overwrite ? b : y[i] + b;
    }
  }
};

template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t ny = g.N * g.Cout * g.OHW();
  if (ny == 0) return;
  if (g.K() == 0) {  // no input channels or taps: y is the bias
    launch_n("conv2d", ny, AddBiasKernel<T>{y, bias, ny, g.OHW(), g.Cout, true});
    return;
  }
  const int64_t Cog = g.Cog(), K = g.K(), OHW = g.OHW(), G = g.groups;
  if (dnn_conv2d_forward(g, x, w, y)) {
    // cuDNN did the product
  } else if (detail::is_pointwise(g)) {  // the input is the columns
    detail::gemm_grid<T>(false, false, Cog, OHW, K, w, K, 0, Cog * K, x, g.HW(), g.C * g.HW(), K * g.HW(), T(0), y, OHW,
                         g.Cout * OHW, Cog * OHW, g.N, G);
  } else {
    const int64_t rows = detail::column_rows(g), chunk = detail::images_per_chunk(g);
    Storage<T> cols(chunk * rows * OHW, Device::CUDA);
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      const int64_t images = chunk < g.N - n0 ? chunk : g.N - n0, n = images * rows * OHW;
      launch_n("conv2d im2col", n, Im2colKernel<T>{x + n0 * g.C * g.HW(), cols.data(), g, n});
      detail::gemm_grid<T>(false, false, Cog, OHW, K, w, K, 0, Cog * K, cols.data(), OHW, rows * OHW, K * OHW, T(0),
                           y + n0 * g.Cout * OHW, OHW, g.Cout * OHW, Cog * OHW, images, G);
    }
  }
  if (bias) launch_n("conv2d bias", ny, AddBiasKernel<T>{y, bias, ny, OHW, g.Cout, false});
}

template <class T>
void conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  const int64_t nx = g.N * g.C * g.HW();
  if (nx == 0) return;
  if (g.Cout * g.OHW() == 0 || g.K() == 0) {  // nothing reaches the input
    const Shape all{nx};
    fill(all, gx, contiguous_strides(all), T(0));
    return;
  }
  if (dnn_conv2d_backward_input(g, gy, w, gx)) return;
  const int64_t Cog = g.Cog(), K = g.K(), OHW = g.OHW(), G = g.groups;
  // The columns' gradient per image and group: W^T (K x Cog, w read transposed) times gy (Cog x OHW).
  if (detail::is_pointwise(g)) {  // the columns are the input's gradient
    detail::gemm_grid<T>(true, false, K, OHW, Cog, w, K, 0, Cog * K, gy, OHW, g.Cout * OHW, Cog * OHW, T(0), gx, g.HW(),
                         g.C * g.HW(), K * g.HW(), g.N, G);
    return;
  }
  const int64_t rows = detail::column_rows(g), chunk = detail::images_per_chunk(g);
  Storage<T> cols(chunk * rows * OHW, Device::CUDA);
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t images = chunk < g.N - n0 ? chunk : g.N - n0, n = images * g.C * g.HW();
    detail::gemm_grid<T>(true, false, K, OHW, Cog, w, K, 0, Cog * K, gy + n0 * g.Cout * OHW, OHW, g.Cout * OHW,
                         Cog * OHW, T(0), cols.data(), OHW, rows * OHW, K * OHW, images, G);
    launch_n("conv2d col2im", n, Col2imKernel<T>{cols.data(), gx + n0 * g.C * g.HW(), g, n});
  }
}

template <class T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  const int64_t nw = g.Cout * g.K();
  if (nw == 0) return;
  if (g.N * g.OHW() == 0) {
    const Shape all{nw};
    fill(all, gw, contiguous_strides(all), T(0));
    return;
  }
  if (dnn_conv2d_backward_weight(g, x, gy, gw)) return;
  const int64_t Cog = g.Cog(), K = g.K(), OHW = g.OHW(), G = g.groups;
  // Per image, over the groups: gw_q (Cog x K) += gy_q (Cog x OHW) times cols_q^T; the first image overwrites.
  // The images go one gemm each, in order, since a batch cannot sum into one C.
  if (detail::is_pointwise(g)) {
    for (int64_t n = 0; n < g.N; ++n)
      gemm<T>(false, true, Cog, K, OHW, T(1), gy + n * g.Cout * OHW, OHW, Cog * OHW, x + n * g.C * g.HW(), g.HW(),
              K * g.HW(), n == 0 ? T(0) : T(1), gw, K, Cog * K, G);
    return;
  }
  const int64_t rows = detail::column_rows(g), chunk = detail::images_per_chunk(g);
  Storage<T> cols(chunk * rows * OHW, Device::CUDA);
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t images = chunk < g.N - n0 ? chunk : g.N - n0, n = images * rows * OHW;
    launch_n("conv2d im2col", n, Im2colKernel<T>{x + n0 * g.C * g.HW(), cols.data(), g, n});
    for (int64_t i = 0; i < images; ++i)
      gemm<T>(false, true, Cog, K, OHW, T(1), gy + (n0 + i) * g.Cout * OHW, OHW, Cog * OHW, cols.data() + i * rows * OHW,
              OHW, K * OHW, n0 + i == 0 ? T(0) : T(1), gw, K, Cog * K, G);
  }
}

// gb (Cout) = gy summed over images and pixels, in double.
template <class T>
void conv2d_backward_bias(const ConvGeometry& g, const T* gy, T* gb) {
  const Shape shape{g.N, g.Cout, g.OHW()};
  sum(gy, shape, contiguous_strides(shape), {true, false, true}, gb, 1.0);
}

}  // namespace tv::cuda
