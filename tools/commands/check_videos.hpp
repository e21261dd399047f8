#pragma once
// tinyvid check-videos LIST [--data-prefix DIR] [--num-classes K] [--json]
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include <tinyvid/core/progress.hpp>
#include <tinyvid/data/annotations.hpp>
#include <tinyvid/data/dataset.hpp>
#include <tinyvid/data/video.hpp>

#include "common.hpp"

namespace tvcli {

// Decodes every frame of a file (and converts the first to RGB); a bad file is an error.
inline void test_decode(const std::string& path) {
  tv::data::VideoReader r(path, 1);
  r.count_decoded();
  r.frame(0);
}

inline Run add_check_videos(CLI::App& cmd) {
  struct Args {
    Text list, data_prefix, num_classes;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  add_positional(cmd, a->list, "LIST", "an MMAction2 video list");
  add_text(cmd, a->data_prefix, "--data-prefix", "DIR", "the folder the list's paths are relative to");
  add_text(cmd, a->num_classes, "--num-classes", "K", "labels must lie in [0, K) (else: not negative)");
  add_flag(cmd, a->json, "--json", "one JSON object");
  cmd.footer(wrap("Opens and decodes every video of the list and checks its labels; lists the bad videos and "
                  "labels (FILE:LINE); exit code 1 if any."));
  return [a] {
    av_log_set_level(AV_LOG_FATAL);  // damaged files' warnings would bury the report, which names them all
    const std::string list = a->list.need_positional("a video LIST");
    // Labels are checked with the videos and every bad one reported by FILE:LINE: against --num-classes when
    // given (a line without a label is bad then too), else only for being negative.
    std::vector<tv::data::BadLabel> bad_labels;
    tv::data::ListOptions lo;
    lo.data_prefix = a->data_prefix.get();
    if (a->num_classes.given()) lo.num_classes = a->num_classes.integer();
    lo.bad_labels = &bad_labels;
    const auto anns = tv::data::read_video_list(list, lo);
    std::vector<std::string> errors(anns.size());
    std::atomic<size_t> next{0};
    int64_t bad = 0;
    std::mutex mu;  // guards bad and the progress line
    tv::ProgressLine progress("check-videos", static_cast<int64_t>(anns.size()), "videos");
    auto worker = [&] {
      for (size_t k; (k = next.fetch_add(1)) < anns.size();) {
        std::string error;
        try {
          test_decode(tv::data::video_file(anns[k].path));
        } catch (const std::exception& e) {
          error = e.what();
        }
        std::lock_guard<std::mutex> lock(mu);
        errors[k] = error;
        bad += !error.empty();
        progress.advance(1, std::to_string(bad) + " bad");
      }
    };
    // Two workers: decoding is mostly single-threaded per file, and two keep a disk busy without thrashing it.
    std::thread second(worker);
    worker();
    second.join();
    progress.finish();
    if (a->json) {
      std::printf("{\"list\":%s,\"checked\":%zu,\"bad\":[", tv::json_quote(list).c_str(), anns.size());
      bool first = true;
      for (size_t k = 0; k < anns.size(); ++k)
        if (!errors[k].empty()) {
          std::printf("%s{\"path\":%s,\"error\":%s}", first ? "" : ",", tv::json_quote(anns[k].path).c_str(),
                      tv::json_quote(errors[k]).c_str());
          first = false;
        }
      std::printf("],\"bad_labels\":[");
      for (size_t k = 0; k < bad_labels.size(); ++k)
        std::printf("%s{\"line\":%zu,\"label\":%lld,\"error\":%s}", k ? "," : "", bad_labels[k].line,
                    static_cast<long long>(bad_labels[k].label), tv::json_quote(bad_labels[k].message).c_str());
      std::printf("]}\n");
    } else {
      for (size_t k = 0; k < anns.size(); ++k)
        if (!errors[k].empty()) std::printf("BAD %s: %s\n", anns[k].path.c_str(), errors[k].c_str());
      for (const auto& b : bad_labels) std::printf("BAD LABEL %s\n", b.message.c_str());
      std::printf("checked %zu videos of %s: %lld bad, %zu bad labels\n", anns.size(), list.c_str(),
                  static_cast<long long>(bad), bad_labels.size());
    }
    return bad > 0 || !bad_labels.empty() ? 1 : 0;
  };
}

}  // namespace tvcli
