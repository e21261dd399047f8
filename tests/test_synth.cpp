// The synthetic dataset and VideoWriter: written to /tmp, read back with VideoReader.
#include <doctest/doctest.h>

#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "tinyvid/data/annotations.hpp"
#include "tinyvid/data/synth.hpp"
#include "tinyvid/data/video.hpp"
#include "tinyvid/data/video_writer.hpp"
#include "temp_files.hpp"

namespace {

namespace fs = std::filesystem;
using tv::data::Clip;
using tv::data::Image;
using testing::slurp;
using testing::TempDir;


// Centroid of the bright pixels (every channel above 150: the object, never the dark background).
std::pair<double, double> bright_centroid(const Image& img) {
  double sx = 0, sy = 0, n = 0;
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x)
      if (img.at(y, x, 0) > 150 && img.at(y, x, 1) > 150 && img.at(y, x, 2) > 150) sx += x, sy += y, n += 1;
  REQUIRE(n > 0);
  return {sx / n, sy / n};
}

Clip read_all(const std::string& path) {
  tv::data::VideoReader r(path, 1);
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < r.frame_count(); ++i) idx.push_back(i);
  return r.read(idx);
}

tv::data::SynthOptions tiny_options(const std::vector<std::string>& classes) {
  tv::data::SynthOptions o;
  o.classes = classes;
  o.train_per_class = 2;
  o.val_per_class = 1;
  o.size = 32;
  o.frames = 8;
  o.seed = 7;
  o.threads = 2;
  return o;
}

}  // namespace

