// The machine's measured FMA peak, the yardstick of the conv rows' "% of peak" (compare.py): loops of independent
// fused multiply-adds that only the FMA units' throughput limits, one loop per thread, for each vector ISA the CPU
// has (AVX-512: 24 zmm accumulators; AVX2+FMA: 12 ymm), on 1 thread and on --threads. Two flops per multiply-add,
// as bench_conv counts them. One JSON line per (isa, threads):
//   {"bench":"peak","isa":"avx512","threads":2,"accumulators":24,"seconds":...,"gflops":...,"best_gflops":...}
// gflops is the median of the timed runs (as the other benches report), best_gflops the fastest.
// The kernels are target functions, so this file needs no -march flag; it is built with -O3 (bench/CMakeLists.txt),
// and each accumulator is a named variable, so none of them is kept in memory (objdump -d bench_peak: the loops
// are 24 vfmadd...ps zmm / 12 ymm, a counter and a branch).
// Usage: bench_peak [--threads 2] [--isa all|avx512|avx2] [--seconds 1]
#include <omp.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace {

// acc = acc * a + b for `iters` rounds of independent accumulators; a < 1, so every value stays near
// b / (1 - a) = 1 (no overflow, no subnormals). The sum of the accumulators is returned, so no work is dead.
__attribute__((target("avx512f,fma"), noinline)) float fma_loop_avx512(long iters, float seed) {
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(0.000001f);
  __m512 acc0 = _mm512_set1_ps(seed), acc1 = _mm512_set1_ps(seed + 0.001f), acc2 = _mm512_set1_ps(seed + 0.002f),
         acc3 = _mm512_set1_ps(seed + 0.003f), acc4 = _mm512_set1_ps(seed + 0.004f), acc5 = _mm512_set1_ps(seed + 0.005f),
         acc6 = _mm512_set1_ps(seed + 0.006f), acc7 = _mm512_set1_ps(seed + 0.007f), acc8 = _mm512_set1_ps(seed + 0.008f),
         acc9 = _mm512_set1_ps(seed + 0.009f), acc10 = _mm512_set1_ps(seed + 0.010f), acc11 = _mm512_set1_ps(seed + 0.011f),
         acc12 = _mm512_set1_ps(seed + 0.012f), acc13 = _mm512_set1_ps(seed + 0.013f), acc14 = _mm512_set1_ps(seed + 0.014f),
         acc15 = _mm512_set1_ps(seed + 0.015f), acc16 = _mm512_set1_ps(seed + 0.016f), acc17 = _mm512_set1_ps(seed + 0.017f),
         acc18 = _mm512_set1_ps(seed + 0.018f), acc19 = _mm512_set1_ps(seed + 0.019f), acc20 = _mm512_set1_ps(seed + 0.020f),
         acc21 = _mm512_set1_ps(seed + 0.021f), acc22 = _mm512_set1_ps(seed + 0.022f), acc23 = _mm512_set1_ps(seed + 0.023f);
  for (long it = 0; it < iters; ++it) {
    acc0 = _mm512_fmadd_ps(acc0, a, b);
    acc1 = _mm512_fmadd_ps(acc1, a, b);
    acc2 = _mm512_fmadd_ps(acc2, a, b);
    acc3 = _mm512_fmadd_ps(acc3, a, b);
    acc4 = _mm512_fmadd_ps(acc4, a, b);
    acc5 = _mm512_fmadd_ps(acc5, a, b);
    acc6 = _mm512_fmadd_ps(acc6, a, b);
    acc7 = _mm512_fmadd_ps(acc7, a, b);
    acc8 = _mm512_fmadd_ps(acc8, a, b);
    acc9 = _mm512_fmadd_ps(acc9, a, b);
    acc10 = _mm512_fmadd_ps(acc10, a, b);
    acc11 = _mm512_fmadd_ps(acc11, a, b);
    acc12 = _mm512_fmadd_ps(acc12, a, b);
    acc13 = _mm512_fmadd_ps(acc13, a, b);
    acc14 = _mm512_fmadd_ps(acc14, a, b);
    acc15 = _mm512_fmadd_ps(acc15, a, b);
    acc16 = _mm512_fmadd_ps(acc16, a, b);
    acc17 = _mm512_fmadd_ps(acc17, a, b);
    acc18 = _mm512_fmadd_ps(acc18, a, b);
    acc19 = _mm512_fmadd_ps(acc19, a, b);
    acc20 = _mm512_fmadd_ps(acc20, a, b);
    acc21 = _mm512_fmadd_ps(acc21, a, b);
    acc22 = _mm512_fmadd_ps(acc22, a, b);
    acc23 = _mm512_fmadd_ps(acc23, a, b);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)),
                           _mm512_add_ps(_mm512_add_ps(acc4, acc5), _mm512_add_ps(acc6, acc7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc8, acc9), _mm512_add_ps(acc10, acc11)),
                                     _mm512_add_ps(_mm512_add_ps(acc12, acc13), _mm512_add_ps(acc14, acc15))));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc16, acc17), _mm512_add_ps(acc18, acc19)),
                                     _mm512_add_ps(_mm512_add_ps(acc20, acc21), _mm512_add_ps(acc22, acc23))));
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

