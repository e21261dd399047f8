#pragma once
// One thread count for everything tinyvid runs: its own OpenMP loops, Eigen's GEMM and OpenBLAS.
// parallel_for never nests: inside a parallel region it runs serially on the calling thread.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include <Eigen/Core>

#include "tinyvid/core/cpu_isa.hpp"
#include "tinyvid/core/error.hpp"

#ifdef TINYVID_WITH_OPENBLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace tv {

namespace detail {
inline std::atomic<int>& thread_count() {
  static std::atomic<int> n{std::max(1, omp_get_max_threads())};
  return n;
}
}  // namespace detail

inline int get_num_threads() { return detail::thread_count().load(); }

inline void set_num_threads(int n) {
  TV_CHECK(n >= 1, "set_num_threads: expected at least 1 thread, got ", n);
  detail::thread_count() = n;
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
#ifdef TINYVID_WITH_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

// Elements below which a loop is not worth splitting across threads.
constexpr int64_t kParallelGrain = 32768;

// Calls f(chunk_begin, chunk_end) over [begin, end) split in contiguous chunks, one per thread.
// f must not throw: exceptions cannot cross an OpenMP region.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  int64_t n = end - begin;
  if (n <= 0) return;
  int threads = get_num_threads();
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = (n + grain - 1) / grain;
  int nt = static_cast<int>(std::min<int64_t>(threads, max_chunks));
  if (nt <= 1 || omp_in_parallel()) {
    f(begin, end);
    return;
  }
  cpu::active_isa();  // reads TINYVID_ISA here, where its error can be thrown (the kernels inside read it too)
#pragma omp parallel num_threads(nt)
  {
    // The team may be smaller than asked for (OMP_DYNAMIC, thread limits): chunk by its real size.
    const int team = omp_get_num_threads();
    int t = omp_get_thread_num();
    int64_t chunk = (n + team - 1) / team;
    int64_t b = begin + t * chunk;
    int64_t e = std::min(end, b + chunk);
    if (b < e) f(b, e);
  }
}

}  // namespace tv
