// data/: MMAction2's annotation lists on the repo's real files and bad lines (errors name file:line),
// SampleFrames against PIPELINE.md's worked indices and edge cases, crop boxes as data, Resize sizes and
// OpenCV-style bilinear pixels on hand-checked cases, Normalize + FormatShape layout.
#include <doctest/doctest.h>

#include <string>
#include <tinyvid/data/annotations.hpp>
#include <tinyvid/data/sampling.hpp>
#include <tinyvid/data/transforms.hpp>
#include <vector>

using namespace tv::data;
using I = std::vector<int64_t>;

namespace {
const std::string kAnn = TINYVID_FIXTURE_DIR "/../data/videos/annotations";

Image ramp(int64_t h, int64_t w, int64_t c = 3) {  // distinct values per pixel and channel
  Image img(h, w, c);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>((i * 7) % 251);
  return img;
}
I sample(const SampleFrames& s, int64_t n, int64_t start = 0) {
  tv::Generator g(1);
  return s(n, start, g);
}
}  // namespace

TEST_CASE("data: video and rawframe lists of the repo parse as MMAction2") {
  auto v = read_video_list(kAnn + "/video_test_list.txt");
  REQUIRE(v.size() == 2);
  CHECK(v[0].path == "test.mp4");
  CHECK(v[0].label() == 0);
  CHECK(v[0].total_frames == -1);
  CHECK((read_video_list(kAnn + "/video_test_list.txt", {.data_prefix = "data/videos"})[1].path == "data/videos/test.mp4"));
  CHECK((read_video_list(kAnn + "/video_test_list.txt", {.data_prefix = "data/"})[1].path == "data/test.mp4"));

  auto r = read_rawframe_list(kAnn + "/rawframe_test_list.txt", {.data_prefix = "/d"});
  REQUIRE(r.size() == 2);
  CHECK((r[1] == Annotation{"/d/imgs", 5, 0, {127}}));

  auto o = read_rawframe_list(kAnn + "/rawframe_test_list_with_offset.txt", {.with_offset = true});
  REQUIRE(o.size() == 2);
  CHECK((o[0] == Annotation{"imgs", 5, 2, {127}}));

  auto m = read_rawframe_list(kAnn + "/rawframe_test_list_multi_label.txt", {.multi_class = true, .num_classes = 6});
  REQUIRE(m.size() == 2);
  CHECK((m[0].labels == I{1}));
  CHECK((m[1].labels == I{3, 5}));
  CHECK((multi_hot(m[1], 6) == std::vector<float>{0, 0, 0, 1, 0, 1}));
  auto vm = read_video_list(kAnn + "/video_test_list_multi_label.txt", {.multi_class = true, .num_classes = 5});
  CHECK((vm[1].labels == I{0, 2, 4}));

  // Without multi_class a multi-label line is an error naming file and line.
  CHECK_THROWS_WITH_AS(read_video_list(kAnn + "/video_test_list_multi_label.txt"),
                       doctest::Contains("video_test_list_multi_label.txt:1: expected one label"), tv::Error);
  CHECK_THROWS_WITH_AS(read_rawframe_list(kAnn + "/rawframe_test_list_multi_label.txt"),
                       doctest::Contains("rawframe_test_list_multi_label.txt:2: expected one label"), tv::Error);
  CHECK_THROWS_WITH_AS(read_video_list(kAnn + "/missing.txt"), doctest::Contains("missing.txt"), tv::Error);
}

TEST_CASE("data: label maps") {
  auto k = read_label_map(kAnn + "/label_map_k400.txt");
  REQUIRE(k.size() == 400);
  CHECK(k[0] == "abseiling");
  CHECK(k[1] == "air drumming");
  auto s1 = read_label_map(kAnn + "/sthv1/label_map.txt");
  auto s2 = read_label_map(kAnn + "/sthv2/label_map.txt");
  REQUIRE(s1.size() == 174);
  REQUIRE(s2.size() == 174);
  CHECK(s1[0] == "Holding something");
  CHECK(s2[0] == "Approaching something with your camera");
  CHECK_THROWS_WITH_AS(parse_label_map("a\n\nb\n", "m.txt"), doctest::Contains("m.txt:2: expected a class name"), tv::Error);
  CHECK_THROWS_WITH_AS(parse_label_map("a\nb\na\n", "m.txt"), doctest::Contains("m.txt:3: expected unique"), tv::Error);
}

