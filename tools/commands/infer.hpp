#pragma once
// tinyvid infer (--config C | --model NAME [--num-classes K] [--frames T] [--size S]) --weights W --video FILE
//               [--labels L] [--set key=value ...] [--json]
// --set device=cuda runs the model on the GPU, with a config (its key `device`) or without.
#include <algorithm>
#include <memory>
#include <numeric>

#include <tinyvid/train/trainer.hpp>

#include "common.hpp"
#include "train.hpp"

namespace tvcli {

inline Run add_infer(CLI::App& cmd) {
  struct Args {
    ModelArgs m;
    Text config, size, weights, video, labels;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  add_text(cmd, a->config, "--config", "C", "the config the model was trained with (else --model ...)");
  a->m.add(cmd);
  add_text(cmd, a->size, "--size", "S", "without a config: the centre crop's side", "224");
  add_text(cmd, a->weights, "--weights", "W", "the model's weights (.safetensors)");
  add_text(cmd, a->video, "--video", "FILE", "the video");
  add_text(cmd, a->labels, "--labels", "L", "class names, one a line (default: the config's classes file)");
  add_sets(cmd, a->m.set, "override a config key, or a model switch without a config; repeatable");
  add_flag(cmd, a->json, "--json", "one JSON object");
  cmd.footer(wrap("The top-5 classes of one video. Without a config: TSN-style uniform frames, short side resized "
                  "to S * 256 / 224, a centre crop of S.") +
             "\n" + config_set_help() + "\n" + model_help());
  return [a] {
    tv::train::Recipe r;
    if (a->config.given()) {
      tv::train::Config c = load_config(a->config.get(), a->m.set);
      r = tv::train::make_recipe(c);
      c.check_all_used();
    } else {
      r.device = a->m.device();
      r.model = a->m.model.need();
      r.model_config = a->m.config();
      const int64_t size = a->size.integer();
      // One frame per segment, or TDN's 5 (consecutive, the last repeated at a video's end, as its authors sample).
      const int64_t segments = tv::models::recognizer_options(r.model, r.model_config).backbone.frames;
      const int64_t clip_len = r.model_config.frames / segments;
      r.test_pipeline.sampler = {.clip_len = clip_len, .num_clips = segments, .test_mode = true};
      if (clip_len > 1) {
        r.test_pipeline.sampler.out_of_bound_opt = tv::data::OutOfBound::repeat_last;
        r.test_pipeline.sampler.segment_test_offsets = true;
      }
      r.test_pipeline.steps.push_back(tv::data::clip_step(tv::data::Resize{.scale = {-1, (size * 256 + 112) / 224}}));
      r.test_pipeline.steps.push_back(tv::data::clip_step(tv::data::CenterCrop{.crop_size = {size, size}}));
    }
    auto model = tv::models::make_model<float>(r.model, r.model_config);
    tv::io::load_weights(*model, a->weights.need());
    model->to(r.device.device);
    const std::string video = a->video.need();
    std::vector<std::string> names;
    if (a->labels.given()) names = tv::data::read_label_map(a->labels.get());
    else if (!r.classes_file.empty()) names = tv::train::class_names(r);
    tv::data::VideoDataset ds({tv::data::Annotation{.path = video, .labels = {0}}}, r.test_pipeline);
    tv::Generator gen;
    const auto sample = ds.get(0, gen);
    // Decoded frames are finite; a config's Normalize (a std of 0) may not leave them so: name the video.
    tv::check_finite(sample->clips, video + ": the clips after the test pipeline");
    tv::NoGradGuard no_grad;
    model->eval();
    const int64_t views = sample->clips.size(0) / model->frames();
    const auto scores = model->forward_views(sample->clips.to(r.device.device), views, tv::models::AverageClips::Prob)
                            .to(tv::Device::CPU)
                            .to_vector();
    std::vector<int64_t> order(scores.size());
    std::iota(order.begin(), order.end(), 0);
    const size_t k = std::min<size_t>(5, order.size());
    auto higher = [&](int64_t x, int64_t y) { return scores[static_cast<size_t>(x)] > scores[static_cast<size_t>(y)]; };
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), higher);
    auto name_of = [&](int64_t c) {
      return c < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(c)] : std::to_string(c);
    };
    if (a->json) {
      std::printf("{\"video\":%s,\"views\":%lld,\"top5\":[", tv::json_quote(video).c_str(),
                  static_cast<long long>(views));
      for (size_t i = 0; i < k; ++i)
        std::printf("%s{\"class\":%lld,\"name\":%s,\"prob\":%.6f}", i ? "," : "", static_cast<long long>(order[i]),
                    tv::json_quote(name_of(order[i])).c_str(), scores[static_cast<size_t>(order[i])]);
      std::printf("]}\n");
    } else {
      std::printf("%s (%lld views):\n", video.c_str(), static_cast<long long>(views));
      for (size_t i = 0; i < k; ++i)
        std::printf("  %6.2f%%  %s (class %lld)\n", 100.0 * scores[static_cast<size_t>(order[i])],
                    name_of(order[i]).c_str(), static_cast<long long>(order[i]));
    }
    return 0;
  };
}

}  // namespace tvcli