__attribute__((target("avx2,fma"), noinline)) float fma_loop_avx2(long iters, float seed) {
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(0.000001f);
  __m256 acc0 = _mm256_set1_ps(seed), acc1 = _mm256_set1_ps(seed + 0.001f), acc2 = _mm256_set1_ps(seed + 0.002f),
         acc3 = _mm256_set1_ps(seed + 0.003f), acc4 = _mm256_set1_ps(seed + 0.004f), acc5 = _mm256_set1_ps(seed + 0.005f),
         acc6 = _mm256_set1_ps(seed + 0.006f), acc7 = _mm256_set1_ps(seed + 0.007f), acc8 = _mm256_set1_ps(seed + 0.008f),
         acc9 = _mm256_set1_ps(seed + 0.009f), acc10 = _mm256_set1_ps(seed + 0.010f), acc11 = _mm256_set1_ps(seed + 0.011f);
  for (long it = 0; it < iters; ++it) {
    acc0 = _mm256_fmadd_ps(acc0, a, b);
    acc1 = _mm256_fmadd_ps(acc1, a, b);
    acc2 = _mm256_fmadd_ps(acc2, a, b);
    acc3 = _mm256_fmadd_ps(acc3, a, b);
    acc4 = _mm256_fmadd_ps(acc4, a, b);
    acc5 = _mm256_fmadd_ps(acc5, a, b);
    acc6 = _mm256_fmadd_ps(acc6, a, b);
    acc7 = _mm256_fmadd_ps(acc7, a, b);
    acc8 = _mm256_fmadd_ps(acc8, a, b);
    acc9 = _mm256_fmadd_ps(acc9, a, b);
    acc10 = _mm256_fmadd_ps(acc10, a, b);
    acc11 = _mm256_fmadd_ps(acc11, a, b);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)),
                           _mm256_add_ps(_mm256_add_ps(acc4, acc5), _mm256_add_ps(acc6, acc7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(acc8, acc9), _mm256_add_ps(acc10, acc11)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

struct Isa {
  const char* name;
  bool supported;
  int accumulators, lanes;
  float (*loop)(long, float);
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = std::stoi(bench::flag(argc, argv, "threads", "2"));
  const std::string which = bench::flag(argc, argv, "isa", "all");
  const double seconds = std::stod(bench::flag(argc, argv, "seconds", "1"));
  __builtin_cpu_init();
  const Isa isas[] = {
      {"avx512", __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"), 24, 16, fma_loop_avx512},
      {"avx2", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), 12, 8, fma_loop_avx2},
  };
  std::vector<int> counts{1};
  if (threads > 1) counts.push_back(threads);
  volatile float sink = 0;
  for (const Isa& isa : isas) {
    if (which != "all" && which != isa.name) continue;
    if (!isa.supported) {
      std::fprintf(stderr, "bench_peak: the CPU lacks %s+fma; no %s line\n", isa.name, isa.name);
      continue;
    }
    const double flops_per_iter = 2.0 * isa.accumulators * isa.lanes;
    // Rounds per run: about 50 ms on one thread (found from a short trial), so a run of every thread is long
    // against the start of a parallel region.
    long iters = 1 << 16;
    for (;;) {
      auto t0 = std::chrono::steady_clock::now();
      sink = sink + isa.loop(iters, 1.0f);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s > 0.01 || iters > (1L << 40)) {
        iters = static_cast<long>(iters * (0.05 / std::max(s, 1e-9))) + 1;
        break;
      }
      iters *= 4;
    }
    for (int t : counts) {
      std::vector<float> out(t, 0.0f);
      std::vector<double> times;
      auto run = [&] {
#pragma omp parallel num_threads(t)
        {
          const int id = omp_get_thread_num();
          out[id] += isa.loop(iters, 1.0f + 0.01f * id);
        }
      };
      const double median = bench::median_seconds([&] {
        auto t0 = std::chrono::steady_clock::now();
        run();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }, 5, seconds);
      double best = times.back();
      for (size_t i = 2; i < times.size(); ++i) best = std::min(best, times[i]);  // times[0..1]: the warm-ups
      for (float v : out) sink = sink + v;
      const double flops = flops_per_iter * static_cast<double>(iters) * t;
      std::printf("{\"bench\":\"peak\",\"isa\":\"%s\",\"threads\":%d,\"accumulators\":%d,\"seconds\":%.6f,"
                  "\"gflops\":%.1f,\"best_gflops\":%.1f}\n",
                  isa.name, t, isa.accumulators, median, flops / median / 1e9, flops / best / 1e9);
      std::fflush(stdout);
    }
  }
  if (sink != sink) std::fprintf(stderr, "bench_peak: the accumulators went NaN\n");  // reading sink keeps the work
  return 0;
}

#else
int main() {
  std::fprintf(stderr, "bench_peak: not an x86 build; no peak lines\n");
  return 0;
}
#endif
