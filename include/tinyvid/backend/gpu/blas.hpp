#pragma once
// The CUDA backend's matrix products: the one call the kernels make that is not a kernel of their own.
// On a GPU it is cuBLAS (src/cuda/runtime.cu); in the tests a plain loop on the host (tests/cuda_sim.cpp).
#include <cstdint>

namespace tv::cuda {

// For b in [0, batch): C_b = alpha * op(A_b) * op(B_b) + beta * C_b, with row-major matrices: op(A_b) is M x K,
// op(B_b) is K x N, C_b is M x N; X_b starts at X + b * stride_x and row r of X_b at X_b + r * ldx;
// op(X) is X transposed when trans_x. T is float or double.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
          int64_t batch);

}  // namespace tv::cuda