TEST_CASE("data: list lines as MMAction2 splits them, bad lines name file:line") {
  // Videos: strip, then split on the one delimiter; rawframes: any whitespace; \r\n endings; no label -> -1.
  auto v = parse_video_list("  a.mp4 3 \r\nb.mp4\n", "v.txt");
  REQUIRE(v.size() == 2);
  CHECK((v[0] == Annotation{"a.mp4", -1, 0, {3}}));
  CHECK(v[1].label() == -1);
  CHECK((parse_video_list("a.mp4\t3\n", "v.txt", {.delimiter = '\t'})[0].label() == 3));
  CHECK((parse_video_list("my video.mp4\t3\n", "v.txt", {.delimiter = '\t'})[0].path == "my video.mp4"));
  auto r = parse_rawframe_list("d1\t10   2\nd2 7\n", "r.txt");
  CHECK((r[0] == Annotation{"d1", 10, 0, {2}}));
  CHECK((r[1] == Annotation{"d2", 7, 0, {-1}}));
  CHECK(format_rawframe_list(r) == "d1 10 2\nd2 7\n");
  CHECK(format_video_list(v) == "a.mp4 3\nb.mp4\n");
  CHECK(parse_video_list(format_video_list(v), "again") == v);

  struct Bad {
    const char* name;
    std::string text;
    bool rawframes;
    const char* message;
  };
  const Bad bad[] = {
      {"blank", "a.mp4 1\n\nb.mp4 2\n", false, "v.txt:2: expected 'path label', got a blank line"},
      {"double space", "a.mp4  1\n", false, "v.txt:1: expected 'path label' separated by exactly one ' '"},
      {"tab", "a.mp4\t1\n", false, "v.txt:1: expected 'path label' separated by exactly one ' '"},
      {"bad label", "a.mp4 x1\n", false, "v.txt:1: expected an integer label, got 'x1'"},
      {"raw blank", "d 3 1\n   \n", true, "v.txt:2: expected 'frame_dir total_frames label', got a blank line"},
      {"raw short", "d\n", true, "v.txt:1: expected 'frame_dir total_frames label', got 'd'"},
      {"raw frames", "d 3.5 1\n", true, "v.txt:1: expected an integer total_frames, got '3.5'"},
      {"raw zero", "d 0 1\n", true, "v.txt:1: expected total_frames >= 1, got 0"},
  };
  for (const Bad& b : bad) {
    SUBCASE(b.name) {
      if (b.rawframes)
        CHECK_THROWS_WITH_AS(parse_rawframe_list(b.text, "v.txt"), doctest::Contains(b.message), tv::Error);
      else
        CHECK_THROWS_WITH_AS(parse_video_list(b.text, "v.txt"), doctest::Contains(b.message), tv::Error);
    }
  }
  CHECK_THROWS_WITH_AS((parse_rawframe_list("d x 3 1\n", "o.txt", {.with_offset = true})),
                       doctest::Contains("o.txt:1: expected an integer offset, got 'x'"), tv::Error);
}

