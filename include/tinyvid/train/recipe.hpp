#pragma once
// A run's recipe read from a Config (config.hpp): model, data and pipelines, optimizer, schedule, and the
// loop's settings. Every key, its default and its meaning is listed in configs/README.md; the defaults are
// the paper's Kinetics recipe (../shared/DNR.md) where it has one, MMAction2's otherwise.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tinyvid/data/dataset.hpp"
#include "tinyvid/models/recognizer.hpp"
#include "tinyvid/models/registry.hpp"
#include "tinyvid/optim/schedule.hpp"
#include "tinyvid/optim/sgd.hpp"
#include "tinyvid/train/config.hpp"

namespace tv::train {

struct Recipe {
  // Model: frames = clip_len x num_clips of the training sampler.
  std::string model;
  models::ModelConfig model_config;

  // Data: paths as given, relative ones resolved against data.root.
  std::string data_format = "video";  // video | rawframes
  std::string train_list, val_list, test_list, train_prefix, val_prefix, test_prefix, classes_file;
  std::string filename_tmpl = "img_{:05d}.jpg";
  int64_t start_index = 1;
  bool skip_bad = true;
  data::Pipeline train_pipeline, val_pipeline, test_pipeline;
  models::AverageClips average_clips = models::AverageClips::Prob;
  int64_t max_views_per_pass = 0;
  int64_t test_batch_size = 1;

  // Initial weights (fine-tuning): a safetensors file; keys starting with a load_skip prefix are not loaded.
  std::string load_from;
  std::vector<std::string> load_skip;

  // Optimization.
  optim::SGDOptions sgd{0.1};
  double clip_grad = 40;  // max gradient norm, 0: off
  double label_smoothing = 0;
  optim::LrSchedule schedule = optim::LrSchedule::constant(0.1);

