// The train/ floor: configs, MMAction2's test metrics and view fusion, and the training loop on a tiny
// synthetic dataset (checkpoints, exact resume, NaN stop, test reports).
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tinyvid/data/synth.hpp"
#include "tinyvid/train/trainer.hpp"
#include "temp_files.hpp"

namespace {

namespace fs = std::filesystem;
using testing::slurp;
using testing::TempDir;
using tv::train::Config;



// 4 classes x (3 train + 1 val) videos of 8 frames at 32x32, written once for all tests of this file.
const fs::path& tiny_dataset() {
  static TempDir dir("data");
  static bool written = [] {
    tv::data::SynthOptions o;
    o.classes = {"move_left", "move_right", "grow", "shrink"};
    o.train_per_class = 3;
    o.val_per_class = 1;
    o.size = 32;
    o.frames = 8;
    o.seed = 3;
    o.threads = 2;
    tv::data::write_synth_dataset(dir.path.string(), o);
    return true;
  }();
  (void)written;
  return dir.path;
}

// A TSN-DNR ResNet-18 of width 4 on 4 frames of 32x32, with dropout (so resuming must restore the RNG).
Config tiny_config() {
  Config c = Config::from_string(R"(
model = tsn_r18_dnr
model.width = 4
model.ct_group_frames = 2
model.dropout = 0.5
num_classes = 4
data.train_list = train_list.txt
data.val_list = val_list.txt
data.prefix = videos
data.classes = classes.txt
sampler.num_clips = 4
train.resize = 0
train.crop = multiscale
train.scales = 1, 0.875
train.crop_size = 32
train.flip = 0.5
epochs = 2
batch_size = 4
optim.lr = 0.05
schedule = cosine
schedule.warmup_iters = 2
log_every = 1
checkpoint_every_iters = 2
)", "tiny.conf");
  c.set("data.root", tiny_dataset().string(), "test");
  return c;
}

std::map<std::string, tv::Tensor<float>> weights_of(const fs::path& file) {
  return tv::io::load_safetensors<float>(file.string());
}

// The largest |a - b| / (atol + rtol |a|) over two weight files' tensors of one name; above 1 is too far.
double worst_ratio(const tv::Tensor<float>& a, const tv::Tensor<float>& b, double rtol, double atol) {
  const auto x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, std::abs(double(x[i]) - y[i]) / (atol + rtol * std::abs(double(x[i]))));
  return worst;
}

}  // namespace