// A bad label is an error naming FILE:LINE as the list loads (make_dataset passes the model's num_classes),
// never a failure mid-epoch: in every list format, single- and multi-label, or collected for check-videos.
TEST_CASE("data: labels are checked against num_classes as a list loads, by FILE:LINE") {
  struct Row {
    const char* name;
    std::string text;
    char kind;  // 'v' video list, 'r' rawframes, 'o' rawframes with offset
    ListOptions options;
    const char* message;  // empty: the list loads
  };
  const Row rows[] = {
      {"video", "a.mp4 0\nb.mp4 412\n", 'v', {.num_classes = 400}, "v.txt:2: label 412 is outside [0, 400) (num_classes)"},
      {"video last class", "a.mp4 399\n", 'v', {.num_classes = 400}, ""},
      {"video tab", "a b.mp4\t400\n", 'v', {.num_classes = 400, .delimiter = '\t'},
       "v.txt:1: label 400 is outside [0, 400) (num_classes)"},
      {"rawframes", "d 3 1\nd 3 1\nd 3 7\n", 'r', {.num_classes = 5}, "v.txt:3: label 7 is outside [0, 5) (num_classes)"},
      {"rawframes offset", "d 2 3 5\n", 'o', {.num_classes = 5, .with_offset = true},
       "v.txt:1: label 5 is outside [0, 5) (num_classes)"},
      {"multi-label", "a 1 9\n", 'v', {.multi_class = true, .num_classes = 5}, "v.txt:1: label 9 is outside [0, 5) (num_classes)"},
      {"multi-label rawframes", "d 3 0 4\nd 3 2 -1\n", 'r', {.multi_class = true, .num_classes = 5},
       "v.txt:2: label -1 is negative"},
      // Without num_classes any label >= 0 loads, a negative one never does; a line without a label is
      // an inference list's (label -1) unless num_classes asks for labels.
      {"unchecked", "a.mp4 412\nb.mp4\n", 'v', {}, ""},
      {"negative", "a.mp4 3\nb.mp4 -1\n", 'v', {}, "v.txt:2: label -1 is negative; labels are class indices from 0"},
      {"negative rawframes", "d 3 -4\n", 'r', {}, "v.txt:1: label -4 is negative"},
      {"missing", "a.mp4 3\nb.mp4\n", 'v', {.num_classes = 4}, "v.txt:2: expected a label in [0, 4) (num_classes), got none"},
      {"bad num_classes", "a.mp4 3\n", 'v', {.num_classes = -1}, "num_classes must be >= 0 (0: unchecked), got -1"},
      {"multi-label unchecked", "a 1 2\n", 'v', {.multi_class = true}, "num_classes must be > 0 with multi_class, got 0"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    auto load = [&] {
      return r.kind == 'v' ? parse_video_list(r.text, "v.txt", r.options) : parse_rawframe_list(r.text, "v.txt", r.options);
    };
    if (std::string(r.message).empty()) CHECK_NOTHROW(load());
    else CHECK_THROWS_WITH_AS(load(), doctest::Contains(r.message), tv::Error);
  }

  // check-videos' way: every bad label collected with its line, every line kept.
  std::vector<BadLabel> bad;
  const auto list = parse_video_list("a.mp4 -3\nb.mp4 1\nc.mp4 4\nd.mp4\n", "l.txt", {.num_classes = 4, .bad_labels = &bad});
  CHECK(list.size() == 4);
  REQUIRE(bad.size() == 3);
  CHECK((std::vector<size_t>{bad[0].line, bad[1].line, bad[2].line} == std::vector<size_t>{1, 3, 4}));
  CHECK((I{bad[0].label, bad[1].label, bad[2].label} == I{-3, 4, -1}));
  CHECK(bad[0].source == "l.txt");
  CHECK(bad[1].message == "l.txt:3: label 4 is outside [0, 4) (num_classes)");
}

TEST_CASE("data: Kinetics CSV and Something-Something converters") {
  auto k400 = read_label_map(kAnn + "/label_map_k400.txt");
  const std::string csv =
      "label,youtube_id,time_start,time_end,split,is_cc\n"
      "abseiling,0wR5jVB-WPk,417,427,val,0\n"
      "\"air drumming\",--nQbRBEz2s,104.0,114,val,0\n";
  auto k = parse_kinetics_csv(csv, "k.csv", k400);
  REQUIRE(k.size() == 2);
  CHECK((k[0] == Annotation{"abseiling/0wR5jVB-WPk_000417_000427.mp4", -1, 0, {0}}));
  CHECK((k[1] == Annotation{"air_drumming/--nQbRBEz2s_000104_000114.mp4", -1, 0, {1}}));
  CHECK(parse_kinetics_csv(csv, "k.csv", k400, 1)[1].path == "--nQbRBEz2s_000104_000114.mp4");
  CHECK(format_video_list(k) == "abseiling/0wR5jVB-WPk_000417_000427.mp4 0\nair_drumming/--nQbRBEz2s_000104_000114.mp4 1\n");
  auto t = parse_kinetics_csv("youtube_id,time_start,time_end,split\nabc,1,11,test\n", "t.csv", k400);
  CHECK((t[0] == Annotation{"abc_000001_000011.mp4", -1, 0, {-1}}));
  CHECK_THROWS_WITH_AS(parse_kinetics_csv("label,youtube_id,time_start,time_end,split\nflying,x,1,2,val\n", "k.csv", k400),
                       doctest::Contains("k.csv:2: expected a class of the label map, got 'flying'"), tv::Error);
  CHECK_THROWS_WITH_AS(parse_kinetics_csv("label,youtube_id,time_start,time_end,split\nabseiling,x,1\n", "k.csv", k400),
                       doctest::Contains("k.csv:2: expected 5 fields"), tv::Error);
  CHECK_THROWS_WITH_AS(parse_kinetics_csv("name,id\n", "k.csv", k400), doctest::Contains("k.csv:1: expected the header"),
                       tv::Error);

  auto s1 = read_label_map(kAnn + "/sthv1/label_map.txt");
  auto v1 = parse_sthv1_split("100218;Holding something\n42;Turning the camera left while filming something\n7\n", "v1.csv", s1);
  REQUIRE(v1.size() == 3);
  CHECK(v1[0].path == "100218");
  CHECK(v1[0].label() == 0);
  CHECK(v1[1].label() == 2);
  CHECK(v1[2].label() == -1);
  v1[0].total_frames = 37;
  v1[1].total_frames = 40;
  v1[2].total_frames = 12;
  CHECK(format_rawframe_list(v1) == "100218 37 0\n42 40 2\n7 12\n");
  CHECK_THROWS_WITH_AS(parse_sthv1_split("1;Holding something\n2;Juggling\n", "v1.csv", s1),
                       doctest::Contains("v1.csv:2: expected a class of the label map, got 'Juggling'"), tv::Error);

  auto s2 = parse_sthv2_labels("{\"Approaching something with your camera\": \"0\",\n \"Attaching something to something\": \"1\"}",
                               "labels.json");
  CHECK((s2 == std::vector<std::string>{"Approaching something with your camera", "Attaching something to something"}));
  const std::string split =
      "[{\"id\": \"78687\", \"label\": \"x\", \"template\": \"Attaching [something] to [something]\",\n"
      "  \"placeholders\": [\"a\", \"b\"]},\n"
      " {\"id\": \"42326\", \"template\": \"Approaching [something] with your camera\"},\n"
      " {\"id\": \"1\"}]";
  auto v2 = parse_sthv2_split(split, "train.json", s2);
  REQUIRE(v2.size() == 3);
  CHECK((v2[0] == Annotation{"78687.webm", -1, 0, {1}}));
  CHECK(v2[1].label() == 0);
  CHECK(v2[2].label() == -1);
  CHECK_THROWS_WITH_AS(parse_sthv2_split("[{\"id\": \"1\"},\n{\"id\": \"2\", \"template\": \"Juggling\"}]", "t.json", s2),
                       doctest::Contains("t.json:2: expected a class of the label map, got 'Juggling'"), tv::Error);
  CHECK_THROWS_WITH_AS(parse_sthv2_split("[{\"id\": \"1\"},\n{\"id\" \"2\"}]", "t.json", s2),
                       doctest::Contains("t.json:2: invalid JSON: expected ':'"), tv::Error);
  CHECK_THROWS_WITH_AS(parse_sthv2_labels("{\"a\": \"0\", \"b\": \"0\"}", "l.json"),
                       doctest::Contains("l.json:1: expected distinct class indices"), tv::Error);
}

TEST_CASE("data: SampleFrames test-mode indices of PIPELINE.md") {
  struct Row {
    const char* name;
    int64_t n, start;
    I three, eight, twice_base;
  };
  const Row rows[] = {
      {"test.mp4", 300, 0, {50, 150, 250}, {18, 56, 93, 131, 168, 206, 243, 281}, {0, 37, 75, 112, 150, 187, 225, 262}},
      {"demo.mp4", 280, 0, {46, 140, 233}, {17, 52, 87, 122, 157, 192, 227, 262}, {0, 35, 70, 105, 140, 175, 210, 245}},
      {"part_0.mp4", 32, 0, {5, 16, 26}, {2, 6, 10, 14, 18, 22, 26, 30}, {0, 4, 8, 12, 16, 20, 24, 28}},
      {"demo_skeleton.mp4", 72, 0, {12, 36, 60}, {4, 13, 22, 31, 40, 49, 58, 67}, {0, 9, 18, 27, 36, 45, 54, 63}},
      {"flipping_a_pancake.mkv", 310, 0, {51, 155, 258}, {19, 58, 96, 135, 174, 213, 251, 290},
       {0, 38, 77, 116, 155, 193, 232, 271}},
      {"img_sample", 10, 1, {2, 6, 9}, {1, 2, 4, 5, 6, 7, 9, 10}, {1, 2, 3, 4, 6, 7, 8, 9}},
  };
  for (const Row& r : rows) {
    SUBCASE(r.name) {
      CHECK((sample({.clip_len = 1, .num_clips = 3, .test_mode = true}, r.n, r.start) == r.three));
      CHECK((sample({.clip_len = 1, .num_clips = 8, .test_mode = true}, r.n, r.start) == r.eight));
      I twice = r.eight;
      twice.insert(twice.end(), r.twice_base.begin(), r.twice_base.end());
      CHECK((sample({.clip_len = 1, .num_clips = 8, .twice_sample = true, .test_mode = true}, r.n, r.start) == twice));
    }
  }
  I t25;
  for (int64_t i = 0; i < 25; ++i) t25.push_back(6 + 12 * i);
  CHECK((sample({.clip_len = 1, .num_clips = 25, .test_mode = true}, 300) == t25));
  // Frame folders: floor(offset) + 1.
  CHECK((sample({.clip_len = 1, .num_clips = 3, .test_mode = true}, 300, 1) == I{51, 151, 251}));
  CHECK((sample({.clip_len = 1, .num_clips = 8, .test_mode = true}, 300, 1) == I{19, 57, 94, 132, 169, 207, 244, 282}));
}

TEST_CASE("data: SampleFrames edge cases of PIPELINE.md section 5") {
  SampleFrames train8{.clip_len = 1, .num_clips = 8};
  CHECK((sample(train8, 3) == I{0, 0, 1, 1, 2, 2, 2, 0}));
  CHECK((sample(train8, 4) == I{0, 0, 1, 2, 2, 2, 3, 0}));
  CHECK((sample(train8, 5) == I{0, 1, 1, 2, 2, 3, 4, 4}));
  CHECK((sample(train8, 7) == I{0, 1, 2, 3, 4, 4, 5, 6}));
  CHECK((sample({.clip_len = 1, .num_clips = 8, .test_mode = true}, 5) == I{0, 0, 1, 2, 2, 3, 4, 4}));
  // 3D test clips, np.round half to even: N=164, 8x8, 10 clips.
  I starts;
  auto ind = sample({.clip_len = 8, .frame_interval = 8, .num_clips = 10, .test_mode = true}, 164);
  REQUIRE(ind.size() == 80);
  for (size_t c = 0; c < 10; ++c) starts.push_back(ind[c * 8]);
  CHECK((starts == I{0, 12, 24, 36, 48, 59, 71, 83, 95, 107}));
  CHECK((I(ind.begin(), ind.begin() + 8) == I{0, 8, 16, 24, 32, 40, 48, 56}));
  CHECK((sample({.clip_len = 8, .frame_interval = 8, .num_clips = 1, .test_mode = true}, 164)[0] == 53));  // 107 // 2
  // A video shorter than its clip: loop wraps, repeat_last repeats the last frame.
  CHECK((sample({.clip_len = 8, .test_mode = true}, 5) == I{0, 1, 2, 3, 4, 0, 1, 2}));
  CHECK((sample({.clip_len = 8}, 5) == I{0, 1, 2, 3, 4, 0, 1, 2}));
  CHECK((sample({.clip_len = 8, .out_of_bound_opt = OutOfBound::repeat_last, .test_mode = true}, 5, 1) ==
        I{1, 2, 3, 4, 5, 5, 5, 5}));
  // TDN's sampling: 8 segments of 5 consecutive frames. Test mode as its authors' _get_val_indices: tick (100 - 5 + 1)
  // / 8 = 12, segment starts int(6 + 12 i), frame folders from 1 (MMAction2's 3D clips would start at round(95 i / 7));
  // a video of at most 8 + 4 frames starts every segment at its first frame. Past the end the last frame repeats.
  const SampleFrames tdn_test{.clip_len = 5, .num_clips = 8, .out_of_bound_opt = OutOfBound::repeat_last,
                              .test_mode = true, .segment_test_offsets = true};
  I tdn, tdn_short;
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t k = 0; k < 5; ++k) tdn.push_back(7 + 12 * i + k), tdn_short.push_back(1 + k);
  CHECK((sample(tdn_test, 100, 1) == tdn));
  CHECK((sample(tdn_test, 12, 1) == tdn_short));
  CHECK((sample(tdn_test, 13, 1)[5] == 1 + 1));  // tick 9/8: segment 1 starts at int(1.6875) = 1
  SampleFrames twice = tdn_test;
  twice.twice_sample = true;
  CHECK_THROWS_WITH_AS(sample(twice, 100), doctest::Contains("segment_test_offsets does not take twice_sample"), tv::Error);
  CHECK((sample({.clip_len = 5, .num_clips = 2, .out_of_bound_opt = OutOfBound::repeat_last}, 4, 1) ==
         I{1, 2, 3, 4, 4, 1, 2, 3, 4, 4}));
  CHECK_THROWS_WITH_AS(sample(train8, 0), doctest::Contains("at least one frame, got total_frames = 0"), tv::Error);
  CHECK_THROWS_WITH_AS((sample({.clip_len = 0}, 10)), doctest::Contains("clip_len must be >= 1, got 0"), tv::Error);
}

