#pragma once
// The built-in synthetic action dataset (the project's demo dataset), written as real MP4 files with
// MMAction2 video lists, so it goes through exactly the pipeline a real dataset does.
//
// Every class comes with its time-reversed twin (left/right, up/down, clockwise/counter-clockwise,
// growing/shrinking, fading in/out): the set of frames of a video says little about its class, only their
// order does, so a model that ignores time sits at chance within each pair. Each video draws its object
// (disc, square or triangle; plain, striped or checked; colour, size, place, speed) and a static textured
// background with sensor noise. The translations move the object unchanged: pooled statistics of a frame
// (what DNR's relay reads) stay the same in every frame, and only local motion (what a temporal shift sees)
// tells the twins apart. Growing, fading and the turning hand change them over time (size, brightness,
// orientation), in opposite orders for the twins.
//
// Layout written by write_synth_dataset(out_dir, options):
//   out_dir/videos/<class>/<split>_<NNNN>.mp4      one video per sample
//   out_dir/train_list.txt, out_dir/val_list.txt   `<class>/<split>_<NNNN>.mp4 <label>` (data prefix out_dir/videos)
//   out_dir/classes.txt                            class names, one a line, in label order
//   out_dir/synth_manifest.txt                     seed, size, frames, fps, generator version: a resumed run must match
// A video is a pure function of (seed, class name, split, index): a subset of classes gives the same videos
// for the classes it keeps, any thread count gives the same files, and an interrupted run resumes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/progress.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/data/image.hpp"
#include "tinyvid/data/video.hpp"
#include "tinyvid/data/video_writer.hpp"
#include "tinyvid/io/file.hpp"

namespace tv::data {

// The classes in label order (of the full set); SynthOptions::classes picks a subset by name.
inline const std::vector<std::string>& synth_class_names() {
  static const std::vector<std::string> names = {
      "move_left",  "move_right", "move_up", "move_down", "rotate_clockwise", "rotate_counterclockwise",
      "grow",       "shrink",     "fade_in", "fade_out"};
  return names;
}

struct SynthOptions {
  std::vector<std::string> classes{};  // empty: all of synth_class_names(), in that order
  int64_t train_per_class = 100;
  int64_t val_per_class = 20;
  int64_t size = 112;  // frames are size x size (even)
  int64_t frames = 32;
  double fps = 8;
  uint64_t seed = 0;
  int threads = 0;        // 0: the hardware's threads; each video is encoded on one thread
  bool progress = false;  // a progress line on stderr
};

struct SynthReport {
  int64_t written = 0, skipped = 0;  // skipped: already complete on disk (a resumed run)
  double seconds = 0;
};

namespace detail {

inline uint64_t synth_video_seed(uint64_t seed, const std::string& cls, int split, int64_t index) {
  uint64_t h = mix_seed(seed);
  for (unsigned char c : cls) h = mix_seed(h ^ c);
  h = mix_seed(h ^ static_cast<uint64_t>(split));
  return mix_seed(h ^ static_cast<uint64_t>(index));
}

inline float clamp01(float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); }

// Distance from p to the segment a-b.
inline float segment_distance(float px, float py, float ax, float ay, float bx, float by) {
  const float dx = bx - ax, dy = by - ay;
  const float len2 = dx * dx + dy * dy;
  float t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.f;
  t = clamp01(t);
  const float qx = ax + t * dx - px, qy = ay + t * dy - py;
  return std::sqrt(qx * qx + qy * qy);
}

// An object's look, drawn once per video: its outline (disc, square or triangle, turned by a random angle)
// and the texture on it (plain, stripes or checks that move with it).
struct SynthShape {
  enum Outline { kDisc, kSquare, kTriangle } outline = kDisc;
  enum Texture { kPlain, kStripes, kChecks } texture = kPlain;
  float cos_a = 1, sin_a = 0;  // the outline's and the texture's orientation
  float period = 6, phase = 0;

