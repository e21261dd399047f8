// The CUDA backend on the GPU (built with tinyvid::cuda; run by tools/gpu_check.sh): GEMM and convolution
// throughput against the GPU's FP32 peak, and the paper's workloads for TSN-R50 and TSN-R50-DNR: training
// clips/s (batch 8 clips of 8 frames at 224, forward, backward, SGD step) and testing videos/s with the
// paper's 30 views (10 clips x 3 crops of 8 frames, one batch of 240 frames). One JSON line each; the DNR
// line gives its cost in videos/s against plain TSN (the paper reports 30-36% on a 2080Ti).
// Usage: bench_gpu [--peak_tflops 67] (the FP32 peak of an H200 SXM; give your GPU's)
#include <cstdio>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

namespace {

const tv::Device kGpu = tv::Device::CUDA;

// Median seconds of f, the GPU's queue drained before the clock stops.
template <class F>
double gpu_seconds(F&& f, int reps = 5, double min_seconds = 1.0) {
  return bench::median_seconds([&] {
    f();
    tv::cuda::synchronize();
  }, reps, min_seconds);
}

void bench_gemm(long n, double peak) {
  tv::Generator gen(0);
  auto a = tv::normal<float>({n, n}, 0, 1, gen).to(kGpu), b = tv::normal<float>({n, n}, 0, 1, gen).to(kGpu);
  tv::NoGradGuard no_grad;
  const double s = gpu_seconds([&] { tv::matmul(a, b); });
  const double tflops = 2.0 * n * n * n / s / 1e12;
  std::printf("{\"bench\":\"gpu_matmul\",\"impl\":\"tinyvid\",\"n\":%ld,\"seconds\":%.6f,\"tflops\":%.2f,"
              "\"fraction_of_peak\":%.3f}\n", n, s, tflops, tflops / peak);
}

void bench_conv(long N, long C, long HW, long Cout, long k, long stride, double peak) {
  tv::Generator gen(0);
  auto x = tv::normal<float>({N, C, HW, HW}, 0, 1, gen).to(kGpu).requires_grad_();
  auto w = tv::normal<float>({Cout, C, k, k}, 0, 0.05, gen).to(kGpu).requires_grad_();
  const tv::Pair st{stride, stride}, pad{k / 2, k / 2};
  const long OH = (HW + 2 * (k / 2) - k) / stride + 1;
  const double flops = 2.0 * N * Cout * OH * OH * C * k * k;
  double fwd;
  {
    tv::NoGradGuard no_grad;
    fwd = gpu_seconds([&] { tv::conv2d(x, w, tv::Tensor<float>(), st, pad); });
  }
  const double step = gpu_seconds([&] {
    x.set_grad({});
    w.set_grad({});
    tv::sum(tv::conv2d(x, w, tv::Tensor<float>(), st, pad)).backward();
  });
  std::printf("{\"bench\":\"gpu_conv\",\"impl\":\"tinyvid\",\"shape\":\"%ldx%ldx%ldx%ld k%ld s%ld -> %ld\","
              "\"fwd_tflops\":%.2f,\"fwd_bwd_tflops\":%.2f,\"fwd_fraction_of_peak\":%.3f}\n",
              N, C, HW, HW, k, stride, Cout, flops / fwd / 1e12, 3 * flops / step / 1e12, flops / fwd / 1e12 / peak);
}

// Returns the testing videos/s.
double bench_model(const std::string& name) {
  constexpr long kFrames = 8, kClips = 8, kViews = 30, kSize = 224;
  tv::models::ModelConfig cfg;
  cfg.frames = kFrames;
  auto model = tv::models::make_model<float>(name, cfg);
  model->to(kGpu);
  tv::Generator gen(0);
  auto clips = tv::normal<float>({kClips * kFrames, 3, kSize, kSize}, 0, 1, gen).to(kGpu);
  std::vector<int64_t> labels(kClips, 3);
  auto target = tv::tensor<int64_t>(labels, {kClips}).to(kGpu);
  model->train();
  tv::optim::SGD sgd(model->parameters(), tv::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
  const double step = gpu_seconds([&] {
    sgd.zero_grad();
    tv::cross_entropy(model->forward(clips), target).backward();
    sgd.step();
  }, 5, 3.0);
  model->eval();
  auto views = tv::normal<float>({kViews * kFrames, 3, kSize, kSize}, 0, 1, gen).to(kGpu);
  const double test = gpu_seconds([&] {
    tv::NoGradGuard no_grad;
    model->forward(views);
  }, 5, 3.0);
  std::printf("{\"bench\":\"gpu_model\",\"impl\":\"tinyvid\",\"model\":\"%s\",\"train_clips_per_s\":%.2f,"
              "\"train_step_s\":%.4f,\"test_videos_per_s\":%.2f,\"test_views\":%ld}\n",
              name.c_str(), kClips / step, step, 1.0 / test, kViews);
  return 1.0 / test;
}

}  // namespace

int main(int argc, char** argv) {
  const double peak = std::stod(bench::flag(argc, argv, "peak_tflops", "67"));
  if (!tv::device_available(kGpu)) {
    std::printf("{\"bench\":\"gpu\",\"skipped\":\"no GPU available to this build or machine\"}\n");
    return 0;
  }
  for (long n : {1024L, 4096L, 8192L}) bench_gemm(n, peak);
  bench_conv(64, 64, 56, 64, 3, 1, peak);     // ResNet-50 layer1's 3x3
  bench_conv(64, 256, 14, 256, 3, 1, peak);   // layer3's 3x3
  bench_conv(64, 1024, 14, 256, 1, 1, peak);  // layer3's 1x1 reduce
  bench_conv(64, 3, 224, 64, 7, 2, peak);     // the stem
  const double tsn = bench_model("tsn_r50"), dnr = bench_model("tsn_r50_dnr");
  std::printf("{\"bench\":\"gpu_dnr_cost\",\"impl\":\"tinyvid\",\"test_videos_per_s_tsn\":%.2f,"
              "\"test_videos_per_s_dnr\":%.2f,\"dnr_cost\":%.3f}\n", tsn, dnr, 1.0 - dnr / tsn);
}