TEST_CASE("train: config files, --set overrides and typed values with clear errors") {
  Config c = Config::from_string("# a comment\nmodel = tsn_r50   # trailing comment\noptim.lr = 0.1\n"
                                 "train.scales = 1, 0.875,0.75\nflag = yes\nn = 12\n",
                                 "run.conf");
  c.set("optim.lr=0.01");
  CHECK(c.str("model") == "tsn_r50");
  CHECK(c.real("optim.lr") == doctest::Approx(0.01));
  CHECK(c.reals("train.scales", {}) == std::vector<double>{1, 0.875, 0.75});
  CHECK(c.boolean("flag", false));
  CHECK(c.integer("n") == 12);
  CHECK(c.integer("absent", 7) == 7);
  CHECK_THROWS_WITH_AS(c.integer("model"), doctest::Contains("run.conf:2: expected a whole number for 'model', got 'tsn_r50'"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(c.real("nothing"), doctest::Contains("the key 'nothing' is required"), tv::Error);
  CHECK_THROWS_WITH_AS(Config::from_string("model tsn\n", "bad.conf"), doctest::Contains("bad.conf:1: expected 'key = value'"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(c.set("no equals sign"), doctest::Contains("--set: expected key=value"), tv::Error);

  // A typo is an error naming the line, not a silent default.
  Config t = tiny_config();
  t.set("optim.learning_rate", "0.1", "typo.conf:3");
  tv::train::make_recipe(t);
  CHECK_THROWS_WITH_AS(t.check_all_used(), doctest::Contains("typo.conf:3: unknown key 'optim.learning_rate'; known keys:"),
                       tv::Error);
  Config m = tiny_config();
  m.set("model", "tsn_r51", "x");
  CHECK_THROWS_WITH_AS(tv::train::make_recipe(m), doctest::Contains("unknown model 'tsn_r51'"), tv::Error);
  Config s = tiny_config();
  s.set("schedule", "linear", "x");
  CHECK_THROWS_WITH_AS(tv::train::make_recipe(s), doctest::Contains("schedule must be cosine, mmcv0_cosine"), tv::Error);
  // flip_label_map: pairs of labels below num_classes (4 here), each label mapped once, only with flips on.
  const std::pair<const char*, const char*> bad_maps[] = {{"1:4", "labels must be below num_classes = 4"},
                                                          {"1:2, 1:3", "label 1 is mapped twice"},
                                                          {"1-2", "expected label:label pairs such as 2:4"}};
  for (const auto& [map, message] : bad_maps) {
    Config f = tiny_config();
    f.set("train.flip_label_map", map, "x");
    CHECK_THROWS_WITH_AS(tv::train::make_recipe(f), doctest::Contains(message), tv::Error);
  }
  Config f = tiny_config();
  f.set("train.flip_label_map", "1:2, 2:1", "x");
  tv::train::make_recipe(f);
  f.set("train.flip", "0", "x");
  CHECK_THROWS_WITH_AS(tv::train::make_recipe(f), doctest::Contains("train.flip_label_map is set but train.flip is 0"),
                       tv::Error);
}

TEST_CASE("train: top-k and mean class accuracy as MMAction2 computes them") {
  // 4 classes; class 3 never occurs (left out of the mean), class 2 only as a prediction (counts as 0).
  const tv::train::ScoreTable scores = {
      {0.9f, 0.05f, 0.03f, 0.02f},  // true 0, predicted 0
      {0.1f, 0.2f, 0.6f, 0.1f},     // true 0, predicted 2; 0 is third: a top-5 hit, not top-2
      {0.2f, 0.7f, 0.05f, 0.05f},   // true 1, predicted 1
      {0.6f, 0.3f, 0.05f, 0.05f},   // true 1, predicted 0; 1 is second
  };
  const std::vector<int64_t> labels = {0, 0, 1, 1};
  CHECK(tv::train::top_k_accuracy(scores, labels, 1) == doctest::Approx(0.5));
  CHECK(tv::train::top_k_accuracy(scores, labels, 2) == doctest::Approx(0.75));
  CHECK(tv::train::top_k_accuracy(scores, labels, 5) == doctest::Approx(1.0));
  // Per-class recall: class 0 1/2, class 1 1/2, class 2 0 (predicted, never true) -> mean over 3 classes.
  CHECK(tv::train::mean_class_accuracy(scores, labels) == doctest::Approx((0.5 + 0.5 + 0.0) / 3));
  const auto m = tv::train::confusion_matrix(scores, labels);
  CHECK(m[0] == std::vector<int64_t>{1, 0, 1, 0});
  CHECK(m[1] == std::vector<int64_t>{1, 1, 0, 0});
  CHECK_THROWS_WITH_AS(tv::train::top_k_accuracy(scores, {0, 1}, 1), doctest::Contains("one label per score row"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::train::top_k_accuracy(scores, {0, 1, 4, 0}, 1), doctest::Contains("label 4 of row 2"), tv::Error);
}

TEST_CASE("train: multi-view fusion follows MMAction2's heads") {
  tv::NoGradGuard no_grad;
  tv::manual_seed(11);
  const int64_t V = 3, T = 2;
  tv::models::ModelConfig cfg{.num_classes = 5, .frames = T, .dropout = 0, .set = {{"width", "4"}}};
  const auto x = tv::normal<float>({2 * V * T, 3, 32, 32});  // 2 videos x 3 views x 2 frames

  SUBCASE("TSM: scores per view, then softmax-and-mean (prob) or mean (score)") {
    auto tsm = tv::models::make_model<float>("tsm_r18", cfg);
    tsm->eval();
    const auto per_view = tsm->forward(x).reshape({2, V, 5});  // forward = one view per T frames
    const auto prob = tsm->forward_views(x, V, tv::models::AverageClips::Prob);
    const auto score = tsm->forward_views(x, V, tv::models::AverageClips::Score);
    const auto want_prob = tv::mean(tv::softmax(per_view, 2), {1}), want_score = tv::mean(per_view, {1});
    for (int64_t i = 0; i < 10; ++i) {
      CHECK(prob.data()[i] == doctest::Approx(want_prob.contiguous().data()[i]).epsilon(1e-5));
      CHECK(score.data()[i] == doctest::Approx(want_score.contiguous().data()[i]).epsilon(1e-5));
    }
    // Running one view per pass changes nothing.
    const auto chunked = tsm->forward_views(x, V, tv::models::AverageClips::Prob, 1);
    for (int64_t i = 0; i < 10; ++i) CHECK(chunked.data()[i] == doctest::Approx(prob.data()[i]).epsilon(1e-6));
  }
  SUBCASE("TSN: features of all V*T frames averaged before one fc") {
    auto tsn = tv::models::make_model<float>("tsn_r18", cfg);
    auto all = tv::models::make_model<float>("tsn_r18", {.num_classes = 5, .frames = V * T, .dropout = 0, .set = {{"width", "4"}}});
    all->load_state_dict(tsn->state_dict());
    tsn->eval(), all->eval();
    const auto want = all->forward(x);  // one clip of V*T frames per video = TSN's consensus over every frame
    const auto got = tsn->forward_views(x, V, tv::models::AverageClips::Score, 2);
    const auto prob = tsn->forward_views(x, V, tv::models::AverageClips::Prob);
    const auto want_prob = tv::softmax(want, 1);
    for (int64_t i = 0; i < 10; ++i) {
      CHECK(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-5));
      CHECK(prob.data()[i] == doctest::Approx(want_prob.data()[i]).epsilon(1e-5));
    }
  }
  auto tsn = tv::models::make_model<float>("tsn_r18", cfg);
  CHECK_THROWS_WITH_AS(tsn->forward_views(x.narrow(0, 0, 5), V, tv::models::AverageClips::Prob),
                       doctest::Contains("expected N*3*2 frames"), tv::Error);
}

TEST_CASE("train: an interrupted and resumed run ends with the same weights as one that was not") {
  TempDir whole("whole"), cut("cut");
  const Config c = tiny_config();
  const auto full = tv::train::train(c, {.work_dir = whole.path.string(), .progress = false, .quiet = true});
  CHECK(full.epochs_done == 2);
  CHECK(full.global_iter == 6);  // 12 videos / batch 4 = 3 iterations per epoch
  CHECK(full.best_top1 >= 0);
  for (const char* f : {"latest.safetensors", "latest.state.safetensors", "best.safetensors", "epoch_1.safetensors",
                        "epoch_2.safetensors", "log.json", "train.log", "curves.png", "config.txt"})
    CHECK_MESSAGE(fs::exists(whole.path / f), f);

  // "Killed" after 5 iterations: the last checkpoint is from iteration 4 (every 2, and at the epoch's end),
  // so the 5th iteration's work is lost and redone.
  const auto part = tv::train::train(c, {.work_dir = cut.path.string(), .progress = false, .quiet = true,
                                         .stop_after_iters = 5});
  CHECK(part.global_iter == 5);
  const auto resumed = tv::train::train(c, {.work_dir = cut.path.string(), .resume = true, .progress = false, .quiet = true});
  CHECK(resumed.epochs_done == 2);

  const auto a = weights_of(whole.path / "latest.safetensors"), b = weights_of(cut.path / "latest.safetensors");
  REQUIRE(a.size() == b.size());
  for (const auto& named : a) {
    const std::string& name = named.first;
    const auto& t = named.second;
    const auto& u = b.at(name);
    REQUIRE(t.numel() == u.numel());
    bool same = true;
    for (int64_t i = 0; i < t.numel(); ++i) same = same && t.data()[i] == u.data()[i];
    CHECK_MESSAGE(same, name);
  }
  // The log of the resumed run is the log of the whole run: lines after the checkpoint were redone, once.
  auto lines = [](const fs::path& p) {
    std::vector<std::string> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);) out.push_back(l.substr(0, l.find(",\"data_time\"")));
    return out;
  };
  CHECK(lines(whole.path / "log.json") == lines(cut.path / "log.json"));
  CHECK(lines(whole.path / "log.json").size() == 8);  // 6 iterations + 2 validations
}

TEST_CASE("train: a diverging run stops with a message naming the iteration and the last good checkpoint") {
  TempDir dir("nan");
  Config c = tiny_config();
  c.set("optim.lr", "1e30", "test");
  c.set("optim.clip_grad", "0", "test");
  c.set("schedule", "constant", "test");
  c.set("checkpoint_every_iters", "1", "test");
  CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = dir.path.string(), .progress = false, .quiet = true}),
                       doctest::Contains("stopped. The last good checkpoint is"), tv::Error);
  CHECK(fs::exists(dir.path / "latest.state.safetensors"));
  // The state left behind loads: resuming from it fails the same way instead of reading garbage.
  CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true}),
                       doctest::Contains("stopped."), tv::Error);
}

