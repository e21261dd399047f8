#pragma once
// TV_HOST_DEVICE marks a function compiled for the host and, under nvcc, for the GPU as well: the elementwise
// functors (functors.hpp) and the bodies of the CUDA kernels (gpu/), which the tests also run on the host.
#if defined(__CUDACC__)
#define TV_HOST_DEVICE __host__ __device__
#else
#define TV_HOST_DEVICE
#endif