  static SynthShape draw(Generator& g, float size) {
    constexpr double kTwoPi = 6.283185307179586476925286766559;
    SynthShape s;
    s.outline = static_cast<Outline>(std::min<int64_t>(2, static_cast<int64_t>(g.next_double() * 3)));
    s.texture = static_cast<Texture>(std::min<int64_t>(2, static_cast<int64_t>(g.next_double() * 3)));
    const double a = g.uniform(0, kTwoPi);
    s.cos_a = static_cast<float>(std::cos(a));
    s.sin_a = static_cast<float>(std::sin(a));
    s.period = size * static_cast<float>(g.uniform(0.04, 0.09)) + 2.f;
    s.phase = static_cast<float>(g.uniform(0, kTwoPi));
    return s;
  }
  // How much of the pixel at offset (dx, dy) from the centre a shape of radius r covers (a 1-pixel soft edge);
  // the three outlines have the area of a disc of radius r.
  float cover(float dx, float dy, float r) const {
    const float u = cos_a * dx + sin_a * dy, v = -sin_a * dx + cos_a * dy;
    float inside;  // distance inside the outline (negative: outside)
    if (outline == kDisc) {
      inside = r - std::hypot(u, v);
    } else if (outline == kSquare) {  // half side sqrt(pi) / 2 r
      inside = 0.8862269f * r - std::max(std::abs(u), std::abs(v));
    } else {  // equilateral triangle, edges at distance sqrt(pi / (3 sqrt 3)) r from the centre
      const float e1 = v, e2 = -0.8660254f * u - 0.5f * v, e3 = 0.8660254f * u - 0.5f * v;
      inside = 0.7775682f * r - std::max(e1, std::max(e2, e3));
    }
    return clamp01(inside + 0.5f);
  }
  // How far from the centre the outline of radius r reaches (its corners), soft edge included: where it must
  // be placed to stay whole in the frame.
  float reach(float r) const {
    const float corner = outline == kDisc ? 1.f : outline == kSquare ? 1.2533141f : 1.5551364f;
    return corner * r + 1.f;
  }
  // Brightness factor of the texture at offset (dx, dy): 0.82..1, so the object stays bright.
  float shade(float dx, float dy) const {
    if (texture == kPlain) return 1.f;
    const float u = cos_a * dx + sin_a * dy, v = -sin_a * dx + cos_a * dy;
    float t;
    if (texture == kStripes) {
      t = 0.5f + 0.5f * std::sin(6.2831853f * u / period + phase);
    } else {
      const auto cu = static_cast<int64_t>(std::floor(u / period)), cv = static_cast<int64_t>(std::floor(v / period));
      t = ((cu + cv) & 1) ? 1.f : 0.f;
    }
    return 0.82f + 0.18f * t;
  }
};

// Renders the frames of one video of class `cls`. All randomness comes from g, drawn before any frame, so
// a class and its twin share the parameter distributions and differ only in the direction of time.
inline Clip render_synth_video(const std::string& cls, int64_t S, int64_t T, Generator& g) {
  const float s = static_cast<float>(S);
  // Background: a dark random tint, a static texture, and a little per-frame sensor noise.
  float base[3];
  for (float& b : base) b = static_cast<float>(g.uniform(25, 70));
  std::vector<float> texture(static_cast<size_t>(S * S));
  for (float& v : texture) v = static_cast<float>(g.normal() * 14.0);
  // The object: a bright colour (every channel high, so it stands out from any background), a random
  // outline and texture.
  float color[3];
  for (float& c : color) c = static_cast<float>(g.uniform(200, 255));
  const SynthShape shape = SynthShape::draw(g, s);

  // One branch per pixel on an int, not on the class name.
  enum Kind { kHorizontal, kVertical, kRotate, kGrow, kFade };
  const Kind kind = (cls == "move_left" || cls == "move_right") ? kHorizontal
                    : (cls == "move_up" || cls == "move_down")  ? kVertical
                    : (cls == "rotate_clockwise" || cls == "rotate_counterclockwise") ? kRotate
                    : (cls == "grow" || cls == "shrink") ? kGrow
                                                         : kFade;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const bool reverse = cls == "move_left" || cls == "move_up" || cls == "rotate_counterclockwise" ||
                       cls == "shrink" || cls == "fade_out";
  // Every placement keeps the whole object inside the frame (shape.reach): a cut-off object would change a
  // frame's statistics where they must stay the same.
  auto place = [&](float reach) { return reach + static_cast<float>(g.next_double()) * std::max(0.f, s - 2 * reach); };
  const float radius = s * static_cast<float>(g.uniform(0.08, 0.12)) + 0.5f;
  // Translation: a fixed-size object travelling 30-60% of the frame.
  const float travel = s * static_cast<float>(g.uniform(0.3, 0.6));
  const float margin = shape.reach(radius);
  const float along0 = margin + static_cast<float>(g.next_double()) * std::max(0.f, s - 2 * margin - travel);
  const float across = place(margin);
  // Rotation: a clock hand with the object as the knob at its tip (asymmetric: its direction is visible in
  // every frame); hand plus knob stay within 0.5 s of the frame's centre.
  const float angle0 = static_cast<float>(g.uniform(0, kTwoPi));
  const float turn = static_cast<float>(g.uniform(0.4, 0.9) * kTwoPi);
  const float knob = s * 0.07f + 0.5f;
  const float hand = std::min(s * static_cast<float>(g.uniform(0.26, 0.34)), 0.47f * s - shape.reach(knob));
  const float cx = s / 2 + static_cast<float>(g.uniform(-0.03, 0.03)) * s, cy = s / 2 + static_cast<float>(g.uniform(-0.03, 0.03)) * s;
  // Growing and fading: the object at a random place; radius from small to large, opacity from 0 to 1.
  const float r_small = s * static_cast<float>(g.uniform(0.04, 0.07)) + 0.5f, r_large = s * static_cast<float>(g.uniform(0.16, 0.24));
  const float r_fade = s * 0.16f;
  const float at_reach = shape.reach(kind == kGrow ? r_large : r_fade);
  const float px = place(at_reach), py = place(at_reach);
  const uint64_t noise_seed = g.next_u64();

  Clip clip;
  clip.reserve(static_cast<size_t>(T));
  Generator noise(noise_seed);
  for (int64_t t = 0; t < T; ++t) {
    const float u0 = T > 1 ? static_cast<float>(t) / static_cast<float>(T - 1) : 0.f;
    const float u = reverse ? 1.f - u0 : u0;  // the twin plays the same motion backwards
    // Where the object is in this frame, its size and opacity.
    float ox = px, oy = py, r = radius, opacity = 1.f;
    float tx = 0, ty = 0;  // rotation: the hand's tip
    if (kind == kHorizontal) {
      ox = along0 + u * travel, oy = across;
    } else if (kind == kVertical) {
      ox = across, oy = along0 + u * travel;
    } else if (kind == kRotate) {
      // Image y points down, so a growing angle turns clockwise on screen.
      const float a = angle0 + u * turn;
      tx = cx + hand * std::cos(a), ty = cy + hand * std::sin(a);
      ox = tx, oy = ty, r = knob;
    } else if (kind == kGrow) {
      r = r_small + u * (r_large - r_small);
    } else {  // fade_in, fade_out
      r = r_fade, opacity = u;
    }
    Image img(S, S, 3);
    for (int64_t y = 0; y < S; ++y) {
      for (int64_t x = 0; x < S; ++x) {
        const float fx = static_cast<float>(x) + 0.5f, fy = static_cast<float>(y) + 0.5f;
        const float dx = fx - ox, dy = fy - oy;
        float cover = opacity * shape.cover(dx, dy, r);  // how much of this pixel the object covers
        if (kind == kRotate)
          cover = std::max(cover, clamp01(s * 0.035f + 0.5f - segment_distance(fx, fy, cx, cy, tx, ty) + 0.5f));
        const float lit = shape.shade(dx, dy);
        const float n = static_cast<float>(noise.normal() * 3.0);
        const float bg = texture[static_cast<size_t>(y * S + x)] + n;
        uint8_t* p = img.row(y) + x * 3;
        for (int c = 0; c < 3; ++c) {
          const float v = (1.f - cover) * (base[c] + bg) + cover * color[c] * lit;
          p[c] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.f, 255.f)));
        }
      }
    }
    clip.push_back(std::move(img));
  }
  return clip;
}