TEST_CASE("data: SampleFrames train mode stays in its segments") {
  tv::Generator g(7);
  SampleFrames s{.clip_len = 1, .num_clips = 8};
  for (int rep = 0; rep < 50; ++rep) {
    auto ind = s(300, 0, g);  // avg interval 37: clip i lies in [37 i, 37 i + 37)
    for (int64_t i = 0; i < 8; ++i) {
      CHECK(ind[static_cast<size_t>(i)] >= 37 * i);
      CHECK(ind[static_cast<size_t>(i)] < 37 * i + 37);
    }
    auto sorted = SampleFrames{.clip_len = 4, .frame_interval = 2, .num_clips = 4}(20, 0, g);  // N > ori, avg 0
    REQUIRE(sorted.size() == 16);
    for (size_t c = 0; c + 1 < 4; ++c) CHECK(sorted[c * 4] <= sorted[(c + 1) * 4]);
    auto jit = SampleFrames{.clip_len = 4, .frame_interval = 4, .num_clips = 2, .temporal_jitter = true,
                            .keep_tail_frames = true}(64, 1, g);
    for (int64_t v : jit) CHECK((v >= 1 && v <= 64));
  }
}

TEST_CASE("data: Resize sizes follow mmcv.rescale_size") {
  Resize short256{.scale = {-1, 256}};
  CHECK((short256.output_size(340, 256) == std::pair<int64_t, int64_t>{340, 256}));
  CHECK((short256.output_size(1920, 1080) == std::pair<int64_t, int64_t>{455, 256}));
  CHECK((short256.output_size(426, 240) == std::pair<int64_t, int64_t>{454, 256}));
  CHECK((short256.output_size(320, 240) == std::pair<int64_t, int64_t>{341, 256}));
  CHECK((short256.output_size(240, 320) == std::pair<int64_t, int64_t>{256, 341}));
  CHECK((Resize{.scale = {340, 256}}.output_size(1920, 1080) == std::pair<int64_t, int64_t>{340, 191}));
  CHECK((Resize{.scale = {224, 224}, .keep_ratio = false}.output_size(300, 200) == std::pair<int64_t, int64_t>{224, 224}));
  CHECK((Resize{.scale_factor = 0.5}.output_size(341, 256) == std::pair<int64_t, int64_t>{171, 128}));
  CHECK_THROWS_WITH_AS((Resize{.scale = {-1, 256}, .keep_ratio = false}.output_size(10, 10)),
                       doctest::Contains("keep_ratio=false needs an exact scale"), tv::Error);
  Clip c{ramp(24, 32), ramp(24, 32)};
  Clip r = short256(c);
  REQUIRE(r.size() == 2);
  CHECK(r[1].width == 341);
  CHECK(r[1].height == 256);
}