TEST_CASE("train: resume refuses a state of another model or a damaged file") {
  TempDir dir("refuse");
  Config c = tiny_config();
  c.set("epochs", "1", "test");
  tv::train::train(c, {.work_dir = dir.path.string(), .progress = false, .quiet = true, .stop_after_iters = 2});
  const std::string log_before = slurp(dir.path / "log.json");
  Config other = c;
  other.set("model", "tsn_r18", "test");
  CHECK_THROWS_WITH_AS(tv::train::train(other, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true}),
                       doctest::Contains("is a state of model 'tsn_r18_dnr', the config builds 'tsn_r18'"), tv::Error);
  // Weights that do not fit the model (a wider one, the change allowed) are refused before anything is written.
  Config wider = c;
  wider.set("model.width", "8", "test");
  CHECK_THROWS_WITH_AS(tv::train::train(wider, {.work_dir = dir.path.string(), .resume = true, .allow_changed = {"all"},
                                                .progress = false, .quiet = true}),
                       doctest::Contains("'backbone.conv1.weight' has shape [4, 3, 7, 7], the model's is [8, 3, 7, 7]"),
                       tv::Error);
  CHECK(slurp(dir.path / "log.json") == log_before);
  // A weights file is not a state (MMAction2's epoch_N.pth holds both; here the state is its own file).
  CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = dir.path.string(), .resume = true,
                                            .resume_from = (dir.path / "latest.safetensors").string(), .progress = false,
                                            .quiet = true}),
                       doctest::Contains("--resume reads a run's latest.state.safetensors"), tv::Error);
  CHECK(slurp(dir.path / "log.json") == log_before);
  // A state whose position lies outside the run is refused before anything is written (log.json stays).
  const fs::path state = dir.path / "latest.state.safetensors";
  const std::string good = slurp(state);
  for (const auto& edit : std::vector<std::pair<std::string, std::string>>{{"\"iter\":\"2\"", "\"iter\":\"-1\""},
                                                                         {"\"iter\":\"2\"", "\"iter\":\"9\""},
                                                                         {"\"epoch\":\"0\"", "\"epoch\":\"7\""}}) {
    const std::string &from = edit.first, &to = edit.second;
    CAPTURE(to);
    uint64_t old_size = 0;  // the 8-byte little-endian header length, then the JSON header, then the data
    std::memcpy(&old_size, good.data(), 8);
    std::string header = good.substr(8, old_size);
    REQUIRE(header.find(from) != std::string::npos);
    header.replace(header.find(from), from.size(), to);
    const uint64_t new_size = header.size();
    std::string out(8, '\0');
    std::memcpy(out.data(), &new_size, 8);
    std::ofstream(state, std::ios::binary) << out + header + good.substr(8 + old_size);
    CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true}),
                         doctest::Contains("latest.state.safetensors"), tv::Error);
    CHECK(slurp(dir.path / "log.json") == log_before);
  }
  fs::resize_file(state, 1000);
  CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true}),
                       doctest::Contains("latest.state.safetensors"), tv::Error);
  CHECK(slurp(dir.path / "log.json") == log_before);
}