// A complete video on disk: it decodes to the expected frame count and size.
inline bool synth_video_complete(const std::string& path, int64_t S, int64_t T) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  try {
    VideoReader r(path, 1);
    return r.frame_count() == T && r.width() == S && r.height() == S;
  } catch (const Error&) {
    return false;
  }
}

inline void write_text_file(const std::filesystem::path& path, const std::string& text) {
  io::detail::write_file_atomically(path.string(), "write_synth_dataset", [&](auto&& put) { put(text.data(), text.size()); });
}

// What the videos of a dataset directory are a function of, besides (class, split, index): a resumed run
// must match it, or it would keep videos of another seed, size or generator version next to new ones.
inline constexpr int kSynthGeneratorVersion = 2;  // 2: random outlines and textures, x264 without AVX-512
inline std::string synth_manifest(const SynthOptions& o) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "tinyvid synth generator %d\nseed %llu\nsize %lld\nframes %lld\nfps %.6g\n",
                kSynthGeneratorVersion, static_cast<unsigned long long>(o.seed), static_cast<long long>(o.size),
                static_cast<long long>(o.frames), o.fps);
  return buf;
}

}  // namespace detail

// Renders one video of a named class (for tests and demos); the same arguments give the same frames.
inline Clip synth_video(const std::string& cls, int64_t size, int64_t frames, uint64_t seed, int split = 0, int64_t index = 0) {
  const auto& names = synth_class_names();
  TV_CHECK(std::find(names.begin(), names.end(), cls) != names.end(), "synth_video: unknown class '", cls, "'");
  Generator g(detail::synth_video_seed(seed, cls, split, index));
  return detail::render_synth_video(cls, size, frames, g);
}

