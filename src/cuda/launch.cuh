#pragma once
// launch() on a GPU: the kernel struct of backend/gpu/ is passed by value to a __global__ function that gives
// it its thread's place, on the backend's stream (runtime.cu).
#include <cuda_runtime.h>

#include "tinyvid/backend/gpu/launch.hpp"

namespace tv::cuda {

// The backend's stream, on the backend's GPU; a thread's first call makes that GPU its current device.
cudaStream_t stream();
// The GPU the backend uses (runtime.cu's device_allocator chooses it): cudaSetDevice's index.
int device();
// Throws a tv::Error naming `what` when err is not cudaSuccess.
void check(cudaError_t err, const char* what);
// TINYVID_CUDA_SYNC=1: wait for every kernel as it is launched, so a fault names its kernel (slow; debugging).
bool sync_each_launch();

// __grid_constant__: the kernel reads its struct from the parameter space, never a per-thread copy.
template <class K>
__global__ void run_kernel(const __grid_constant__ K k) {
  k(Thread{static_cast<int64_t>(blockIdx.x), static_cast<int64_t>(threadIdx.x), static_cast<int64_t>(gridDim.x),
           static_cast<int64_t>(blockDim.x)});
}

template <class K>
void launch(const char* name, Launch l, const K& k) {
  run_kernel<K><<<static_cast<unsigned>(l.blocks), static_cast<unsigned>(l.threads), 0, stream()>>>(k);
  check(cudaGetLastError(), name);  // a bad launch; a fault inside the kernel shows at the next synchronisation
  if (sync_each_launch()) check(cudaStreamSynchronize(stream()), name);
}

}  // namespace tv::cuda
