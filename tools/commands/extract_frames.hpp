#pragma once
// tinyvid extract-frames LIST [--data-prefix DIR] --out OUT [--short-side S] [--quality Q] [--template T]
//                        [--threads N] [--rawframe-list FILE]
// MMAction2's tools/data/build_rawframes.py (RGB frames only) plus the rawframe list of
// tools/data/build_file_list.py. Frame k (1-based) of <prefix>/<name> goes to OUT/<name without extension>/<T
// formatted with k>. A folder is complete when its .done (frame count, settings), written last and atomically, is
// there; a re-run skips complete folders and redoes the others.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <tinyvid/core/progress.hpp>
#include <tinyvid/data/annotations.hpp>
#include <tinyvid/data/dataset.hpp>
#include <tinyvid/data/frames.hpp>
#include <tinyvid/data/transforms.hpp>
#include <tinyvid/data/video.hpp>

#include "common.hpp"

namespace tvcli {

struct ExtractSettings {
  int64_t short_side = 0;  // 0: native size
  int quality = 95;
  std::string tmpl = "img_{:05d}.jpg";
  // What a folder's .done records besides the count: a re-run with other settings redoes the folder.
  std::string text() const {
    return "short_side=" + std::to_string(short_side) + " quality=" + std::to_string(quality) + " template=" + tmpl;
  }
};

// One frame folder to fill; several list lines may name the same video.
struct ExtractJob {
  std::string video;          // the file read
  std::string rel;            // the folder, relative to --out, as the rawframe list names it
  std::vector<size_t> lines;  // the list lines it serves
  int64_t frames = -1;        // once done (extracted, or complete already)
  bool skipped = false;       // complete already
  std::string error;
};

// A .done marker or the list: whole or absent, whatever happens to the process.
inline void write_text_atomically(const std::filesystem::path& path, const std::string& text) {
  tv::io::detail::write_file_atomically(path.string(), "extract-frames", [&](auto&& put) { put(text.data(), text.size()); });
}

// The frame count of a complete folder (a .done with these settings, and its last frame there), else -1.
inline int64_t completed_frames(const std::filesystem::path& dir, const ExtractSettings& s) {
  std::ifstream in(dir / ".done");
  std::string count, settings;
  if (!std::getline(in, count) || !std::getline(in, settings) || settings != s.text()) return -1;
  const int64_t n = std::atoll(count.c_str());
  std::error_code ec;
  if (n < 1 || count != std::to_string(n) ||
      !std::filesystem::is_regular_file(dir / tv::data::format_frame_name(s.tmpl, n), ec))
    return -1;
  return n;
}

// Decodes, resizes and writes every frame of job.video into dir (or finds it complete); counts frames written.
inline void extract_video(ExtractJob& job, const std::filesystem::path& dir, const ExtractSettings& s,
                   std::atomic<int64_t>& frames, const std::function<void()>& tick) {
  if ((job.frames = completed_frames(dir, s)) > 0) {
    job.skipped = true;
    return;
  }
  tv::data::VideoReader r(job.video, 1);  // videos run in parallel, each on one thread
  const int64_t n = r.frame_count();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TV_CHECK(!ec, "cannot create '", dir.string(), "': ", ec.message());
  std::filesystem::remove(dir / ".done", ec);  // written with other settings: must not outlive the redo
  int64_t written = 0;
  try {
    const tv::data::Resize resize{.scale = {-1, s.short_side}};
    // Chunks of about 48 MB of decoded frames: a long or large video never sits in memory whole.
    const int64_t frame_bytes = std::max<int64_t>(1, r.width() * r.height() * 3);
    const int64_t chunk = std::clamp<int64_t>((int64_t{48} << 20) / frame_bytes, 1, 64);
    for (int64_t first = 0; first < n; first += chunk) {
      std::vector<int64_t> idx;
      for (int64_t i = first; i < std::min(n, first + chunk); ++i) idx.push_back(i);
      tv::data::Clip clip = r.read(idx);
      for (size_t k = 0; k < clip.size(); ++k) {
        // Frame by frame, not Resize on the clip: a stream may change size midway.
        tv::data::Image img = std::move(clip[k]);
        if (s.short_side > 0) img = std::move(resize({std::move(img)})[0]);
        const int64_t number = first + static_cast<int64_t>(k) + 1;
        tv::data::write_jpeg((dir / tv::data::format_frame_name(s.tmpl, number)).string(), img, s.quality);
        written = number;
        ++frames;
      }
      tick();
    }
    write_text_atomically(dir / ".done", std::to_string(n) + "\n" + s.text() + "\n");
  } catch (...) {
    // A bad video leaves no half folder behind; only files written here are removed, never anything else.
    for (int64_t i = 1; i <= written; ++i) std::filesystem::remove(dir / tv::data::format_frame_name(s.tmpl, i), ec);
    std::filesystem::remove(dir, ec);  // only if empty
    frames -= written;                 // the total counts frames kept
    throw;
  }
  job.frames = n;
}

struct ExtractArgs {
  Text list, data_prefix, out, short_side, quality, tmpl, threads, rawframe_list;
};

inline int extract_frames(const ExtractArgs& a) {
  namespace fs = std::filesystem;
  av_log_set_level(AV_LOG_FATAL);  // bad videos are reported by name at the end, not by FFmpeg's warnings
  const std::string list = a.list.need_positional("a video LIST");
  const std::string prefix = a.data_prefix.get();
  const fs::path out = a.out.need();
  ExtractSettings s;
  s.short_side = a.short_side.integer(tv::Range::closed(0, 65536));
  s.quality = static_cast<int>(a.quality.integer(tv::Range::closed(1, 100)));
  s.tmpl = a.tmpl.get();
  tv::data::format_frame_name(s.tmpl, 1);  // a bad template fails now, not per video
  std::string ext = fs::path(s.tmpl).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  TV_CHECK(s.tmpl.find('/') == std::string::npos && (ext == ".jpg" || ext == ".jpeg"),
           "--template: expected a file name ending in .jpg or .jpeg (frames are written as JPEG), got '", s.tmpl, "'");
  const int64_t threads = a.threads.given() ? a.threads.integer() : std::max(1u, std::thread::hardware_concurrency());
  const fs::path rawframe_list = a.rawframe_list.given() ? fs::path(a.rawframe_list.get())
                                                         : out / (fs::path(list).stem().string() + "_rawframes.txt");

  // The names as the list writes them (no prefix joined): the frame folders are named after them.
  const auto anns = tv::data::read_video_list(list);
  std::vector<ExtractJob> jobs;
  std::vector<std::string> line_error(anns.size());
  std::vector<size_t> job_of(anns.size(), SIZE_MAX);
  std::map<std::string, size_t> by_rel;
  for (size_t k = 0; k < anns.size(); ++k) {
    const std::string& name = anns[k].path;
    const std::string video = tv::data::video_file(tv::data::detail::join_path(prefix, name));
    fs::path rel = name;
    if (rel.is_absolute()) rel = prefix.empty() ? fs::path() : rel.lexically_relative(prefix);
    const std::string r = rel.replace_extension().lexically_normal().generic_string();
    if (r.empty() || r == "." || r == ".." || r.rfind("../", 0) == 0) {
      line_error[k] = "its frame folder would not lie inside --out (the path must be relative, or under --data-prefix)";
      continue;
    }
    auto [it, fresh] = by_rel.emplace(r, jobs.size());
    if (fresh) jobs.push_back({video, r, {}, -1, false, ""});
    ExtractJob& job = jobs[it->second];
    if (job.video != video) {  // a.mp4 and a.avi: one folder for two videos
      line_error[k] = "its frame folder '" + r + "' is also that of " + job.video;
      continue;
    }
    job.lines.push_back(k);
    job_of[k] = it->second;
  }

  std::atomic<size_t> next{0};
  std::atomic<int64_t> skipped{0}, bad{0}, frames{0};
  std::mutex mu;  // guards the progress line
  const auto t0 = std::chrono::steady_clock::now();
  tv::ProgressLine progress("extract-frames", static_cast<int64_t>(jobs.size()), "videos");
  auto status = [&] {  // the line's extra part; complete folders take no time and stay out of the rate
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%lld complete already, %lld bad, %.0f frames/s", static_cast<long long>(skipped.load()),
                  static_cast<long long>(bad.load()), el > 0 ? static_cast<double>(frames.load()) / el : 0.0);
    return std::string(buf);
  };
  auto tick = [&] {
    std::lock_guard<std::mutex> lock(mu);
    progress.update(status());
  };
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1)) < jobs.size();) {
      ExtractJob& job = jobs[k];
      try {
        extract_video(job, out / job.rel, s, frames, tick);
        if (job.skipped) ++skipped;
      } catch (const std::exception& e) {
        job.error = e.what();
        job.frames = -1;
        ++bad;
      }
      std::lock_guard<std::mutex> lock(mu);
      job.skipped ? progress.skip(1, status()) : progress.advance(1, status());
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < std::min<int64_t>(threads, static_cast<int64_t>(jobs.size())); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  progress.finish();

  // The rawframe list keeps the video list's order and labels; bad videos are left out and listed.
  std::vector<tv::data::Annotation> rawframes;
  int64_t failed = 0;
  for (size_t k = 0; k < anns.size(); ++k) {
    const bool own = job_of[k] == SIZE_MAX;
    const std::string& err = own ? line_error[k] : jobs[job_of[k]].error;
    if (!err.empty()) {
      if (own || jobs[job_of[k]].lines.front() == k) {  // a video on several lines is reported once
        std::printf("BAD %s: %s\n", tv::data::detail::join_path(prefix, anns[k].path).c_str(), err.c_str());
        ++failed;
      }
      continue;
    }
    tv::data::Annotation r = anns[k];
    r.path = jobs[job_of[k]].rel;
    r.total_frames = jobs[job_of[k]].frames;
    rawframes.push_back(std::move(r));
  }
  std::error_code ec;
  if (rawframe_list.has_parent_path()) fs::create_directories(rawframe_list.parent_path(), ec);
  write_text_atomically(rawframe_list, tv::data::format_rawframe_list(rawframes));
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t extracted = static_cast<int64_t>(jobs.size()) - skipped.load() - bad.load();
  std::printf("extract-frames: %lld videos extracted (%lld frames), %lld complete already, %lld bad, in %.1f s; "
              "wrote %s (%zu entries; train with data prefix %s)\n",
              static_cast<long long>(extracted), static_cast<long long>(frames.load()),
              static_cast<long long>(skipped.load()), static_cast<long long>(failed), el,
              rawframe_list.string().c_str(), rawframes.size(), out.string().c_str());
  return failed > 0 ? 1 : 0;
}

