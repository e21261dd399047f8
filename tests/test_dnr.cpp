// DNR layers and the models built on them: gradient checks in double, PyTorch reference values
// (tests/fixtures/dnr.txt, made by tools/fixtures/make_dnr_fixtures.py from DNR.md), parameter counts
// from DNR.md, parameter names, and the registry's errors.
#include <doctest/doctest.h>

#include <map>
#include <numeric>

#include <tinyvid/tinyvid.hpp>
#include <tinyvid/viz/gradcam.hpp>

#include "fixtures.hpp"

using tv::Tensor;
using Inputs = std::vector<Tensor<double>>;
namespace dnr = tv::dnr;
namespace models = tv::models;

namespace {
Tensor<double> randn(const tv::Shape& s, uint64_t seed, double scale = 1.0, double shift = 0.0) {
  tv::Generator g(seed);
  return tv::add(tv::normal<double>(s, 0, scale, g), shift).detach().requires_grad_();
}
// A module's parameters loaded from fixture tensors named prefix + name.
template <class T>
void load(tv::nn::Module<T>& m, const fixtures::Fixture& f, const std::string& prefix) {
  tv::nn::StateDict<T> sd;
  for (auto& [name, t] : m.named_parameters()) sd.emplace_back(name, f.get<T>(prefix + name));
  m.load_state_dict(sd, /*strict=*/false);
}
template <class T>
int64_t count(const tv::nn::Module<T>& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}
constexpr double kTolD = 1e-10, kTolF = 1e-4;
}  // namespace

TEST_CASE("temporal_shift (channel interlacing): PyTorch's values, gradient, bad input") {
  fixtures::Fixture f("dnr.txt");
  CHECK(fixtures::worst_ratio(dnr::interlace(f.get("interlace.x"), 4), f.get("interlace.out"), kTolD, kTolD) <= 1);
  CHECK(fixtures::worst_ratio(dnr::interlace(f.get<float>("interlace.x"), 4), f.get("interlace.out"), kTolF, kTolF) <= 1);
  // 3 clips of 4 frames, 16 channels: fold 2 each way; a non-contiguous input too.
  auto x = randn({12, 16, 2, 3}, 1);
  auto ok = tv::gradcheck([](const Inputs& in) { return tv::temporal_shift(in[0], 4, 8); }, {x});
  CHECK_MESSAGE(ok, ok.message);
  auto xt = randn({12, 3, 2, 16}, 2);
  ok = tv::gradcheck([](const Inputs& in) { return tv::temporal_shift(in[0].permute({0, 3, 1, 2}), 4, 4); }, {xt});
  CHECK_MESSAGE(ok, ok.message);
  CHECK_THROWS_WITH_AS(tv::temporal_shift(x, 5), doctest::Contains("not a multiple of the frames per clip, 5"), tv::Error);
}

TEST_CASE("RelayCell: PyTorch's values and gradients, gradcheck, h in (0, 1)") {
  fixtures::Fixture f("dnr.txt");
  auto run = [&](auto tag, double tol) {
    using T = decltype(tag);
    dnr::RelayCell<T> cell(8);
    load(cell, f, "relay.");
    auto s = f.get<T>("relay.s").requires_grad_(), h = f.get<T>("relay.h").requires_grad_();
    auto c = f.get<T>("relay.c").requires_grad_();
    auto next = cell(s, {h, c});
    auto out = tv::cat(std::vector<Tensor<T>>{next.h, next.c}, 1);
    CHECK(fixtures::worst_ratio(out, f.get("relay.out"), tol, tol) <= 1);
    out.backward(f.get<T>("relay.gout"));
    CHECK(fixtures::worst_ratio(s.grad(), f.get("relay.gs"), tol, tol) <= 1);
    CHECK(fixtures::worst_ratio(h.grad(), f.get("relay.gh"), tol, tol) <= 1);
    CHECK(fixtures::worst_ratio(c.grad(), f.get("relay.gc"), tol, tol) <= 1);
    for (auto& named : cell.named_parameters())
      CHECK_MESSAGE(fixtures::worst_ratio(named.second.grad(), f.get("relay.grad." + named.first), tol, tol) <= 1, named.first);
    for (T v : next.h.to_vector()) CHECK((v > 0 && v < 1));
  };
  run(double{}, kTolD);
  run(float{}, kTolF);

  dnr::RelayCell<double> cell(4);  // reduction 4: a bottleneck of one channel
  auto s = randn({2, 4}, 3), h = randn({2, 4}, 4), c = randn({2, 4}, 5);
  Inputs in{s, h, c};
  for (auto& p : cell.parameters()) in.push_back(p);
  auto ok = tv::gradcheck(
      [&](const Inputs& v) {
        auto st = cell(v[0], {v[1], v[2]});
        return tv::cat(std::vector<Tensor<double>>{st.h, st.c}, 1);
      },
      in);
  CHECK_MESSAGE(ok, ok.message);
  CHECK(count(cell) == 2 * (4 * 1 + 1 + 1 * 16 + 16));
  CHECK_THROWS_WITH_AS(dnr::RelayCell<float>(3), doctest::Contains("leave no bottleneck channel"), tv::Error);
  CHECK_THROWS_WITH_AS(cell(randn({2, 5}, 6), {}), doctest::Contains("expected an input of shape N x 4"), tv::Error);
}

TEST_CASE("CrossLayerNorm: PyTorch's values (train and eval), state, running statistics, gradients") {
  fixtures::Fixture f("dnr.txt");
  auto run = [&](auto tag, double tol) {
    using T = decltype(tag);
    dnr::RelayCell<T> cell(8);
    load(cell, f, "cl.");
    dnr::CrossLayerNorm<T> norm(8);
    norm.running_mean.copy_(f.get<T>("cl.running_mean0"));
    norm.running_var.copy_(f.get<T>("cl.running_var0"));
    auto y = f.get<T>("cl.y").requires_grad_();
    dnr::RelayState<T> state{f.get<T>("cl.h0"), f.get<T>("cl.c0")};
    auto out = norm.forward(y, 4, cell, state);
    CHECK(fixtures::worst_ratio(out, f.get("cl.out"), tol, tol) <= 1);
    CHECK(fixtures::worst_ratio(state.h, f.get("cl.h1"), tol, tol) <= 1);
    CHECK(fixtures::worst_ratio(state.c, f.get("cl.c1"), tol, tol) <= 1);
    CHECK(fixtures::worst_ratio(norm.running_mean, f.get("cl.running_mean1"), tol, tol) <= 1);
    CHECK(fixtures::worst_ratio(norm.running_var, f.get("cl.running_var1"), tol, tol) <= 1);
    CHECK(norm.num_batches_tracked.item() == 1);
    out.backward(f.get<T>("cl.gout"));
    CHECK(fixtures::worst_ratio(y.grad(), f.get("cl.gy"), tol, tol) <= 1);
    for (auto& named : cell.named_parameters())
      CHECK_MESSAGE(fixtures::worst_ratio(named.second.grad(), f.get("cl.grad." + named.first), tol, tol) <= 1, named.first);
    norm.eval();
    tv::NoGradGuard no_grad;
    dnr::RelayState<T> state0{f.get<T>("cl.h0"), f.get<T>("cl.c0")};
    CHECK(fixtures::worst_ratio(norm.forward(y, 4, cell, state0), f.get("cl.out_eval"), tol, tol) <= 1);
  };
  run(double{}, kTolD);
  run(float{}, kTolF);
}