TEST_CASE("synth: VideoWriter writes an MP4 that VideoReader reads back") {
  TempDir dir("writer");
  const std::string path = (dir.path / "w.mp4").string();
  Clip clip = tv::data::synth_video("move_right", 32, 10, 1);
  {
    tv::data::VideoWriter w(path, 32, 32, 8);
    for (const Image& f : clip) w.write(f);
    CHECK_THROWS_WITH_AS(w.write(Image(16, 32, 3)), doctest::Contains("expected a 32x32 RGB frame"), tv::Error);
    w.close();
  }
  tv::data::VideoReader r(path, 1);
  CHECK(r.frame_count() == 10);
  CHECK(r.width() == 32);
  CHECK(r.height() == 32);
  CHECK(r.fps() == doctest::Approx(8.0));
  CHECK(r.container().find("mp4") != std::string::npos);
  // H.264 whenever this FFmpeg can encode it (Debian's, through libx264), MPEG-4 Part 2 otherwise.
  CHECK(r.codec() == (avcodec_find_encoder(AV_CODEC_ID_H264) ? "h264" : "mpeg4"));
  const Clip back = read_all(path);
  double err = 0;
  for (size_t t = 0; t < clip.size(); ++t)
    for (size_t i = 0; i < clip[t].pixels.size(); ++i) err += std::abs(clip[t].pixels[i] - back[t].pixels[i]);
  err /= static_cast<double>(clip.size() * clip[0].pixels.size());
  CHECK(err < 8.0);  // lossy, but close: mean absolute error per channel value

  CHECK_THROWS_WITH_AS(tv::data::VideoWriter((dir.path / "odd.mp4").string(), 31, 32, 8), doctest::Contains("even width"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::data::VideoWriter((dir.path / "no_such_dir" / "x.mp4").string(), 32, 32, 8),
                       doctest::Contains("no_such_dir"), tv::Error);
}

// The encoder must not read memory it never wrote: x264's AVX-512 macroblock-tree code does (an encode's bytes
// followed the heap's old contents), so VideoWriter caps x264 at AVX2. Each encode here runs with glibc filling
// fresh blocks with another byte (M_PERTURB, what MALLOC_PERTURB_ sets).
TEST_CASE("synth: VideoWriter's bytes do not depend on what fresh memory holds") {
  TempDir dir("heap");
  const Clip clip = tv::data::synth_video("grow", 32, 8, 7);
  auto encode = [&](int junk) {
#ifdef __GLIBC__
    mallopt(M_PERTURB, junk);
    struct Reset {
      ~Reset() { mallopt(M_PERTURB, 0); }
    } reset;
#endif
    const fs::path p = dir.path / ("junk_" + std::to_string(junk) + ".mp4");
    {
      tv::data::VideoWriter w(p.string(), 32, 32, 8);
      for (const Image& f : clip) w.write(f);
      w.close();
    }
    return slurp(p);
  };
  const std::string first = encode(0);
  for (int junk : {1, 0x55, 0xAA, 0x13}) CHECK_MESSAGE(encode(junk) == first, "M_PERTURB " << junk);
}

TEST_CASE("synth: a tiny dataset is written, lists parse, resume rewrites nothing") {
  TempDir dir("dataset");
  const std::vector<std::string> classes = {"move_left", "move_right", "rotate_clockwise", "fade_in"};
  const auto o = tiny_options(classes);
  const auto rep = tv::data::write_synth_dataset(dir.path.string(), o);
  CHECK(rep.written == 12);
  CHECK(rep.skipped == 0);

  CHECK(tv::data::read_label_map((dir.path / "classes.txt").string()) == classes);
  tv::data::ListOptions lo;
  lo.data_prefix = (dir.path / "videos").string();
  const auto train = tv::data::read_video_list((dir.path / "train_list.txt").string(), lo);
  const auto val = tv::data::read_video_list((dir.path / "val_list.txt").string(), lo);
  REQUIRE(train.size() == 8);
  REQUIRE(val.size() == 4);
  std::vector<fs::file_time_type> mtimes;
  for (const auto* list : {&train, &val})
    for (const auto& a : *list) {
      REQUIRE(a.label() >= 0);
      REQUIRE(a.label() < 4);
      // The class folder of each file is the class of its label.
      CHECK(fs::path(a.path).parent_path().filename().string() == classes[static_cast<size_t>(a.label())]);
      tv::data::VideoReader r(a.path, 1);
      CHECK(r.frame_count() == 8);
      CHECK(r.width() == 32);
      mtimes.push_back(fs::last_write_time(a.path));
    }

  // A resumed run finds every video complete; a deleted or truncated one is written again.
  const auto again = tv::data::write_synth_dataset(dir.path.string(), o);
  CHECK(again.written == 0);
  CHECK(again.skipped == 12);
  size_t k = 0;
  for (const auto* list : {&train, &val})
    for (const auto& a : *list) CHECK(fs::last_write_time(a.path) == mtimes[k++]);
  fs::remove(train[0].path);
  fs::resize_file(train[1].path, 100);
  const auto repair = tv::data::write_synth_dataset(dir.path.string(), o);
  CHECK(repair.written == 2);
  CHECK(repair.skipped == 10);
  CHECK(tv::data::VideoReader(train[1].path, 1).frame_count() == 8);
  for (const auto& e : fs::recursive_directory_iterator(dir.path))
    CHECK_MESSAGE(e.path().extension() != ".part", "stray temporary file ", e.path().string());

  // A run with another seed (or size, frames, generator version) must not mix its videos with these.
  auto other = o;
  other.seed = 8;
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(dir.path.string(), other),
                       doctest::Contains("holds a dataset made with other settings or by another generator"), tv::Error);
  fs::remove(dir.path / "synth_manifest.txt");  // as a directory written before manifests existed
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(dir.path.string(), o),
                       doctest::Contains("holds videos but no synth_manifest.txt"), tv::Error);
}

TEST_CASE("synth: same seed gives identical files, another seed different videos") {
  TempDir a("seed_a"), b("seed_b"), c("seed_c");
  auto o = tiny_options({"move_up", "grow"});
  tv::data::write_synth_dataset(a.path.string(), o);
  o.threads = 1;  // the thread count must not matter
  tv::data::write_synth_dataset(b.path.string(), o);
  o.seed = 8;
  tv::data::write_synth_dataset(c.path.string(), o);
  for (const char* rel : {"move_up/train_0000.mp4", "move_up/val_0000.mp4", "grow/train_0001.mp4"}) {
    const Clip x = read_all((a.path / "videos" / rel).string());
    const Clip y = read_all((b.path / "videos" / rel).string());
    const Clip z = read_all((c.path / "videos" / rel).string());
    REQUIRE(x.size() == y.size());
    for (size_t t = 0; t < x.size(); ++t) CHECK(x[t].pixels == y[t].pixels);
    CHECK(x[0].pixels != z[0].pixels);
    CHECK(slurp(a.path / "videos" / rel) == slurp(b.path / "videos" / rel));
  }
  // Two samples of one class differ (random positions, colours, speeds).
  CHECK(read_all((a.path / "videos/move_up/train_0000.mp4").string())[0].pixels !=
        read_all((a.path / "videos/move_up/train_0001.mp4").string())[0].pixels);
  CHECK(slurp(a.path / "train_list.txt") == "move_up/train_0000.mp4 0\nmove_up/train_0001.mp4 0\n"
                                            "grow/train_0000.mp4 1\ngrow/train_0001.mp4 1\n");
}