TEST_CASE("data: bilinear resize matches OpenCV's INTER_LINEAR on hand-checked cases") {
  Image row(1, 2, 1);
  row.pixels = {0, 255};
  // cv2.resize(np.array([[0, 255]], np.uint8), (4, 1)) -> [[0, 64, 191, 255]]: edges clamp, weights 1536/512.
  CHECK((resize_bilinear(row, 4, 1).pixels == std::vector<uint8_t>{0, 64, 191, 255}));
  // Vertical: the same in a column.
  Image col(2, 1, 1);
  col.pixels = {0, 255};
  CHECK((resize_bilinear(col, 1, 4).pixels == std::vector<uint8_t>{0, 64, 191, 255}));
  // An exact halving is OpenCV's 2x2 area mean, rounded.
  Image sq(2, 2, 1);
  sq.pixels = {0, 1, 1, 1};
  CHECK((resize_bilinear(sq, 1, 1).pixels == std::vector<uint8_t>{1}));  // (3 + 2) >> 2
  Image img = ramp(5, 7);
  CHECK(resize_bilinear(img, 7, 5).pixels == img.pixels);
  // A constant frame stays constant in the SIMD-emulated part of the rows too (36 * 3 bytes per row).
  Image flat(30, 40, 3);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t{200});
  Image out = resize_bilinear(flat, 36, 27);
  CHECK((std::all_of(out.pixels.begin(), out.pixels.end(), [](uint8_t v) { return v == 200; })));
}

