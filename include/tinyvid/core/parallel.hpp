#pragma once
// One thread count for everything tinyvid runs: its own OpenMP loops, Eigen's GEMM and OpenBLAS.
// parallel_for never nests: inside a parallel region it runs serially on the calling thread.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

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

// Runs a scope on n threads (tests, benchmarks), restoring the previous count at its end, also when the scope throws.
class ScopedNumThreads {
 public:
  explicit ScopedNumThreads(int n) : previous_(get_num_threads()) { set_num_threads(n); }
  ~ScopedNumThreads() { set_num_threads(previous_); }
  ScopedNumThreads(const ScopedNumThreads&) = delete;
  ScopedNumThreads& operator=(const ScopedNumThreads&) = delete;

 private:
  int previous_;
};

// Elements below which a loop is not worth splitting across threads.
constexpr int64_t kParallelGrain = 32768;

namespace detail {
// The threads for a loop of n items in chunks of at least `grain`, 1 where it runs on the calling thread alone.
inline int loop_threads(int64_t n, int64_t grain) {
  if (omp_in_parallel()) return 1;
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int nt = static_cast<int>(std::min<int64_t>(get_num_threads(), max_chunks));
  if (nt > 1) cpu::active_isa();  // reads TINYVID_ISA here, where its error can be thrown (the kernels inside read it too)
  return nt;
}

// How many of a share's `left` grains not yet taken a thread takes: from the front of its own share, half rounded down
// to whole batches (at least one) until two batches are left, then half; from the back of another's, half, the last
// grain too.
inline uint64_t grains_to_take(uint64_t left, uint64_t batch, bool own) {
  const uint64_t half = (left + 1) / 2;
  return own && left > 2 * batch ? std::max(batch, half / batch * batch) : half;
}
}  // namespace detail

// Calls f(chunk_begin, chunk_end) over [begin, end) split in contiguous chunks, one per thread, each called once:
// for loops that keep sums of their own per thread (indexed by omp_get_thread_num()), whose shares must be the same
// from run to run so that the sums are. Every other loop is parallel_for's.
// f must not throw: exceptions cannot cross an OpenMP region.
template <class F>
void parallel_for_static(int64_t begin, int64_t end, int64_t grain, F&& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int nt = detail::loop_threads(n, std::max<int64_t>(grain, 1));
  if (nt <= 1) {
    f(begin, end);
    return;
  }
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

// Calls f(piece_begin, piece_end) over [begin, end) on up to get_num_threads() threads, so that they finish together
// although their cores run at different speeds (a virtual machine's cores are shared with other guests: on one, a
// thread pinned to each core ran a GEMM kernel at 191 and 203 GFLOP/s, on another the FMA peak at 207 and 230, and
// with equal shares the faster one waited). Each thread owns an equal share and runs it from the front, about half
// of what is left at a time; a thread done with its own takes half of what is left of another's from the back. A
// thread so keeps the items it ran in the loop before (a batch's images stay in its core's cache from layer to
// layer: claimed in any order, the model's forward ran 4% slower). Pieces are whole multiples of `grain` items from
// their share's start (and no thread is started for less than a grain), an owner's pieces whole multiples of `batch`
// grains (a GEMM's chunk of column panels, which reuses a slice of the weights) until two batches are left, then halves.
// The owner's halves are rounded down to batches, and a thread done first takes half of another's rest, its last
// grain too: with halves rounded up and the last grain kept for its owner, a slower core's share ended in a large
// claim or a grain that the other thread waited out (docs/cpu_kernels.md, "Shares' ends"). f may be called
// several times on one thread, with pieces that differ from run to run: no result may depend on which thread runs
// which items (a loop that keeps sums per thread is parallel_for_static's). f must not throw: exceptions cannot cross
// an OpenMP region.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, int64_t batch, F&& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const uint64_t owner_batch = static_cast<uint64_t>(std::max<int64_t>(batch, 1));
  const int nt = detail::loop_threads(n, grain);
  if (nt <= 1) {
    f(begin, end);
    return;
  }
  // Grains [front, back) of thread t's share not taken yet, counted from the share's first item (packed front << 32 |
  // back, changed by one compare-and-swap). The shares: `per` items each, from `begin`.
  struct alignas(64) Share {
    std::atomic<uint64_t> range;
  };
  TV_CHECK(n / grain < (int64_t{1} << 31), "parallel_for: ", n / grain, " pieces are more than it counts");
  std::vector<Share> shares(static_cast<size_t>(nt));
  auto pack = [](uint64_t front, uint64_t back) { return front << 32 | back; };
  // Takes from share o (shares of `per` items) the front (own) or the back (another's) of what is left; false when
  // nothing is left to take.
  auto take = [&](int o, int64_t per, bool own) {
    std::atomic<uint64_t>& range = shares[o].range;
    const int64_t first = std::min(end, begin + o * per), last = std::min(end, first + per);
    uint64_t cur = range.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t front = cur >> 32, back = cur & 0xFFFFFFFFu, left = back > front ? back - front : 0;
      const uint64_t count = detail::grains_to_take(left, owner_batch, own);
      if (count == 0) return false;
      const uint64_t u0 = own ? front : back - count;
      if (range.compare_exchange_weak(cur, own ? pack(front + count, back) : pack(front, back - count), std::memory_order_relaxed)) {
        f(first + static_cast<int64_t>(u0) * grain, std::min(last, first + static_cast<int64_t>(u0 + count) * grain));
        return true;
      }
    }
  };
#pragma omp parallel num_threads(nt)
  {
    // The team may be smaller than asked for (OMP_DYNAMIC, thread limits): shares by its real size.
    const int team = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t per = (n + team - 1) / team;
    const int64_t first = std::min(end, begin + t * per), last = std::min(end, first + per);
    shares[t].range.store(pack(0, static_cast<uint64_t>((last - first + grain - 1) / grain)), std::memory_order_relaxed);
#pragma omp barrier
    while (take(t, per, true)) {
    }
    for (bool took = true; took;) {  // then the others', the one with the most left first
      int most = -1;
      uint64_t most_left = 0;
      for (int o = 0; o < team; ++o) {
        const uint64_t r = shares[o].range.load(std::memory_order_relaxed), front = r >> 32, back = r & 0xFFFFFFFFu;
        if (o != t && back > front && back - front > most_left) most = o, most_left = back - front;
      }
      // (a take that lost the race for that share's last grains looks again: another share may have some left)
      took = most >= 0;
      if (took) take(most, per, false);
    }
  }
}

// The same, one grain per batch.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  parallel_for(begin, end, grain, 1, std::forward<F>(f));
}

}  // namespace tv
