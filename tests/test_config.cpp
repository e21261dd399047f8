// Run configs (train/config.hpp, recipe.hpp) and the checked number parser under them (core/parse.hpp):
// every number in its range with a message naming the line, `#` comments, `_base_` inheritance, the
// configs/ twins, load_from.skip globs and the resolved dump.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tinyvid/core/parse.hpp"
#include "tinyvid/train/trainer.hpp"
#include "temp_files.hpp"

namespace {

namespace fs = std::filesystem;
using doctest::Contains;
using testing::TempDir;
using tv::Range;
using tv::train::Config;
using Values = std::map<std::string, std::string>;

// A run make_recipe builds without touching data: TSN-R18 of width 4 on 4 frames.
Config small_config(const std::string& extra = "") {
  return Config::from_string("model = tsn_r18\nmodel.width = 4\nnum_classes = 4\nsampler.num_clips = 4\n" + extra,
                             "small.conf");
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// doctest's Contains takes its own string type.
Contains contains(const std::string& text) { return Contains(text.c_str()); }

}  // namespace

TEST_CASE("config: tv::parse_int and parse_real say what was expected, what came and where") {
  CHECK(tv::parse_int("12", "x") == 12);
  CHECK(tv::parse_int("-3", "x") == -3);
  CHECK(tv::parse_int("9223372036854775807", "x") == INT64_MAX);
  CHECK(tv::parse_int("0", "x", Range::at_least(0)) == 0);
  // Overflow, junk, empty, trailing and leading characters: one message form, never std::stoll's "stoll".
  const std::pair<const char*, const char*> bad_ints[] = {
      {"99999999999999999999", "tinyvid: --seed: expected a positive whole number, got '99999999999999999999' "
                               "(beyond 64 bits)"},
      {"-99999999999999999999", "got '-99999999999999999999' (beyond 64 bits)"},
      {"eight", "tinyvid: --seed: expected a positive whole number, got 'eight'"},
      {"", "--seed: expected a positive whole number, got ''"},
      {"8x", "got '8x'"},
      {"8 ", "got '8 '"},
      {" 8", "got ' 8'"},
      {"+8", "got '+8'"},
      {"1.5", "got '1.5'"},
      {"0", "got '0'"}};
  for (const auto& bad : bad_ints) {
    const auto &text = bad.first, &message = bad.second;
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(tv::parse_int(text, "--seed", Range::at_least(1)), Contains(message), tv::Error);
  }
  CHECK_THROWS_WITH_AS(tv::parse_int("101", "--quality", Range::closed(1, 100)),
                       Contains("--quality: expected a whole number in [1, 100], got '101'"), tv::Error);

  CHECK(tv::parse_real("0.25", "x") == 0.25);
  CHECK(tv::parse_real("1e-4", "x") == 1e-4);
  CHECK(tv::parse_real("-2", "x") == -2);
  // nan and infinities only where a range says so.
  for (const char* text : {"nan", "NaN", "inf", "-inf", "infinity", "1e999", "0.5x", "", "0.5 "}) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(tv::parse_real(text, "run.conf:3", {}, "optim.lr"),
                         contains(std::string("run.conf:3: expected a finite number for 'optim.lr', got '") + text + "'"),
                         tv::Error);
  }
  CHECK(std::isnan(tv::parse_real("nan", "x", Range{.nonfinite = true})));
  CHECK(std::isinf(tv::parse_real("inf", "x", Range{.nonfinite = true})));
  CHECK_THROWS_WITH_AS(tv::parse_real("2", "run.conf:7", Range{0, 1}, "train.flip"),
                       Contains("run.conf:7: expected a number in [0, 1] for 'train.flip', got '2'"), tv::Error);
  CHECK(Range::right_open(0, 1).expected(false) == "a number in [0, 1)");
  CHECK(Range::left_open(0, 1).expected(false) == "a number in (0, 1]");
  CHECK(Range::above(0).expected(false) == "a number > 0");
  CHECK(Range::at_least(0).expected(true) == "a whole number >= 0");
  CHECK(Range::at_least(1).expected(true) == "a positive whole number");
}