TEST_CASE("data: crop boxes and their order") {
  // ThreeCrop(256) after Resize(-1, 256) of a 340x256 frame: left, right, middle.
  CHECK((ThreeCrop{{256, 256}}.boxes(340, 256) == std::vector<Box>{{0, 0, 256, 256}, {84, 0, 256, 256}, {42, 0, 256, 256}}));
  CHECK((ThreeCrop{{256, 256}}.boxes(256, 341) == std::vector<Box>{{0, 0, 256, 256}, {0, 84, 256, 256}, {0, 42, 256, 256}}));
  CHECK_THROWS_WITH_AS((ThreeCrop{{224, 224}}.boxes(340, 256)), doctest::Contains("span the frame's height or width"),
                       tv::Error);
  // TenCrop(224) on 340x256: w_step 29, h_step 8; UL, UR, LL, LR, centre.
  CHECK((TenCrop{{224, 224}}.boxes(340, 256) == std::vector<Box>{{0, 0, 224, 224}, {116, 0, 224, 224}, {0, 32, 224, 224},
                                                                  {116, 32, 224, 224}, {58, 16, 224, 224}}));
  CHECK((CenterCrop{{224, 224}}.box(341, 256) == Box{58, 16, 224, 224}));
  CHECK_THROWS_WITH_AS((CenterCrop{{224, 224}}.box(200, 256)), doctest::Contains("CenterCrop: expected a crop_size"), tv::Error);

  MultiScaleCrop msc{.input_size = {224, 224}, .scales = {1, .875, .75, .66}, .num_fixed_crops = 13};
  using P = std::pair<int64_t, int64_t>;
  CHECK((msc.candidate_sizes(340, 256) == std::vector<P>{{256, 256}, {224, 256}, {256, 224}, {224, 224}, {192, 224},
                                                        {224, 192}, {192, 192}, {168, 192}, {192, 168}, {168, 168}}));
  CHECK((MultiScaleCrop::fixed_offsets(340, 256, 224, 224, 13) ==
        std::vector<P>{{0, 0}, {116, 0}, {0, 32}, {116, 32}, {58, 16}, {0, 16}, {116, 16}, {58, 32}, {58, 0}, {29, 8},
                       {87, 8}, {29, 24}, {87, 24}}));
  CHECK(MultiScaleCrop::fixed_offsets(340, 256, 224, 224, 5).size() == 5);
  tv::Generator g(3);
  for (int i = 0; i < 100; ++i) {
    Box b = msc.sample_box(340, 256, g);
    auto sizes = msc.candidate_sizes(340, 256);
    CHECK((std::find(sizes.begin(), sizes.end(), P{b.w, b.h}) != sizes.end()));
    auto offs = MultiScaleCrop::fixed_offsets(340, 256, b.w, b.h, 13);
    CHECK((std::find(offs.begin(), offs.end(), P{b.x, b.y}) != offs.end()));
    Box rr = RandomResizedCrop{}.sample_box(340, 256, g);
    CHECK((rr.x >= 0 && rr.y >= 0 && rr.x + rr.w <= 340 && rr.y + rr.h <= 256 && rr.w >= 1 && rr.h >= 1));
    Box rc = RandomCrop{224}.sample_box(340, 256, g);
    CHECK((rc.x >= 0 && rc.x < 116 && rc.y >= 0 && rc.y < 32 && rc.w == 224));
  }
  // Impossible areas fall back to the centred square.
  CHECK((RandomResizedCrop{.area_range = {1.0, 1.0}, .aspect_ratio_range = {4.0, 4.0}}.sample_box(340, 256, g) ==
        Box{42, 0, 256, 256}));
}