inline Run add_extract_frames(CLI::App& cmd) {
  auto a = std::make_shared<ExtractArgs>();
  const ExtractSettings d;
  add_positional(cmd, a->list, "LIST", "an MMAction2 video list");
  add_text(cmd, a->out, "--out", "OUT", "the frame folders' root");
  add_text(cmd, a->data_prefix, "--data-prefix", "DIR", "the folder the list's paths are relative to");
  add_text(cmd, a->short_side, "--short-side", "S", "resize the short side to S (0: native size)",
           std::to_string(d.short_side));
  add_text(cmd, a->quality, "--quality", "Q", "JPEG quality, 1 to 100", std::to_string(d.quality));
  add_text(cmd, a->tmpl, "--template", "T", "the frames' file names", d.tmpl);
  add_text(cmd, a->threads, "--threads", "N", "videos at once (default: the cores)");
  add_text(cmd, a->rawframe_list, "--rawframe-list", "FILE",
           "the RawframeDataset list to write (default: OUT/<list name>_rawframes.txt)");
  cmd.footer(wrap("Every frame of every video of the list as JPEG (MMAction2 rawframes): OUT/<video path without "
                  "extension>/img_00001.jpg ...; then the RawframeDataset list, for data prefix OUT. A re-run skips "
                  "completed videos; bad ones are listed, exit code 1 if any."));
  return [a] { return extract_frames(*a); };
}

}  // namespace tvcli