TEST_CASE("train: the test report's files agree with the metrics") {
  TempDir dir("report");
  Config c = tiny_config();
  c.set("epochs", "1", "test");
  c.set("val_every", "0", "test");
  tv::train::train(c, {.work_dir = dir.path.string(), .progress = false, .quiet = true});
  const auto r = tv::train::make_recipe(c);
  auto model = tv::models::make_model<float>(r.model, r.model_config);
  tv::io::load_weights(*model, (dir.path / "latest.safetensors").string());
  auto ds = tv::train::make_dataset(r, "test");
  const auto res = tv::train::evaluate(*model, *ds, {.average = r.average_clips});
  CHECK(res.scores.size() == 4);
  CHECK(res.views == 1);
  tv::train::write_test_report(dir.path.string(), res, tv::train::class_names(r));
  const std::string json = slurp(dir.path / "results.json");
  char top1[64];
  std::snprintf(top1, sizeof(top1), "\"top1\":%.6f", res.top1);
  CHECK(json.find(top1) != std::string::npos);
  const std::string csv = slurp(dir.path / "per_class.csv");
  CHECK(csv.rfind("class,name,videos,top1\n0,move_left,1,", 0) == 0);
  CHECK(fs::file_size(dir.path / "confusion.png") > 1000);
}