TEST_CASE("config: `#` starts a comment at a line's start or after a blank, never inside a value") {
  const Config c = Config::from_string("# a comment\n   # an indented one\ndata.root = /data/run#2\n"
                                       "model = tsn_r50 # after a space\nname = a\t# after a tab\nempty = # nothing\n",
                                       "c.conf");
  CHECK(c.str("data.root") == "/data/run#2");  // was cut to "/data/run"
  CHECK(c.str("model") == "tsn_r50");
  CHECK(c.str("name") == "a");
  CHECK(c.str("empty").empty());
  // A `#` glued to a number stays in it: the number is refused, not silently cut to 0.1.
  CHECK_THROWS_WITH_AS(Config::from_string("optim.lr = 0.1#0.2\n", "c.conf").real("optim.lr"),
                       Contains("c.conf:1: expected a finite number for 'optim.lr', got '0.1#0.2'"), tv::Error);
}

TEST_CASE("config: every number of the recipe is checked against its range, naming file:line, key, range and value") {
  CHECK_NOTHROW(tv::train::make_recipe(small_config()));
  struct Bad {
    const char* key;
    const char* value;
    const char* expected;
    const char* got = nullptr;  // the offending item of a list (default: the value)
  };
  const Bad bad[] = {
      {"train.flip", "2", "a number in [0, 1]"},
      {"train.flip", "-1", "a number in [0, 1]"},
      {"train.flip", "nan", "a number in [0, 1]"},
      {"optim.clip_grad", "nan", "a number >= 0"},
      {"optim.clip_grad", "-1", "a number >= 0"},
      {"model.dropout", "nan", "a number in [0, 1)"},
      {"model.dropout", "1", "a number in [0, 1)"},
      {"optim.lr", "0", "a number > 0"},
      {"optim.lr", "inf", "a number > 0"},
      {"optim.momentum", "1", "a number in [0, 1)"},
      {"optim.weight_decay", "-1e-4", "a number >= 0"},
      {"loss.label_smoothing", "1", "a number in [0, 1)"},
      {"train.crop_size", "0", "a positive whole number"},
      {"val.crop_size", "0", "a positive whole number"},
      {"test.crop_size", "-224", "a positive whole number"},
      {"train.resize", "-2", "a whole number >= -1"},
      {"test.resize", "-5", "a whole number >= -1"},
      {"train.scales", "1, 0", "a number in (0, 1]", "0"},
      {"train.scales", "1.2", "a number in (0, 1]"},
      {"train.scales", "1, 0.875,", "a number in (0, 1]", ""},
      {"train.max_distort", "-1", "a whole number >= 0"},
      {"norm.std", "58, 0, 57", "a number > 0", "0"},
      {"norm.mean", "1, nan, 3", "a finite number", "nan"},
      {"num_workers", "-1", "a whole number in [0, 1024]"},
      {"threads", "-1", "a whole number in [0, 1024]"},
      {"prefetch", "0", "a positive whole number"},
      {"seed", "-1", "a whole number >= 0"},
      {"epochs", "0", "a positive whole number"},
      {"batch_size", "0", "a positive whole number"},
      {"test.batch_size", "0", "a positive whole number"},
      {"test.num_clips", "0", "a positive whole number"},
      {"test.max_views_per_pass", "-1", "a whole number >= 0"},
      {"num_classes", "0", "a positive whole number"},
      {"sampler.clip_len", "0", "a positive whole number"},
      {"sampler.frame_interval", "0", "a positive whole number"},
      {"sampler.num_clips", "99999999999999999999", "a positive whole number"},
      {"log_every", "0", "a positive whole number"},
      {"val_every", "-1", "a whole number >= 0"},
      {"checkpoint_every_iters", "-1", "a whole number >= 0"},
      {"data.start_index", "-1", "a whole number >= 0"},
      {"data.max_skip_ratio", "1.5", "a number in [0, 1]"},
      {"schedule.warmup_iters", "-1", "a whole number >= 0"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.key);
    CAPTURE(b.value);
    Config c = small_config();
    c.set(b.key, b.value, "bad.conf:9");
    CHECK_THROWS_WITH_AS(tv::train::make_recipe(c),
                         contains(std::string("bad.conf:9: expected ") + b.expected + " for '" + b.key + "', got '" +
                                  (b.got ? b.got : b.value) + "'"),
                         tv::Error);
  }
  // The ends of each range are values a run may use.
  for (const char* ok : {"train.flip = 0", "train.flip = 1", "model.dropout = 0", "optim.momentum = 0",
                         "optim.clip_grad = 0", "train.resize = -1\ntest.resize = 0", "train.scales = 1",
                         "data.max_skip_ratio = 0", "seed = 0"}) {
    CAPTURE(ok);
    CHECK_NOTHROW(tv::train::make_recipe(small_config(std::string(ok) + "\n")));
  }

  // Keys whose range depends on others, and the rules between keys, still name the line.
  const std::pair<const char*, const char*> bad_runs[] = {
      {"optim.lr = 0.1\nschedule.min_lr = 0.2", "small.conf:6: expected a number in [0, 0.1] for 'schedule.min_lr'"},
      {"schedule.warmup_iters = 10\nschedule.warmup_ratio = 0",
       "small.conf:6: expected a number in (0, 1] for 'schedule.warmup_ratio', got '0'"},
      {"epochs = 10\nschedule = step\nschedule.milestones = 4, 10",
       "small.conf:7: expected a whole number in [1, 9] for 'schedule.milestones', got '10'"},
      {"epochs = 10\nschedule = step\nschedule.milestones = 6, 4",
       "small.conf:7: expected increasing schedule.milestones, got '6, 4'"},
      {"epochs = 10\nschedule = step\nschedule.milestones = 4, 4", "expected increasing schedule.milestones"},
      {"epochs = 10\nschedule = step", "small.conf:6: schedule = step needs schedule.milestones"},
      {"epochs = 10\nschedule = step\nschedule.milestones = 4\nschedule.gamma = 0",
       "small.conf:8: expected a number > 0 for 'schedule.gamma', got '0'"},
      {"optim.momentum = 0\noptim.nesterov = true", "small.conf:6: optim.nesterov needs optim.momentum > 0"},
      {"test.num_clips = 3\nsampler.clip_len = 2", "small.conf:5: test.num_clips x clip_len = 6 frames per crop"},
      {"train.flip_label_map = 1:x", "small.conf:5: train.flip_label_map '1:x': expected a whole number >= 0, got 'x'"},
      {"data.format = frames", "small.conf:5: data.format must be video or rawframes, got 'frames'"},
      {"train.crop = big", "small.conf:5: train.crop must be multiscale"},
      {"norm.mean = 1, 2", "small.conf:5: norm.mean needs 3 values (R, G, B), got 2"},
      {"train.scales = ", "small.conf:5: train.scales needs at least one scale"},
      {"sampler.out_of_bound = clamp", "small.conf:5: sampler.out_of_bound must be loop or repeat_last, got 'clamp'"},
      {"sampler.segment_test_offsets = true\ntest.twice_sample = true",
       "small.conf:6: test.twice_sample cannot go with sampler.segment_test_offsets"},
  };
  for (const auto& bad : bad_runs) {
    const auto &extra = bad.first, &message = bad.second;
    CAPTURE(extra);
    CHECK_THROWS_WITH_AS(tv::train::make_recipe(small_config(std::string(extra) + "\n")), Contains(message), tv::Error);
  }
}

