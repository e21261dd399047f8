// The synthetic dataset and VideoWriter: written to /tmp, read back with VideoReader.
#include <doctest/doctest.h>

#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
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