inline SynthReport write_synth_dataset(const std::string& out_dir, const SynthOptions& o = {}) {
  namespace fs = std::filesystem;
  const auto t_start = std::chrono::steady_clock::now();
  const auto& all = synth_class_names();
  const std::vector<std::string> classes = o.classes.empty() ? all : o.classes;
  for (const std::string& c : classes)
    TV_CHECK(std::find(all.begin(), all.end(), c) != all.end(), "write_synth_dataset: unknown class '", c,
             "'; known classes: move_left, move_right, move_up, move_down, rotate_clockwise, "
             "rotate_counterclockwise, grow, shrink, fade_in, fade_out");
  for (size_t i = 0; i < classes.size(); ++i)
    TV_CHECK(std::find(classes.begin(), classes.begin() + static_cast<std::ptrdiff_t>(i), classes[i]) ==
                 classes.begin() + static_cast<std::ptrdiff_t>(i),
             "write_synth_dataset: class '", classes[i], "' is listed twice");
  TV_CHECK(o.size >= 16 && o.size % 2 == 0, "write_synth_dataset: expected an even size >= 16, got ", o.size);
  TV_CHECK(o.frames >= 2, "write_synth_dataset: expected at least 2 frames per video, got ", o.frames);
  TV_CHECK(o.train_per_class >= 0 && o.val_per_class >= 0 && o.train_per_class + o.val_per_class >= 1,
           "write_synth_dataset: expected at least one video per class, got ", o.train_per_class, " train and ",
           o.val_per_class, " val");
  TV_CHECK(o.fps > 0, "write_synth_dataset: expected fps > 0, got ", o.fps);

  struct Job {
    std::string cls, rel;  // rel: path under out_dir/videos
    int split;
    int64_t index, label;
  };
  std::vector<Job> jobs;
  std::string lists[2];
  for (size_t label = 0; label < classes.size(); ++label) {
    for (int split = 0; split < 2; ++split) {
      const int64_t n = split == 0 ? o.train_per_class : o.val_per_class;
      for (int64_t i = 0; i < n; ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "%s_%04lld.mp4", split == 0 ? "train" : "val", static_cast<long long>(i));
        Job j{classes[label], classes[label] + "/" + name, split, i, static_cast<int64_t>(label)};
        lists[split] += j.rel + " " + std::to_string(label) + "\n";
        jobs.push_back(std::move(j));
      }
    }
  }

  const fs::path root(out_dir), videos = root / "videos";
  std::error_code ec;
  // The manifest: a directory with videos made otherwise is refused, one without videos gets the manifest.
  const fs::path manifest_path = root / "synth_manifest.txt";
  const std::string manifest = detail::synth_manifest(o);
  if (fs::exists(manifest_path, ec)) {
    const std::vector<uint8_t> old = io::detail::read_file(manifest_path.string(), "write_synth_dataset");
    TV_CHECK(std::string(old.begin(), old.end()) == manifest, "write_synth_dataset: '", out_dir,
             "' holds a dataset made with other settings or by another generator (its synth_manifest.txt differs from ",
             "this run's: seed ", o.seed, ", size ", o.size, ", frames ", o.frames, ", fps ", o.fps,
             ", generator ", detail::kSynthGeneratorVersion, "); remove it or write elsewhere");
  } else {
    bool has_videos = false;
    if (fs::is_directory(videos, ec))
      for (const auto& e : fs::recursive_directory_iterator(videos, ec)) has_videos = has_videos || e.is_regular_file();
    TV_CHECK(!has_videos, "write_synth_dataset: '", out_dir, "' holds videos but no synth_manifest.txt (made by an ",
             "older tinyvid?): remove it or write elsewhere");
    fs::create_directories(root, ec);
    TV_CHECK(!ec, "write_synth_dataset: cannot create '", out_dir, "': ", ec.message());
    detail::write_text_file(manifest_path, manifest);
  }
  for (const std::string& c : classes) {
    fs::create_directories(videos / c, ec);
    TV_CHECK(!ec, "write_synth_dataset: cannot create '", (videos / c).string(), "': ", ec.message());
  }

  SynthReport report;
  std::atomic<size_t> next{0};
  std::atomic<int64_t> written{0}, skipped{0};
  std::mutex mu;  // guards first_error and the progress line
  std::exception_ptr first_error;
  ProgressLine progress("synth", static_cast<int64_t>(jobs.size()), "videos", o.progress && stderr_is_terminal());
  auto count = [&](bool was_complete) {
    std::lock_guard<std::mutex> lock(mu);
    const std::string extra = std::to_string(skipped.load()) + " complete already";
    was_complete ? progress.skip(1, extra) : progress.advance(1, extra);
  };
  auto worker = [&] {
    for (;;) {
      const size_t k = next.fetch_add(1);
      if (k >= jobs.size()) return;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error) return;
      }
      try {
        const Job& j = jobs[k];
        const fs::path path = videos / j.rel;
        const bool complete = detail::synth_video_complete(path.string(), o.size, o.frames);
        if (complete) {
          ++skipped;
        } else {
          // Written under a temporary name and renamed: an interrupted run never leaves a half file that
          // looks finished.
          const fs::path tmp = path.string() + ".part";
          Generator g(detail::synth_video_seed(o.seed, j.cls, j.split, j.index));
          const Clip clip = detail::render_synth_video(j.cls, o.size, o.frames, g);
          {
            VideoWriter w(tmp.string(), o.size, o.size, o.fps);
            for (const Image& f : clip) w.write(f);
            w.close();
          }
          std::error_code rec;
          fs::rename(tmp, path, rec);
          TV_CHECK(!rec, "write_synth_dataset: cannot rename '", tmp.string(), "' to '", path.string(), "': ", rec.message());
          ++written;
        }
        count(complete);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first_error) first_error = std::current_exception();
        return;
      }
    }
  };
  const int n_threads = std::max(1, std::min<int>(o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()),
                                                  static_cast<int>(std::max<size_t>(1, jobs.size()))));
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (first_error) std::rethrow_exception(first_error);
  if (o.progress) progress.finish();

  // The lists last: a directory with lists is a finished dataset.
  std::string names;
  for (const std::string& c : classes) names += c + "\n";
  detail::write_text_file(root / "classes.txt", names);
  detail::write_text_file(root / "train_list.txt", lists[0]);
  detail::write_text_file(root / "val_list.txt", lists[1]);

  report.written = written.load();
  report.skipped = skipped.load();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return report;
}

}  // namespace tv::data
