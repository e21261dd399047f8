#pragma once
// A run's recipe read from a Config (config.hpp): model, data and pipelines, optimizer, schedule, and the
// loop's settings. Every key, its default and its meaning is listed in configs/README.md; the defaults are
// the paper's Kinetics recipe (docs/DNR.md, "Training and testing recipes") where it has one, MMAction2's otherwise.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tinyvid/core/parse.hpp"
#include "tinyvid/data/dataset.hpp"
#include "tinyvid/models/recognizer.hpp"
#include "tinyvid/models/registry.hpp"
#include "tinyvid/optim/schedule.hpp"
#include "tinyvid/optim/sgd.hpp"
#include "tinyvid/train/config.hpp"

namespace tv::train {

struct Recipe {
  // Where the model and every batch live (the data is decoded on the host and copied there per batch).
  DeviceChoice device;

  // Model: frames = clip_len x num_clips of the training sampler.
  std::string model;
  models::ModelConfig model_config;

  // Data: paths as given, relative ones resolved against data.root.
  std::string data_format = "video";  // video | rawframes
  std::string train_list, val_list, test_list, train_prefix, val_prefix, test_prefix, classes_file;
  std::string filename_tmpl = "img_{:05d}.jpg";
  int64_t start_index = 1;
  bool skip_bad = true;
  double max_skip_ratio = 0.01;  // a run that cannot read more than this share of a split's samples stops
  data::Pipeline train_pipeline, val_pipeline, test_pipeline;
  models::AverageClips average_clips = models::AverageClips::Prob;
  int64_t max_views_per_pass = 0;
  int64_t test_batch_size = 1;

  // Initial weights (fine-tuning): a safetensors file; keys that load_skip matches (skip_matches) are not loaded.
  std::string load_from;
  std::vector<std::string> load_skip;

  // Optimization.
  optim::SGDOptions sgd{0.1};
  double clip_grad = 40;  // max gradient norm, 0: off
  double label_smoothing = 0;
  optim::LrSchedule schedule = optim::LrSchedule::constant(0.1);

  // The loop.
  int64_t epochs = 1, batch_size = 8, log_every = 20, val_every = 1, checkpoint_every_iters = 0;
  int64_t max_keep_ckpts = 3;  // epoch_N.safetensors kept (the newest); <= 0 keeps all
  int num_workers = 2, threads = 0;
  int64_t prefetch = 4;
  uint64_t seed = 0;
  bool drop_last = false;
};

namespace detail {

inline std::string resolve(const std::string& root, const std::string& p) {
  if (p.empty() || root.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(root) / p).string();
}

inline std::pair<int64_t, int64_t> square(int64_t s) { return {s, s}; }

// Resize(scale=(-1, short_side)) when short_side > 0.
inline void add_resize(data::Pipeline& p, int64_t short_side) {
  if (short_side > 0) p.steps.push_back(data::clip_step(data::Resize{.scale = {-1, short_side}}));
}

}  // namespace detail

namespace detail {

// One `[...]` set at p[i] == '[': whether ch is in it (a leading `!` or `^` negates; `a-c` is a range; a `]`
// right after the opening is a member), and the index after it; npos when the set is not closed.
inline size_t match_set(std::string_view p, size_t i, char ch, bool& in) {
  size_t j = i + 1;
  const bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
  if (negate) ++j;
  bool found = false;
  for (const size_t first = j; j < p.size() && (j == first || p[j] != ']');) {
    if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
      found = found || (p[j] <= ch && ch <= p[j + 2]);
      j += 3;
    } else {
      found = found || p[j] == ch;
      ++j;
    }
  }
  if (j >= p.size()) return std::string_view::npos;
  in = found != negate;
  return j + 1;
}

// Whether the whole of text matches the glob: `*` any run of characters (dots included), `?` one, `[...]`
// one of a set; an unclosed `[` is itself. On a mismatch the last `*` takes one more character and the
// rest is tried again: linear in practice, never exponential.
inline bool glob_match(std::string_view p, std::string_view text) {
  constexpr size_t none = std::string_view::npos;
  size_t pi = 0, ti = 0, star = none, star_ti = 0;
  while (ti < text.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++, star_ti = ti;
      continue;
    }
    if (pi < p.size()) {
      bool ok = p[pi] == '?';
      size_t next = pi + 1;
      if (!ok && p[pi] == '[') {
        const size_t end = match_set(p, pi, text[ti], ok);
        if (end != none) next = end;
        else ok = text[ti] == '[';
      } else if (!ok) {
        ok = p[pi] == text[ti];
      }
      if (ok) {
        pi = next, ++ti;
        continue;
      }
    }
    if (star == none) return false;
    pi = star + 1, ti = ++star_ti;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace detail

// load_from.skip: whether `key` is left out. An entry with `*`, `?` or `[` is a glob over the whole key (`*`
// matches any run of characters, dots included: `backbone.*.relay.*`); any other entry is a key prefix
// (`cls_head.`), as before globs existed.
inline bool skip_matches(const std::string& key, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
    return p.find_first_of("*?[") != std::string::npos ? detail::glob_match(p, key) : key.rfind(p, 0) == 0;
  });
}