// The config key `device`: a run on each device of the build trains as the CPU run does (float rounding apart),
// resumes there, and its weights test there; a GPU the build or the machine lacks stops the run before any file.
TEST_CASE("train: device = cuda trains, resumes and tests like the CPU; a missing GPU stops before any file") {
  TempDir dir("device");
  if (!tv::device_available(tv::Device::CUDA)) {
    Config c = tiny_config();
    c.set("device", "cuda", "--set device=cuda");
    const fs::path run = dir.path / "no_gpu";
    CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = run.string(), .progress = false, .quiet = true}),
                         doctest::Contains("--set device=cuda: device cuda is not available"), tv::Error);
    CHECK_FALSE(fs::exists(run));
  }
  std::vector<tv::Device> devices{tv::Device::CPU};
  if (tv::device_available(tv::Device::CUDA)) devices.push_back(tv::Device::CUDA);
  // The first training line's loss (one batch through the initial weights) and the final weights of each device.
  auto first_loss = [](const fs::path& log) {
    std::ifstream in(log);
    std::string line;
    std::getline(in, line);
    return tv::train::detail::json_field(line, "loss");
  };
  std::map<tv::Device, fs::path> runs;
  for (const tv::Device device : devices) {
    const std::string name = tv::device_name(device);
    INFO(name);
    Config c = tiny_config();
    c.set("device", name, "test");
    c.set("model.dropout", "0", "test");  // the same arithmetic on every device: no masks drawn
    const fs::path whole = dir.path / (name + "_whole"), cut = dir.path / (name + "_cut");
    const auto full = tv::train::train(c, {.work_dir = whole.string(), .progress = false, .quiet = true});
    CHECK(full.epochs_done == 2);
    CHECK(full.best_top1 >= 0);
    CHECK(slurp(whole / "train.log").find("device = " + name + "\n") != std::string::npos);
    runs[device] = whole;
    // Killed after 4 iterations (saved at 4) and resumed on the device: the momenta and weights come back
    // from host tensors onto the device and the run ends where the uninterrupted one did.
    tv::train::train(c, {.work_dir = cut.string(), .progress = false, .quiet = true, .stop_after_iters = 4});
    tv::train::train(c, {.work_dir = cut.string(), .resume = true, .progress = false, .quiet = true});
    const auto a = weights_of(whole / "latest.safetensors"), b = weights_of(cut / "latest.safetensors");
    REQUIRE(a.size() == b.size());
    for (const auto& named : a)
      CHECK_MESSAGE(worst_ratio(named.second, b.at(named.first), 1e-4, 1e-5) <= 1, named.first,
                    " differs after the resume on ", name);
    // Testing on the device: the weights load into a device model and the scores come back to the host.
    const auto r = tv::train::make_recipe(c);
    CHECK(r.device.device == device);
    auto model = tv::models::make_model<float>(r.model, r.model_config);
    tv::io::load_weights(*model, (whole / "latest.safetensors").string());
    auto on_cpu = tv::models::make_model<float>(r.model, r.model_config);
    tv::io::load_weights(*on_cpu, (whole / "latest.safetensors").string());
    model->to(device);
    auto ds = tv::train::make_dataset(r, "test");
    const auto got = tv::train::evaluate(*model, *ds, {.average = r.average_clips, .num_workers = 0});
    const auto want = tv::train::evaluate(*on_cpu, *ds, {.average = r.average_clips, .num_workers = 0});
    REQUIRE(got.scores.size() == want.scores.size());
    CHECK(got.labels == want.labels);
    for (size_t v = 0; v < got.scores.size(); ++v)
      for (size_t k = 0; k < got.scores[v].size(); ++k)
        CHECK(got.scores[v][k] == doctest::Approx(want.scores[v][k]).epsilon(1e-4));
  }
  if (runs.count(tv::Device::CUDA)) {
    // The same first batch through the same initial weights: the same loss; the end of the run, close.
    CHECK(first_loss(runs[tv::Device::CUDA] / "log.json") ==
          doctest::Approx(first_loss(runs[tv::Device::CPU] / "log.json")).epsilon(1e-4));
    const auto a = weights_of(runs[tv::Device::CPU] / "latest.safetensors"),
               b = weights_of(runs[tv::Device::CUDA] / "latest.safetensors");
    for (const auto& named : a)
      CHECK_MESSAGE(worst_ratio(named.second, b.at(named.first), 1e-2, 1e-3) <= 1, named.first,
                    " of the cuda run is far from the cpu run's");
  }
}

