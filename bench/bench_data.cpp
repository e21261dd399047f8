// The data path: whole-file decode throughput of VideoReader (frames/s to RGB at native size, one decoding
// thread, in-process) on real files, and Loader throughput (clips/s) for TSN training clips of 8 x 224
// (SampleFrames 1 x 8, Resize short side 256, MultiScaleCrop 224, Flip, Normalize) with 2 workers.
// Usage: bench_data [--videos tests/data/videos]
#include <chrono>
#include <cstdio>
#include <numeric>
#include <tinyvid/data/dataset.hpp>
#include <tinyvid/data/loader.hpp>
#include <tinyvid/data/video.hpp>

#include "bench_util.hpp"

using namespace tv::data;

int main(int argc, char** argv) {
  const std::string dir = bench::flag(argc, argv, "videos", TINYVID_BENCH_DIR "/../tests/data/videos");
  for (const char* file : {"demo.mp4", "test.mp4", "demo_skeleton.mp4"}) {
    const std::string path = dir + "/" + file;
    int64_t frames = 0;
    const double s = bench::median_seconds([&] {
      VideoReader r(path, 1);
      std::vector<int64_t> all(static_cast<size_t>(r.frame_count()));
      std::iota(all.begin(), all.end(), 0);
      frames = static_cast<int64_t>(r.read(all).size());
    }, 3, 2.0);
    std::printf("{\"bench\":\"decode\",\"impl\":\"tinyvid\",\"file\":\"%s\",\"frames\":%lld,\"fps\":%.0f}\n", file,
                static_cast<long long>(frames), frames / s);
    std::fflush(stdout);
  }
  Pipeline p;
  p.sampler = SampleFrames{.clip_len = 1, .num_clips = 8};
  p.steps = {clip_step(Resize{.scale = {-1, 256}}),
             clip_step(MultiScaleCrop{.input_size = {224, 224}, .scales = {1, 0.875, 0.75, 0.66}}),
             clip_step(Resize{.scale = {224, 224}, .keep_ratio = false}), clip_step(Flip{})};
  std::string list_text;
  for (int i = 0; i < 16; ++i) list_text += std::string(i % 2 ? "demo.mp4" : "test.mp4") + " " + std::to_string(i % 4) + "\n";
  VideoDataset ds(parse_video_list(list_text, "bench", {.data_prefix = dir}), p);
  Loader loader(ds, {.batch_size = 8, .shuffle = true, .num_workers = 2, .prefetch = 4, .seed = 0});
  int64_t clips = 0;
  double seconds = 0;
  for (int epoch = 0; epoch < 4; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    int64_t n = 0;
    loader.start_epoch(epoch);
    while (auto b = loader.next()) n += b->labels.numel();
    if (epoch > 0) {  // epoch 0 warms up
      clips += n;
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  std::printf("{\"bench\":\"loader\",\"impl\":\"tinyvid\",\"pipeline\":\"tsn_train_8x224\",\"workers\":2,\"clips_per_s\":%.1f}\n",
              clips / seconds);
}