TEST_CASE("CrossTemporalNorm: PyTorch's values, uni- and bi-directional, train and eval, gradients") {
  fixtures::Fixture f("dnr.txt");
  for (const auto& [name, group, bi] : {std::tuple{"ct_uni", 4, false}, std::tuple{"ct_bi", 2, true}}) {
    SUBCASE(name) {
      auto run = [&, name = std::string(name), group = group, bi = bi](auto tag, double tol) {
        using T = decltype(tag);
        dnr::DnrOptions o;
        o.ct_group_frames = group;
        o.ct_bidirectional = bi;
        dnr::CrossTemporalNorm<T> norm(8, o);
        load(norm, f, name + ".");
        norm.running_mean.copy_(f.get<T>(name + ".running_mean0"));
        norm.running_var.copy_(f.get<T>(name + ".running_var0"));
        auto y = f.get<T>(name + ".y").requires_grad_();
        auto out = norm.forward(y, 8);
        CHECK(fixtures::worst_ratio(out, f.get(name + ".out"), tol, tol) <= 1);
        CHECK(fixtures::worst_ratio(norm.running_mean, f.get(name + ".running_mean1"), tol, tol) <= 1);
        CHECK(fixtures::worst_ratio(norm.running_var, f.get(name + ".running_var1"), tol, tol) <= 1);
        out.backward(f.get<T>(name + ".gout"));
        CHECK(fixtures::worst_ratio(y.grad(), f.get(name + ".gy"), tol, tol) <= 1);
        for (auto& named : norm.named_parameters())
          CHECK_MESSAGE(fixtures::worst_ratio(named.second.grad(), f.get(name + ".grad." + named.first), tol, tol) <= 1,
                        named.first);
        norm.eval();
        tv::NoGradGuard no_grad;
        CHECK(fixtures::worst_ratio(norm.forward(y, 8), f.get(name + ".out_eval"), tol, tol) <= 1);
      };
      run(double{}, kTolD);
      run(float{}, kTolF);
    }
  }
}