TEST_CASE("config: _base_ reads other files first, relative to the file naming them; the file's own keys win") {
  TempDir dir("config_base");
  fs::create_directories(dir.path / "sub");
  write(dir.path / "root.conf", "model = tsn_r50\nepochs = 10\noptim.lr = 0.1\n");
  write(dir.path / "sub" / "mid.conf", "_base_ = ../root.conf\nepochs = 20\nbatch_size = 4\n");
  write(dir.path / "extra.conf", "batch_size = 16\nseed = 3\n");
  // _base_ anywhere in the file; two bases, the later one winning; a chain of three files.
  write(dir.path / "run.conf", "optim.lr = 0.5\n_base_ = sub/mid.conf, extra.conf\nseed = 7\n");
  const Config c = Config::from_file((dir.path / "run.conf").string());
  CHECK(c.values() ==
        Values{{"model", "tsn_r50"}, {"epochs", "20"}, {"optim.lr", "0.5"}, {"batch_size", "16"}, {"seed", "7"}});
  // Each value still names the line that set it, in whichever file.
  CHECK(c.where("model") == (dir.path / "root.conf").string() + ":1");
  CHECK(c.where("epochs") == (dir.path / "sub" / "mid.conf").string() + ":2");
  CHECK(c.where("batch_size") == (dir.path / "extra.conf").string() + ":1");
  CHECK(c.where("seed") == (dir.path / "run.conf").string() + ":3");
  CHECK_THROWS_WITH_AS(c.integer("model"), Contains("root.conf:1: expected a whole number for 'model'"), tv::Error);
  // Two files sharing a base (a diamond) are no cycle.
  write(dir.path / "diamond.conf", "_base_ = sub/mid.conf, root.conf\n");
  CHECK(Config::from_file((dir.path / "diamond.conf").string()).values().at("epochs") == "10");

  // A cycle and a missing base are errors naming the chain of files.
  write(dir.path / "a.conf", "_base_ = b.conf\nx = 1\n");
  write(dir.path / "b.conf", "y = 2\n_base_ = a.conf\n");
  const std::string a = (dir.path / "a.conf").string(), b = (dir.path / "b.conf").string();
  CHECK_THROWS_WITH_AS(Config::from_file(a), contains(b + ":2: _base_ cycle: " + a + " -> " + b + " -> " + a), tv::Error);
  write(dir.path / "self.conf", "_base_ = ./self.conf\n");
  CHECK_THROWS_WITH_AS(Config::from_file((dir.path / "self.conf").string()), Contains("_base_ cycle: "), tv::Error);
  write(dir.path / "lost.conf", "_base_ = sub/mid.conf\n");
  write(dir.path / "sub" / "mid.conf", "_base_ = ../nope.conf\n");
  CHECK_THROWS_WITH_AS(Config::from_file((dir.path / "lost.conf").string()),
                       contains((dir.path / "sub" / "mid.conf").string() + ":1: _base_ '../nope.conf' not found: " +
                                (dir.path / "lost.conf").string() + " -> " + (dir.path / "sub" / "mid.conf").string() +
                                " -> " + (dir.path / "nope.conf").string()),
                       tv::Error);
  CHECK_THROWS_WITH_AS(Config::from_string("_base_ = a.conf\n_base_ = b.conf\n", "two.conf"),
                       Contains("two.conf:2: _base_ is given twice (first at two.conf:1)"), tv::Error);
  CHECK_THROWS_WITH_AS(Config::from_string("_base_ = a.conf,\n", "comma.conf"),
                       Contains("comma.conf:1: expected _base_ = FILE[, FILE ...], got 'a.conf,'"), tv::Error);
  Config s;
  CHECK_THROWS_WITH_AS(s.set("_base_=a.conf"), Contains("--set _base_=a.conf: _base_ names base files on a config"),
                       tv::Error);
}

