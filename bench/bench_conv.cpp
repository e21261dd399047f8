// conv2d at ResNet-50's shapes, batch 8: forward and forward+backward GFLOP/s, one JSON line each.
// The stem's input needs no gradient (as in a network), the others' do.
// Flops: 2 per multiply-add of the direct method; forward+backward counts 3x the forward's (2x for the stem, whose
// input needs no gradient). --only NAME,NAME runs those rows of the shape file alone; --seconds is each figure's
// least timed total (a quick check: --seconds 0 times 5 runs after 2 warm-ups). "isa" is the kernels' ISA
// (TINYVID_ISA lowers it); --variant NAME adds "variant":"NAME" (run.sh: the AVX2 kernels against PyTorch limited
// to AVX2).
// Usage: bench_conv [--shapes bench/conv_shapes.txt] [--only NAMES] [--batch 8] [--threads 2] [--seconds 1]
//                   [--variant NAME]
#include <cstdio>
#include <fstream>
#include <sstream>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

int main(int argc, char** argv) {
  const int threads = std::stoi(bench::flag(argc, argv, "threads", "2"));
  const long batch = std::stol(bench::flag(argc, argv, "batch", "8"));
  const double seconds = std::stod(bench::flag(argc, argv, "seconds", "1"));
  const std::string variant = bench::flag(argc, argv, "variant", "");
  std::string only = ",";  // ",NAME,NAME," (built by appends: GCC 12 warns falsely on "," + a temporary string)
  only += bench::flag(argc, argv, "only", "");
  only += ",";
  tv::set_num_threads(threads);
  std::ifstream in(bench::flag(argc, argv, "shapes", TINYVID_BENCH_DIR "/conv_shapes.txt"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::string name;
    long cin, cout, k, stride, pad, size;
    s >> name >> cin >> cout >> k >> stride >> pad >> size;
    if (only != ",," && only.find("," + name + ",") == std::string::npos) continue;
    tv::Generator gen(0);
    auto x = tv::normal<float>({batch, cin, size, size}, 0, 1, gen);
    auto w = tv::normal<float>({cout, cin, k, k}, 0, 0.05, gen).requires_grad_();
    const bool input_grad = cin != 3;
    if (input_grad) x.requires_grad_();
    const long out = (size + 2 * pad - k) / stride + 1;
    const double macs = double(batch) * cout * out * out * cin * k * k;
    auto gy = tv::normal<float>({batch, cout, out, out}, 0, 1, gen);
    double fwd = bench::median_seconds([&] {
      tv::NoGradGuard no_grad;
      auto y = tv::conv2d(x, w, {}, {stride, stride}, {pad, pad});
    }, 5, seconds);
    double fwd_bwd = bench::median_seconds([&] {
      auto y = tv::conv2d(x, w, {}, {stride, stride}, {pad, pad});
      y.backward(gy);
      w.set_grad({});
      if (input_grad) x.set_grad({});
    }, 5, seconds);
    const double bwd_factor = input_grad ? 3 : 2;
    std::printf("{\"bench\":\"conv\",\"impl\":\"tinyvid\",\"shape\":\"%s\",\"batch\":%ld,\"threads\":%d,\"isa\":\"%s\",\"fwd_seconds\":%.6f,"
                "\"fwd_gflops\":%.1f,\"fwd_bwd_seconds\":%.6f,\"fwd_bwd_gflops\":%.1f%s}\n",
                name.c_str(), batch, threads, tv::cpu::isa_name(tv::cpu::active_isa()), fwd, 2 * macs / fwd / 1e9, fwd_bwd, bwd_factor * 2 * macs / fwd_bwd / 1e9,
                variant.empty() ? "" : (",\"variant\":\"" + variant + "\"").c_str());
    std::fflush(stdout);
  }
}
