#pragma once
// Models by name: (tsn|tsm|tanet|tdn)_r(18|34|50|101|152)[_dnr], e.g. tsn_r50, tsn_r50_dnr, tsm_r50_dnr, tanet_r50,
// tdn_r50, with the number of classes, frames, dropout and `key=value` switches (the command line's --set).
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "tinyvid/core/parse.hpp"
#include "tinyvid/models/recognizer.hpp"

namespace tv::models {

struct ModelConfig {
  int64_t num_classes = 400;
  int64_t frames = 8;                          // input frames per clip (TDN: 5 per segment, so 40 for 8 segments)
  double dropout = -1;                         // < 0: the architecture's default (TSN 0.4, TSM, TANet, TDN 0.5)
  std::map<std::string, std::string> set;      // switches: see model_switches()
};

// The names: arch "_r" depth ["_dnr"].
inline const std::vector<std::string>& model_archs() {
  static const std::vector<std::string> archs = {"tsn", "tsm", "tanet", "tdn"};
  return archs;
}
inline const std::vector<int>& model_depths() {
  static const std::vector<int> depths = {18, 34, 50, 101, 152};
  return depths;
}

inline std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const auto& arch : model_archs())
    for (int depth : model_depths())
      for (const char* suffix : {"", "_dnr"}) out.push_back(arch + "_r" + std::to_string(depth) + suffix);
  return out;
}

// The names as one pattern, for help texts: (tsn|tsm|tanet|tdn)_r(18|34|50|101|152)[_dnr].
inline std::string model_name_pattern() {
  std::string archs, depths;
  for (const auto& a : model_archs()) archs += (archs.empty() ? "" : "|") + a;
  for (int d : model_depths()) depths += (depths.empty() ? "" : "|") + std::to_string(d);
  return "(" + archs + ")_r(" + depths + ")[_dnr]";
}

// A `key=value` switch: the field of RecognizerOptions it sets, a whole number >= min or a boolean.
struct ModelSwitch {
  using Field = std::variant<int64_t*, bool*>;
  const char* name;
  const char* help;  // one line
  Field (*field)(RecognizerOptions&);
  int64_t min = 1;  // whole numbers only
};

// Every switch, in the order help texts list them; recognizer_options reads this table, nothing else.
inline const std::vector<ModelSwitch>& model_switches() {
  using F = ModelSwitch::Field;
  static const std::vector<ModelSwitch> table = {
      {"width", "channels of the stem and of stage 1 (less for small demos)",
       [](RecognizerOptions& o) -> F { return &o.backbone.width; }},
      {"shift_div", "TSM: 1/shift_div of the channels shift each way",
       [](RecognizerOptions& o) -> F { return &o.backbone.shift_div; }},
      {"tam_alpha", "TANet: the TAM's global branch has alpha * frames hidden units",
       [](RecognizerOptions& o) -> F { return &o.backbone.tam_options.alpha; }},
      {"tam_beta", "TANet: the TAM's local branch narrows the channels by beta",
       [](RecognizerOptions& o) -> F { return &o.backbone.tam_options.beta; }},
      {"tam_adaptive_kernel_size", "TANet: taps K of the adaptive temporal kernel (odd)",
       [](RecognizerOptions& o) -> F { return &o.backbone.tam_options.adaptive_kernel_size; }},
      {"tam_conv1d_kernel_size", "TANet: temporal kernel of the local branch's first conv (odd)",
       [](RecognizerOptions& o) -> F { return &o.backbone.tam_options.conv1d_kernel_size; }},
      {"cross_layer", "DNR: cross-layer normalization (bn1)",
       [](RecognizerOptions& o) -> F { return &o.backbone.dnr.cross_layer; }},
      {"cross_temporal", "DNR: cross-temporal normalization (bn2)",
       [](RecognizerOptions& o) -> F { return &o.backbone.dnr.cross_temporal; }},
      {"ct_group_frames", "DNR: frames per relay step (must divide the frames)",
       [](RecognizerOptions& o) -> F { return &o.backbone.dnr.ct_group_frames; }},
      {"ct_bidirectional", "DNR: also relay from the last group back, average both",
       [](RecognizerOptions& o) -> F { return &o.backbone.dnr.ct_bidirectional; }},
      {"ct_shared_direction_cell", "DNR: bidirectional with one cell for both directions",
       [](RecognizerOptions& o) -> F { return &o.backbone.dnr.ct_shared_direction_cell; }},
      {"interlace", "DNR: channel interlacing (temporal shift of the residual input)",
       [](RecognizerOptions& o) -> F { return &o.backbone.dnr.interlace; }},
      {"reduction", "DNR: bottleneck ratio of the relay projections",
       [](RecognizerOptions& o) -> F { return &o.backbone.dnr.reduction; }},
      {"stats_group_clips", "norm statistics over groups of this many clips (0: the whole batch)",
       [](RecognizerOptions& o) -> F { return &o.backbone.stats_group_clips; }, 0},
  };
  return table;
}

