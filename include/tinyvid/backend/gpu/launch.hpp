#pragma once
// How the CUDA backend's kernels are written. A kernel is a struct whose call operator is the body of one GPU
// thread, a function of its position in the grid:
//
//   struct Scale { float* x; float s; int64_t n;
//     TV_HOST_DEVICE void operator()(Thread t) const {
//       for (int64_t i = t.global(); i < n; i += t.stride()) x[i] *= s;   // a grid-stride loop
//     } };
//   launch_n("scale", n, Scale{x, s, n});
//
// launch() is defined by whoever compiles the kernels: the CUDA library starts the grid on the GPU
// (src/cuda/launch.cuh), the tests walk every block and thread of the same grid on the host
// (tests/cuda_sim.cpp), so the index arithmetic, the bounds and the broadcasting of every kernel are
// checked on machines without a GPU. That is why no kernel here synchronises the threads of a block (no
// shared memory, no __syncthreads): a result that needs other threads' work comes from a second launch.
#include <array>
#include <cstdint>

#include "tinyvid/backend/host_device.hpp"
#include "tinyvid/backend/strided.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/shape.hpp"

namespace tv::cuda {

// One thread's place in a one-dimensional grid.
struct Thread {
  int64_t block, thread, blocks, threads;
  TV_HOST_DEVICE int64_t global() const { return block * threads + thread; }
  TV_HOST_DEVICE int64_t stride() const { return blocks * threads; }  // every thread of the grid
};

struct Launch {
  int64_t blocks = 0, threads = 0;
};

inline constexpr int64_t kThreads = 256;    // per block
inline constexpr int64_t kMaxBlocks = 4096;  // 16 blocks of 256 threads per SM of an H200 and more; the rest
                                             // of the work is taken by the grid-stride loops

// A grid for n independent pieces of work, one thread each while the grid is small.
inline Launch grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return {blocks < kMaxBlocks ? blocks : kMaxBlocks, kThreads};
}

// Runs kernel k on grid l; `name` names the kernel in an error. Defined where the kernels are compiled.
template <class K>
void launch(const char* name, Launch l, const K& k);

// Runs k on a grid sized for n pieces of work; nothing when n is 0.
template <class K>
void launch_n(const char* name, int64_t n, const K& k) {
  if (n > 0) launch(name, grid_for(n), k);
}

inline constexpr int kMaxDims = 12;

// The offsets of element i (in row-major order of a shape) in K strided operands, on the device: the shape
// and strides travel by value in the kernel's arguments. Dims contiguous in every operand are merged first.
template <int K>
struct Indexer {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[K][kMaxDims] = {};

  // i < numel. The outermost dim takes what is left of i without a division (64-bit division is slow on a
  // GPU), so a merged, contiguous operand costs none.
  TV_HOST_DEVICE void offsets(int64_t i, int64_t (&off)[K]) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 1; --d) {
      const int64_t q = i / size[d], r = i - q * size[d];
      i = q;
      for (int k = 0; k < K; ++k) off[k] += r * stride[k][d];
    }
    if (ndim > 0)
      for (int k = 0; k < K; ++k) off[k] += i * stride[k][0];
  }
};

template <int K>
Indexer<K> make_indexer(Shape shape, std::array<Shape, K> strides, const char* op) {
  coalesce<K>(shape, strides);
  TV_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), op, ": the CUDA backend takes at most ", kMaxDims,
           " dims after merging contiguous ones, got ", shape.size());
  Indexer<K> ix;
  ix.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < ix.ndim; ++d) {
    ix.size[d] = shape[d];
    for (int k = 0; k < K; ++k) ix.stride[k][d] = strides[k][d];
  }
  return ix;
}

}  // namespace tv::cuda