TEST_CASE("DNR norms: gradcheck in double (CL with its stage cell; CT uni, bi, shared cell)") {
  SUBCASE("cross-layer") {
    dnr::RelayCell<double> cell(4);
    dnr::CrossLayerNorm<double> norm(4);
    Inputs in{randn({8, 4, 2, 2}, 7, 2.0, 0.5), randn({2, 4}, 8).detach(), randn({2, 4}, 9).requires_grad_()};
    in[1] = tv::sigmoid(in[1]).detach().requires_grad_();
    for (auto& p : cell.parameters()) in.push_back(p);
    auto ok = tv::gradcheck(
        [&](const Inputs& v) {
          dnr::RelayState<double> st{v[1], v[2]};
          return norm.forward(v[0], 4, cell, st);
        },
        in);
    CHECK_MESSAGE(ok, ok.message);
  }
  struct Case {
    const char* name;
    int64_t group;
    bool bi, shared;
  };
  for (const Case& c : {Case{"CT groups of 2", 2, false, false}, Case{"CT bidirectional", 2, true, false},
                        Case{"CT bidirectional, shared cell", 1, true, true}}) {
    SUBCASE(c.name) {
      dnr::DnrOptions o;
      o.ct_group_frames = c.group;
      o.ct_bidirectional = c.bi;
      o.ct_shared_direction_cell = c.shared;
      dnr::CrossTemporalNorm<double> norm(4, o);
      CHECK((norm.relay_backward != nullptr) == (c.bi && !c.shared));
      Inputs in{randn({8, 4, 2, 2}, 10, 1.5)};
      for (auto& p : norm.parameters()) in.push_back(p);
      auto ok = tv::gradcheck([&](const Inputs& v) { return norm.forward(v[0], 4); }, in);
      CHECK_MESSAGE(ok, ok.message);
    }
  }
  dnr::DnrOptions o;
  dnr::CrossTemporalNorm<float> norm(4, o);
  CHECK_THROWS_WITH_AS(norm.forward(tv::zeros<float>({12, 4, 2, 2}), 6), doctest::Contains("do not split into groups of 4"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(norm.forward(tv::zeros<float>({8, 5, 2, 2}), 4), doctest::Contains("N*T x 4 x H x W"), tv::Error);
}

TEST_CASE("models: parameter counts of DNR.md, names as torchvision and MMAction2") {
  models::ModelConfig cfg;
  cfg.num_classes = 400;
  auto tsn = models::make_model<float>("tsn_r50", cfg);
  CHECK(count(*tsn) == 24327632);
  auto dnr_model = models::make_model<float>("tsn_r50_dnr", cfg);
  // + CL cells 870,400 + CT cells 3,143,680 + relay biases 40,256 - the replaced BNs' affine 15,104
  CHECK(count(*dnr_model) == 24327632 + 870400 + 3143680 + 40256 - 15104);
  cfg.num_classes = 200;
  CHECK(count(*models::make_model<float>("tsn_r50", cfg)) == 23917832);
  CHECK(count(*models::make_model<float>("tsm_r50", cfg)) == 23917832);  // the shift has no parameters

  std::vector<std::string> names;
  for (auto& [name, t] : dnr_model->state_dict()) names.push_back(name);
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  CHECK(names.front() == "backbone.conv1.weight");
  CHECK(has("backbone.layer1.0.downsample.1.running_var"));
  CHECK(has("backbone.layer1.relay.input_proj.0.weight"));
  CHECK(has("backbone.layer2.3.bn2.relay.hidden_proj.2.bias"));
  CHECK(has("backbone.layer4.2.bn1.num_batches_tracked"));
  CHECK_FALSE(has("backbone.layer4.2.bn1.weight"));
  CHECK(has("backbone.layer4.2.bn3.weight"));
  CHECK(names.back() == "cls_head.fc_cls.bias");
  auto plain = tsn->state_dict();
  CHECK(plain.size() == 320);  // as torchvision's resnet50: 53 convs, 53 BNs x 5, fc x 2
}

TEST_CASE("models: the inference path (batch norm, add and ReLU in the conv pass) gives the op-by-op scores") {
  // Eval under NoGradGuard takes the fused path (nn::conv_bn); with fusion switched off, the op-by-op one. Batch norm
  // statistics and affine values are made non-trivial first. DNR's norms stay ops of their own.
  models::ModelConfig cfg;
  cfg.num_classes = 6;
  for (const char* name : {"tsn_r18", "tsn_r50", "tsn_r50_dnr", "tanet_r18", "tdn_r50"}) {
    SUBCASE(name) {
      const bool tdn = std::string(name).rfind("tdn", 0) == 0;
      cfg.frames = tdn ? 10 : 4;
      cfg.set = {{"width", "8"}};
      auto m = models::make_model<float>(name, cfg);
      tv::Generator gen(9);
      {
        tv::NoGradGuard no_grad;
        for (auto& [key, t] : m->state_dict()) {
          const auto ends = [&](const std::string& suffix) {
            return key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
          };
          if (ends("running_mean") || ends("bn1.bias") || ends("bn2.bias") || ends("bn3.bias") || ends("downsample.1.bias"))
            t.copy_(tv::normal<float>(t.shape(), 0, 0.2, gen));
          if (ends("running_var")) t.copy_(tv::uniform<float>(t.shape(), 0.5, 1.5, gen));
        }
      }
      m->eval();
      const int64_t size = tdn ? 64 : 32;  // TDN's long-term module pools layer4's maps 2x2
      const auto x = tv::normal<float>({2 * cfg.frames, 3, size, size}, 0, 1, gen);
      // Eval with grad on (as Grad-CAM++ runs): op by op, and its 3x3 convs in Winograd's F(2x2, 3x3), where
      // inference runs F(4x4, 3x3) (cpu/winograd.hpp): close, not the same bits.
      const auto with_grad = m->forward(x).detach();
      tv::NoGradGuard no_grad;
      Tensor<float> op_by_op;
      {
        struct Unfused {
          Unfused() { tv::nn::set_fused_inference(false); }
          ~Unfused() { tv::nn::set_fused_inference(true); }
        } unfused;
        op_by_op = m->forward(x);
      }
      const int64_t before = tv::nn::fused_conv_bn_count();
      const auto fused = m->forward(x);
      CHECK(fused.to_vector() == op_by_op.to_vector());  // the same bits
      CHECK(fixtures::worst_ratio(fused, with_grad, 1e-4, 1e-4) <= 1);
      // Every BatchNorm2d of the ResNet body ran fused: the stem, each block's BN slots, the downsamples.
      const std::map<std::string, int64_t> sites = {{"tsn_r18", 1 + 8 * 2 + 3}, {"tsn_r50", 1 + 16 * 3 + 4},
                                                    {"tsn_r50_dnr", 1 + 16 + 4}, {"tanet_r18", 1 + 8 * 2 + 3}};
      if (sites.count(name)) CHECK(tv::nn::fused_conv_bn_count() - before == sites.at(name));
      else CHECK(tv::nn::fused_conv_bn_count() - before > 0);
      tv::nn::freeze(*m);  // frozen (weights kept as the kernels use them): still the same bits, twice
      CHECK(m->forward(x).to_vector() == op_by_op.to_vector());
      CHECK(m->forward(x).to_vector() == op_by_op.to_vector());
      // (Kept: the packed 1x1 weights where tinyvid's GEMM runs, AVX-512, and the Winograd weights of fused 3x3
      // convs: TSN+DNR's 3x3 convs are not fused, so on AVX2 alone it keeps nothing.)
      if (tv::cpu::use_own_gemm(tv::cpu::active_isa()) || std::string(name) != "tsn_r50_dnr") CHECK(tv::nn::frozen_bytes(*m) > 0);
      tv::nn::freeze(*m, false);
    }
  }
}

TEST_CASE("models: training with batch norm, add and ReLU in one pass gives the op-by-op loss and gradients") {
  // nn::conv_bn in training runs the conv, then batch_norm with the residual and the ReLU in its output pass; with
  // fusion switched off, the ops one by one. Dropout off, so both runs see the same graph.
  models::ModelConfig cfg;
  cfg.num_classes = 6;
  cfg.frames = 4;
  cfg.dropout = 0;
  cfg.set = {{"width", "8"}};
  for (const char* name : {"tsn_r18", "tsn_r50", "tanet_r18"}) {
    SUBCASE(name) {
      auto m = models::make_model<float>(name, cfg);
      m->train();
      tv::Generator gen(3);
      const auto x = tv::normal<float>({2 * cfg.frames, 3, 32, 32}, 0, 1, gen);
      auto run = [&] {
        m->zero_grad();
        const auto y = m->forward(x);
        tv::sum(tv::mul(y, y)).backward();
        std::vector<std::vector<float>> out = {y.to_vector()};
        for (auto& named : m->named_parameters()) out.push_back(named.second.grad().to_vector());
        return out;
      };
      const auto fused = run();
      tv::nn::set_fused_inference(false);
      const auto op_by_op = run();
      tv::nn::set_fused_inference(true);
      CHECK(fused == op_by_op);  // the same bits
    }
  }
}

TEST_CASE("models: forward shapes, TSN consensus, DNR switches, registry errors") {
  models::ModelConfig cfg;
  cfg.num_classes = 5;
  cfg.frames = 4;
  cfg.set = {{"width", "8"}, {"ct_group_frames", "2"}};
  for (const char* name : {"tsn_r18", "tsn_r18_dnr", "tsm_r18_dnr", "tsn_r50_dnr"}) {
    SUBCASE(name) {
      auto m = models::make_model<float>(name, cfg);
      auto y = m->forward(tv::normal<float>({8, 3, 32, 32}));
      CHECK(y.shape() == tv::Shape{2, 5});
      tv::sum(y).backward();
      for (auto& named : m->named_parameters()) CHECK_MESSAGE(named.second.grad().defined(), named.first);
    }
  }
  // TSN in eval: a clip's score is the mean of its frames' scores (averaging before the fc).
  auto m = models::make_model<double>("tsn_r18", cfg);
  m->eval();
  tv::NoGradGuard no_grad;
  auto x = tv::normal<double>({4, 3, 32, 32});
  auto y = m->forward(x);
  auto per_frame = m->cls_head->fc_cls->forward(tv::mean(m->backbone->forward(x), {2, 3}));
  CHECK(fixtures::worst_ratio(y, tv::mean(per_frame, {0}, true), 1e-12, 1e-12) <= 1);

  cfg.set = {{"ct_bidirectional", "true"}, {"interlace", "off"}, {"cross_layer", "false"}, {"width", "8"}};
  auto bi = models::make_model<float>("tsn_r18_dnr", cfg);
  CHECK(bi->backbone->layers[0]->relay == nullptr);
  CHECK(bi->backbone->layers[0]->blocks[0]->ct_norm->relay_backward != nullptr);

  CHECK_THROWS_WITH_AS(models::make_model<float>("tsn_r51"), doctest::Contains("known models: tsn_r18"), tv::Error);
  cfg.set = {{"ct_grup_frames", "2"}};
  CHECK_THROWS_WITH_AS(models::make_model<float>("tsn_r50_dnr", cfg), doctest::Contains("unknown switch 'ct_grup_frames'"),
                       tv::Error);
  cfg.set = {{"ct_group_frames", "3"}};
  CHECK_THROWS_WITH_AS(models::make_model<float>("tsn_r50_dnr", cfg), doctest::Contains("do not split into groups"),
                       tv::Error);
  cfg.set = {{"interlace", "maybe"}};
  CHECK_THROWS_WITH_AS(models::make_model<float>("tsn_r50_dnr", cfg), doctest::Contains("expected true or false"),
                       tv::Error);
  auto r50 = models::make_model<float>("tsn_r50");
  CHECK_THROWS_WITH_AS(r50->forward(tv::zeros<float>({6, 3, 32, 32})), doctest::Contains("not a multiple of the frames"),
                       tv::Error);
}

namespace {
// The fixture scripts' deterministic input (make_dnr_fixtures.clip_input: sin(0.1 i + 0.3) in element order) and
// output gradient (sin(i)).
template <class T>
tv::Tensor<T> sine_clip(const tv::Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<T> xs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) xs[static_cast<size_t>(i)] = static_cast<T>(std::sin(0.1 * static_cast<double>(i) + 0.3));
  return tv::tensor<T>(xs, shape);
}
template <class T>
tv::Tensor<T> sine_grad(const tv::Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<T> gs(static_cast<size_t>(n));
  for (size_t i = 0; i < gs.size(); ++i) gs[i] = static_cast<T>(std::sin(static_cast<double>(i)));
  return tv::tensor<T>(gs, shape);
}
// The deterministic weights of tools/fixtures/make_dnr_fixtures.py (deterministic_fill): entry k of the
// state_dict, by the last part of its name.
template <class T>
void deterministic_fill(tv::nn::Module<T>& m) {
  int64_t k = 0;
  for (auto& [name, t] : m.state_dict()) {
    const std::string leaf = name.substr(name.rfind('.') + 1);
    const int64_t n = t.numel();
    std::vector<T> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const double wave = std::sin(1.0 + 0.7 * static_cast<double>(k) + 0.37 * static_cast<double>(i));
      double x;
      if (leaf == "num_batches_tracked") x = 0;
      else if (leaf == "running_var") x = 1.0 + 0.3 * wave * wave;
      else if (leaf == "running_mean" || leaf == "bias") x = 0.1 * wave;
      else if (leaf == "weight" && t.dim() == 1) x = 1.0 + 0.1 * wave;
      else x = std::sqrt(2.0 / static_cast<double>(n / t.size(0))) * wave;
      v[static_cast<size_t>(i)] = static_cast<T>(x);
    }
    tv::NoGradGuard no_grad;
    t.copy_(tv::tensor<T>(v, t.shape()));
    ++k;
  }
}
}  // namespace