TEST_CASE("train: load_from starts fine-tuning from another run's weights, leaving out the classifier") {
  TempDir dir("load_from");
  auto source = tv::models::make_model<float>("tsm_r18_dnr", {.num_classes = 4, .frames = 4, .set = {{"width", "4"}}});
  const std::string path = (dir.path / "k400.safetensors").string();
  tv::io::save_weights(*source, path);
  auto target = tv::models::make_model<float>("tsm_r18_dnr", {.num_classes = 3, .frames = 4, .set = {{"width", "4"}}});
  const auto fc_before = target->cls_head->fc_cls->weight.to_vector();
  tv::train::load_initial_weights(*target, path, {"cls_head."});
  std::map<std::string, std::vector<float>> src;
  for (const auto& [k, t] : source->state_dict()) src[k] = t.to_vector();
  for (const auto& named : target->state_dict())
    if (named.first.rfind("cls_head.", 0) != 0) CHECK_MESSAGE(named.second.to_vector() == src.at(named.first), named.first);
  CHECK(target->cls_head->fc_cls->weight.to_vector() == fc_before);
  CHECK_THROWS_WITH_AS(tv::train::load_initial_weights(*target, path, {}),
                       doctest::Contains("size mismatch for cls_head.fc_cls.weight"), tv::Error);
  auto other = tv::models::make_model<float>("tsm_r18", {.num_classes = 3, .frames = 4, .set = {{"width", "4"}}});
  CHECK_THROWS_WITH_AS(tv::train::load_initial_weights(*other, path, {"cls_head."}),
                       doctest::Contains("the model's 'backbone.layer1.0.bn1.weight' is not in the file"), tv::Error);
}

TEST_CASE("train: every config in configs/ builds its recipe, with no unknown key") {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(TINYVID_CONFIG_DIR)) {
    if (e.path().extension() != ".conf") continue;
    CAPTURE(e.path().string());
    const Config c = Config::from_file(e.path().string());
    const auto r = tv::train::make_recipe(c);
    CHECK_NOTHROW(c.check_all_used());
    CHECK(r.model_config.num_classes > 0);
    ++n;
  }
  CHECK(n >= 10);
}

namespace {

// Every file two runs must agree on: weights, the state, and log.json without its timings.
void check_same_run_files(const fs::path& a, const fs::path& b) {
  auto log = [](const fs::path& p) {
    std::vector<std::string> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);) out.push_back(l.substr(0, l.find(",\"data_time\"")));
    return out;
  };
  CHECK(log(a / "log.json") == log(b / "log.json"));
  for (const auto& e : fs::directory_iterator(a)) {
    const std::string name = e.path().filename().string();
    if (name.find(".safetensors") == std::string::npos) continue;
    CAPTURE(name);
    REQUIRE(fs::exists(b / name));
    CHECK(slurp(a / name) == slurp(b / name));
  }
  for (const auto& e : fs::directory_iterator(b))
    CHECK_MESSAGE(fs::exists(a / e.path().filename()), e.path().filename().string());
}

}  // namespace

TEST_CASE("train: a kill at any point of an epoch's end resumes to the files of an uninterrupted run") {
  Config c = tiny_config();
  c.set("max_keep_ckpts", "1", "test");  // epoch_1 is removed when epoch_2 is written
  TempDir whole("kill_whole");
  tv::train::train(c, {.work_dir = whole.path.string(), .progress = false, .quiet = true});
  CHECK(!fs::exists(whole.path / "epoch_1.safetensors"));
  CHECK(fs::exists(whole.path / "epoch_2.safetensors"));
  // The points between the writes of an epoch's end, in order; "@2": the second (last) epoch's.
  for (const char* point : {"before_epoch_checkpoint", "after_epoch_checkpoint", "after_validation", "after_best",
                            "after_val_log", "after_epoch_checkpoint@2", "after_validation@2", "after_val_log@2"}) {
    CAPTURE(point);
    TempDir cut("kill_cut");
    CHECK_THROWS_AS(tv::train::train(c, {.work_dir = cut.path.string(), .progress = false, .quiet = true,
                                         .interrupt_at = point}),
                    tv::train::TrainInterrupted);
    const auto resumed =
        tv::train::train(c, {.work_dir = cut.path.string(), .resume = true, .progress = false, .quiet = true});
    CHECK(resumed.epochs_done == 2);
    check_same_run_files(whole.path, cut.path);
  }
}