inline Recipe make_recipe(const Config& c) {
  Recipe r;
  const Range positive = Range::at_least(1), non_negative = Range::at_least(0);
  // The device before anything else: a missing GPU stops the run before a model or a list is built.
  r.device = parse_device(c.str("device", "cpu"), c.where("device"));
  // Then the loop: schedules need the epoch count.
  r.epochs = c.integer("epochs", 1, positive);
  r.batch_size = c.integer("batch_size", 8, positive);
  r.num_workers = static_cast<int>(c.integer("num_workers", 2, Range::closed(0, 1024)));
  r.prefetch = c.integer("prefetch", 4, positive);
  r.threads = static_cast<int>(c.integer("threads", 0, Range::closed(0, 1024)));
  r.seed = static_cast<uint64_t>(c.integer("seed", 0, non_negative));
  r.drop_last = c.boolean("drop_last", false);
  r.log_every = c.integer("log_every", 20, positive);
  r.val_every = c.integer("val_every", 1, non_negative);
  r.checkpoint_every_iters = c.integer("checkpoint_every_iters", 0, non_negative);
  r.max_keep_ckpts = c.integer("max_keep_ckpts", 3);  // <= 0 keeps every epoch_N

  // Sampling: the training sampler decides the model's frames per clip.
  data::SampleFrames sampler{.clip_len = c.integer("sampler.clip_len", 1, positive),
                             .frame_interval = c.integer("sampler.frame_interval", 1, positive),
                             .num_clips = c.integer("sampler.num_clips", 8, positive)};
  // MMAction2's out_of_bound_opt: a clip running past the video's end wraps to its start (loop) or repeats the last
  // frame (repeat_last, TDN's sampling).
  const std::string out_of_bound = c.str("sampler.out_of_bound", "loop");
  TV_CHECK(out_of_bound == "loop" || out_of_bound == "repeat_last", c.where("sampler.out_of_bound"),
           ": sampler.out_of_bound must be loop or repeat_last, got '", out_of_bound, "'");
  sampler.out_of_bound_opt = out_of_bound == "loop" ? data::OutOfBound::loop : data::OutOfBound::repeat_last;
  // Test-mode clips of clip_len > 1 centred in their segments (TDN) rather than spread from first to last frame.
  sampler.segment_test_offsets = c.boolean("sampler.segment_test_offsets", false);
  const int64_t frames = sampler.clip_len * sampler.num_clips;

  r.model = c.str("model");
  r.model_config.num_classes = c.integer("num_classes", positive);
  r.model_config.frames = frames;
  for (const auto& [k, v] : c.with_prefix("model."))
    if (k != "dropout") r.model_config.set[k] = v;
  // The architecture's own dropout is the default (a bad name or switch fails here, not after data setup).
  r.model_config.dropout =
      c.real("model.dropout", models::recognizer_options(r.model, r.model_config).dropout, Range::right_open(0, 1));
  models::make_model<float>(r.model, r.model_config);
  r.load_from = c.str("load_from", "");
  r.load_skip = c.strings("load_from.skip", {});

  // Data.
  const std::string root = c.str("data.root", "");
  r.data_format = c.str("data.format", "video");
  TV_CHECK(r.data_format == "video" || r.data_format == "rawframes", c.where("data.format"),
           ": data.format must be video or rawframes, got '", r.data_format, "'");
  r.train_list = detail::resolve(root, c.str("data.train_list", ""));
  r.val_list = detail::resolve(root, c.str("data.val_list", ""));
  r.test_list = detail::resolve(root, c.str("data.test_list", c.str("data.val_list", "")));
  const std::string prefix = c.str("data.prefix", "");
  r.train_prefix = detail::resolve(root, c.str("data.train_prefix", prefix));
  r.val_prefix = detail::resolve(root, c.str("data.val_prefix", prefix));
  r.test_prefix = detail::resolve(root, c.str("data.test_prefix", c.str("data.val_prefix", prefix)));
  r.classes_file = detail::resolve(root, c.str("data.classes", ""));
  r.filename_tmpl = c.str("data.filename_tmpl", "img_{:05d}.jpg");
  r.start_index = c.integer("data.start_index", 1, non_negative);
  r.skip_bad = c.boolean("data.skip_bad", true);
  r.max_skip_ratio = c.real("data.max_skip_ratio", 0.01, Range::closed(0, 1));

  data::Normalize norm;
  const auto mean = c.reals("norm.mean", {123.675, 116.28, 103.53});
  const auto std = c.reals("norm.std", {58.395, 57.12, 57.375}, Range::above(0));
  TV_CHECK(mean.size() == 3, c.where("norm.mean"), ": norm.mean needs 3 values (R, G, B), got ", mean.size());
  TV_CHECK(std.size() == 3, c.where("norm.std"), ": norm.std needs 3 values (R, G, B), got ", std.size());
  for (size_t k = 0; k < 3; ++k) norm.mean[k] = static_cast<float>(mean[k]), norm.std[k] = static_cast<float>(std[k]);

  // Training pipeline: Resize -> crop -> Flip -> Normalize. A short side of 0 or -1 keeps the frame's size.
  const Range short_side = Range::at_least(-1);
  const int64_t crop = c.integer("train.crop_size", 224, positive);
  const int64_t train_resize = c.integer("train.resize", 256, short_side);
  r.train_pipeline.sampler = sampler;
  r.train_pipeline.normalize = norm;
  detail::add_resize(r.train_pipeline, train_resize);
  const std::string crop_kind = c.str("train.crop", "multiscale");
  if (crop_kind == "multiscale") {
    const auto scales = c.reals("train.scales", {1, 0.875, 0.75, 0.66}, Range::left_open(0, 1));
    TV_CHECK(!scales.empty(), c.where("train.scales"), ": train.scales needs at least one scale");
    r.train_pipeline.steps.push_back(data::clip_step(data::MultiScaleCrop{
        .input_size = detail::square(crop), .scales = scales,
        .max_wh_scale_gap = c.integer("train.max_distort", 1, non_negative),
        .random_crop = c.boolean("train.random_crop", false)}));
    r.train_pipeline.steps.push_back(data::clip_step(data::Resize{.scale = detail::square(crop), .keep_ratio = false}));
  } else if (crop_kind == "random_resized") {
    r.train_pipeline.steps.push_back(data::clip_step(data::RandomResizedCrop{}));
    r.train_pipeline.steps.push_back(data::clip_step(data::Resize{.scale = detail::square(crop), .keep_ratio = false}));
  } else if (crop_kind == "random") {
    r.train_pipeline.steps.push_back(data::clip_step(data::RandomCrop{.size = crop}));
  } else if (crop_kind == "center") {
    r.train_pipeline.steps.push_back(data::clip_step(data::CenterCrop{.crop_size = detail::square(crop)}));
  } else {
    TV_FAIL(c.where("train.crop"), ": train.crop must be multiscale, random_resized, random or center, got '", crop_kind,
            "'");
  }
  const double flip = c.real("train.flip", 0.5, Range::closed(0, 1));
  data::Flip flip_step{.flip_ratio = flip};
  const std::string map_where = c.where("train.flip_label_map") + ": train.flip_label_map";
  for (const std::string& pair : c.strings("train.flip_label_map", {})) {  // "2:4, 4:2, ..."
    const size_t colon = pair.find(':');
    TV_CHECK(colon != std::string::npos, map_where, ": expected label:label pairs such as 2:4, got '", pair, "'");
    const std::string what = map_where + " '" + pair + "'";
    const int64_t from = parse_int(pair.substr(0, colon), what, non_negative),
                  to = parse_int(pair.substr(colon + 1), what, non_negative);
    TV_CHECK(from < r.model_config.num_classes && to < r.model_config.num_classes, what,
             ": labels must be below num_classes = ", r.model_config.num_classes);
    TV_CHECK(flip_step.flip_label_map.emplace(from, to).second, what, ": label ", from, " is mapped twice");
  }
  TV_CHECK(flip > 0 || flip_step.flip_label_map.empty(), map_where, " is set but train.flip is 0 (no flips)");
  if (flip > 0) r.train_pipeline.steps.push_back(data::clip_step(std::move(flip_step)));

  // Validation: the cheap protocol (the training clips in test mode, one centre crop).
  const int64_t test_resize = c.integer("test.resize", train_resize, short_side);
  r.val_pipeline.sampler = sampler;
  r.val_pipeline.sampler.test_mode = true;
  r.val_pipeline.normalize = norm;
  detail::add_resize(r.val_pipeline, test_resize);
  r.val_pipeline.steps.push_back(
      data::clip_step(data::CenterCrop{.crop_size = detail::square(c.integer("val.crop_size", crop, positive))}));

  // Test: num_clips clips x crops, views of `frames` frames each.
  r.test_pipeline.sampler = sampler;
  r.test_pipeline.sampler.test_mode = true;
  r.test_pipeline.sampler.num_clips = c.integer("test.num_clips", sampler.num_clips, positive);
  r.test_pipeline.sampler.twice_sample = c.boolean("test.twice_sample", false);
  TV_CHECK(!(r.test_pipeline.sampler.twice_sample && sampler.segment_test_offsets), c.where("test.twice_sample"),
           ": test.twice_sample cannot go with sampler.segment_test_offsets (one clip per segment)");
  TV_CHECK(r.test_pipeline.sampler.num_clips * sampler.clip_len % frames == 0, c.where("test.num_clips"),
           ": test.num_clips x clip_len = ", r.test_pipeline.sampler.num_clips * sampler.clip_len,
           " frames per crop must be a multiple of the model's ", frames, " frames (whole views)");
  r.test_pipeline.normalize = norm;
  detail::add_resize(r.test_pipeline, test_resize);
  const auto test_crop = detail::square(c.integer("test.crop_size", crop, positive));
  const std::string test_kind = c.str("test.crop", "center");
  if (test_kind == "center") r.test_pipeline.steps.push_back(data::clip_step(data::CenterCrop{.crop_size = test_crop}));
  else if (test_kind == "three") r.test_pipeline.steps.push_back(data::clip_step(data::ThreeCrop{.crop_size = test_crop}));
  else if (test_kind == "ten") r.test_pipeline.steps.push_back(data::clip_step(data::TenCrop{.crop_size = test_crop}));
  else TV_FAIL(c.where("test.crop"), ": test.crop must be center, three or ten, got '", test_kind, "'");
  const std::string avg = c.str("test.average_clips", "prob");
  TV_CHECK(avg == "prob" || avg == "score", c.where("test.average_clips"),
           ": test.average_clips must be prob or score, got '", avg, "'");
  r.average_clips = avg == "prob" ? models::AverageClips::Prob : models::AverageClips::Score;
  r.max_views_per_pass = c.integer("test.max_views_per_pass", 0, non_negative);
  r.test_batch_size = c.integer("test.batch_size", 1, positive);

  // Optimizer and schedule.
  const double lr = c.real("optim.lr", 0.1, Range::above(0));
  const double momentum = c.real("optim.momentum", 0.9, Range::right_open(0, 1));
  const bool nesterov = c.boolean("optim.nesterov", false);
  TV_CHECK(!nesterov || momentum > 0, c.where("optim.nesterov"), ": optim.nesterov needs optim.momentum > 0");
  r.sgd = optim::SGDOptions(lr)
              .momentum(momentum)
              .weight_decay(c.real("optim.weight_decay", 1e-4, non_negative))
              .nesterov(nesterov);
  r.clip_grad = c.real("optim.clip_grad", 40, non_negative);
  r.label_smoothing = c.real("loss.label_smoothing", 0, Range::right_open(0, 1));
  const std::string sched = c.str("schedule", "cosine");
  // A cosine ends at min_lr, which must not lie above the lr it starts from.
  auto min_lr = [&] { return c.real("schedule.min_lr", 0, Range::closed(0, lr)); };
  if (sched == "cosine") {
    r.schedule = optim::LrSchedule::cosine_per_iteration(lr, r.epochs, min_lr());
  } else if (sched == "mmcv0_cosine" || sched == "cosine_per_epoch") {
    r.schedule = optim::LrSchedule::cosine_per_epoch(lr, r.epochs, min_lr());
  } else if (sched == "step") {
    // Epochs at which the lr drops: increasing, each within the run (a drop at or after the end is lost).
    const auto milestones = c.integers("schedule.milestones", {}, Range::closed(1, static_cast<double>(r.epochs - 1)));
    TV_CHECK(!milestones.empty(), c.where("schedule"), ": schedule = step needs schedule.milestones (epochs)");
    TV_CHECK(std::is_sorted(milestones.begin(), milestones.end(), std::less_equal<>()), c.where("schedule.milestones"),
             ": expected increasing schedule.milestones, got '", c.str("schedule.milestones"), "'");
    r.schedule = optim::LrSchedule::multi_step(lr, milestones, c.real("schedule.gamma", 0.1, Range::above(0)));
  } else if (sched == "constant") {
    r.schedule = optim::LrSchedule::constant(lr);
  } else {
    TV_FAIL(c.where("schedule"), ": schedule must be cosine, mmcv0_cosine, cosine_per_epoch, step or constant, got '",
            sched, "'");
  }
  const int64_t warmup = c.integer("schedule.warmup_iters", 0, non_negative);
  if (warmup > 0)
    r.schedule = r.schedule.linear_warmup(warmup, c.real("schedule.warmup_ratio", 0.01, Range::left_open(0, 1)));
  return r;
}

