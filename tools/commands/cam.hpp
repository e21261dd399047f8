#pragma once
// tinyvid cam --config C --weights W --video V [--class K] [--layer backbone.layerN] --out DIR [--set ...]
// Grad-CAM++ maps (viz/gradcam.hpp) of one clip: DIR/cam.png (the clip's frames side by side with the map over
// each, the class and its probability above) and DIR/cam.mp4 (the same overlays as a video).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <tinyvid/data/video_writer.hpp>
#include <tinyvid/train/trainer.hpp>
#include <tinyvid/viz/gradcam.hpp>

#include "common.hpp"
#include "train.hpp"

namespace tvcli {

inline Run add_cam(CLI::App& cmd) {
  struct Args {
    Text config, weights, video, cls, layer, out;
    std::map<std::string, std::string> set;
  };
  auto a = std::make_shared<Args>();
  add_text(cmd, a->config, "--config", "C", "the config the model was trained with");
  add_text(cmd, a->weights, "--weights", "W", "the model's weights (.safetensors)");
  add_text(cmd, a->video, "--video", "V", "the video");
  add_text(cmd, a->cls, "--class", "K", "the class to explain (default: the top-scoring one)");
  add_text(cmd, a->layer, "--layer", "L", "where the maps are taken", "backbone.layer4");
  add_text(cmd, a->out, "--out", "DIR", "where cam.png and cam.mp4 go");
  add_sets(cmd, a->set, "override a config key; repeatable");
  cmd.footer(wrap("Grad-CAM++ maps of the first view (first clip, first crop) of the config's test pipeline: "
                  "for each frame, where the model's backbone output supports the class. Maps are scaled by the "
                  "clip's largest value, so frames compare. --layer names the stage whose output is explained "
                  "(backbone.layer4, the backbone's output, by default).") +
             "\n" + config_set_help());
  return [a] {
    tv::train::Config c = load_config(a->config.need(), a->set);
    const tv::train::Recipe r = tv::train::make_recipe(c);
    c.check_all_used();
    const std::string layer = a->layer.get();
    int64_t stage = 0;
    for (int64_t k = 1; k <= 4; ++k)
      if (layer == "backbone.layer" + std::to_string(k)) stage = k;
    TV_CHECK(stage > 0, "--layer: expected backbone.layer1, backbone.layer2, backbone.layer3 or backbone.layer4 (the "
             "output of that stage), got '", layer, "'");
    auto model = tv::models::make_model<float>(r.model, r.model_config);
    tv::io::load_weights(*model, a->weights.need());
    model->to(r.device.device);
    const std::string video = a->video.need();
    tv::data::VideoDataset ds({tv::data::Annotation{.path = video, .labels = {0}}}, r.test_pipeline);
    tv::Generator gen;
    const auto sample = ds.get(0, gen);
    const int64_t T = model->frames();
    TV_CHECK(sample->clips.size(0) >= T, video, ": the test pipeline gives ", sample->clips.size(0),
             " frames, fewer than the model's ", T);
    const tv::Tensor<float> clip = sample->clips.narrow(0, 0, T).contiguous();
    tv::check_finite(clip, video + ": the clip after the test pipeline");
    const int64_t cls = a->cls.given() ? a->cls.integer() : -1;
    const tv::viz::GradCam cam = tv::viz::grad_cam_pp(*model, clip.to(r.device.device), cls, stage);
    std::vector<std::string> names;
    if (!r.classes_file.empty()) names = tv::train::class_names(r);
    const std::string name = cam.class_index < static_cast<int64_t>(names.size())
                                 ? names[static_cast<size_t>(cam.class_index)]
                                 : "class " + std::to_string(cam.class_index);
    char title[256];
    std::snprintf(title, sizeof(title), "%s %.1f%% (%s)", name.c_str(), 100 * cam.probability, r.model.c_str());

    const std::string out = a->out.need();
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    TV_CHECK(!ec, "cannot create '", out, "': ", ec.message());
    const std::vector<tv::data::Image> frames = tv::viz::cam_frames(clip, r.test_pipeline.normalize, cam);
    tv::viz::cam_strip(frames, title).save_png(out + "/cam.png");
    // The video: the same frames (sizes made even for 4:2:0), 4 frames a second.
    const int64_t H = clip.size(2) & ~int64_t{1}, W = clip.size(3) & ~int64_t{1};
    tv::data::VideoWriter writer(out + "/cam.mp4", W, H, 4.0);
    for (const tv::data::Image& frame : frames)
      writer.write(frame.width == W && frame.height == H ? frame : tv::data::crop(frame, {.x = 0, .y = 0, .w = W, .h = H}));
    writer.close();
    std::printf("%s: %s, probability %.4f; wrote %s/cam.png, %s/cam.mp4\n", video.c_str(), name.c_str(),
                cam.probability, out.c_str(), out.c_str());
    return 0;
  };
}

}  // namespace tvcli
