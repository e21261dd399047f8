// Batch norm (training forward + backward, batch 8, ResNet-50's four stages' widest maps) in GB/s, batch norm then ReLU
// (the same, at a bottleneck's inner widths) in ms, and one LSTM cell step (batch 8, 512 -> 512, forward + backward) in
// ms: one JSON line each.
// Usage: bench_layers [--threads 2]
#include <cstdio>
#include <utility>
#include <vector>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

int main(int argc, char** argv) {
  const int threads = std::stoi(bench::flag(argc, argv, "threads", "2"));
  tv::set_num_threads(threads);
  tv::Generator gen(0);
  // ResNet-50's widest map of each stage, at batch 8.
  for (const auto& [channels, size] : std::vector<std::pair<int64_t, int64_t>>{{256, 56}, {512, 28}, {1024, 14}, {2048, 7}}) {
    tv::nn::BatchNorm2d<float> bn{tv::nn::BatchNormOptions(channels)};
    auto x = tv::normal<float>({8, channels, size, size}, 0, 1, gen).requires_grad_();
    auto gy = tv::normal<float>(x.shape(), 0, 1, gen);
    double s = bench::median_seconds([&] {
      auto y = bn(x);
      y.backward(gy);
      x.set_grad({});
      bn.zero_grad();
    });
    // Bytes a fused implementation must move: forward reads x twice (statistics, normalize) and writes
    // y; backward reads gy and x twice (sums, input gradient) and writes gx.
    const double bytes = 7.0 * x.numel() * sizeof(float);
    std::printf("{\"bench\":\"batch_norm\",\"impl\":\"tinyvid\",\"shape\":\"8x%ldx%ldx%ld\",\"threads\":%d,\"seconds\":%.6f,\"gbps\":%.2f}\n",
                static_cast<long>(channels), static_cast<long>(size), static_cast<long>(size), threads, s, bytes / s / 1e9);
  }
  // Batch norm then ReLU (training forward + backward, batch 8), as a bottleneck's first two: its inner widths.
  for (const auto& [channels, size] : std::vector<std::pair<int64_t, int64_t>>{{64, 56}, {128, 28}, {256, 14}, {512, 7}}) {
    tv::nn::BatchNorm2d<float> bn{tv::nn::BatchNormOptions(channels)};
    auto x = tv::normal<float>({8, channels, size, size}, 0, 1, gen).requires_grad_();
    auto gy = tv::normal<float>(x.shape(), 0, 1, gen);
    double s = bench::median_seconds([&] {
      auto y = bn.forward(x, bn.func_options().relu(true));
      y.backward(gy);
      x.set_grad({});
      bn.zero_grad();
    });
    std::printf("{\"bench\":\"batch_norm_relu\",\"impl\":\"tinyvid\",\"shape\":\"8x%ldx%ldx%ld\",\"threads\":%d,\"seconds\":%.6f,\"ms\":%.3f}\n",
                static_cast<long>(channels), static_cast<long>(size), static_cast<long>(size), threads, s, s * 1e3);
  }
  {
    tv::nn::LSTMCell<float> cell(512, 512, gen);
    auto x = tv::normal<float>({8, 512}, 0, 1, gen);
    auto h = tv::normal<float>({8, 512}, 0, 1, gen), c = tv::normal<float>({8, 512}, 0, 1, gen);
    double s = bench::median_seconds([&] {
      auto state = cell(x, {h, c});
      tv::sum(state.h + state.c).backward();
      cell.zero_grad();
    });
    std::printf("{\"bench\":\"lstm_cell\",\"impl\":\"tinyvid\",\"shape\":\"8x512\",\"threads\":%d,\"seconds\":%.6f,\"ms\":%.3f}\n",
                threads, s, s * 1e3);
  }
}