TEST_CASE("synth: opposite classes move opposite ways in the decoded frames") {
  TempDir dir("motion");
  auto o = tiny_options({"move_left", "move_right", "move_up", "move_down", "grow", "shrink", "fade_in", "fade_out",
                         "rotate_clockwise", "rotate_counterclockwise"});
  o.train_per_class = 3;
  o.val_per_class = 0;
  o.size = 48;
  o.frames = 8;
  tv::data::write_synth_dataset(dir.path.string(), o);
  auto video = [&](const std::string& cls, int i) {
    return read_all((dir.path / "videos" / cls / ("train_000" + std::to_string(i) + ".mp4")).string());
  };
  auto bright_count = [](const Image& img) {
    int64_t n = 0;
    for (int64_t y = 0; y < img.height; ++y)
      for (int64_t x = 0; x < img.width; ++x) n += img.at(y, x, 0) > 150 && img.at(y, x, 1) > 150 && img.at(y, x, 2) > 150;
    return n;
  };
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    const Clip l = video("move_left", i), r = video("move_right", i), u = video("move_up", i), d = video("move_down", i);
    // x of the centroid falls for left and rises for right; y likewise for up/down; the other axis stays put.
    CHECK(bright_centroid(l.back()).first < bright_centroid(l.front()).first - 5);
    CHECK(bright_centroid(r.back()).first > bright_centroid(r.front()).first + 5);
    CHECK(std::abs(bright_centroid(r.back()).second - bright_centroid(r.front()).second) < 1.0);
    CHECK(bright_centroid(u.back()).second < bright_centroid(u.front()).second - 5);
    CHECK(bright_centroid(d.back()).second > bright_centroid(d.front()).second + 5);
    // Whole-frame brightness of a translation hardly changes (the object keeps its size).
    CHECK(std::abs(bright_count(r.back()) - bright_count(r.front())) < bright_count(r.front()) / 4 + 3);
    const Clip g = video("grow", i), s = video("shrink", i);
    CHECK(bright_count(g.back()) > 2 * bright_count(g.front()));
    CHECK(bright_count(s.front()) > 2 * bright_count(s.back()));
    const Clip fi = video("fade_in", i), fo = video("fade_out", i);
    CHECK(bright_count(fi.front()) == 0);
    CHECK(bright_count(fi.back()) > 20);
    CHECK(bright_count(fo.back()) == 0);
    CHECK(bright_count(fo.front()) > 20);
    // Rotation: the hand's tip angle about the frame centre turns the other way (clockwise = growing angle,
    // image y pointing down); the sign of the summed step is what tells the twins apart.
    auto turn = [](const Clip& c) {
      double total = 0;
      for (size_t t = 1; t < c.size(); ++t) {
        const auto p = bright_centroid(c[t - 1]), q = bright_centroid(c[t]);
        const double cx = c[t].width / 2.0, cy = c[t].height / 2.0;
        double da = std::atan2(q.second - cy, q.first - cx) - std::atan2(p.second - cy, p.first - cx);
        while (da > M_PI) da -= 2 * M_PI;
        while (da < -M_PI) da += 2 * M_PI;
        total += da;
      }
      return total;
    };
    CHECK(turn(video("rotate_clockwise", i)) > 0.5);
    CHECK(turn(video("rotate_counterclockwise", i)) < -0.5);
  }
}

TEST_CASE("synth: bad options are clear errors") {
  TempDir dir("bad");
  auto o = tiny_options({"move_sideways"});
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(dir.path.string(), o), doctest::Contains("unknown class 'move_sideways'"),
                       tv::Error);
  o = tiny_options({"grow", "grow"});
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(dir.path.string(), o), doctest::Contains("listed twice"), tv::Error);
  o = tiny_options({});
  o.size = 33;
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(dir.path.string(), o), doctest::Contains("even size"), tv::Error);
}

// ---- Presets: demo unchanged, hard added ----