  // The loop.
  int64_t epochs = 1, batch_size = 8, log_every = 20, val_every = 1, checkpoint_every_iters = 0;
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

inline Recipe make_recipe(const Config& c) {
  Recipe r;
  // The loop first: schedules need the epoch count.
  r.epochs = c.integer("epochs", 1);
  TV_CHECK(r.epochs >= 1, "config: epochs must be >= 1, got ", r.epochs);
  r.batch_size = c.integer("batch_size", 8);
  TV_CHECK(r.batch_size >= 1, "config: batch_size must be >= 1, got ", r.batch_size);
  r.num_workers = static_cast<int>(c.integer("num_workers", 2));
  r.prefetch = c.integer("prefetch", 4);
  r.threads = static_cast<int>(c.integer("threads", 0));
  r.seed = static_cast<uint64_t>(c.integer("seed", 0));
  r.drop_last = c.boolean("drop_last", false);
  r.log_every = c.integer("log_every", 20);
  r.val_every = c.integer("val_every", 1);
  r.checkpoint_every_iters = c.integer("checkpoint_every_iters", 0);
  TV_CHECK(r.log_every >= 1 && r.val_every >= 0 && r.checkpoint_every_iters >= 0,
           "config: expected log_every >= 1, val_every >= 0 and checkpoint_every_iters >= 0");

  // Sampling: the training sampler decides the model's frames per clip.
  data::SampleFrames sampler{.clip_len = c.integer("sampler.clip_len", 1),
                             .frame_interval = c.integer("sampler.frame_interval", 1),
                             .num_clips = c.integer("sampler.num_clips", 8)};
  TV_CHECK(sampler.clip_len >= 1 && sampler.frame_interval >= 1 && sampler.num_clips >= 1,
           "config: sampler.clip_len, sampler.frame_interval and sampler.num_clips must be >= 1");
  const int64_t frames = sampler.clip_len * sampler.num_clips;

  r.model = c.str("model");
  r.model_config.num_classes = c.integer("num_classes");
  r.model_config.frames = frames;
  r.model_config.dropout = c.real("model.dropout", -1);
  for (const auto& [k, v] : c.with_prefix("model."))
    if (k != "dropout") r.model_config.set[k] = v;
  models::make_model<float>(r.model, r.model_config);  // a bad name or switch fails now, not after data setup
  r.load_from = c.str("load_from", "");
  r.load_skip = c.strings("load_from.skip", {});

  // Data.
  const std::string root = c.str("data.root", "");
  r.data_format = c.str("data.format", "video");
  TV_CHECK(r.data_format == "video" || r.data_format == "rawframes", "config: data.format must be video or rawframes, got '",
           r.data_format, "'");
  r.train_list = detail::resolve(root, c.str("data.train_list", ""));
  r.val_list = detail::resolve(root, c.str("data.val_list", ""));
  r.test_list = detail::resolve(root, c.str("data.test_list", c.str("data.val_list", "")));
  const std::string prefix = c.str("data.prefix", "");
  r.train_prefix = detail::resolve(root, c.str("data.train_prefix", prefix));
  r.val_prefix = detail::resolve(root, c.str("data.val_prefix", prefix));
  r.test_prefix = detail::resolve(root, c.str("data.test_prefix", c.str("data.val_prefix", prefix)));
  r.classes_file = detail::resolve(root, c.str("data.classes", ""));
  r.filename_tmpl = c.str("data.filename_tmpl", "img_{:05d}.jpg");
  r.start_index = c.integer("data.start_index", 1);
  r.skip_bad = c.boolean("data.skip_bad", true);

  data::Normalize norm;
  const auto mean = c.reals("norm.mean", {123.675, 116.28, 103.53});
  const auto std = c.reals("norm.std", {58.395, 57.12, 57.375});
  TV_CHECK(mean.size() == 3 && std.size() == 3, "config: norm.mean and norm.std need 3 values (R, G, B)");
  for (size_t k = 0; k < 3; ++k) norm.mean[k] = static_cast<float>(mean[k]), norm.std[k] = static_cast<float>(std[k]);

  // Training pipeline: Resize -> crop -> Flip -> Normalize.
  const int64_t crop = c.integer("train.crop_size", 224);
  const int64_t train_resize = c.integer("train.resize", 256);
  r.train_pipeline.sampler = sampler;
  r.train_pipeline.normalize = norm;
  detail::add_resize(r.train_pipeline, train_resize);
  const std::string crop_kind = c.str("train.crop", "multiscale");
  if (crop_kind == "multiscale") {
    r.train_pipeline.steps.push_back(data::clip_step(data::MultiScaleCrop{
        .input_size = detail::square(crop), .scales = c.reals("train.scales", {1, 0.875, 0.75, 0.66}),
        .max_wh_scale_gap = c.integer("train.max_distort", 1), .random_crop = c.boolean("train.random_crop", false)}));
    r.train_pipeline.steps.push_back(data::clip_step(data::Resize{.scale = detail::square(crop), .keep_ratio = false}));
  } else if (crop_kind == "random_resized") {
    r.train_pipeline.steps.push_back(data::clip_step(data::RandomResizedCrop{}));
    r.train_pipeline.steps.push_back(data::clip_step(data::Resize{.scale = detail::square(crop), .keep_ratio = false}));
  } else if (crop_kind == "random") {
    r.train_pipeline.steps.push_back(data::clip_step(data::RandomCrop{.size = crop}));
  } else if (crop_kind == "center") {
    r.train_pipeline.steps.push_back(data::clip_step(data::CenterCrop{.crop_size = detail::square(crop)}));
  } else {
    TV_FAIL("config: train.crop must be multiscale, random_resized, random or center, got '", crop_kind, "'");
  }
  const double flip = c.real("train.flip", 0.5);
  data::Flip flip_step{.flip_ratio = flip};
  for (const std::string& pair : c.strings("train.flip_label_map", {})) {  // "2:4, 4:2, ..."
    const size_t colon = pair.find(':');
    TV_CHECK(colon != std::string::npos, "config: train.flip_label_map: expected label:label pairs such as 2:4, got '",
             pair, "'");
    const std::string what = "config: train.flip_label_map '" + pair + "'";
    const int64_t from = models::detail::parse_int(what, pair.substr(0, colon), 0),
                  to = models::detail::parse_int(what, pair.substr(colon + 1), 0);
    TV_CHECK(from < r.model_config.num_classes && to < r.model_config.num_classes, what, ": labels must be below num_classes = ",
             r.model_config.num_classes);
    TV_CHECK(flip_step.flip_label_map.emplace(from, to).second, what, ": label ", from, " is mapped twice");
  }
  TV_CHECK(flip > 0 || flip_step.flip_label_map.empty(), "config: train.flip_label_map is set but train.flip is 0 (no flips)");
  if (flip > 0) r.train_pipeline.steps.push_back(data::clip_step(std::move(flip_step)));

  // Validation: the cheap protocol (the training clips in test mode, one centre crop).
  const int64_t test_resize = c.integer("test.resize", train_resize);
  r.val_pipeline.sampler = sampler;
  r.val_pipeline.sampler.test_mode = true;
  r.val_pipeline.normalize = norm;
  detail::add_resize(r.val_pipeline, test_resize);
  r.val_pipeline.steps.push_back(
      data::clip_step(data::CenterCrop{.crop_size = detail::square(c.integer("val.crop_size", crop))}));

  // Test: num_clips clips x crops, views of `frames` frames each.
  r.test_pipeline.sampler = sampler;
  r.test_pipeline.sampler.test_mode = true;
  r.test_pipeline.sampler.num_clips = c.integer("test.num_clips", sampler.num_clips);
  r.test_pipeline.sampler.twice_sample = c.boolean("test.twice_sample", false);
  TV_CHECK(r.test_pipeline.sampler.num_clips * sampler.clip_len % frames == 0, "config: test.num_clips x clip_len = ",
           r.test_pipeline.sampler.num_clips * sampler.clip_len, " frames per crop must be a multiple of the model's ",
           frames, " frames (whole views)");
  r.test_pipeline.normalize = norm;
  detail::add_resize(r.test_pipeline, test_resize);
  const int64_t test_crop = c.integer("test.crop_size", crop);
  const std::string test_kind = c.str("test.crop", "center");
  if (test_kind == "center") r.test_pipeline.steps.push_back(data::clip_step(data::CenterCrop{.crop_size = detail::square(test_crop)}));
  else if (test_kind == "three") r.test_pipeline.steps.push_back(data::clip_step(data::ThreeCrop{.crop_size = detail::square(test_crop)}));
  else if (test_kind == "ten") r.test_pipeline.steps.push_back(data::clip_step(data::TenCrop{.crop_size = detail::square(test_crop)}));
  else TV_FAIL("config: test.crop must be center, three or ten, got '", test_kind, "'");
  const std::string avg = c.str("test.average_clips", "prob");
  TV_CHECK(avg == "prob" || avg == "score", "config: test.average_clips must be prob or score, got '", avg, "'");
  r.average_clips = avg == "prob" ? models::AverageClips::Prob : models::AverageClips::Score;
  r.max_views_per_pass = c.integer("test.max_views_per_pass", 0);
  r.test_batch_size = c.integer("test.batch_size", 1);

  // Optimizer and schedule.
  const double lr = c.real("optim.lr", 0.1);
  r.sgd = optim::SGDOptions(lr)
              .momentum(c.real("optim.momentum", 0.9))
              .weight_decay(c.real("optim.weight_decay", 1e-4))
              .nesterov(c.boolean("optim.nesterov", false));
  r.clip_grad = c.real("optim.clip_grad", 40);
  r.label_smoothing = c.real("loss.label_smoothing", 0);
  const std::string sched = c.str("schedule", "cosine");
  const double min_lr = c.real("schedule.min_lr", 0);
  if (sched == "cosine") r.schedule = optim::LrSchedule::cosine_per_iteration(lr, r.epochs, min_lr);
  else if (sched == "mmcv0_cosine" || sched == "cosine_per_epoch") r.schedule = optim::LrSchedule::cosine_per_epoch(lr, r.epochs, min_lr);
  else if (sched == "step") r.schedule = optim::LrSchedule::multi_step(lr, c.integers("schedule.milestones", {}), c.real("schedule.gamma", 0.1));
  else if (sched == "constant") r.schedule = optim::LrSchedule::constant(lr);
  else TV_FAIL("config: schedule must be cosine, mmcv0_cosine, cosine_per_epoch, step or constant, got '", sched, "'");
  const int64_t warmup = c.integer("schedule.warmup_iters", 0);
  if (warmup > 0) r.schedule = r.schedule.linear_warmup(warmup, c.real("schedule.warmup_ratio", 0.01));
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
