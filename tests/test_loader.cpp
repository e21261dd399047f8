// VideoDataset, RawframeDataset and the threaded Loader on the real files of data/videos.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tinyvid/data/dataset.hpp"
#include "tinyvid/data/loader.hpp"
#include "temp_files.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tv::data;
using testing::TempDir;

const std::string kVideos = std::string(TINYVID_TEST_DATA) + "/videos";

const int kQuietFFmpeg = (av_log_set_level(AV_LOG_FATAL), 0);

// Small frames keep the tests quick; the shape of a TSN training pipeline.
Pipeline small_train_pipeline(int64_t num_clips = 3) {
  Pipeline p;
  p.sampler = SampleFrames{.clip_len = 1, .num_clips = num_clips};
  p.steps = {clip_step(Resize{.scale = {-1, 64}}),
             clip_step(MultiScaleCrop{.input_size = {56, 56}, .scales = {1, .875, .75, .66}}),
             clip_step(Resize{.scale = {56, 56}, .keep_ratio = false}), clip_step(Flip{})};
  return p;
}

// Six samples over the two real videos, labels 0..5.
std::vector<Annotation> six_videos() {
  return parse_video_list("test.mp4 0\ndemo.mp4 1\ntest.mp4 2\ndemo.mp4 3\ntest.mp4 4\ndemo.mp4 5\n", "six",
                          {.data_prefix = kVideos});
}