TEST_CASE("synth: the demo preset is the default and its manifest is the text written before presets existed") {
  TempDir dir("demo_manifest");
  const auto o = tiny_options({"move_left", "grow"});
  CHECK(o.preset == "demo");
  CHECK(tv::data::synth_class_names("demo") == tv::data::synth_class_names());
  CHECK(tv::data::synth_class_names() ==
        std::vector<std::string>{"move_left", "move_right", "move_up", "move_down", "rotate_clockwise",
                                 "rotate_counterclockwise", "grow", "shrink", "fade_in", "fade_out"});
  tv::data::write_synth_dataset(dir.path.string(), o);
  // Literally the old text: existing demo datasets resume.
  CHECK(slurp(dir.path / "synth_manifest.txt") == "tinyvid synth generator 2\nseed 7\nsize 32\nframes 8\nfps 8\n");
  // The demo path renders what it rendered before presets: the preset-taking synth_video is the old one.
  for (const char* cls : {"move_left", "grow"}) {
    const Clip a = tv::data::synth_video(cls, 32, 8, 7, 1, 0);
    const Clip b = tv::data::synth_video("demo", cls, 32, 8, 7, 1, 0);
    REQUIRE(a.size() == b.size());
    for (size_t t = 0; t < a.size(); ++t) CHECK(a[t].pixels == b[t].pixels);
  }
}

TEST_CASE("synth: the hard preset's classes come in three families of time-reversed twins") {
  const auto names = tv::data::synth_class_names("hard");
  CHECK(names == std::vector<std::string>{
                     "flash_then_jump", "jump_then_flash", "flash_then_swell", "swell_then_flash", "jump_then_swell",
                     "swell_then_jump", "brighten", "darken", "warm", "cool", "zoom_in", "zoom_out", "target_right",
                     "target_left", "target_down", "target_up", "target_orbit_clockwise",
                     "target_orbit_counterclockwise"});
  const auto& classes = tv::data::synth_hard_classes();
  REQUIRE(classes.size() == 18);
  int order = 0, drift = 0, motion = 0;
  for (size_t i = 0; i < classes.size(); ++i) {
    const std::string family = classes[i].family;
    order += family == "order", drift += family == "drift", motion += family == "local_motion";
    // Twins sit side by side: same family and action, the second one reversed.
    if (i % 2 == 1) {
      CHECK(family == classes[i - 1].family);
      CHECK(classes[i].action == classes[i - 1].action);
      CHECK(classes[i].reverse);
      CHECK(!classes[i - 1].reverse);
    }
  }
  CHECK(order == 6);
  CHECK(drift == 6);
  CHECK(motion == 6);
  CHECK_THROWS_WITH_AS(tv::data::synth_class_names("easy"), doctest::Contains("unknown preset 'easy'; expected one of: demo, hard"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::data::synth_video("hard", "grow", 32, 8, 7, 0, 0),
                       doctest::Contains("unknown class 'grow' of preset 'hard'"), tv::Error);
}

TEST_CASE("synth: a hard video is a pure function of (seed, class, split, index)") {
  const Clip a = tv::data::synth_video("hard", "flash_then_jump", 32, 8, 3, 0, 1);
  const Clip b = tv::data::synth_video("hard", "flash_then_jump", 32, 8, 3, 0, 1);
  REQUIRE(a.size() == 8);
  CHECK(a[0].width == 32);
  for (size_t t = 0; t < a.size(); ++t) CHECK(a[t].pixels == b[t].pixels);
  CHECK(tv::data::synth_video("hard", "flash_then_jump", 32, 8, 3, 0, 2)[0].pixels != a[0].pixels);
  CHECK(tv::data::synth_video("hard", "flash_then_jump", 32, 8, 4, 0, 1)[0].pixels != a[0].pixels);
  CHECK(tv::data::synth_video("hard", "flash_then_jump", 32, 8, 3, 1, 1)[0].pixels != a[0].pixels);
}

TEST_CASE("synth: a hard dataset records its preset, and a directory of the other preset is refused") {
  TempDir hard("hard_set"), demo("demo_set");
  auto o = tiny_options({"brighten", "target_left"});
  o.preset = "hard";
  o.frames = 6;
  const auto rep = tv::data::write_synth_dataset(hard.path.string(), o);
  CHECK(rep.written == 6);
  CHECK(slurp(hard.path / "synth_manifest.txt") ==
        "tinyvid synth generator 2\npreset hard 2\nseed 7\nsize 32\nframes 6\nfps 8\n");
  CHECK(tv::data::read_label_map((hard.path / "classes.txt").string()) == o.classes);
  // The files hold what synth_video renders for the same (preset, class, split, index), up to the codec.
  const Clip decoded = read_all((hard.path / "videos/target_left/val_0000.mp4").string());
  const Clip rendered = tv::data::synth_video("hard", "target_left", 32, 6, 7, 1, 0);
  REQUIRE(decoded.size() == rendered.size());
  double err = 0;
  for (size_t t = 0; t < decoded.size(); ++t)
    for (size_t i = 0; i < decoded[t].pixels.size(); ++i) err += std::abs(decoded[t].pixels[i] - rendered[t].pixels[i]);
  CHECK(err / static_cast<double>(decoded.size() * decoded[0].pixels.size()) < 8.0);
  CHECK(tv::data::write_synth_dataset(hard.path.string(), o).skipped == 6);  // resumes

  auto as_demo = tiny_options({"move_left"});
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(hard.path.string(), as_demo),
                       doctest::Contains("holds a dataset of preset 'hard', this run asks for preset 'demo'"), tv::Error);
  tv::data::write_synth_dataset(demo.path.string(), as_demo);
  auto as_hard = tiny_options({"brighten"});
  as_hard.preset = "hard";
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(demo.path.string(), as_hard),
                       doctest::Contains("holds a dataset of preset 'demo', this run asks for preset 'hard'"), tv::Error);
  as_hard.preset = "medium";
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(demo.path.string(), as_hard),
                       doctest::Contains("unknown preset 'medium'; expected one of: demo, hard"), tv::Error);
  as_hard = tiny_options({"move_left"});
  as_hard.preset = "hard";
  CHECK_THROWS_WITH_AS(tv::data::write_synth_dataset(demo.path.string(), as_hard),
                       doctest::Contains("unknown class 'move_left'; known classes of preset 'hard': flash_then_jump"),
                       tv::Error);
}

