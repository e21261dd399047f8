#pragma once
// Models by name: (tsn|tsm)_r(18|34|50|101|152)[_dnr], e.g. tsn_r50, tsn_r50_dnr, tsm_r50_dnr, with
// the number of classes, frames, dropout and `key=value` switches (the command line's --set).
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tinyvid/core/parse.hpp"
#include "tinyvid/models/recognizer.hpp"

namespace tv::models {

struct ModelConfig {
  int64_t num_classes = 400;
  int64_t frames = 8;
  double dropout = -1;                         // < 0: the architecture's default (TSN 0.4, TSM 0.5)
  std::map<std::string, std::string> set;      // switches: see switch_names()
};

inline std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const char* arch : {"tsn", "tsm"})
    for (int depth : {18, 34, 50, 101, 152})
      for (const char* suffix : {"", "_dnr"}) out.push_back(std::string(arch) + "_r" + std::to_string(depth) + suffix);
  return out;
}

inline std::vector<std::string> switch_names() {
  return {"width", "shift_div", "cross_layer", "cross_temporal", "ct_group_frames", "ct_bidirectional",
          "ct_shared_direction_cell", "interlace", "reduction", "norm_group_clips"};
}

namespace detail {
inline bool parse_bool(const std::string& key, const std::string& v) {
  if (v == "1" || v == "true" || v == "on" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "off" || v == "no") return false;
  TV_FAIL("model switch ", key, ": expected true or false, got '", v, "'");
}
}  // namespace detail

// The options a name and a config stand for; a bad name or switch is an error listing the valid ones.
inline RecognizerOptions recognizer_options(const std::string& name, const ModelConfig& cfg) {
  const auto names = model_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string known;
    for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
    TV_FAIL("unknown model '", name, "'; known models: ", known);
  }
  TV_CHECK(cfg.frames >= 1, "model ", name, ": frames must be at least 1, got ", cfg.frames);
  RecognizerOptions o;
  // name = arch "_r" depth ["_dnr"]
  const bool tsm = name.compare(0, 3, "tsm") == 0, dnr = name.size() > 4 && name.compare(name.size() - 4, 4, "_dnr") == 0;
  o.backbone.depth = parse_int(name.substr(5, name.find('_', 5) - 5), "model " + name);
  o.backbone.frames = cfg.frames;
  o.backbone.norm = dnr ? Norm::Dnr : Norm::Batch;
  o.backbone.temporal_shift = tsm;
  o.consensus = tsm ? Consensus::AfterFc : Consensus::BeforeFc;
  o.num_classes = cfg.num_classes;
  o.dropout = cfg.dropout >= 0 ? cfg.dropout : (tsm ? 0.5 : 0.4);
  auto& d = o.backbone.dnr;
  auto count = [](const std::string& key, const std::string& v, double min = 1) {
    return parse_int(v, "model switch " + key, Range::at_least(min));
  };
  for (const auto& [key, value] : cfg.set) {
    if (key == "width") o.backbone.width = count(key, value);
    else if (key == "shift_div") o.backbone.shift_div = count(key, value);
    else if (key == "cross_layer") d.cross_layer = detail::parse_bool(key, value);
    else if (key == "cross_temporal") d.cross_temporal = detail::parse_bool(key, value);
    else if (key == "ct_group_frames") d.ct_group_frames = count(key, value);
    else if (key == "ct_bidirectional") d.ct_bidirectional = detail::parse_bool(key, value);
    else if (key == "ct_shared_direction_cell") d.ct_shared_direction_cell = detail::parse_bool(key, value);
    else if (key == "interlace") d.interlace = detail::parse_bool(key, value);
    else if (key == "reduction") d.reduction = count(key, value);
    else if (key == "norm_group_clips") o.backbone.norm_group_clips = count(key, value, 0);
    else {
      std::string known;
      for (auto& n : switch_names()) known += (known.empty() ? "" : ", ") + n;
      TV_FAIL("model ", name, ": unknown switch '", key, "'; known switches: ", known);
    }
  }
  if (o.backbone.norm == Norm::Dnr && d.cross_temporal)
    TV_CHECK(cfg.frames % d.ct_group_frames == 0, "model ", name, ": ", cfg.frames,
             " frames do not split into groups of ct_group_frames = ", d.ct_group_frames);
  return o;
}

template <class T = float>
std::shared_ptr<Recognizer<T>> make_model(const std::string& name, const ModelConfig& cfg = {},
                                          Generator& gen = default_generator()) {
  return std::make_shared<Recognizer<T>>(recognizer_options(name, cfg), gen);
}

}  // namespace tv::models
