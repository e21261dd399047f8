// Whole recognizers on one clip of 8 frames at 224 (batch 8 frames), 2 threads: eval forward time and
// training-step time (forward, backward, SGD step), one JSON line per model; peak memory (max RSS of
// this process) is reported for the training step of the model named by --model, measured in a run of
// its own: bash bench/run.sh runs each of tsn_r50, tanet_r50 and tdn_r50, with and without _dnr.
// --frames counts the frames (segments) the network works on: a TDN clip of 8 segments has 5 input frames per
// segment, 40 in all ("input_frames" in the JSON line).
// "openblas_coretype" is the OPENBLAS_CORETYPE the run had (null: unset, OpenBLAS picks its kernels from the CPU);
// --variant NAME adds "variant":"NAME" to the line, for a second run of the same model under other settings
// (run.sh: "openblas_skylakex"), which compare.py keeps apart from the plain run and sets against it.
// --clips N times a batch of N clips (tools/experiment.sh: 30, the views of a 10 x 3 test of one video);
// --num-classes K (default 400) and --set KEY=VALUE (repeatable: the model switches of `tinyvid summary --help`,
// e.g. width=16) build the model as a config would; "switches" in the line lists them. --unfused runs the eval
// forward op by op (tv::nn::set_fused_inference(false)), to compare with the fused inference path ("fused").
// The eval forward runs frozen (tv::nn::freeze: weights kept packed / transformed between calls, as the peer's
// best path, torch.jit.freeze via optimize_for_inference, keeps its prepacked weights); --no-freeze prepares them on
// every call ("frozen").
// Usage: bench_models [--model tsn_r50] [--frames 8] [--size 224] [--threads 2] [--variant NAME] [--clips 1]
//                     [--num-classes 400] [--set KEY=VALUE ...] [--unfused] [--no-freeze]
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

int main(int argc, char** argv) {
  const std::string name = bench::flag(argc, argv, "model", "tsn_r50");
  const long frames = std::stol(bench::flag(argc, argv, "frames", "8"));
  const long size = std::stol(bench::flag(argc, argv, "size", "224"));
  const int threads = std::stoi(bench::flag(argc, argv, "threads", "2"));
  const std::string variant = bench::flag(argc, argv, "variant", "");
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  tv::set_num_threads(threads);
  const long clips = std::stol(bench::flag(argc, argv, "clips", "1"));
  bool frozen = true;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--unfused") tv::nn::set_fused_inference(false);
    if (std::string(argv[i]) == "--no-freeze") frozen = false;
  }
  tv::models::ModelConfig cfg;
  cfg.num_classes = std::stol(bench::flag(argc, argv, "num-classes", "400"));
  std::string switches;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) != "--set") continue;
    const std::string kv = argv[i + 1];
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "bench_models: --set expects KEY=VALUE, got '%s'\n", kv.c_str());
      return 2;
    }
    cfg.set[kv.substr(0, eq)] = kv.substr(eq + 1);
    switches += (switches.empty() ? "" : ",") + kv;
  }
  const bool tdn = name.rfind("tdn_", 0) == 0;
  cfg.frames = tdn ? frames * tv::models::kTdnSegmentFrames : frames;
  auto model = tv::models::make_model<float>(name, cfg);
  const long input_frames = static_cast<long>(model->frames());
  tv::Generator gen(0);
  auto x = tv::normal<float>({clips * input_frames, 3, size, size}, 0, 1, gen);
  std::vector<int64_t> labels(static_cast<size_t>(clips), 3);
  auto label = tv::tensor<int64_t>(labels);
  model->eval();
  if (frozen) tv::nn::freeze(*model);
  const double fwd = bench::median_seconds([&] {
    tv::NoGradGuard no_grad;
    model->forward(x);
  }, 3, 3.0);
  model->train();  // (lets the frozen weights go)
  tv::optim::SGD sgd(model->parameters(), tv::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
  const double step = bench::median_seconds([&] {
    sgd.zero_grad();
    auto loss = tv::cross_entropy(model->forward(x), label);
    loss.backward();
    sgd.step();
  }, 3, 5.0);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("{\"bench\":\"model\",\"impl\":\"tinyvid\",\"model\":\"%s\",\"frames\":%ld,\"input_frames\":%ld,"
              "\"size\":%ld,\"threads\":%d,\"forward_s\":%.4f,\"train_step_s\":%.4f,\"peak_rss_mb\":%.0f,"
              "\"clips\":%ld,\"switches\":\"%s\",\"fused\":%s,\"frozen\":%s,\"openblas_coretype\":%s%s}\n",
              name.c_str(), frames, input_frames, size, threads, fwd, step, usage.ru_maxrss / 1024.0, clips,
              switches.c_str(), tv::nn::fused_inference() ? "true" : "false", frozen ? "true" : "false",
              coretype ? ("\"" + std::string(coretype) + "\"").c_str() : "null",
              variant.empty() ? "" : (",\"variant\":\"" + variant + "\"").c_str());
}