// Training mode is compared on the R18 model only: through 50 training-mode batch norms on tiny maps
// the deep models are chaotic (see make_dnr_fixtures.py), so those are compared in eval mode.
TEST_CASE("models match a plain-PyTorch reference: logits and gradients (TSN, TSM, DNR, bi; train and eval)") {
  fixtures::Fixture f("models.txt");
  struct Case {
    const char* key;
    const char* model;
    int64_t width, classes, frames, group;
    bool bi, train;
  };
  for (const Case& c : {Case{"tsn_r18_dnr", "tsn_r18_dnr", 8, 5, 4, 2, false, true},
                        Case{"tsm_r50_dnr_bi", "tsm_r50_dnr", 4, 3, 4, 2, true, false},
                        Case{"tsn_r50", "tsn_r50", 4, 6, 2, 4, false, false}}) {
    SUBCASE(c.key) {
      auto run = [&](auto tag, double tol) {
        using T = decltype(tag);
        models::ModelConfig cfg;
        cfg.num_classes = c.classes;
        cfg.frames = c.frames;
        cfg.dropout = 0;
        cfg.set = {{"width", std::to_string(c.width)}, {"ct_group_frames", std::to_string(c.group)},
                   {"ct_bidirectional", c.bi ? "true" : "false"}};
        auto m = models::make_model<T>(c.model, cfg);
        CHECK(static_cast<double>(m->state_dict().size()) == f.get(std::string(c.key) + ".keys").item());
        deterministic_fill(*m);
        auto x = sine_clip<T>({2 * c.frames, 3, 64, 64});
        if (!c.train) m->eval();
        auto y = m->forward(x);
        CHECK(fixtures::worst_ratio(y, f.get(std::string(c.key) + ".out"), tol, tol) <= 1);
        y.backward(sine_grad<T>(y.shape()));
        CHECK(fixtures::worst_ratio(m->backbone->conv1->weight.grad(), f.get(std::string(c.key) + ".grad.conv1"), tol, tol) <= 1);
        CHECK(fixtures::worst_ratio(m->cls_head->fc_cls->weight.grad(), f.get(std::string(c.key) + ".grad.fc"), tol, tol) <= 1);
        if (!c.train) return;
        m->eval();
        tv::NoGradGuard no_grad;
        CHECK(fixtures::worst_ratio(m->forward(x), f.get(std::string(c.key) + ".eval"), tol, tol) <= 1);
      };
      run(double{}, 1e-9);
      run(float{}, 2e-3);
    }
  }
}

// stats_group_clips = 2 on a batch of 4 clips must train exactly as two devices with 2 clips each would:
// the logits of two separate runs, their gradients summed, their running statistics averaged.
TEST_CASE("models: stats_group_clips gives every norm per-device statistics (BN, CL, CT, stem, downsample)") {
  for (const char* name : {"tsn_r18_dnr", "tsm_r50_dnr", "tsn_r50"}) {
    SUBCASE(name) {
      models::ModelConfig cfg;
      cfg.num_classes = 3;
      cfg.frames = 4;
      cfg.dropout = 0;
      cfg.set = {{"width", "4"}, {"ct_group_frames", "2"}, {"ct_bidirectional", "true"}};
      auto one_device = models::make_model<double>(name, cfg);
      deterministic_fill(*one_device);
      cfg.set["stats_group_clips"] = "2";
      auto grouped = models::make_model<double>(name, cfg);
      deterministic_fill(*grouped);
      tv::nn::StateDict<double> initial;
      for (auto& [key, t] : one_device->named_buffers()) initial.emplace_back(key, t.clone());

      tv::Generator gen(31);
      auto x = tv::normal<double>({16, 3, 64, 64}, 0, 1, gen), gy = tv::normal<double>({4, 3}, 0, 1, gen);
      auto y = grouped->forward(x);
      y.backward(gy);
      std::map<std::string, Tensor<double>> averaged;  // the two devices' buffers, averaged
      for (int64_t d = 0; d < 2; ++d) {
        one_device->load_state_dict(initial, /*strict=*/false);
        auto part = one_device->forward(x.narrow(0, 8 * d, 8));
        part.backward(gy.narrow(0, 2 * d, 2));  // gradients add up across the two runs
        CHECK(fixtures::worst_ratio(y.narrow(0, 2 * d, 2).detach(), part.detach(), 1e-12, 1e-10) <= 1);
        for (auto& [key, t] : one_device->named_buffers()) {
          auto half = tv::mul(t.detach(), 0.5);
          averaged[key] = d == 0 ? half : tv::add(averaged[key], half);
        }
      }
      for (auto& named : grouped->named_buffers())
        CHECK_MESSAGE(fixtures::worst_ratio(named.second, averaged[named.first], 1e-12, 1e-10) <= 1, named.first);
      const auto sum_of_parts = one_device->named_parameters();
      size_t k = 0;
      for (auto& named : grouped->named_parameters())
        CHECK_MESSAGE(fixtures::worst_ratio(named.second.grad(), sum_of_parts[k++].second.grad(), 1e-12, 1e-8) <= 1,
                      named.first);
      // In eval the grouping changes nothing: running statistics only.
      grouped->eval();
      one_device->load_state_dict(grouped->state_dict());
      one_device->eval();
      tv::NoGradGuard no_grad;
      CHECK(fixtures::worst_ratio(grouped->forward(x), one_device->forward(x), 0, 0) <= 1);
    }
  }
  models::ModelConfig cfg;
  cfg.set = {{"stats_group_clips", "-1"}};
  CHECK_THROWS_WITH_AS(models::make_model<float>("tsn_r18", cfg),
                       doctest::Contains("model switch stats_group_clips: expected a whole number >= 0, got '-1'"), tv::Error);
}