TEST_CASE("train: a resume with other settings or another training list is refused unless allowed by name") {
  TempDir dir("changed");
  Config c = tiny_config();
  tv::train::train(c, {.work_dir = dir.path.string(), .progress = false, .quiet = true, .stop_after_iters = 2});
  Config lr = c;
  lr.set("optim.lr", "0.5", "test");
  lr.set("batch_size", "2", "test");
  CHECK_THROWS_WITH_AS(tv::train::train(lr, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true}),
                       doctest::Contains("optim.lr: 0.05 -> 0.5"), tv::Error);
  // Allowing one key is not allowing the other.
  CHECK_THROWS_WITH_AS(tv::train::train(lr, {.work_dir = dir.path.string(), .resume = true, .allow_changed = {"optim.lr"},
                                             .progress = false, .quiet = true}),
                       doctest::Contains("batch_size: 4 -> 2"), tv::Error);
  // Another training list (one video dropped) under the same path.
  TempDir data("changed_list");
  const std::string list = slurp(tiny_dataset() / "train_list.txt");
  std::ofstream(data.path / "train_list.txt") << list.substr(list.find('\n') + 1);
  Config other_list = c;
  other_list.set("data.train_list", (data.path / "train_list.txt").string(), "test");
  other_list.set("data.prefix", (tiny_dataset() / "videos").string(), "test");
  CHECK_THROWS_WITH_AS(
      tv::train::train(other_list, {.work_dir = dir.path.string(), .resume = true, .allow_changed = {"data.train_list", "data.prefix"},
                                    .progress = false, .quiet = true}),
      doctest::Contains("(training list): 12 samples"), tv::Error);
  // Allowed by name: the run continues, and train.log says what changed.
  Config epochs = c;
  epochs.set("log_every", "2", "test");
  const auto r = tv::train::train(epochs, {.work_dir = dir.path.string(), .resume = true, .allow_changed = {"log_every"},
                                           .progress = false, .quiet = true});
  CHECK(r.epochs_done == 2);
  CHECK(slurp(dir.path / "train.log").find("changed on resume (--allow-change): log_every: 1 -> 2") != std::string::npos);
}

TEST_CASE("train: a work directory is never overwritten by a fresh run nor written by two runs at once") {
  TempDir dir("guard");
  Config c = tiny_config();
  c.set("epochs", "1", "test");
  // Killed before its first checkpoint: --resume finds no state and starts the run over its leftovers.
  tv::train::train(c, {.work_dir = dir.path.string(), .progress = false, .quiet = true, .stop_after_iters = 1});
  CHECK(!fs::exists(dir.path / "latest.state.safetensors"));
  tv::train::train(c, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true,
                       .stop_after_iters = 2});
  const std::string state = slurp(dir.path / "latest.safetensors");
  CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = dir.path.string(), .progress = false, .quiet = true}),
                       doctest::Contains("already holds files"), tv::Error);
  CHECK(slurp(dir.path / "latest.safetensors") == state);
  {
    tv::train::WorkDirLock other(dir.path.string());  // a second run holding the directory
    CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true}),
                         doctest::Contains(("is in use by another tinyvid run (pid " + std::to_string(::getpid())).c_str()),
                         tv::Error);
  }
  std::ofstream(dir.path / "latest.safetensors.tmp.99999.0") << "a temporary whose writer was killed";
  CHECK(tv::train::train(c, {.work_dir = dir.path.string(), .resume = true, .progress = false, .quiet = true}).epochs_done == 1);
  CHECK(!fs::exists(dir.path / "latest.safetensors.tmp.99999.0"));
  // --force's new folder: the name with a UTC timestamp, next to the old one.
  const std::string fresh = tv::train::timestamped_work_dir(dir.path.string() + "/");
  CHECK(fresh.rfind(dir.path.string() + "_20", 0) == 0);
  // train.log: the environment and every setting, defaults marked.
  const std::string text = slurp(dir.path / "train.log");
  for (const char* s : {"tinyvid 0.1.0", "compiler: ", "CPU kernels: ", "threads: ", "FFmpeg: ", "model = tsn_r18_dnr",
                        "# default", "resumed from "})
    CHECK_MESSAGE(text.find(s) != std::string::npos, std::string(s));
}

