#pragma once
// launch() on a GPU: the kernel struct of backend/gpu/ is passed by value to a __global__ function that gives
// it its thread's place, on the backend's stream (runtime.cu).
#include <cuda_runtime.h>

#include "tinyvid/backend/gpu/launch.hpp"

namespace tv::cuda {

cudaStream_t stream();
// Throws a tv::Error naming `what` when err is not cudaSuccess.
void check(cudaError_t err, const char* what);

template <class K>
__global__ void run_kernel(K k) {
  k(Thread{static_cast<int64_t>(blockIdx.x), static_cast<int64_t>(threadIdx.x), static_cast<int64_t>(gridDim.x),
           static_cast<int64_t>(blockDim.x)});
}

template <class K>
void launch(const char* name, Launch l, const K& k) {
  run_kernel<K><<<static_cast<unsigned>(l.blocks), static_cast<unsigned>(l.threads), 0, stream()>>>(k);
  check(cudaGetLastError(), name);
}

}  // namespace tv::cuda