TEST_CASE("dynamic_affine and the eval-mode norms (running statistics folded in): gradcheck, errors") {
  auto z = randn({2, 4, 3, 2, 2}, 20), scale = randn({2, 2, 3}, 21), shift = randn({2, 2, 3}, 22);
  auto ok = tv::gradcheck([](const Inputs& v) { return dnr::dynamic_affine(v[0], v[1], v[2]); }, {z, scale, shift});
  CHECK_MESSAGE(ok, ok.message);
  // Frames 0-1 use group 0's pair, frames 2-3 group 1's.
  auto y = dnr::dynamic_affine(tv::ones<double>({1, 4, 1, 1}), tv::tensor<double>({2, 3}, {1, 2, 1}),
                               tv::tensor<double>({0, 1}, {1, 2, 1}));
  CHECK(y.to_vector() == std::vector<double>{2, 2, 4, 4});
  CHECK_THROWS_WITH_AS(dnr::dynamic_affine(z, randn({2, 3, 3}, 23), randn({2, 3, 3}, 24)),
                       doctest::Contains("G dividing T"), tv::Error);

  dnr::DnrOptions o;
  o.ct_group_frames = 2;
  o.ct_bidirectional = true;
  dnr::CrossTemporalNorm<double> ct(4, o);
  ct.running_mean.copy_(tv::tensor<double>({0.1, -0.2, 0.3, 0.0}));
  ct.running_var.copy_(tv::tensor<double>({1.5, 0.5, 2.0, 1.0}));
  ct.eval();
  Inputs in{randn({8, 4, 2, 2}, 25)};
  for (auto& p : ct.parameters()) in.push_back(p);
  ok = tv::gradcheck([&](const Inputs& v) { return ct.forward(v[0], 4); }, in);
  CHECK_MESSAGE(ok, ok.message);
  CHECK(ct.num_batches_tracked.item() == 0);  // eval never counts or updates the statistics

  dnr::RelayCell<double> cell(4);
  dnr::CrossLayerNorm<double> cl(4);
  cl.running_var.copy_(tv::tensor<double>({1.5, 0.5, 2.0, 1.0}));
  cl.eval();
  Inputs in2{randn({8, 4, 2, 2}, 26)};
  for (auto& p : cell.parameters()) in2.push_back(p);
  ok = tv::gradcheck(
      [&](const Inputs& v) {
        dnr::RelayState<double> st;
        return cl.forward(v[0], 4, cell, st);
      },
      in2);
  CHECK_MESSAGE(ok, ok.message);
}

// Grad-CAM++ (viz/gradcam.hpp) of the deterministic models above against tools/fixtures/make_gradcam_fixtures.py
// (PyTorch, double): the class explained, its probability and the maps to 1e-4; the upsampling to 1e-5.
TEST_CASE("Grad-CAM++ matches a PyTorch reference: class, probability, maps and their upsampling") {
  fixtures::Fixture f("gradcam.txt");
  struct Case {
    const char* key;
    const char* model;
    int64_t width, classes, group;
    bool bi;
  };
  for (const Case& c : {Case{"tsn_r18_dnr", "tsn_r18_dnr", 8, 5, 2, false},
                        Case{"tsm_r50_dnr_bi", "tsm_r50_dnr", 4, 3, 2, true}}) {
    CAPTURE(c.key);
    models::ModelConfig cfg;
    cfg.num_classes = c.classes;
    cfg.frames = 4;
    cfg.dropout = 0;
    cfg.set = {{"width", std::to_string(c.width)}, {"ct_group_frames", std::to_string(c.group)},
               {"ct_bidirectional", c.bi ? "true" : "false"}};
    auto m = models::make_model<float>(c.model, cfg);
    deterministic_fill(*m);
    const auto x = sine_clip<float>({4, 3, 96, 128});
    for (const auto& [cls, name] : std::vector<std::pair<int64_t, std::string>>{{-1, "top"}, {2, "class2"}}) {
      const std::string k = std::string(c.key) + "." + name;
      CAPTURE(k);
      const tv::viz::GradCam cam = tv::viz::grad_cam_pp(*m, x, cls);
      CHECK(static_cast<double>(cam.class_index) == f.get(k + ".class").item());
      CHECK(cam.probability == doctest::Approx(f.get(k + ".prob").item()).epsilon(1e-5));
      const auto want = f.get(k + ".maps");
      const double peak = tv::max(want).item();
      REQUIRE(peak > 0);
      CHECK(fixtures::worst_ratio(cam.maps, want, 1e-4 * peak, 1e-4) <= 1);
      if (name == "top" && std::string(c.key) == "tsn_r18_dnr") {
        const auto up = tv::viz::upsample_bilinear(cam.maps, 96, 128).narrow(0, 0, 1).reshape({96, 128});
        CHECK(fixtures::worst_ratio(up, f.get(k + ".up0"), 1e-4 * peak, 1e-4) <= 1);
      }
    }
    CHECK_FALSE(m->cls_head->fc_cls->weight.grad().defined());  // the weights' .grad untouched
    // An inner stage: layer3's output is 6 x 8 at 96 x 128, its map non-negative and not all zero; the backbone's
    // own weights get no .grad either.
    const tv::viz::GradCam inner = tv::viz::grad_cam_pp(*m, x, -1, 3);
    CHECK(inner.maps.shape() == tv::Shape{4, 6, 8});
    CHECK(tv::max(inner.maps).item() > 0);
    const auto inner_values = inner.maps.to_vector();
    CHECK(*std::min_element(inner_values.begin(), inner_values.end()) >= 0);
    CHECK_FALSE(m->backbone->conv1->weight.grad().defined());
    CHECK_THROWS_WITH_AS(tv::viz::grad_cam_pp(*m, x, -1, 5), doctest::Contains("stage 5 is not one of"), tv::Error);
  }
}