namespace {

// A hard video of class cls from its plan, with the nuisances that would blur a cheap statistic switched off
// (unless keep_distractors): no occluder, no shake, no distractors, neutral gain and colour balance.
Clip plain_hard_video(const std::string& cls, uint64_t seed, int64_t size, int64_t frames, bool keep_distractors = false) {
  tv::Generator g(seed);
  auto plan = tv::data::detail::draw_hard_plan(cls, size, frames, g);
  plan.occluder = false;
  for (auto& j : plan.jitter) j = {0, 0};
  if (!keep_distractors) plan.distractors.clear();
  if (cls != "brighten" && cls != "darken") plan.gain = 1;
  if (cls != "warm" && cls != "cool") plan.cast = 0;
  return tv::data::detail::render_hard_video(plan);
}

double mean_value(const Image& img) {
  double sum = 0;
  for (uint8_t v : img.pixels) sum += v;
  return sum / static_cast<double>(img.pixels.size());
}

// Median of one channel (c = 0, 1, 2) or of the channels' mean (c = -1).
double median_channel(const Image& img, int c) {
  std::vector<double> v;
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x)
      v.push_back(c >= 0 ? img.at(y, x, c) : (img.at(y, x, 0) + img.at(y, x, 1) + img.at(y, x, 2)) / 3.0);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Mean absolute difference of horizontal neighbours: fine texture, which a zoom magnifies and so smooths.
double grain(const Image& img) {
  double sum = 0;
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 1; x < img.width; ++x)
      for (int c = 0; c < 3; ++c) sum += std::abs(img.at(y, x, c) - img.at(y, x - 1, c));
  return sum / static_cast<double>(img.height * (img.width - 1) * 3);
}

// The hard target's pixels: its brightest channel is at least 215 x 0.82 (value x the darkest shade), a
// distractor's at most 150, the background's well below.
bool on_target(const Image& img, int64_t y, int64_t x) {
  return std::max({img.at(y, x, 0), img.at(y, x, 1), img.at(y, x, 2)}) > 165;
}

int64_t count_bright(const Image& img) {
  int64_t n = 0;
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x) n += on_target(img, y, x);
  return n;
}