TEST_CASE("config: each _dnr config of configs/ is its plain twin plus the differences, value for value") {
  // What the twin files differed in when each was written out in full, before `_base_`.
  const Values switches = {{"model.cross_layer", "true"},
                           {"model.cross_temporal", "true"},
                           {"model.ct_group_frames", "4"},
                           {"model.ct_bidirectional", "false"},
                           {"model.interlace", "true"}};
  auto with = [](Values v, const Values& more) {
    v.insert(more.begin(), more.end());
    return v;
  };
  // TANet / TDN from ImageNet weights: the DNR twin also leaves out the relay cells, which the file lacks.
  const std::string tanet_skip = "cls_head.*, backbone.*.tam.*, *.num_batches_tracked";
  const std::string tdn_skip =
      "cls_head.*, *.num_batches_tracked, backbone.*conv[0-9].bias, backbone.*.downsample.0.bias, backbone.*.mse.*, "
      "backbone.*.shift.*, backbone.conv1_5.*, backbone.resnext_layer1.*";
  const Values tanet_dnr = {{"model", "tanet_r50_dnr"}, {"load_from.skip", tanet_skip + ", backbone.*.relay.*"}};
  const Values tdn_dnr = {{"model", "tdn_r50_dnr"}, {"load_from.skip", tdn_skip + ", backbone.*.relay.*"}};
  const std::pair<const char*, Values> twins[] = {
      {"demo_tsn_r18", {{"model", "tsn_r18_dnr"}}},
      {"k200_tsn_r50", with({{"model", "tsn_r50_dnr"}}, switches)},
      {"k400_tsn_r50", with({{"model", "tsn_r50_dnr"}}, switches)},
      {"sthv1_tsm_r50", {{"model", "tsm_r50_dnr"}, {"load_from", "checkpoints/tsm_r50_dnr_kinetics400.safetensors"}}},
      {"sthv2_tsm_r50", {{"model", "tsm_r50_dnr"}, {"load_from", "checkpoints/tsm_r50_dnr_kinetics400.safetensors"}}},
      {"k200_tanet_r50", with({{"model", "tanet_r50_dnr"}}, switches)},
      {"k200_tdn_r50", with({{"model", "tdn_r50_dnr"}}, switches)},
      {"k400_tanet_r50", with(tanet_dnr, switches)},
      {"k400_tdn_r50", with(tdn_dnr, switches)},
      {"sthv1_tanet_r50", tanet_dnr},
      {"sthv1_tdn_r50", tdn_dnr},
      {"sthv2_tanet_r50", tanet_dnr},
      {"sthv2_tdn_r50", tdn_dnr},
  };
  for (const auto& twin : twins) {
    const char* name = twin.first;
    const Values& differences = twin.second;
    CAPTURE(name);
    const std::string dir = TINYVID_CONFIG_DIR;
    Values expected = Config::from_file(dir + "/" + name + ".conf").values();
    for (const auto& [k, v] : differences) expected[k] = v;
    CHECK(Config::from_file(dir + "/" + name + "_dnr.conf").values() == expected);
  }
  // A few of the plain twins' values, as they were.
  const Values k200 = Config::from_file(std::string(TINYVID_CONFIG_DIR) + "/k200_tsn_r50.conf").values();
  CHECK(k200.size() == 39);
  CHECK(k200.at("schedule.warmup_iters") == "60000");
  CHECK(k200.at("data.root") == "data/kinetics200");
  CHECK(k200.at("train.scales") == "1, 0.875, 0.75, 0.66");
  // The Kinetics-200 TANet / TDN configs are the TSN recipe but for the model, its dropout and TDN's sampling.
  auto plus = [&](const Values& more) {
    Values v = k200;
    for (const auto& [k, x] : more) v[k] = x;
    return v;
  };
  CHECK(Config::from_file(std::string(TINYVID_CONFIG_DIR) + "/k200_tanet_r50.conf").values() ==
        plus({{"model", "tanet_r50"}, {"model.dropout", "0.5"}}));
  CHECK(Config::from_file(std::string(TINYVID_CONFIG_DIR) + "/k200_tdn_r50.conf").values() ==
        plus({{"model", "tdn_r50"}, {"model.dropout", "0.5"}, {"sampler.clip_len", "5"},
              {"sampler.frame_interval", "1"}, {"sampler.num_clips", "8"}, {"sampler.out_of_bound", "repeat_last"},
              {"sampler.segment_test_offsets", "true"}, {"test.num_clips", "8"}}));
}