// TANet (models/tam.hpp): one TAM against tools/fixtures/make_tanet_fixtures.py (MMAction2's grouped-conv2d form of
// the adaptive convolution), then whole recognizers with the deterministic weights, and MMAction2's parameter count.
TEST_CASE("TANet: the TAM and tanet_r50 / tanet_r50_dnr / tanet_r18 match a plain-PyTorch reference") {
  fixtures::Fixture f("tanet.txt");
  SUBCASE("TAM alone, training mode: output, gradients, running statistics; then eval") {
    tv::Generator gen(5);
    models::Tam<double> tam(8, 4, models::TamOptions{}, 0, gen);
    tv::nn::StateDict<double> weights;
    for (auto& [name, t] : tam.state_dict()) weights.emplace_back(name, f.get("tam." + name));
    tam.load_state_dict(weights);
    auto x = f.get("tam.x").requires_grad_();
    auto y = tam.forward(x);
    CHECK(fixtures::worst_ratio(y, f.get("tam.out"), 1e-12, 1e-9) <= 1);
    y.backward(f.get("tam.gout"));
    CHECK(fixtures::worst_ratio(x.grad(), f.get("tam.gx"), 1e-12, 1e-9) <= 1);
    for (auto& [name, p] : tam.named_parameters())
      CHECK_MESSAGE(fixtures::worst_ratio(p.grad(), f.get("tam.grad." + name), 1e-12, 1e-9) <= 1, name);
    for (auto& [name, b] : tam.named_buffers())
      if (f.has("tam.after." + name)) CHECK_MESSAGE(fixtures::worst_ratio(b, f.get("tam.after." + name), 1e-12, 1e-9) <= 1, name);
    tam.eval();
    tv::NoGradGuard no_grad;
    CHECK(fixtures::worst_ratio(tam.forward(x), f.get("tam.out_eval"), 1e-12, 1e-9) <= 1);
  }
  struct Case {
    const char* key;
    int64_t width, classes, group;
    bool train;
  };
  for (const Case& c : {Case{"tanet_r50", 4, 5, 4, false}, Case{"tanet_r50_dnr", 4, 3, 2, false},
                        Case{"tanet_r18", 8, 5, 4, true}}) {
    SUBCASE(c.key) {
      auto run = [&](auto tag, double tol) {
        using T = decltype(tag);
        models::ModelConfig cfg;
        cfg.num_classes = c.classes;
        cfg.frames = 4;
        cfg.dropout = 0;
        cfg.set = {{"width", std::to_string(c.width)}, {"ct_group_frames", std::to_string(c.group)}};
        auto m = models::make_model<T>(c.key, cfg);
        const std::string key = c.key;
        CHECK(static_cast<double>(m->state_dict().size()) == f.get(key + ".keys").item());
        deterministic_fill(*m);
        auto x = sine_clip<T>({8, 3, 32, 32});
        x.requires_grad_();
        if (!c.train) m->eval();
        auto y = m->forward(x);
        CHECK(fixtures::worst_ratio(y, f.get(key + ".out"), tol, tol) <= 1);
        y.backward(sine_grad<T>(y.shape()));
        CHECK(fixtures::worst_ratio(tv::sum(x.grad(), {2, 3}), f.get(key + ".grad.input_sums"), tol, tol) <= 1);
        if (f.has(key + ".grad.input_red"))
          CHECK(fixtures::worst_ratio(x.grad().narrow(0, 0, 4).narrow(1, 0, 1).reshape({4, 32, 32}),
                                      f.get(key + ".grad.input_red"), tol, tol) <= 1);
        CHECK(fixtures::worst_ratio(m->cls_head->fc_cls->weight.grad(), f.get(key + ".grad.fc"), tol, tol) <= 1);
        CHECK(fixtures::worst_ratio(m->backbone->layers[0]->blocks[0]->tam->G->parameters()[0].grad(),
                                    f.get(key + ".grad.tam_g0"), tol, tol) <= 1);
        // In training mode the early weights' gradients are differences of nearly equal terms (every batch norm
        // takes out its batch mean): PyTorch's own float run misses its double run by 17x this tolerance on
        // conv1 (tools/fixtures/tanet_float_error.py). Those two are compared in double only there.
        if (!c.train || std::is_same_v<T, double>) {
          CHECK(fixtures::worst_ratio(m->backbone->conv1->weight.grad(), f.get(key + ".grad.conv1"), tol, tol) <= 1);
          CHECK(fixtures::worst_ratio(m->backbone->layers[1]->blocks[0]->tam->L->conv1->weight.grad(),
                                      f.get(key + ".grad.tam_l0"), tol, tol) <= 1);
        }
        if (!c.train) return;
        m->eval();
        tv::NoGradGuard no_grad;
        CHECK(fixtures::worst_ratio(m->forward(x), f.get(key + ".eval"), tol, tol) <= 1);
      };
      run(double{}, 1e-7);
      run(float{}, 1e-3);
    }
  }
}

TEST_CASE("TANet: MMAction2's parameter count, every depth, TAM switches and errors") {
  models::ModelConfig cfg;  // 400 classes, 8 frames
  auto count = [](const auto& m) {
    int64_t n = 0;
    for (auto& p : m->parameters()) n += p.numel();
    return n;
  };
  CHECK(count(models::make_model<float>("tanet_r50", cfg)) == 25590320);  // MMAction2's model zoo
  // DNR adds what it adds to TSN-R50 (docs/DNR.md): 28,366,864 - 24,327,632.
  CHECK(count(models::make_model<float>("tanet_r50_dnr", cfg)) == 25590320 + 4039232);
  auto m = models::make_model<float>("tanet_r50", cfg);
  const auto sd = m->state_dict();
  auto has = [&](const std::string& k) {
    return std::any_of(sd.begin(), sd.end(), [&](const auto& e) { return e.first == k; });
  };
  for (const char* k : {"backbone.layer1.0.tam.G.0.weight", "backbone.layer1.0.tam.G.1.running_var", "backbone.layer4.2.tam.G.3.weight",
                        "backbone.layer3.5.tam.L.0.weight", "backbone.layer3.5.tam.L.1.bias", "backbone.layer3.5.tam.L.3.weight"})
    CHECK_MESSAGE(has(k), k);
  CHECK(m->backbone->layers[2]->blocks[5]->tam->L->conv1->weight.shape() == tv::Shape{64, 256, 3});  // PyTorch's Conv1d shape
  CHECK(m->cls_head->consensus == models::Consensus::AfterFc);
  CHECK(m->cls_head->dropout_p == 0.5);
  cfg.num_classes = 3;
  cfg.frames = 4;
  cfg.set = {{"width", "8"}};
  for (const char* name : {"tanet_r18", "tanet_r34_dnr", "tanet_r101"}) {
    SUBCASE(name) {
      auto small = models::make_model<float>(name, cfg);
      auto y = small->forward(tv::zeros<float>({8, 3, 32, 32}));
      CHECK(y.shape() == tv::Shape{2, 3});
    }
  }
  cfg.set = {{"width", "8"}, {"tam_alpha", "3"}, {"tam_adaptive_kernel_size", "5"}};
  auto k5 = models::make_model<double>("tanet_r50", cfg);
  CHECK(k5->backbone->layers[0]->blocks[0]->tam->G->parameters()[0].shape() == tv::Shape{12, 4});
  CHECK(k5->backbone->layers[0]->blocks[0]->tam->G->parameters().back().shape() == tv::Shape{5, 12});
  CHECK(k5->forward(tv::zeros<double>({4, 3, 32, 32})).shape() == tv::Shape{1, 3});
  // stats_group_clips reaches the TAM's norms too: 4 clips in groups of 2 train as two runs of 2 clips.
  cfg.dropout = 0;
  cfg.set = {{"width", "8"}, {"stats_group_clips", "2"}};
  auto grouped = models::make_model<double>("tanet_r50_dnr", cfg);
  cfg.set = {{"width", "8"}};
  auto alone = models::make_model<double>("tanet_r50_dnr", cfg);
  alone->load_state_dict(grouped->state_dict());
  tv::Generator gen(3);
  const auto x = tv::normal<double>({16, 3, 32, 32}, 0, 1, gen);
  const auto y = grouped->forward(x);
  for (int64_t d = 0; d < 2; ++d) {
    alone->load_state_dict(grouped->state_dict());
    CHECK(fixtures::worst_ratio(y.narrow(0, 2 * d, 2).detach(), alone->forward(x.narrow(0, 8 * d, 8)).detach(), 1e-12, 1e-9) <= 1);
  }
  cfg.set = {{"tam_adaptive_kernel_size", "4"}};
  CHECK_THROWS_WITH_AS(models::make_model<float>("tanet_r50", cfg), doctest::Contains("TAM: the kernel sizes must be odd"), tv::Error);
  cfg.set = {{"width", "2"}};  // layer1's 2 channels cannot narrow by beta = 4
  CHECK_THROWS_WITH_AS(models::make_model<float>("tanet_r50", cfg), doctest::Contains("at least beta"), tv::Error);
}

