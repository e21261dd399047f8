// Square float matmul: GFLOP/s at the given sizes, one JSON line each.
// Usage: bench_matmul [--sizes 256,1024,2048] [--threads 2]
#include <cstdio>
#include <string>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

int main(int argc, char** argv) {
  const int threads = std::stoi(bench::flag(argc, argv, "threads", "2"));
  tv::set_num_threads(threads);
  // The GEMM that runs: tinyvid's packed GEMM where the AVX-512 kernels are active, else the build's BLAS.
  const tv::cpu::Isa isa = tv::cpu::active_isa();
  const std::string gemm = tv::cpu::use_own_gemm(isa) ? "tinyvid packed GEMM" : TINYVID_GEMM_BACKEND_NAME;
  for (long n : bench::int_list(bench::flag(argc, argv, "sizes", "256,1024,2048"))) {
    tv::Generator gen(0);
    auto a = tv::normal<float>({n, n}, 0, 1, gen), b = tv::normal<float>({n, n}, 0, 1, gen);
    double s = bench::median_seconds([&] { auto c = tv::matmul(a, b); });
    std::printf("{\"bench\":\"matmul\",\"impl\":\"tinyvid\",\"n\":%ld,\"threads\":%d,\"isa\":\"%s\",\"gemm\":\"%s\",\"seconds\":%.6f,"
                "\"gflops\":%.1f}\n",
                n, threads, tv::cpu::isa_name(isa), gemm.c_str(), s, 2.0 * n * n * n / s / 1e9);
  }
}