TEST_CASE("config: configs/ from ImageNet weights find what they load in torchvision's ResNet-50 and skip none of it") {
  // What tools/convert_checkpoint.py makes of torchvision's ResNet-50: the backbone of tsn_r50, name for name (the
  // names do not depend on the width, so narrow models keep this quick).
  auto names = [](const std::string& model, int64_t frames) {
    std::set<std::string> out;
    const auto m = tv::models::make_model<float>(model, {.num_classes = 4, .frames = frames, .set = {{"width", "8"}}});
    for (const auto& entry : m->state_dict()) out.insert(entry.first);
    return out;
  };
  std::set<std::string> imagenet;
  for (const auto& k : names("tsn_r50", 8))
    if (k.rfind("backbone.", 0) == 0) imagenet.insert(k);
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(TINYVID_CONFIG_DIR)) {
    if (e.path().extension() != ".conf") continue;
    const Config c = Config::from_file(e.path().string());
    if (c.str("load_from", "").find("resnet50_imagenet") == std::string::npos) continue;
    CAPTURE(e.path().string());
    // The recipe's model and load_from.skip, read as make_recipe reads them (without building a full-width model).
    const int64_t frames = c.integer("sampler.clip_len", 1) * c.integer("sampler.num_clips", 8);
    const auto skip = c.strings("load_from.skip", {});
    size_t loaded = 0;
    for (const auto& k : names(c.str("model"), frames)) {
      CAPTURE(k);
      const bool skipped = tv::train::skip_matches(k, skip), in_file = imagenet.count(k) > 0;
      CHECK((skipped || in_file));  // else the load stops: the model's key is not in the file
      // A weight the file has is loaded; only the batch counts are left out (torchvision's older files lack them).
      CHECK((!skipped || !in_file || k.ends_with(".num_batches_tracked")));
      loaded += !skipped;
    }
    CHECK(loaded > 200);
    ++n;
  }
  CHECK(n == 12);  // {k400, sthv1, sthv2} x {tanet, tdn} x {plain, dnr}
}