std::pair<double, double> target_centroid(const Image& img) {
  double sx = 0, sy = 0, n = 0;
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x)
      if (on_target(img, y, x)) sx += x, sy += y, n += 1;
  REQUIRE(n > 0);
  return {sx / n, sy / n};
}

// The hue (degrees, 0 red, 120 green, 240 blue) of the target's mean colour.
double target_hue(const Image& img) {
  double m[3] = {0, 0, 0};
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x)
      if (on_target(img, y, x))
        for (int c = 0; c < 3; ++c) m[c] += img.at(y, x, c);
  const double hue = std::atan2(std::sqrt(3.0) * (m[1] - m[2]), 2 * m[0] - m[1] - m[2]) * 180 / 3.14159265358979;
  return hue < 0 ? hue + 360 : hue;
}

// Which sub-action happens between two still frames a and b (and in the frames in between, `during`):
// 'J' the target moved (its centroid), 'F' the frame lit up (a glow), 'S' the target grew, '-' nothing.
char event_between(const Image& a, const Image& b, const std::vector<Image>& during) {
  const auto ca = target_centroid(a), cb = target_centroid(b);
  if (std::hypot(ca.first - cb.first, ca.second - cb.second) > 3) return 'J';
  double rise = 0, swell = 0;
  for (const Image& f : during) {
    rise = std::max(rise, mean_value(f) - mean_value(a));
    swell = std::max(swell, static_cast<double>(count_bright(f)) / static_cast<double>(count_bright(a)));
  }
  if (rise > 10) return 'F';
  if (swell > 1.4) return 'S';
  return '-';
}

}  // namespace

TEST_CASE("synth: hard order classes do one sub-action in the first third and the other in the last") {
  const int64_t T = 24;
  for (const auto& [cls, first, last] : std::vector<std::tuple<std::string, char, char>>{
           {"flash_then_jump", 'F', 'J'}, {"jump_then_flash", 'J', 'F'}, {"flash_then_swell", 'F', 'S'},
           {"swell_then_flash", 'S', 'F'}, {"jump_then_swell", 'J', 'S'}, {"swell_then_jump", 'S', 'J'}}) {
    for (uint64_t seed = 0; seed < 3; ++seed) {
      CAPTURE(cls);
      CAPTURE(seed);
      const Clip c = plain_hard_video(cls, seed, 32, T);
      const Image &begin = c.front(), &middle = c[T / 2], &end = c.back();
      const std::vector<Image> first_third(c.begin(), c.begin() + T / 3), last_third(c.end() - T / 3, c.end());
      const std::vector<Image> middle_third(c.begin() + T / 3, c.end() - T / 3);
      CHECK(event_between(begin, middle, first_third) == first);
      CHECK(event_between(middle, end, last_third) == last);
      // The middle third is still: nothing happens between its first and last frames.
      CHECK(event_between(middle_third.front(), middle_third.back(), middle_third) == '-');
    }
  }
}

TEST_CASE("synth: hard drift classes change the whole frame slowly, in the class's direction") {
  const int64_t T = 16;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    CAPTURE(seed);
    auto brightness = [&](const std::string& cls) {
      const Clip c = plain_hard_video(cls, seed, 32, T);
      return std::pair{median_channel(c.front(), -1), median_channel(c.back(), -1)};
    };
    const auto up = brightness("brighten"), down = brightness("darken");
    CHECK(up.second > up.first * 1.15);
    CHECK(down.second < down.first / 1.15);
    auto warmth = [&](const Image& f) { return median_channel(f, 0) - median_channel(f, 2); };
    const Clip warm = plain_hard_video("warm", seed, 32, T), cool = plain_hard_video("cool", seed, 32, T);
    CHECK(warmth(warm.back()) > warmth(warm.front()) + 5);
    CHECK(warmth(cool.back()) < warmth(cool.front()) - 5);
    const Clip in = plain_hard_video("zoom_in", seed, 32, T), out = plain_hard_video("zoom_out", seed, 32, T);
    CHECK(grain(in.back()) < grain(in.front()) * 0.9);
    CHECK(grain(out.back()) > grain(out.front()) / 0.9);
    // Slow: no step between neighbouring frames comes near the change from the first frame to the last.
    const Clip b = plain_hard_video("brighten", seed, 32, T);
    for (size_t t = 1; t < b.size(); ++t)
      CHECK(std::abs(median_channel(b[t], -1) - median_channel(b[t - 1], -1)) < (up.second - up.first) / 2);
  }
}

