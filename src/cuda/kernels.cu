// Every CUDA kernel of include/tinyvid/backend/gpu/, compiled for the GPU: the instances of
// backend/gpu/instances.hpp, launched on the device (launch.cuh).
#include "launch.cuh"
#include "tinyvid/backend/gpu/instances.hpp"

TINYVID_CUDA_INSTANCES()