TEST_CASE("config: load_from.skip entries are globs over the whole key, or key prefixes as before") {
  using tv::train::skip_matches;
  CHECK(skip_matches("cls_head.fc_cls.weight", {"cls_head."}));  // a prefix, as before globs
  CHECK_FALSE(skip_matches("backbone.cls_head.x", {"cls_head."}));
  CHECK(skip_matches("backbone.layer1.0.bn1.relay.input_proj.0.weight", {"backbone.*.relay.*"}));
  CHECK_FALSE(skip_matches("backbone.layer1.0.bn1.weight", {"backbone.*.relay.*"}));
  CHECK_FALSE(skip_matches("x.backbone.layer1.relay.w", {"backbone.*.relay.*"}));  // the whole key, not a part
  CHECK(skip_matches("a.b", {"a.?"}));
  CHECK_FALSE(skip_matches("a.bc", {"a.?"}));
  CHECK(skip_matches("layer3.w", {"layer[1-3].*"}));
  CHECK_FALSE(skip_matches("layer4.w", {"layer[1-3].*"}));
  CHECK(skip_matches("layer4.w", {"layer[!1-3].*"}));
  CHECK(skip_matches("a[b", {"a[b"}));  // an unclosed [ is itself
  CHECK(skip_matches("anything", {"*"}));
  CHECK_FALSE(skip_matches("anything", {}));
  CHECK(skip_matches("b.x", {"a.*", "b."}));
  CHECK_FALSE(skip_matches(std::string(300, 'a'), {"*a*a*a*a*a*a*a*b"}));  // backtracking stays linear

  // A DNR model from plain weights: two globs leave out exactly the classifier and the DNR-only keys.
  const std::vector<std::string> patterns = {"cls_head.*", "backbone.*.relay.*"};
  const tv::models::ModelConfig r50{.num_classes = 5, .set = {}};
  std::set<std::string> plain;
  for (const auto& [k, t] : tv::models::make_model<float>("tsn_r50", r50)->state_dict()) plain.insert(k);
  size_t dnr_only = 0;
  for (const auto& named : tv::models::make_model<float>("tsn_r50_dnr", r50)->state_dict()) {
    const std::string& k = named.first;
    CAPTURE(k);
    dnr_only += plain.count(k) == 0;
    CHECK(skip_matches(k, patterns) == (plain.count(k) == 0 || k.rfind("cls_head.", 0) == 0));
  }
  CHECK(dnr_only > 100);

  // load_initial_weights takes them: TSN weights into TSN+DNR.
  TempDir dir("config_skip");
  const tv::models::ModelConfig small{.num_classes = 3, .frames = 4, .set = {{"width", "4"}, {"ct_group_frames", "2"}}};
  const std::string path = (dir.path / "tsn.safetensors").string();
  tv::io::save_weights(*tv::models::make_model<float>("tsn_r18", small), path);
  auto target = tv::models::make_model<float>("tsn_r18_dnr", small);
  CHECK_NOTHROW(tv::train::load_initial_weights(*target, path, patterns));
  CHECK_THROWS_WITH_AS(tv::train::load_initial_weights(*target, path, {"cls_head."}), Contains(".relay."), tv::Error);
}