// The dataset of a split ("train", "val", "test") with its pipeline.
inline std::unique_ptr<data::Dataset> make_dataset(const Recipe& r, const std::string& split) {
  const bool train = split == "train", val = split == "val";
  const std::string& list = train ? r.train_list : val ? r.val_list : r.test_list;
  const std::string& prefix = train ? r.train_prefix : val ? r.val_prefix : r.test_prefix;
  TV_CHECK(!list.empty(), "config: data.", split, "_list is not set");
  const data::Pipeline& p = train ? r.train_pipeline : val ? r.val_pipeline : r.test_pipeline;
  data::ListOptions lo;
  lo.data_prefix = prefix;
  lo.num_classes = r.model_config.num_classes;  // a bad label is FILE:LINE as the list loads, not a failure mid-epoch
  if (r.data_format == "video") return std::make_unique<data::VideoDataset>(data::read_video_list(list, lo), p, r.skip_bad);
  return std::make_unique<data::RawframeDataset>(data::read_rawframe_list(list, lo), p, r.skip_bad, r.filename_tmpl,
                                                 r.start_index);
}

// Class names from data.classes (one per line), else "0", "1", ...
inline std::vector<std::string> class_names(const Recipe& r) {
  std::vector<std::string> names;
  if (!r.classes_file.empty()) names = data::read_label_map(r.classes_file);
  for (auto k = static_cast<int64_t>(names.size()); k < r.model_config.num_classes; ++k) names.push_back(std::to_string(k));
  return names;
}

}  // namespace tv::train