inline std::vector<std::string> switch_names() {
  std::vector<std::string> out;
  for (const auto& s : model_switches()) out.push_back(s.name);
  return out;
}

// A switch's value when not set, as text ("64", "true").
inline std::string switch_default(const ModelSwitch& s) {
  RecognizerOptions o;
  const auto field = s.field(o);
  if (const auto* b = std::get_if<bool*>(&field)) return **b ? "true" : "false";
  return std::to_string(*std::get<int64_t*>(field));
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
  const size_t depth_at = name.find("_r") + 2;
  const std::string arch = name.substr(0, depth_at - 2);
  const bool tsm = arch == "tsm", tanet = arch == "tanet", tdn = arch == "tdn";
  const bool dnr = name.size() > 4 && name.compare(name.size() - 4, 4, "_dnr") == 0;
  o.backbone.depth = parse_int(name.substr(depth_at, name.find('_', depth_at) - depth_at), "model " + name);
  // TDN's frames are 5 per segment (its sampling: sampler.clip_len = 5); the network runs on the segments.
  TV_CHECK(!tdn || cfg.frames % kTdnSegmentFrames == 0, "model ", name, ": frames counts every input frame, ",
           kTdnSegmentFrames, " per TDN segment (sampler.clip_len = ", kTdnSegmentFrames, "), so it must be a multiple of ",
           kTdnSegmentFrames, " (40 for 8 segments), got ", cfg.frames);
  o.backbone.frames = tdn ? cfg.frames / kTdnSegmentFrames : cfg.frames;
  o.backbone.norm = dnr ? Norm::Dnr : Norm::Batch;
  o.backbone.temporal_shift = tsm;
  o.backbone.tam = tanet;
  o.backbone.tdn = tdn;
  // TANet's head is MMAction2's TSMHead: scores per frame, then their average; TDN's (new_fc, avg consensus) too.
  o.consensus = tsm || tanet || tdn ? Consensus::AfterFc : Consensus::BeforeFc;
  o.init_std = tanet || tdn ? 0.001 : 0.01;
  o.num_classes = cfg.num_classes;
  o.dropout = cfg.dropout >= 0 ? cfg.dropout : (tsm || tanet || tdn ? 0.5 : 0.4);
  for (const auto& entry : cfg.set) {
    // Named copies, not a structured binding: clang before 16 cannot capture a binding in a lambda.
    const std::string& key = entry.first;
    const auto& value = entry.second;
    const auto& table = model_switches();
    const auto it = std::find_if(table.begin(), table.end(), [&](const ModelSwitch& s) { return key == s.name; });
    if (it == table.end()) {
      std::string known;
      for (auto& n : switch_names()) known += (known.empty() ? "" : ", ") + n;
      TV_FAIL("model ", name, ": unknown switch '", key, "'; known switches: ", known);
    }
    const auto field = it->field(o);
    if (auto* b = std::get_if<bool*>(&field))
      **b = detail::parse_bool(key, value);
    else
      *std::get<int64_t*>(field) = parse_int(value, "model switch " + key, Range::at_least(static_cast<double>(it->min)));
  }
  const auto& d = o.backbone.dnr;
  if (o.backbone.norm == Norm::Dnr && d.cross_temporal)
    TV_CHECK(o.backbone.frames % d.ct_group_frames == 0, "model ", name, ": ", o.backbone.frames,
             tdn ? " segments" : " frames", " do not split into groups of ct_group_frames = ", d.ct_group_frames);
  return o;
}

template <class T = float>
std::shared_ptr<Recognizer<T>> make_model(const std::string& name, const ModelConfig& cfg = {},
                                          Generator& gen = default_generator()) {
  return std::make_shared<Recognizer<T>>(recognizer_options(name, cfg), gen);
}

}  // namespace tv::models
