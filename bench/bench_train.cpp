// Training throughput (clips/s) with data loading against the model alone: the same training step (forward,
// backward, gradient clipping, SGD) fed by the Loader from real video files (decode, MultiScaleCrop, Normalize
// on worker threads) and fed one fixed tensor. The data cost is 1 - with_data / model_only.
// Two cases, one JSON line each: the demo (configs/demo_tsn_r18.conf: TSN-R18 of width 16, 8x112, batch 8)
// and TSN-R50 (8x224, batch 8; the videos are the synthetic dataset rendered at 256x256).
// Usage: bench_train [--case demo|r50|all] [--iters N per round] [--rounds 3] [--threads 2] [--workers 2] [--nice 19]
//                    [--dir /tmp/tinyvid_bench_train]
#include <algorithm>
#include <chrono>
#include <vector>
#include <cstdio>
#include <filesystem>
#include <string>

#include <tinyvid/data/loader.hpp>
#include <tinyvid/data/synth.hpp>
#include <tinyvid/train/recipe.hpp>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
int nice_level = 19;
int rounds = 3;

struct Case {
  const char* name;
  const char* model;
  int64_t width, size, crop, resize, videos_per_class;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void run(const Case& c, int64_t iters, int workers, const std::string& dir) {
  // The dataset: 10 classes of 32-frame videos (the loader starts a new epoch when one ends).
  tv::data::SynthOptions so;
  so.size = c.size;
  so.train_per_class = c.videos_per_class;
  so.val_per_class = 1;
  const std::string data = dir + "/" + c.name;
  tv::data::write_synth_dataset(data, so);

  tv::train::Config cfg = tv::train::Config::from_string(
      "num_classes = 10\nsampler.num_clips = 8\ntrain.crop = multiscale\ntrain.flip = 0\nbatch_size = 8\n"
      "data.train_list = train_list.txt\ndata.prefix = videos\n", "bench");
  cfg.set("model", c.model, "bench");
  cfg.set("model.width", std::to_string(c.width), "bench");
  cfg.set("data.root", data, "bench");
  cfg.set("train.crop_size", std::to_string(c.crop), "bench");
  cfg.set("train.resize", std::to_string(c.resize), "bench");
  const tv::train::Recipe r = tv::train::make_recipe(cfg);
  auto model = tv::models::make_model<float>(r.model, r.model_config);
  model->train();
  tv::optim::SGD opt(model->parameters(), r.sgd);
  auto step = [&](const tv::Tensor<float>& clips, const tv::Tensor<int64_t>& labels) {
    auto loss = tv::cross_entropy((*model)(clips), labels);
    opt.zero_grad();
    loss.backward();
    tv::optim::clip_grad_norm(opt.parameters(), r.clip_grad);
    opt.step();
  };

  auto ds = tv::train::make_dataset(r, "train");
  tv::data::Loader loader(*ds, {.batch_size = 8, .shuffle = true, .drop_last = true, .num_workers = workers, .seed = 1,
                                 .worker_nice = nice_level});
  int64_t epoch = 0;
  loader.start_epoch(epoch);
  auto next_batch = [&] {  // the next batch, into a new epoch when one ends (as training does)
    auto b = loader.next();
    if (!b) {
      loader.start_epoch(++epoch);
      b = loader.next();
    }
    return b;
  };
  // Warm-up before either timing: three steps (the allocator's pool, first-touch page faults of the
  // activations and gradients), so the run timed first pays no more of them than the other.
  auto first = next_batch();
  for (int i = 0; i < 3; ++i) step(first->clips, first->labels);
  // Rounds of model-only and with-data timings in turn; the medians are reported (one round of each swings
  // by 5% on this machine).
  std::vector<double> with_data, model_only;
  for (int round = 0; round < rounds; ++round) {
    auto t1 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) step(first->clips, first->labels);
    model_only.push_back(8.0 * static_cast<double>(iters) / seconds_since(t1));
    auto t0 = Clock::now();
    int64_t clips = 0;
    for (int64_t i = 0; i < iters; ++i) {
      auto b = next_batch();
      step(b->clips, b->labels);
      clips += b->labels.numel();
    }
    with_data.push_back(static_cast<double>(clips) / seconds_since(t0));
  }
  loader.stop();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  auto list = [](const std::vector<double>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.2f", i ? "," : "", v[i]);
      out += buf;
    }
    return out + "]";
  };

  // The data alone, on one worker: what a clip costs the machine.
  tv::data::Loader alone(*ds, {.batch_size = 8, .shuffle = true, .drop_last = true, .num_workers = 1, .seed = 2});
  alone.start_epoch(0);
  const auto t2 = Clock::now();
  int64_t data_clips = 0;
  for (int64_t i = 0; i < iters; ++i)
    if (auto b = alone.next()) data_clips += b->labels.numel();
  const double data_only = static_cast<double>(data_clips) / seconds_since(t2);
  const double with = median(with_data), without = median(model_only);

  std::printf("{\"bench\":\"train_throughput\",\"impl\":\"tinyvid\",\"case\":\"%s\",\"model\":\"%s\",\"width\":%lld,"
              "\"frames\":8,\"size\":%lld,\"batch\":8,\"workers\":%d,\"threads\":%d,\"clips_per_s_with_data\":%.2f,"
              "\"clips_per_s_model_only\":%.2f,\"data_slowdown\":%.3f,\"worker_nice\":%d,"
              "\"data_only_clips_per_s_one_worker\":%.1f,\"rounds_with_data\":%s,\"rounds_model_only\":%s}\n",
              c.name, c.model, static_cast<long long>(c.width), static_cast<long long>(c.crop), workers,
              tv::get_num_threads(), with, without, 1.0 - with / without, nice_level, data_only, list(with_data).c_str(),
              list(model_only).c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  av_log_set_level(AV_LOG_ERROR);
  const std::string which = bench::flag(argc, argv, "case", "all");
  const int64_t iters = std::stol(bench::flag(argc, argv, "iters", "0"));
  const int threads = std::stoi(bench::flag(argc, argv, "threads", "2"));
  const int workers = std::stoi(bench::flag(argc, argv, "workers", "2"));
  const std::string dir = bench::flag(argc, argv, "dir", "/tmp/tinyvid_bench_train");
  nice_level = std::stoi(bench::flag(argc, argv, "nice", "19"));
  rounds = std::max(1, std::stoi(bench::flag(argc, argv, "rounds", "3")));
  tv::set_num_threads(threads);
  if (which == "demo" || which == "all") run({"demo", "tsn_r18", 16, 112, 112, 0, 34}, iters ? iters : 40, workers, dir);
  if (which == "r50" || which == "all") run({"r50", "tsn_r50", 64, 256, 224, 256, 8}, iters ? iters : 8, workers, dir);
}