TEST_CASE("data: multi-view crops, flip and Normalize + FormatShape") {
  Clip clip{ramp(8, 12), ramp(8, 12)};
  clip[1].pixels[0] = 99;
  Clip ten = TenCrop{{6, 4}}(clip);
  REQUIRE(ten.size() == 20);  // 5 positions x (2 frames + 2 flipped)
  auto boxes = TenCrop{{6, 4}}.boxes(12, 8);
  CHECK(ten[0].pixels == crop(clip[0], boxes[0]).pixels);
  CHECK(ten[1].pixels == crop(clip[1], boxes[0]).pixels);
  CHECK(ten[2].pixels == flip_horizontal(crop(clip[0], boxes[0])).pixels);
  CHECK(ten[4].pixels == crop(clip[0], boxes[1]).pixels);
  Clip three = ThreeCrop{{8, 8}}(clip);
  REQUIRE(three.size() == 6);
  CHECK((three[3].pixels == crop(clip[1], Box{4, 0, 8, 8}).pixels));  // crop 2 (right), frame 2
  tv::Generator g(0);
  CHECK((Flip{1.0}(clip, g)[1].pixels == flip_horizontal(clip[1]).pixels));
  CHECK((Flip{0.0}(clip, g)[1].pixels == clip[1].pixels));
  CHECK(flip_horizontal(flip_horizontal(clip[0])).pixels == clip[0].pixels);
  // flip_label_map: a flipped clip of a directed class takes its mirror class; others keep theirs.
  const Flip swap{.flip_ratio = 1.0, .flip_label_map = {{2, 4}, {4, 2}}}, keep{.flip_ratio = 0.0, .flip_label_map = {{2, 4}}};
  int64_t label = 2;
  CHECK((swap(clip, g, label)[0].pixels == flip_horizontal(clip[0]).pixels));
  CHECK(label == 4);
  swap(clip, g, label);
  CHECK(label == 2);
  keep(clip, g, label);
  CHECK(label == 2);
  label = 7;
  swap(clip, g, label);
  CHECK(label == 7);

  Clip small{Image(1, 2), Image(1, 2)};
  small[0].pixels = {0, 128, 255, 10, 20, 30};
  small[1].pixels = {1, 2, 3, 4, 5, 6};
  auto t = Normalize{}(small);
  CHECK((t.shape() == tv::Shape{2, 3, 1, 2}));
  const float* d = t.data();
  CHECK(d[0] == (0.f - 123.675f) / 58.395f);    // frame 0, R, x 0
  CHECK(d[1] == (10.f - 123.675f) / 58.395f);   // frame 0, R, x 1
  CHECK(d[2] == (128.f - 116.28f) / 57.12f);    // frame 0, G, x 0
  CHECK(d[5] == (30.f - 103.53f) / 57.375f);    // frame 0, B, x 1
  CHECK(d[6] == (1.f - 123.675f) / 58.395f);    // frame 1, R, x 0
  CHECK_THROWS_WITH_AS((Normalize{}(Clip{Image(2, 2), Image(2, 3)})), doctest::Contains("frame 1 is 2x3x3"), tv::Error);
}