TEST_CASE("TAM: gradcheck of its input's gradient in double (training mode: both branches, the adaptive convolution)") {
  tv::Generator gen(9);
  models::Tam<double> tam(4, 3, models::TamOptions{}, 0, gen);
  auto x = tv::normal<double>({6, 4, 2, 2}, 0, 1, gen).requires_grad_();
  auto ok = tv::gradcheck([&](const Inputs& v) { return tam.forward(v[0]); }, {x});
  CHECK_MESSAGE(ok, ok.message);
}

// summary counts each TAM on its block's conv1 output: for one clip of T = 4 frames, C channels on h x w, with
// alpha 2, beta 4, K = 3: C (T 2T + 2T K) + T (C/4 C 3 + C C/4) + T C h w K. TANet-R18 of width 4 at 32 x 32:
// layer1 (C 4, 8 x 8) 3,360 twice, layer2 (8, 4 x 4) 2,240 twice, layer3 (16, 2 x 2) 2,688 twice, layer4 (32,
// 1 x 1) 6,272 twice: 29,120 over TSN-R18; its head scores every frame (4 x 3 x 32) where TSN's scores once.
TEST_CASE("summary counts TANet's TAMs on their blocks' conv1 outputs") {
  auto count = [](const char* name) {
    auto m = models::make_model<float>(name, {.num_classes = 3, .frames = 4, .set = {{"width", "4"}}});
    int64_t macs = 0;
    for (const auto& row : models::summarize(*m, 32)) macs += row.macs;
    return macs;
  };
  CHECK(count("tanet_r18") - count("tsn_r18") == 29120 + (4 - 1) * 3 * 32);
}

