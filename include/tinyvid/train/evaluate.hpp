#pragma once
// Testing a recognizer on a dataset: every video's views (clips x crops, each a clip of the model's T frames)
// fused as MMAction2 fuses them (Recognizer::forward_views), then top-1, top-5 and mean class accuracy
// (metrics.hpp). Also the report files of `tinyvid test`: results JSON, per-class CSV, confusion-matrix PNG.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/core/json.hpp"
#include "tinyvid/core/progress.hpp"
#include "tinyvid/data/loader.hpp"
#include "tinyvid/dist/process_group.hpp"
#include "tinyvid/io/safetensors.hpp"
#include "tinyvid/models/recognizer.hpp"
#include "tinyvid/train/metrics.hpp"
#include "tinyvid/viz/plot.hpp"

namespace tv::train {

struct EvalOptions {
  models::AverageClips average = models::AverageClips::Prob;
  int64_t batch_size = 1;
  int num_workers = 2;
  int64_t max_views_per_pass = 0;  // backbone clips per pass (memory only); 0: a whole batch at once
  bool progress = false;           // a progress line on stderr
  std::string what = "test";       // its name on the progress line
  const std::atomic<bool>* stop = nullptr;  // when it turns true, evaluate returns early with `interrupted`
  // Processes evaluating together (nullptr: this one alone): each scores its shard of the list and every
  // rank gets the whole result, the same as one process's (scores in list order, metrics over all).
  dist::ProcessGroup* group = nullptr;
};

struct EvalResult {
  ScoreTable scores;              // fused scores per video (probabilities with Prob)
  std::vector<int64_t> labels, indices;
  double top1 = 0, top5 = 0, mean_class_accuracy = 0;
  int64_t views = 0;              // views per video
  double seconds = 0;
  std::vector<data::SkippedSample> skipped;
  bool interrupted = false;       // stopped early by EvalOptions::stop: the metrics cover only part of the set
};

// The device a model's parameters live on (the CPU for a model without any): where its inputs go.
template <class T>
Device model_device(const nn::Module<T>& model) {
  const auto params = model.parameters();
  return params.empty() ? Device::CPU : params.front().device();
}

namespace detail {

// Every rank's part of an evaluation, merged on every rank in list order.
inline void gather_shards(dist::ProcessGroup& pg, EvalResult& res) {
  // Each rank's part as text: a header line, then a line per video (index, label, views, scores as %a, exact)
  // and per unreadable sample (index, path, reason).
  std::string mine = std::to_string(res.scores.size()) + " " + std::to_string(res.skipped.size()) + " " +
                     (res.interrupted ? "1" : "0") + " " + std::to_string(res.views) + "\n";
  char buf[64];
  for (size_t i = 0; i < res.scores.size(); ++i) {
    mine += std::to_string(res.indices[i]) + " " + std::to_string(res.labels[i]) + " " +
            std::to_string(res.scores[i].size());
    for (float v : res.scores[i]) {
      std::snprintf(buf, sizeof(buf), " %a", v);
      mine += buf;
    }
    mine += "\n";
  }
  for (const data::SkippedSample& s : res.skipped)
    mine += std::to_string(s.index) + "\t" + s.path + "\t" + s.reason + "\n";  // a reason is one line
  struct Video {
    int64_t index, label;
    std::vector<float> scores;
  };
  std::vector<Video> videos;
  std::vector<data::SkippedSample> skipped;
  bool interrupted = false;
  int64_t views = 0;
  for (const std::string& part : pg.all_gather_bytes(mine)) {
    std::istringstream in(part);
    size_t n_videos = 0, n_skipped = 0;
    int flag = 0;
    int64_t part_views = 0;
    in >> n_videos >> n_skipped >> flag >> part_views;
    interrupted = interrupted || flag != 0;
    views = std::max(views, part_views);
    for (size_t i = 0; i < n_videos; ++i) {
      Video v;
      size_t k = 0;
      in >> v.index >> v.label >> k;
      v.scores.resize(k);
      for (float& x : v.scores) {
        std::string text;
        in >> text;
        x = std::strtof(text.c_str(), nullptr);
      }
      videos.push_back(std::move(v));
    }
    in.ignore(1);
    for (size_t i = 0; i < n_skipped; ++i) {
      data::SkippedSample s;
      std::string index;
      std::getline(in, index, '\t');
      std::getline(in, s.path, '\t');
      std::getline(in, s.reason);
      s.index = std::stoll(index);
      skipped.push_back(std::move(s));
    }
  }
  std::sort(videos.begin(), videos.end(), [](const Video& a, const Video& b) { return a.index < b.index; });
  std::sort(skipped.begin(), skipped.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  res.scores.clear(), res.labels.clear(), res.indices.clear();
  for (Video& v : videos) {
    res.indices.push_back(v.index);
    res.labels.push_back(v.label);
    res.scores.push_back(std::move(v.scores));
  }
  res.skipped = std::move(skipped);
  res.interrupted = interrupted;
  res.views = views;
}

}  // namespace detail

// A batch's clips on `device`, refused first, on the host, when they hold an infinity or NaN (where the check
// costs no wait for a GPU): `what` names the run, the message the batch's videos.
inline Tensor<float> clips_on_device(const data::Batch& batch, Device device, const std::string& what) {
  if (device != Device::CPU)  // the recognizer checks host inputs itself
    check_finite(batch.clips, what + ": the clips of videos " + std::to_string(batch.indices.front()) + ".." +
                                  std::to_string(batch.indices.back()) + " of the list");
  return batch.clips.to(device);
}

// Runs on the model's device: each batch's clips are copied there, and each batch's fused scores (N x K) come
// back in one copy, the only host read of a batch; the labels never leave the host.
inline EvalResult evaluate(models::Recognizer<float>& model, const data::Dataset& ds, const EvalOptions& o = {}) {
  NoGradGuard no_grad;
  const Device device = model_device(model);
  const bool was_training = model.is_training();
  const int64_t ranks = o.group ? o.group->size() : 1;
  model.eval();
  data::Loader loader(ds, {.batch_size = o.batch_size, .shuffle = false, .num_workers = o.num_workers, .seed = 0,
                           .pin_memory = device != Device::CPU, .num_shards = ranks,
                           .shard = o.group ? o.group->rank() : 0});
  loader.start_epoch(0);
  EvalResult res;
  ProgressLine progress(o.what, ds.size(), "videos", o.progress && stderr_is_terminal());
  const int64_t T = model.frames();
  while (auto batch = loader.next()) {
    if (o.stop && o.stop->load()) {
      res.interrupted = true;
      break;
    }
    if (batch->indices.empty()) continue;  // a shard's share of the last batch may be empty
    const int64_t N = batch->labels.numel(), M = batch->clips.size(0) / N;
    TV_CHECK(M % T == 0, o.what, ": a video gives ", M, " frames, not a whole number of ", T, "-frame views");
    res.views = M / T;
    const Tensor<float> scores =
        model.forward_views(clips_on_device(*batch, device, o.what), M / T, o.average, o.max_views_per_pass)
            .to(Device::CPU);
    // Metrics would rank a NaN score somewhere arbitrary: a model that produces one is an error, not a result.
    check_finite(scores, o.what + ": the scores of videos " + std::to_string(batch->indices.front()) + ".." +
                             std::to_string(batch->indices.back()) + " of the list");
    const int64_t K = scores.size(1);
    const std::vector<float> flat = scores.to_vector();
    for (int64_t n = 0; n < N; ++n) {
      res.scores.emplace_back(flat.begin() + n * K, flat.begin() + (n + 1) * K);
      res.labels.push_back(batch->labels.at({n}));
      res.indices.push_back(batch->indices[static_cast<size_t>(n)]);
    }
    progress.advance(N * ranks);  // rank 0's share stands for all
  }
  loader.stop();
  if (o.progress) progress.finish();
  res.seconds = progress.seconds();
  res.skipped = ds.skipped();
  if (ranks > 1) detail::gather_shards(*o.group, res);
  if (!res.scores.empty()) {
    res.top1 = top_k_accuracy(res.scores, res.labels, 1);
    res.top5 = top_k_accuracy(res.scores, res.labels, 5);
    res.mean_class_accuracy = mean_class_accuracy(res.scores, res.labels);
  }
  if (was_training) model.train();
  return res;
}

namespace detail {
inline void write_text_atomically(const std::string& path, const std::string& text) {
  io::detail::write_file_atomically(path, "write", [&](auto&& put) { put(text.data(), text.size()); });
}
}  // namespace detail

// DIR/results.json (metrics, views, counts, `extra` fields as given), DIR/per_class.csv (class, name, videos,
// top-1 of the class) and DIR/confusion.png.
inline void write_test_report(const std::string& dir, const EvalResult& r, const std::vector<std::string>& names,
                              const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  const auto m = confusion_matrix(r.scores, r.labels);
  char buf[256];
  std::string json = "{";
  std::snprintf(buf, sizeof(buf), "\"top1\":%.6f,\"top5\":%.6f,\"mean_class_accuracy\":%.6f,\"videos\":%zu,"
                "\"views\":%lld,\"skipped\":%zu,\"seconds\":%.2f", r.top1, r.top5, r.mean_class_accuracy,
                r.scores.size(), static_cast<long long>(r.views), r.skipped.size(), r.seconds);
  json += buf;
  for (const auto& [k, v] : extra) {
    json += ',';
    json += json_quote(k);
    json += ':';
    json += json_quote(v);
  }
  json += ",\"skipped_files\":[";
  for (size_t i = 0; i < r.skipped.size(); ++i) {
    if (i) json += ',';
    json += "{\"path\":";
    json += json_quote(r.skipped[i].path);
    json += ",\"reason\":";
    json += json_quote(r.skipped[i].reason);
    json += '}';
  }
  json += "]}\n";
  detail::write_text_atomically(dir + "/results.json", json);

  std::string csv = "class,name,videos,top1\n";
  for (size_t c = 0; c < m.size(); ++c) {
    int64_t n = 0;
    for (int64_t v : m[c]) n += v;
    std::string name = c < names.size() ? names[c] : std::to_string(c);
    if (name.find_first_of(",\"") != std::string::npos) {  // CSV quoting
      std::string q = "\"";
      for (char ch : name) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      name = q + "\"";
    }
    std::snprintf(buf, sizeof(buf), ",%lld,%.6f\n", static_cast<long long>(n),
                  n ? static_cast<double>(m[c][c]) / static_cast<double>(n) : 0.0);
    csv += std::to_string(c) + "," + name + buf;
  }
  detail::write_text_atomically(dir + "/per_class.csv", csv);

  std::snprintf(buf, sizeof(buf), "confusion: top-1 %.1f%%, %zu videos", 100 * r.top1, r.scores.size());
  viz::confusion_matrix_image(m, names, buf).save_png(dir + "/confusion.png");
}

// `tinyvid test --dump FILE`: each video's path, label and fused scores (probabilities with average_clips =
// prob), one JSON object per line in the order of the list, for analysis outside tinyvid (MMAction2's
// test.py --dump writes the same score lists).
inline void write_scores_dump(const std::string& path, const EvalResult& r, const data::Dataset& ds) {
  std::string out;
  char buf[32];
  for (size_t v = 0; v < r.scores.size(); ++v) {
    const auto& a = ds.annotations()[static_cast<size_t>(r.indices[v])];
    out += "{\"index\":" + std::to_string(r.indices[v]) + ",\"path\":" + json_quote(a.path) +
           ",\"label\":" + std::to_string(r.labels[v]) + ",\"scores\":[";
    for (size_t k = 0; k < r.scores[v].size(); ++k) {
      std::snprintf(buf, sizeof(buf), "%s%.9g", k ? "," : "", static_cast<double>(r.scores[v][k]));
      out += buf;
    }
    out += "]}\n";
  }
  detail::write_text_atomically(path, out);
}

}  // namespace tv::train