TEST_CASE("config: dump_resolved lists every key the run read with its value, defaults marked") {
  Config c = small_config("optim.lr = 0.05\ndata.root = /data/run#2\n");
  tv::train::make_recipe(c);
  c.check_all_used();
  const std::string d = c.dump_resolved();
  for (const char* line : {"model = tsn_r18\n", "optim.lr = 0.05\n", "data.root = /data/run#2\n", "model.width = 4\n",
                           "epochs = 1  # default\n", "train.flip = 0.5  # default\n", "model.dropout = 0.4  # default\n",
                           "schedule = cosine  # default\n", "schedule.min_lr = 0  # default\n",
                           "train.scales = 1, 0.875, 0.75, 0.66  # default\n",
                           "norm.mean = 123.675, 116.28, 103.53  # default\n", "data.prefix =   # default\n",
                           "optim.weight_decay = 0.0001  # default\n", "test.crop_size = 224  # default\n"}) {
    CHECK_MESSAGE(d.find(line) != std::string::npos, line, "not in:\n", d);
  }
  CHECK(d.find("schedule.gamma") == std::string::npos);  // not read by a cosine run
  // Read back, it is the same run with every key given.
  Config again = Config::from_string(d, "resolved.conf");
  tv::train::make_recipe(again);
  again.check_all_used();
  std::string unmarked = d;
  for (size_t p; (p = unmarked.find("  # default")) != std::string::npos;) unmarked.erase(p, 11);
  CHECK(again.dump_resolved() == unmarked);
}

TEST_CASE("config: device is cpu by default, cuda or cuda:0 on a GPU, and an unusable one stops the recipe by its line") {
  Config c = small_config();
  CHECK(tv::train::make_recipe(c).device.device == tv::Device::CPU);
  CHECK(c.dump_resolved().find("device = cpu  # default\n") != std::string::npos);
  CHECK(tv::train::make_recipe(small_config("device = cpu\n")).device.device == tv::Device::CPU);
  CHECK_THROWS_WITH_AS(tv::train::make_recipe(small_config("device = gpu\n")),
                       Contains("small.conf:5: expected device cpu, cuda or cuda:N, got 'gpu'"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::train::make_recipe(small_config("device = cuda:1\n")),
                       Contains("small.conf:5: device cuda:1: only the first GPU (cuda or cuda:0) is supported so far"),
                       tv::Error);
  Config on_gpu = small_config();
  on_gpu.set("device=cuda");
  if (tv::device_available(tv::Device::CUDA)) {
    CHECK(tv::train::make_recipe(on_gpu).device.device == tv::Device::CUDA);
  } else {
    // One error naming where the key was set and why (the build or the machine), before a model is built.
    CHECK_THROWS_WITH_AS(tv::train::make_recipe(on_gpu), Contains("--set device=cuda: device cuda is not available"),
                         tv::Error);
  }
}