#include <tinyvid/data/kinetics200.hpp>

TEST_CASE("data: Kinetics-200 from the official id lists and the Kinetics-400 CSVs") {
  const std::string dir = TINYVID_FIXTURE_DIR "/../data/kinetics200";
  auto val = tv::data::kinetics200_split(dir + "/val_ytid_list.txt", dir + "/kinetics-400_val.csv");
  CHECK(val.classes.size() == 200);
  CHECK(val.entries.size() == 5000);
  CHECK(val.missing.empty());
  std::vector<int64_t> per_class(200, 0);
  for (const auto& e : val.entries) per_class.at(static_cast<size_t>(e.label()))++;
  CHECK(std::all_of(per_class.begin(), per_class.end(), [](int64_t n) { return n == 25; }));
  CHECK(std::is_sorted(val.classes.begin(), val.classes.end()));
  // The training split: a user's Kinetics-400 training CSV (here a stand-in with two listed ids and one
  // not listed), numbered by the validation split's classes; listed ids absent from it are reported.
  const std::string tmp = "/tmp/tinyvid_k200_train.csv";
  {
    std::ofstream f(tmp);
    f << "label,youtube_id,time_start,time_end,split,is_cc\n"
      << val.classes[3] << ",kIRmvrmc2nM,10,20,train,0\n"
      << "\"" << val.classes[7] << "\",2B65vtRd5Ck,0,10,train,0\n"
      << val.classes[0] << ",NOT_IN_LIST,0,10,train,0\n";
  }
  auto train = tv::data::kinetics200_split(dir + "/train_ytid_list.txt", tmp, val.classes);
  REQUIRE(train.entries.size() == 2);
  CHECK(train.entries[0].label() == 3);
  CHECK(train.entries[1].label() == 7);
  std::string class_dir = val.classes[3];  // "arm wrestling" -> arm_wrestling/, as MMAction2's folders
  std::replace(class_dir.begin(), class_dir.end(), ' ', '_');
  CHECK(train.entries[0].path == class_dir + "/kIRmvrmc2nM_000010_000020.mp4");
  CHECK(train.missing.size() == 80000 - 2);
  std::remove(tmp.c_str());
  CHECK_THROWS_WITH_AS(tv::data::kinetics200_split(dir + "/no_such_list.txt", dir + "/kinetics-400_val.csv"),
                       doctest::Contains("no_such_list.txt"), tv::Error);
  // A CSV without the label column (Kinetics' test split) cannot give classes.
  {
    std::ofstream f(tmp);
    f << "youtube_id,time_start,time_end,split\nkIRmvrmc2nM,10,20,test\n";
  }
  CHECK_THROWS_WITH_AS(tv::data::kinetics200_split(dir + "/train_ytid_list.txt", tmp, val.classes),
                       doctest::Contains("expected a CSV with a 'label' column"), tv::Error);
  std::remove(tmp.c_str());
}