// TDN (models/tdn.hpp, ResNet's short-term module): the authors' names and shapes, their shift's initialization, the
// frames counted 5 per segment, every depth, and the errors.
TEST_CASE("TDN: the authors' names, 5 frames per segment, every depth, the shift's initialization and errors") {
  models::ModelConfig cfg{.num_classes = 400, .frames = 40, .set = {}};  // 8 segments
  auto m = models::make_model<float>("tdn_r50", cfg);
  CHECK(m->frames() == 40);
  CHECK(m->segments() == 8);
  const auto sd = m->state_dict();
  auto shape_of = [&](const std::string& k) {
    for (const auto& e : sd)
      if (e.first == k) return e.second.shape();
    return tv::Shape{-1};
  };
  CHECK(shape_of("backbone.conv1.bias") == tv::Shape{64});
  CHECK(shape_of("backbone.conv1_5.0.weight") == tv::Shape{64, 12, 7, 7});
  CHECK(shape_of("backbone.conv1_5.1.running_var") == tv::Shape{64});
  CHECK(shape_of("backbone.resnext_layer1.2.conv3.bias") == tv::Shape{256});
  CHECK(shape_of("backbone.resnext_layer1.0.downsample.0.bias") == tv::Shape{256});
  CHECK(shape_of("backbone.layer2.0.mse.conv1.weight") == tv::Shape{8, 128, 1, 1});
  CHECK(shape_of("backbone.layer2.0.mse.conv2.weight") == tv::Shape{8, 1, 3, 3});  // depthwise
  CHECK(shape_of("backbone.layer3.5.mse.conv3_smallscale4.weight") == tv::Shape{16, 16, 3, 3});
  CHECK(shape_of("backbone.layer4.2.mse.bn3.running_mean") == tv::Shape{512});
  CHECK(shape_of("backbone.layer4.2.shift.conv.weight") == tv::Shape{512, 1, 3});
  CHECK(shape_of("backbone.layer1.0.mse.conv1.weight") == tv::Shape{-1});  // layer1 has none, as the authors'
  CHECK(shape_of("backbone.resnext_layer1.0.shift.conv.weight") == tv::Shape{-1});
  CHECK(m->cls_head->consensus == models::Consensus::AfterFc);
  CHECK(m->cls_head->dropout_p == 0.5);
  auto count = [](const auto& model) {
    int64_t n = 0;
    for (auto& p : model->parameters()) n += p.numel();
    return n;
  };
  CHECK(count(m) == 24873648);  // docs/DNR.md; the authors' model holds 9,472 more in its unused conv1_temp
  // DNR adds what it adds to TSN-R50, and resnext_layer1's cells: 4 x (2.5 x 64^2 + 8.5 x 64), less 3 x 4 x 64 affines.
  CHECK(count(models::make_model<float>("tdn_r50_dnr", cfg)) == 24873648 + 4039232 + 42368);
  // The shift starts as TSM's: of 512 channels, 64 read the next segment (tap 2), 64 the previous (tap 0), the rest
  // themselves (tap 1).
  const auto w = m->backbone->layers[3]->blocks[2]->tdn_shift->conv->weight.to_vector();
  CHECK(w[0 * 3 + 2] == 1);
  CHECK(w[63 * 3 + 2] == 1);
  CHECK(w[64 * 3 + 0] == 1);
  CHECK(w[127 * 3 + 0] == 1);
  CHECK(w[128 * 3 + 1] == 1);
  CHECK(std::accumulate(w.begin(), w.end(), 0.0f) == 512);
  // A shift-initialized module moves whole segments: channel 0 of segment t is the input's at t + 1.
  tv::Generator gen(4);
  models::TemporalShiftConv<double> shift(8);
  const auto x = tv::normal<double>({6, 8, 2, 2}, 0, 1, gen);  // 2 clips of 3 segments
  const auto y = shift.forward(x, 3);
  CHECK(y.narrow(0, 0, 1).narrow(1, 0, 1).to_vector() == x.narrow(0, 1, 1).narrow(1, 0, 1).to_vector());
  CHECK(y.narrow(0, 2, 1).narrow(1, 0, 1).to_vector() == std::vector<double>(4, 0.0));  // past the clip's end
  CHECK(y.narrow(0, 4, 1).narrow(1, 1, 1).to_vector() == x.narrow(0, 3, 1).narrow(1, 1, 1).to_vector());
  CHECK(y.narrow(0, 4, 1).narrow(1, 5, 3).to_vector() == x.narrow(0, 4, 1).narrow(1, 5, 3).to_vector());

  cfg = {.num_classes = 3, .frames = 20, .set = {{"width", "8"}}};
  for (const char* name : {"tdn_r18", "tdn_r34_dnr", "tdn_r101", "tdn_r50_dnr"}) {
    SUBCASE(name) {
      auto small = models::make_model<float>(name, cfg);
      CHECK(small->forward(tv::zeros<float>({40, 3, 64, 64})).shape() == tv::Shape{2, 3});
      CHECK(small->forward_views(tv::zeros<float>({40, 3, 64, 64}), 2, models::AverageClips::Prob).shape() ==
            tv::Shape{1, 3});
    }
  }
  cfg.frames = 8;
  CHECK_THROWS_WITH_AS(models::make_model<float>("tdn_r50", cfg), doctest::Contains("5 per TDN segment"), tv::Error);
  cfg.frames = 20;
  cfg.set = {{"width", "4"}};  // layer2's 8 channels cannot narrow by 16
  CHECK_THROWS_WITH_AS(models::make_model<float>("tdn_r50", cfg), doctest::Contains("needs at least 16"), tv::Error);
  cfg.set = {{"width", "8"}};
  auto small = models::make_model<float>("tdn_r18", cfg);
  CHECK_THROWS_WITH_AS(small->forward(tv::zeros<float>({8, 3, 64, 64})), doctest::Contains("(TDN: 5 per segment)"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(small->forward(tv::zeros<float>({20, 3, 32, 32})), doctest::Contains("frames of at least 64x64"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(small->backbone->stages(tv::zeros<float>({4, 8, 8, 8}), 0, 1),
                       doctest::Contains("run it through features()"), tv::Error);
}

TEST_CASE("TDN: gradcheck of the long-term difference module and of the learnable shift in double (training mode)") {
  tv::Generator gen(11);
  auto make_bn = [](int64_t c) { return std::make_shared<tv::nn::BatchNorm2d<double>>(tv::nn::BatchNormOptions(c)); };
  models::LongTermDifference<double> mse(16, 3, make_bn, gen);
  auto x = tv::normal<double>({6, 16, 3, 5}, 0, 1, gen).requires_grad_();  // odd maps: the gathered upsampling
  auto ok = tv::gradcheck([&](const Inputs& v) { return mse.forward(v[0]); }, {x});
  CHECK_MESSAGE(ok, ok.message);
  models::TemporalShiftConv<double> shift(4);
  auto w = tv::normal<double>({4, 1, 3}, 0, 1, gen);
  {
    tv::NoGradGuard no_grad;
    shift.conv->weight.copy_(w);
  }
  auto z = tv::normal<double>({6, 4, 2, 1}, 0, 1, gen).requires_grad_();
  auto ok2 = tv::gradcheck([&](const Inputs& v) { return shift.forward(v[0], 3); }, {z});
  CHECK_MESSAGE(ok2, ok2.message);
}

// TDN against tools/fixtures/make_tdn_fixtures.py: the long-term module (the authors' current mSE; odd maps, so the
// nearest upsampling gathers) and the learnable shift alone with random weights, then whole recognizers with the
// deterministic weights (64 x 64 frames, 2 clips of 4 segments of 5 frames).
TEST_CASE("TDN: the long-term module, the shift and tdn_r50 / tdn_r50_dnr / tdn_r18 match a plain-PyTorch reference") {
  fixtures::Fixture f("tdn.txt");
  SUBCASE("the long-term module alone, training mode: output, gradients, running statistics; then eval") {
    tv::Generator gen(5);
    auto make_bn = [](int64_t c) { return std::make_shared<tv::nn::BatchNorm2d<double>>(tv::nn::BatchNormOptions(c)); };
    models::LongTermDifference<double> mse(32, 4, make_bn, gen);
    tv::nn::StateDict<double> weights;
    for (auto& [name, t] : mse.state_dict()) weights.emplace_back(name, f.get("mse." + name));
    mse.load_state_dict(weights);
    auto x = f.get("mse.x").requires_grad_();
    auto y = mse.forward(x);
    CHECK(fixtures::worst_ratio(y, f.get("mse.out"), 1e-12, 1e-9) <= 1);
    y.backward(f.get("mse.gout"));
    CHECK(fixtures::worst_ratio(x.grad(), f.get("mse.gx"), 1e-12, 1e-9) <= 1);
    for (auto& [name, p] : mse.named_parameters())
      CHECK_MESSAGE(fixtures::worst_ratio(p.grad(), f.get("mse.grad." + name), 1e-12, 1e-9) <= 1, name);
    for (auto& [name, b] : mse.named_buffers())  // bn3 and the two small-scale norms run twice: 2 batches tracked
      CHECK_MESSAGE(fixtures::worst_ratio(b, f.get("mse.after." + name), 1e-12, 1e-9) <= 1, name);
    mse.eval();
    tv::NoGradGuard no_grad;
    CHECK(fixtures::worst_ratio(mse.forward(x), f.get("mse.out_eval"), 1e-12, 1e-9) <= 1);
  }
  SUBCASE("the learnable shift alone") {
    models::TemporalShiftConv<double> shift(16);
    shift.load_state_dict({{"conv.weight", f.get("shift.conv.weight")}});
    auto x = f.get("shift.x").requires_grad_();
    auto y = shift.forward(x, 4);
    CHECK(fixtures::worst_ratio(y, f.get("shift.out"), 1e-12, 1e-9) <= 1);
    y.backward(f.get("shift.gout"));
    CHECK(fixtures::worst_ratio(x.grad(), f.get("shift.gx"), 1e-12, 1e-9) <= 1);
    CHECK(fixtures::worst_ratio(shift.conv->weight.grad(), f.get("shift.grad.conv.weight"), 1e-12, 1e-9) <= 1);
  }
  struct Case {
    const char* key;
    int64_t classes, group;
    bool train;
  };
  for (const Case& c : {Case{"tdn_r50", 5, 4, false}, Case{"tdn_r50_dnr", 3, 2, false}, Case{"tdn_r18", 5, 4, true}}) {
    SUBCASE(c.key) {
      auto run = [&](auto tag, double tol) {
        using T = decltype(tag);
        models::ModelConfig cfg{.num_classes = c.classes, .frames = 20, .dropout = 0,
                                .set = {{"width", "8"}, {"ct_group_frames", std::to_string(c.group)}}};
        auto m = models::make_model<T>(c.key, cfg);
        const std::string key = c.key;
        CHECK(static_cast<double>(m->state_dict().size()) == f.get(key + ".keys").item());
        deterministic_fill(*m);
        auto x = sine_clip<T>({40, 3, 64, 64});
        x.requires_grad_();
        if (!c.train) m->eval();
        auto y = m->forward(x);
        CHECK(fixtures::worst_ratio(y, f.get(key + ".out"), tol, tol) <= 1);
        y.backward(sine_grad<T>(y.shape()));
        CHECK(fixtures::worst_ratio(m->cls_head->fc_cls->weight.grad(), f.get(key + ".grad.fc"), tol, tol) <= 1);
        const auto& block = *m->backbone->layers[1]->blocks[0];
        // In training mode the gradients below the head are differences of nearly equal terms (every batch norm takes
        // out its batch mean; see TANet above): they are compared in double only, and conv1's not at all there: in
        // tdn_r18 it moves by 1.8e-8 of itself when the stem pool's input moves by 1e-13 (measured in the reference),
        // 1e5 times the rounding that any change in the order of sums makes.
        if (!c.train) CHECK(fixtures::worst_ratio(m->backbone->conv1->weight.grad(), f.get(key + ".grad.conv1"), tol, tol) <= 1);
        if (!c.train || std::is_same_v<T, double>) {
          CHECK(fixtures::worst_ratio(tv::sum(x.grad(), {2, 3}), f.get(key + ".grad.input_sums"), tol, tol) <= 1);
          CHECK(fixtures::worst_ratio(block.tdn_shift->conv->weight.grad(), f.get(key + ".grad.shift"), tol, tol) <= 1);
          CHECK(fixtures::worst_ratio(m->backbone->conv1_5->parameters()[0].grad(), f.get(key + ".grad.conv1_5"), tol, tol) <= 1);
          CHECK(fixtures::worst_ratio(block.mse->conv1->weight.grad(), f.get(key + ".grad.mse_conv1"), tol, tol) <= 1);
        }
        if (!c.train) return;
        m->eval();
        tv::NoGradGuard no_grad;
        CHECK(fixtures::worst_ratio(m->forward(x), f.get(key + ".eval"), tol, tol) <= 1);
      };
      run(double{}, 1e-7);
      run(float{}, 1e-3);
    }
  }
}
