#pragma once
// The built-in synthetic action dataset (the project's demo dataset), written as real MP4 files with
// MMAction2 video lists, so it goes through exactly the pipeline a real dataset does.
//
// Every class comes with its time-reversed twin (left/right, up/down, clockwise/counter-clockwise,
// growing/shrinking, fading in/out): the set of frames of a video says little about its class, only their
// order does, so a model that ignores time sits at chance within each pair. The translations and rotations
// move a fixed-size object over a static textured background: whole-frame statistics (what DNR's relay pools)
// stay the same in every frame, and only local motion (what a temporal shift sees) tells the twins apart.
//
// Layout written by write_synth_dataset(out_dir, options):
//   out_dir/videos/<class>/<split>_<NNNN>.mp4      one video per sample
//   out_dir/train_list.txt, out_dir/val_list.txt   `<class>/<split>_<NNNN>.mp4 <label>` (data prefix out_dir/videos)
//   out_dir/classes.txt                            class names, one a line, in label order
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
#include <fstream>
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

// Renders the frames of one video of class `cls`. All randomness comes from g, drawn before any frame, so
// a class and its twin share the parameter distributions and differ only in the direction of time.
inline Clip render_synth_video(const std::string& cls, int64_t S, int64_t T, Generator& g) {
  const float s = static_cast<float>(S);
  // Background: a dark random tint, a static texture, and a little per-frame sensor noise.
  float base[3];
  for (float& b : base) b = static_cast<float>(g.uniform(25, 70));
  std::vector<float> texture(static_cast<size_t>(S * S));
  for (float& v : texture) v = static_cast<float>(g.normal() * 14.0);
  // The object: a bright colour (every channel high, so it stands out from any background).
  float color[3];
  for (float& c : color) c = static_cast<float>(g.uniform(190, 255));

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
  const float radius = s * static_cast<float>(g.uniform(0.08, 0.12)) + 0.5f;
  // Translation: a fixed-size disc travelling 30-60% of the frame, kept fully inside it.
  const float travel = s * static_cast<float>(g.uniform(0.3, 0.6));
  const float margin = radius + 1.f;
  const float along0 = margin + static_cast<float>(g.next_double()) * std::max(0.f, s - 2 * margin - travel);
  const float across = margin + static_cast<float>(g.next_double()) * std::max(0.f, s - 2 * margin);
  // Rotation: a clock hand with a knob at its tip (asymmetric: its direction is visible in every frame).
  const float angle0 = static_cast<float>(g.uniform(0, kTwoPi));
  const float turn = static_cast<float>(g.uniform(0.4, 0.9) * kTwoPi);
  const float hand = s * static_cast<float>(g.uniform(0.28, 0.38));
  const float cx = s / 2 + static_cast<float>(g.uniform(-0.05, 0.05)) * s, cy = s / 2 + static_cast<float>(g.uniform(-0.05, 0.05)) * s;
  // Growing and fading: a disc at a random place; radius from small to large, opacity from 0 to 1.
  const float r_small = s * static_cast<float>(g.uniform(0.04, 0.07)) + 0.5f, r_large = s * static_cast<float>(g.uniform(0.2, 0.3));
  const float px = s * static_cast<float>(g.uniform(0.3, 0.7)), py = s * static_cast<float>(g.uniform(0.3, 0.7));
  const uint64_t noise_seed = g.next_u64();

  Clip clip;
  clip.reserve(static_cast<size_t>(T));
  Generator noise(noise_seed);
  for (int64_t t = 0; t < T; ++t) {
    const float u0 = T > 1 ? static_cast<float>(t) / static_cast<float>(T - 1) : 0.f;
    const float u = reverse ? 1.f - u0 : u0;  // the twin plays the same motion backwards
    Image img(S, S, 3);
    for (int64_t y = 0; y < S; ++y) {
      for (int64_t x = 0; x < S; ++x) {
        const float fx = static_cast<float>(x) + 0.5f, fy = static_cast<float>(y) + 0.5f;
        float cover = 0.f;  // how much of this pixel the object covers (a 1-pixel soft edge)
        if (kind == kHorizontal) {
          const float ox = along0 + u * travel;
          cover = clamp01(radius - std::hypot(fx - ox, fy - across) + 0.5f);
        } else if (kind == kVertical) {
          const float oy = along0 + u * travel;
          cover = clamp01(radius - std::hypot(fx - across, fy - oy) + 0.5f);
        } else if (kind == kRotate) {
          // Image y points down, so a growing angle turns clockwise on screen.
          const float a = angle0 + u * turn;
          const float tx = cx + hand * std::cos(a), ty = cy + hand * std::sin(a);
          const float bar = clamp01(s * 0.035f + 0.5f - segment_distance(fx, fy, cx, cy, tx, ty) + 0.5f);
          const float knob = clamp01(s * 0.08f + 0.5f - std::hypot(fx - tx, fy - ty) + 0.5f);
          cover = std::max(bar, knob);
        } else if (kind == kGrow) {
          const float r = r_small + u * (r_large - r_small);
          cover = clamp01(r - std::hypot(fx - px, fy - py) + 0.5f);
        } else {  // fade_in, fade_out
          cover = u * clamp01(s * 0.18f - std::hypot(fx - px, fy - py) + 0.5f);
        }
        const float n = static_cast<float>(noise.normal() * 3.0);
        const float bg = texture[static_cast<size_t>(y * S + x)] + n;
        uint8_t* p = img.row(y) + x * 3;
        for (int c = 0; c < 3; ++c) {
          const float v = (1.f - cover) * (base[c] + bg) + cover * color[c];
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
  const std::filesystem::path tmp = path.string() + ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TV_CHECK(out.good(), "write_synth_dataset: cannot create '", tmp.string(), "'");
    out << text;
    out.flush();
    TV_CHECK(out.good(), "write_synth_dataset: cannot write '", tmp.string(), "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  TV_CHECK(!ec, "write_synth_dataset: cannot rename '", tmp.string(), "' to '", path.string(), "': ", ec.message());
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
  for (const std::string& c : classes) {
    fs::create_directories(videos / c, ec);
    TV_CHECK(!ec, "write_synth_dataset: cannot create '", (videos / c).string(), "': ", ec.message());
  }

  SynthReport report;
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0}, written{0}, skipped{0};
  std::mutex mu;  // guards first_error and the progress line
  std::exception_ptr first_error;
  auto last_print = std::chrono::steady_clock::now();
  auto print_progress = [&](bool final) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const int64_t d = done.load();
    const double rate = el > 0 ? static_cast<double>(d) / el : 0.0;
    const double eta = rate > 0 ? static_cast<double>(static_cast<int64_t>(jobs.size()) - d) / rate : 0.0;
    std::fprintf(stderr, "\rsynth: %lld/%zu videos (%lld skipped), %.1f videos/s, ETA %s   %s",
                 static_cast<long long>(d), jobs.size(), static_cast<long long>(skipped.load()), rate,
                 format_duration(eta).c_str(), final ? "\n" : "");
    std::fflush(stderr);
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
        if (detail::synth_video_complete(path.string(), o.size, o.frames)) {
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
        ++done;
        if (o.progress && stderr_is_terminal()) {  // the live line; a log gets only the final one
          std::lock_guard<std::mutex> lock(mu);
          const auto now = std::chrono::steady_clock::now();
          if (now - last_print > std::chrono::milliseconds(500)) {
            last_print = now;
            print_progress(false);
          }
        }
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
  if (o.progress) print_progress(true);

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
