// Memory-bound ops on float tensors: GB/s (bytes read + written), one JSON line each.
// Usage: bench_elementwise [--numel 16777216] [--threads 2]
#include <cstdio>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

int main(int argc, char** argv) {
  const int threads = std::stoi(bench::flag(argc, argv, "threads", "2"));
  const long n = std::stol(bench::flag(argc, argv, "numel", "16777216"));
  tv::set_num_threads(threads);
  tv::Generator gen(0);
  auto a = tv::normal<float>({n}, 0, 1, gen), b = tv::normal<float>({n}, 0, 1, gen);
  const long side = 4096;  // the transposed copy works on a side x side matrix
  auto m = tv::normal<float>({side, side}, 0, 1, gen);
  auto report = [&](const char* op, long numel, double bytes, auto&& f) {
    double s = bench::median_seconds(f);
    std::printf("{\"bench\":\"elementwise\",\"impl\":\"tinyvid\",\"op\":\"%s\",\"numel\":%ld,\"threads\":%d,\"seconds\":%.6f,\"gbps\":%.2f}\n",
                op, numel, threads, s, bytes / s / 1e9);
  };
  const double f = sizeof(float);
  report("add", n, 3 * n * f, [&] { auto c = a + b; });
  report("relu", n, 2 * n * f, [&] { auto c = tv::relu(a); });
  report("exp", n, 2 * n * f, [&] { auto c = tv::exp(a); });
  report("tanh", n, 2 * n * f, [&] { auto c = tv::tanh(a); });
  report("sum", n, n * f, [&] { auto c = tv::sum(a); });
  report("transpose_copy", side * side, 2 * side * side * f, [&] { auto c = m.t().contiguous(); });
}