bool same(const tv::Tensor<float>& a, const tv::Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

std::vector<Batch> all_batches(Loader& loader, int64_t epoch) {
  std::vector<Batch> out;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

// Runs f on another thread; fails the test instead of hanging when f does not return in time.
template <class F>
void within_seconds(int seconds, F f) {
  auto fut = std::async(std::launch::async, f);
  if (fut.wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
    // The future's destructor would wait for the hung thread: report and leave now.
    std::fprintf(stderr, "test_loader: timed out after %d s (deadlock?)\n", seconds);
    std::_Exit(1);
  }
  fut.get();
}


}  // namespace

TEST_CASE("VideoDataset: the real list, sample shape, label and determinism") {
  auto list = read_video_list(kVideos + "/annotations/video_test_list.txt", {.data_prefix = kVideos});
  VideoDataset ds(list, small_train_pipeline());
  REQUIRE(ds.size() == 2);
  tv::Generator g1(7), g2(7);
  auto a = ds.get(1, g1);
  auto b = ds.get(1, g2);
  REQUIRE(a);
  CHECK(a->clips.shape() == tv::Shape{3, 3, 56, 56});
  CHECK(a->label == 0);
  CHECK(a->index == 1);
  CHECK(same(a->clips, b->clips));
  CHECK_THROWS_WITH_AS(ds.get(2, g1), doctest::Contains("sample index 2 out of range for 2"), tv::Error);
}

TEST_CASE("VideoDataset: test-mode views are M = crops x clips frames, crop-major") {
  Pipeline p;
  p.sampler = SampleFrames{.clip_len = 1, .num_clips = 2, .test_mode = true};
  p.steps = {clip_step(Resize{.scale = {-1, 48}}), clip_step(ThreeCrop{.crop_size = {48, 48}})};
  VideoDataset ds(parse_video_list("test.mp4 3", "one", {.data_prefix = kVideos}), p);
  tv::Generator g;
  auto s = ds.get(0, g);
  REQUIRE(s);
  CHECK(s->clips.shape() == tv::Shape{6, 3, 48, 48});
  CHECK(s->label == 3);
}

TEST_CASE("VideoDataset: a flip's label map reaches the sample; bare ids read as .mp4; multi-label lists refused") {
  Pipeline p;
  p.sampler = SampleFrames{.clip_len = 1, .num_clips = 2};
  p.steps = {clip_step(Resize{.scale = {-1, 32}}), clip_step(Flip{.flip_ratio = 1.0, .flip_label_map = {{3, 5}}})};
  VideoDataset ds(parse_video_list("test 3\ntest.mp4 4\n", "two", {.data_prefix = kVideos}), p);
  tv::Generator g;
  auto flipped = ds.get(0, g);  // "test" is test.mp4, as MMAction2's DecordInit reads a bare id
  REQUIRE(flipped);
  CHECK(flipped->label == 5);
  CHECK(ds.get(1, g)->label == 4);
  CHECK(video_file("a/b") == "a/b.mp4");
  CHECK(video_file("a/b.webm") == "a/b.webm");
  const auto multi = parse_video_list("test.mp4 1 2\n", "multi", {.data_prefix = kVideos, .multi_class = true, .num_classes = 3});
  CHECK_THROWS_WITH_AS(VideoDataset(multi, p), doctest::Contains("expected a single-label list"), tv::Error);
}

TEST_CASE("RawframeDataset: the real list names its missing folder; img_sample reads") {
  auto list = read_rawframe_list(kVideos + "/annotations/rawframe_test_list.txt",
                                 {.data_prefix = kVideos + "/rawframes"});
  REQUIRE(list.size() == 2);
  CHECK(list[0].total_frames == 5);
  CHECK(list[0].label() == 127);
  tv::Generator g;
  {
    RawframeDataset ds(list, small_train_pipeline());
    CHECK_THROWS_WITH_AS(ds.get(0, g), doctest::Contains("rawframes/imgs' does not exist"), tv::Error);
  }
  {
    RawframeDataset ds(list, small_train_pipeline(), /*skip_bad=*/true);
    CHECK_FALSE(ds.get(0, g));
    CHECK_FALSE(ds.get(1, g));
    auto sk = ds.skipped();
    REQUIRE(sk.size() == 2);
    CHECK(sk[1].index == 1);
    CHECK(sk[1].path == kVideos + "/rawframes/imgs");
  }
  RawframeDataset ds(parse_rawframe_list("img_sample 10 4\n", "mem", {.data_prefix = kVideos + "/rawframes"}),
                     small_train_pipeline(8));
  auto s = ds.get(0, g);
  REQUIRE(s);
  CHECK(s->clips.shape() == tv::Shape{8, 3, 56, 56});
  CHECK(s->label == 4);
}

TEST_CASE("Loader: batch shapes, labels, drop_last") {
  VideoDataset ds(six_videos(), small_train_pipeline());
  for (bool drop_last : {false, true}) {
    SUBCASE(drop_last ? "drop_last" : "keep_last") {
      Loader loader(ds, {.batch_size = 4, .drop_last = drop_last, .num_workers = 2, .seed = 3});
      auto batches = all_batches(loader, 0);
      REQUIRE(batches.size() == (drop_last ? 1u : 2u));
      CHECK(loader.num_batches() == static_cast<int64_t>(batches.size()));
      CHECK(batches[0].clips.shape() == tv::Shape{12, 3, 56, 56});
      if (!drop_last) CHECK(batches[1].clips.shape() == tv::Shape{6, 3, 56, 56});
      auto order = loader.order(0);
      size_t k = 0;
      for (const Batch& b : batches) {
        REQUIRE(b.labels.numel() == static_cast<int64_t>(b.indices.size()));
        for (size_t j = 0; j < b.indices.size(); ++j, ++k) {
          CHECK(b.indices[j] == order[k]);              // in the epoch's order
          CHECK(b.labels.data()[j] == b.indices[j]);    // six_videos: label == index
        }
      }
      // The first sample's frames are what the dataset gives with the sample's own generator.
      tv::Generator g(detail::sample_seed(3, 0, order[0]));
      auto s = ds.get(order[0], g);
      REQUIRE(s);
      CHECK(std::memcmp(s->clips.data(), batches[0].clips.data(), static_cast<size_t>(s->clips.numel()) * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("Loader: pin_memory gives the same batches, in pinned memory where there is a GPU") {
  VideoDataset ds(six_videos(), small_train_pipeline());
  Loader plain(ds, {.batch_size = 4, .num_workers = 2, .seed = 3});
  Loader pinned(ds, {.batch_size = 4, .num_workers = 2, .seed = 3, .pin_memory = true});
  const auto a = all_batches(plain, 1), b = all_batches(pinned, 1);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(same(a[i].clips, b[i].clips));
    CHECK(a[i].labels.to_vector() == b[i].labels.to_vector());
    CHECK_FALSE(a[i].clips.is_pinned());
    CHECK(b[i].clips.is_pinned() == (tv::pinned_allocator() != nullptr));
    CHECK(b[i].labels.is_pinned() == (tv::pinned_allocator() != nullptr));
  }
}

TEST_CASE("Loader: the shards of a batch together are one process's batch; every shard gets every batch") {
  // Six samples in global batches of 4 (the epoch's samples 0-3, then 4-5): on 2 shards of batch_size 2, and on
  // 4 shards of batch_size 1, where shards 2 and 3 get the second batch empty.
  VideoDataset ds(six_videos(), small_train_pipeline(1));
  Loader whole(ds, {.batch_size = 4, .num_workers = 1, .seed = 5});
  const auto one = all_batches(whole, 2);
  REQUIRE(one.size() == 2);
  for (int64_t shards : {2, 4}) {
    CAPTURE(shards);
    std::vector<std::vector<Batch>> parts;
    for (int64_t k = 0; k < shards; ++k) {
      Loader shard(ds, {.batch_size = 4 / shards, .num_workers = 2, .seed = 5, .num_shards = shards, .shard = k});
      CHECK(shard.num_batches() == 2);
      parts.push_back(all_batches(shard, 2));
      REQUIRE(parts.back().size() == 2);  // empty shares too: the processes stay in step
    }
    for (size_t b = 0; b < 2; ++b) {
      std::vector<int64_t> indices;
      std::vector<float> values;
      for (int64_t k = 0; k < shards; ++k) {
        const Batch& p = parts[static_cast<size_t>(k)][b];
        indices.insert(indices.end(), p.indices.begin(), p.indices.end());
        if (p.indices.empty()) {
          CHECK_FALSE(p.clips.defined());
          continue;
        }
        const auto v = p.clips.to_vector();
        values.insert(values.end(), v.begin(), v.end());
      }
      CHECK(indices == one[b].indices);
      CHECK(values == one[b].clips.to_vector());
    }
  }
  CHECK_THROWS_WITH_AS(Loader(ds, {.num_shards = 2, .shard = 2}), doctest::Contains("shard 2 of 2 is not a shard"),
                       tv::Error);
}

TEST_CASE("Loader: same seed gives the same batches with 0, 1 and 3 workers; epochs reshuffle; mid-epoch start") {
  VideoDataset ds(six_videos(), small_train_pipeline());
  Loader one(ds, {.batch_size = 2, .num_workers = 1, .seed = 11});
  Loader three(ds, {.batch_size = 2, .num_workers = 3, .prefetch = 2, .seed = 11});
  Loader inline_loader(ds, {.batch_size = 2, .num_workers = 0, .seed = 11});  // on the calling thread
  auto a = all_batches(one, 1);
  auto b = all_batches(three, 1);
  auto c = all_batches(inline_loader, 1);
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == 3);
  REQUIRE(c.size() == 3);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].indices == b[i].indices);
    CHECK(same(a[i].clips, b[i].clips));
    CHECK(a[i].indices == c[i].indices);
    CHECK(same(a[i].clips, c[i].clips));
  }
  // A resumed run starts at batch 1 of the epoch: it gets exactly batches 1 and 2 of the full epoch.
  for (Loader* l : {&three, &inline_loader}) {
    l->start_epoch(1, 1);
    std::vector<Batch> rest;
    while (auto batch = l->next()) rest.push_back(std::move(*batch));
    REQUIRE(rest.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      CHECK(rest[i].indices == a[i + 1].indices);
      CHECK(same(rest[i].clips, a[i + 1].clips));
    }
  }
  // Orders are permutations, reproducible, and differ between epochs.
  auto o0 = one.order(0), o1 = one.order(1), o2 = one.order(2);
  CHECK(o0 == three.order(0));
  CHECK((o0 != o1 || o1 != o2));
  auto sorted = o1;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
  Loader other_seed(ds, {.batch_size = 2, .seed = 12});
  CHECK((other_seed.order(1) != o1 || other_seed.order(2) != o2));
  Loader no_shuffle(ds, {.batch_size = 2, .shuffle = false});
  CHECK(no_shuffle.order(5) == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("Loader: skip_bad counts and reports missing, empty and garbage files") {
  TempDir dir("loader");
  const std::string empty = (dir.path / "empty.mp4").string();
  const std::string garbage = (dir.path / "garbage.mp4").string();
  std::ofstream(empty, std::ios::binary).close();
  std::ofstream(garbage, std::ios::binary) << std::string(4096, 'x');
  const std::string text = "missing.mp4 0\ntest.mp4 1\n" + empty + " 2\n" + garbage + " 3\ndemo.mp4 4\n";
  auto list = parse_video_list(text, "bad", {.data_prefix = kVideos});

  SUBCASE("default: the error names the file") {
    VideoDataset ds(list, small_train_pipeline());
    tv::Generator g;
    CHECK_THROWS_WITH_AS(ds.get(0, g), doctest::Contains("missing.mp4' does not exist"), tv::Error);
    CHECK_THROWS_WITH_AS(ds.get(2, g), doctest::Contains("empty.mp4' is empty"), tv::Error);
    CHECK_THROWS_WITH_AS(ds.get(3, g), doctest::Contains(("sample 3 '" + garbage + "'").c_str()), tv::Error);
    Loader loader(ds, {.batch_size = 2, .num_workers = 2});
    loader.start_epoch(0);
    CHECK_THROWS_AS([&] { while (loader.next()) {} }(), tv::Error);
  }
  SUBCASE("skip_bad: the good samples come through, the bad ones are listed") {
    VideoDataset ds(list, small_train_pipeline(), /*skip_bad=*/true);
    Loader loader(ds, {.batch_size = 2, .shuffle = false, .num_workers = 2});
    auto batches = all_batches(loader, 0);
    std::vector<int64_t> got;
    for (const Batch& b : batches) {
      CHECK(b.clips.size(0) == 3 * static_cast<int64_t>(b.indices.size()));
      got.insert(got.end(), b.indices.begin(), b.indices.end());
    }
    CHECK(got == std::vector<int64_t>{1, 4});  // batch {2, 3} was all bad and is not returned
    auto sk = ds.skipped();
    REQUIRE(sk.size() == 3);
    std::sort(sk.begin(), sk.end(), [](const auto& x, const auto& y) { return x.index < y.index; });
    CHECK(sk[0].path == kVideos + "/missing.mp4");
    CHECK(sk[0].reason.find("does not exist") != std::string::npos);
    CHECK(sk[1].path == empty);
    CHECK(sk[2].path == garbage);
    ds.clear_skipped();
    CHECK(ds.skipped().empty());
  }
}

TEST_CASE("Loader: a worker's exception reaches the consumer; stopping early never hangs") {
  std::vector<Annotation> list;
  for (int i = 0; i < 4; ++i) {  // 24 samples
    auto six = six_videos();
    list.insert(list.end(), six.begin(), six.end());
  }
  std::atomic<int> calls{0};
  Pipeline throwing = small_train_pipeline(1);
  throwing.steps.push_back(clip_step([&calls](const Clip& c, tv::Generator&) {
    if (calls.fetch_add(1) == 5) TV_FAIL("boom in a transform");
    return c;
  }));
  VideoDataset bad(list, throwing);
  VideoDataset good(list, small_train_pipeline(1));

  SUBCASE("re-thrown at next() with its message, then the loader can start again") {
    within_seconds(20, [&] {
      Loader loader(bad, {.batch_size = 2, .num_workers = 3, .prefetch = 2});
      loader.start_epoch(0);
      CHECK_THROWS_WITH_AS([&] { while (loader.next()) {} }(), doctest::Contains("boom in a transform"), tv::Error);
      auto batches = all_batches(loader, 1);  // calls > 5 now: no more throws
      CHECK(batches.size() == 12);
    });
  }
  SUBCASE("destroyed while a worker throws, without calling next()") {
    within_seconds(20, [&] {
      Loader loader(bad, {.batch_size = 2, .num_workers = 2, .prefetch = 4});  // 8 samples ahead: the 6th throws
      loader.start_epoch(0);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    });
  }
  SUBCASE("destroyed after one batch") {
    within_seconds(20, [&] {
      Loader loader(good, {.batch_size = 2, .num_workers = 2, .prefetch = 1});
      loader.start_epoch(0);
      CHECK(loader.next());
    });
  }
  SUBCASE("stop() mid-epoch, then a new epoch") {
    within_seconds(20, [&] {
      Loader loader(good, {.batch_size = 4, .num_workers = 3, .prefetch = 3});
      loader.start_epoch(0);
      CHECK(loader.next());
      loader.stop();
      CHECK_FALSE(loader.next());
      loader.start_epoch(0);
      loader.start_epoch(1);  // restarting an epoch in flight
      CHECK(all_batches(loader, 2).size() == 6);
    });
  }
  SUBCASE("bad options") {
    CHECK_THROWS_WITH_AS(Loader(good, {.batch_size = 0}), doctest::Contains("batch_size must be >= 1"), tv::Error);
    CHECK_THROWS_WITH_AS(Loader(good, {.num_workers = -1}), doctest::Contains("num_workers must be >= 0"), tv::Error);
    Loader l(good, {.batch_size = 4});
    CHECK_THROWS_WITH_AS(l.start_epoch(0, l.num_batches() + 1), doctest::Contains(("is not in [0, " + std::to_string(l.num_batches()) + "]").c_str()), tv::Error);
    Loader loader(good);
    CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains("start_epoch"), tv::Error);
  }
}