TEST_CASE("synth: hard local-motion classes move the bright target its way among moving distractors") {
  const int64_t T = 12;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    CAPTURE(seed);
    auto ends = [&](const std::string& cls) {
      const Clip c = plain_hard_video(cls, seed, 48, T, true);
      return std::pair{target_centroid(c.front()), target_centroid(c.back())};
    };
    const auto r = ends("target_right"), l = ends("target_left"), d = ends("target_down"), u = ends("target_up");
    CHECK(r.second.first > r.first.first + 5);
    CHECK(std::abs(r.second.second - r.first.second) < 1.5);
    CHECK(l.second.first < l.first.first - 5);
    CHECK(d.second.second > d.first.second + 5);
    CHECK(std::abs(d.second.first - d.first.first) < 1.5);
    CHECK(u.second.second < u.first.second - 5);
    // Orbits: the signed area the target's path sweeps (image y down: clockwise on screen is positive).
    auto swept = [&](const std::string& cls) {
      const Clip c = plain_hard_video(cls, seed, 48, T, true);
      std::vector<std::pair<double, double>> path;
      double mx = 0, my = 0;
      for (const Image& f : c) path.push_back(target_centroid(f)), mx += path.back().first, my += path.back().second;
      mx /= static_cast<double>(path.size()), my /= static_cast<double>(path.size());
      double area = 0;
      for (size_t t = 1; t < path.size(); ++t)
        area += (path[t - 1].first - mx) * (path[t].second - my) - (path[t].first - mx) * (path[t - 1].second - my);
      return area;
    };
    CHECK(swept("target_orbit_clockwise") > 10);
    CHECK(swept("target_orbit_counterclockwise") < -10);
  }
}

TEST_CASE("synth: each pair of hard twins gives its target a hue of its own, 40 degrees from the next pair's") {
  const auto& classes = tv::data::synth_hard_classes();
  for (size_t i = 0; i < classes.size(); ++i) {
    const double expected = 40.0 * static_cast<double>(i / 2);  // twins are neighbours in label order
    for (uint64_t seed = 0; seed < 3; ++seed) {
      CAPTURE(classes[i].name);
      CAPTURE(seed);
      tv::Generator g(seed);
      auto plan = tv::data::detail::draw_hard_plan(classes[i].name, 48, 9, g);
      plan.occluder = false, plan.distractors.clear();
      plan.gain = 1, plan.gain_drift = 0, plan.cast = 0, plan.cast_drift = 0;  // the drifts would tint it
      const Clip c = tv::data::detail::render_hard_video(plan);
      const double away = std::abs(target_hue(c[4]) - expected);  // the middle frame: no flash
      CHECK(std::min(away, 360 - away) <= tv::data::detail::kHardTuning.hue_jitter + 6);
    }
  }
}

TEST_CASE("synth: every hard video carries distractors, shake, varied timing and often an occluder") {
  int occluded = 0;
  std::vector<float> starts;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    tv::Generator g(seed);
    const std::string& cls = tv::data::synth_hard_classes()[seed % 18].name;
    const auto plan = tv::data::detail::draw_hard_plan(cls, 112, 32, g);
    CHECK(plan.distractors.size() >= 2);
    CHECK(plan.distractors.size() <= 4);
    int moved = 0;
    for (const auto& [x, y] : plan.jitter) {
      CHECK(std::abs(x) <= 2);
      CHECK(std::abs(y) <= 2);
      moved += x != 0 || y != 0;
    }
    CHECK(moved > 0);
    // The order family's events stay in the first and last thirds; the continuous actions run over most of it.
    CHECK(plan.first_begin >= 0);
    CHECK(plan.first_end <= 1.f / 3 + 1e-6f);
    CHECK(plan.last_begin >= 2.f / 3 - 1e-6f);
    CHECK(plan.last_end <= 1);
    CHECK(plan.end - plan.start >= 0.5f);
    starts.push_back(plan.start);
    occluded += plan.occluder;
  }
  CHECK(occluded > 3);
  CHECK(occluded < 20);
  CHECK(*std::max_element(starts.begin(), starts.end()) > *std::min_element(starts.begin(), starts.end()) + 0.05f);
}
