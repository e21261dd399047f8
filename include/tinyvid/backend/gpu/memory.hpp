#pragma once
// How the CUDA backend caches device memory (src/cuda/runtime.cu; the tests' host stand-in uses the same):
// every block is kept for reuse, since cudaMalloc and cudaFree synchronise the device; sizes are multiples
// of 512 bytes, and from 1 MB on of 64 KB, so a training step's repeated sizes find their blocks; nothing is
// given back until tv::empty_cache() or an allocation that fails (then the cache is emptied and it is tried again).
#include <cstddef>

#include "tinyvid/core/device.hpp"

namespace tv::cuda {

inline constexpr ::tv::detail::CachingAllocator::Policy kCudaCachePolicy{
    512, 0, size_t{1} << 20, size_t{1} << 16, ~size_t{0}};

}  // namespace tv::cuda