TEST_CASE("train: a run that cannot read its samples stops with the list of bad files") {
  TempDir dir("bad_samples");
  const std::string list = slurp(tiny_dataset() / "train_list.txt");
  SUBCASE("every sample unreadable: no success, no iteration count") {
    std::string bad;
    for (size_t p = 0; p < list.size();) {
      const size_t e = list.find('\n', p);
      bad += "missing/" + list.substr(p, e - p) + "\n";
      p = e + 1;
    }
    std::ofstream(dir.path / "list.txt") << bad;
  }
  SUBCASE("one of 12 unreadable, above data.max_skip_ratio = 0.01") {
    std::ofstream(dir.path / "list.txt") << "missing/nothing.mp4 0\n" << list;
  }
  Config c = tiny_config();
  c.set("data.train_list", (dir.path / "list.txt").string(), "test");
  c.set("data.prefix", (tiny_dataset() / "videos").string(), "test");
  CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = (dir.path / "run").string(), .progress = false, .quiet = true}),
                       doctest::Contains("could not be read, more than data.max_skip_ratio = 0.01 allows; stopped."),
                       tv::Error);
  CHECK(slurp(dir.path / "run" / "bad_samples.txt").find("missing/") != std::string::npos);
  CHECK(!fs::exists(dir.path / "run" / "best.safetensors"));
}

TEST_CASE("train: SIGINT stops at the next iteration, saved, and the resumed run is exact") {
  TempDir whole("sigint_whole"), cut("sigint_cut");
  const Config c = tiny_config();
  tv::train::train(c, {.work_dir = whole.path.string(), .progress = false, .quiet = true});
  {
    tv::train::StopOnSignals guard;
    std::raise(SIGINT);  // before the run: it stops after its first iteration
    const auto r = tv::train::train(c, {.work_dir = cut.path.string(), .progress = false, .quiet = true});
    CHECK(r.interrupted);
    CHECK(r.global_iter == 1);
  }
  tv::train::stop_requested().store(false);
  CHECK(slurp(cut.path / "train.log").find("stopped at epoch 1, iteration 1; saved. Continue with:") != std::string::npos);
  const auto r = tv::train::train(c, {.work_dir = cut.path.string(), .resume = true, .progress = false, .quiet = true});
  CHECK(!r.interrupted);
  check_same_run_files(whole.path, cut.path);
}

TEST_CASE("train: a log that cannot be written stops the run with the file's name") {
  tv::train::AppendLog full("/dev/full");
  CHECK_THROWS_WITH_AS(full.write("a line\n"), doctest::Contains("writing the log '/dev/full' failed"), tv::Error);
}

TEST_CASE("train: a model whose scores overflow fails the test instead of ranking NaN somewhere") {
  const auto r = tv::train::make_recipe(tiny_config());
  auto model = tv::models::make_model<float>(r.model, r.model_config);
  {
    tv::NoGradGuard no_grad;
    model->cls_head->fc_cls->weight.fill_(3e38f);  // finite weights, infinite scores
  }
  auto ds = tv::train::make_dataset(r, "val");
  CHECK_THROWS_WITH_AS(tv::train::evaluate(*model, *ds, {.average = tv::models::AverageClips::Score, .what = "val"}),
                       doctest::Contains("val: the scores of videos 0..0 of the list"), tv::Error);
}

TEST_CASE("train: an epoch with nothing readable fails even when data.max_skip_ratio allows every skip") {
  TempDir dir("nothing_readable");
  std::ofstream(dir.path / "list.txt") << "a.mp4 0\nb.mp4 1\nc.mp4 2\nd.mp4 3\n";
  Config c = tiny_config();
  c.set("data.train_list", (dir.path / "list.txt").string(), "test");
  c.set("data.prefix", (dir.path / "missing").string(), "test");
  c.set("data.max_skip_ratio", "1", "test");
  CHECK_THROWS_WITH_AS(tv::train::train(c, {.work_dir = (dir.path / "run").string(), .progress = false, .quiet = true}),
                       doctest::Contains("train: no readable samples in epoch 1 from iteration 1:"), tv::Error);
}
