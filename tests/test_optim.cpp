// Optimizers and learning-rate schedules: SGD, gradient clipping and schedules against PyTorch fixtures
// (tools/fixtures/make_optim_fixtures.py), state save/restore, error messages, and the DNR recipe's numbers.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <tinyvid/tinyvid.hpp>

#include "fixtures.hpp"

using tv::Shape;
using tv::Tensor;
using tv::optim::LrSchedule;
using tv::optim::SGD;
using tv::optim::SGDOptions;

namespace {

constexpr double kAtol = 1e-7, kRtol = 1e-5;  // float32 arithmetic, done in a different order than PyTorch's

// A leaf parameter holding a copy of `values`.
Tensor<float> param_from(const Tensor<float>& values) { return values.clone().requires_grad_(); }

// Deterministic grads that differ per parameter and per step.
Tensor<float> grad_for(const Shape& shape, int step, int which) {
  auto g = Tensor<float>::empty(shape);
  for (int64_t i = 0; i < g.numel(); ++i)
    g.data()[i] = static_cast<float>(std::sin(0.7 * static_cast<double>(i) + 1.3 * step + 0.5 * which));
  return g;
}

std::vector<float> values(const Tensor<float>& t) { return t.to_vector(); }

}  // namespace

TEST_CASE("SGD matches torch.optim.SGD step for step (plain, momentum + weight decay, nesterov, dampening)") {
  fixtures::Fixture f("optim_sgd.txt");
  for (std::string name : {"plain", "momentum_wd", "nesterov", "dampening"}) {
    CAPTURE(name);
    auto opt_values = f.get<double>(name + ".options").to_vector();
    auto lrs = f.get<double>(name + ".lr");
    auto has_grad = f.get<double>(name + ".has_grad");
    std::vector<Tensor<float>> params{param_from(f.get<float>(name + ".p0.init")),
                                      param_from(f.get<float>(name + ".p1.init"))};
    SGD opt(params, SGDOptions(lrs.at({0}))
                        .momentum(opt_values[0])
                        .dampening(opt_values[1])
                        .weight_decay(opt_values[2])
                        .nesterov(opt_values[3] != 0));
    const int64_t steps = lrs.numel();
    for (int64_t k = 0; k < steps; ++k) {
      CAPTURE(k);
      opt.set_lr(lrs.at({k}));
      opt.zero_grad();
      for (int64_t j = 0; j < 2; ++j) {
        if (has_grad.at({k, j}) == 0) continue;
        params[j].set_grad(f.get<float>(name + ".p" + std::to_string(j) + ".grad").select(0, k).clone());
      }
      opt.step();
      for (int64_t j = 0; j < 2; ++j) {
        CAPTURE(j);
        auto expected = f.get<float>(name + ".p" + std::to_string(j) + ".after").select(0, k);
        CHECK(fixtures::worst_ratio(params[j], expected, kAtol, kRtol) <= 1);
      }
    }
  }
}

TEST_CASE("SGD on a large parameter (split across threads) is the per-element formula") {
  const int64_t n = 3 * tv::kParallelGrain + 123;
  auto p = param_from(grad_for({n}, 7, 1));
  const double lr = 0.05, momentum = 0.9, wd = 1e-4;
  SGD opt({p}, SGDOptions(lr).momentum(momentum).weight_decay(wd).nesterov(true));
  auto initial = values(p);
  std::vector<double> ref(initial.begin(), initial.end()), buf(n);
  for (int step = 0; step < 3; ++step) {
    auto g = grad_for({n}, step, 0);
    p.set_grad(g);
    opt.step();
    for (int64_t i = 0; i < n; ++i) {
      double gi = g.data()[i] + wd * ref[i];
      buf[i] = step == 0 ? gi : momentum * buf[i] + gi;
      ref[i] -= lr * (gi + momentum * buf[i]);
    }
  }
  auto got = values(p);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(got[i] - ref[i]) / (kAtol + kRtol * std::abs(ref[i])));
  CHECK(worst <= 1);
}

TEST_CASE("SGD skips parameters whose grad is undefined, and zero_grad undefines grads") {
  auto a = param_from(tv::tensor<float>({1, 2, 3}));
  auto b = param_from(tv::tensor<float>({4, 5}));
  auto never = param_from(tv::tensor<float>({6}));
  SGD opt({a, b, never}, SGDOptions(0.1).momentum(0.9));

  a.set_grad(tv::tensor<float>({1, 1, 1}));
  b.set_grad(tv::tensor<float>({1, -1}));
  opt.step();
  auto b_after_first = values(b);
  auto buffers_after_first = opt.momentum_buffers();

  opt.zero_grad();
  CHECK(!a.grad().defined());
  CHECK(!b.grad().defined());
  a.set_grad(tv::tensor<float>({1, 1, 1}));
  opt.step();  // b has no grad: neither it nor its buffer moves
  CHECK(values(b) == b_after_first);
  auto buffers = opt.momentum_buffers();
  CHECK(values(buffers[1]) == values(buffers_after_first[1]));
  CHECK(values(buffers[0]) == std::vector<float>{1.9f, 1.9f, 1.9f});  // 0.9 * 1 + 1
  CHECK(!buffers[2].defined());                                       // never had a grad: not initialised
  CHECK(values(never) == std::vector<float>{6});

  // momentum_buffers() hands out copies: changing one does not reach the optimizer.
  {
    tv::NoGradGuard no_grad;
    buffers[0].fill_(100.0f);
  }
  CHECK(values(opt.momentum_buffers()[0]) == std::vector<float>{1.9f, 1.9f, 1.9f});
}

TEST_CASE("SGD state save/restore: an interrupted run reaches exactly the same parameters") {
  const std::vector<Shape> shapes{{4, 3}, {5}, {2}};
  const int total_steps = 7, interrupt_after = 3;
  auto options = SGDOptions(0.1).momentum(0.9).weight_decay(1e-4).nesterov(true);
  auto lr_at = [](int step) { return 0.1 / (1 + step); };  // the lr changes too, as under a schedule
  // Parameter 2 gets its first grad only after the interruption, so its buffer is saved uninitialised.
  auto has_grad = [](int step, size_t which) { return which != 2 || step >= 5; };
  auto run = [&](SGD& opt, std::vector<Tensor<float>>& params, int from, int to) {
    for (int step = from; step < to; ++step) {
      opt.set_lr(lr_at(step));
      opt.zero_grad();
      for (size_t j = 0; j < params.size(); ++j)
        if (has_grad(step, j)) params[j].set_grad(grad_for(shapes[j], step, static_cast<int>(j)));
      opt.step();
    }
  };
  auto fresh_params = [&] {
    std::vector<Tensor<float>> ps;
    for (size_t j = 0; j < shapes.size(); ++j) ps.push_back(param_from(grad_for(shapes[j], 100, static_cast<int>(j))));
    return ps;
  };

  auto straight = fresh_params();
  SGD straight_opt(straight, options);
  run(straight_opt, straight, 0, total_steps);

  auto first = fresh_params();
  SGD first_opt(first, options);
  run(first_opt, first, 0, interrupt_after);
  // The checkpoint: parameter values and momentum buffers, copied out.
  std::vector<Tensor<float>> saved_params;
  for (auto& p : first) saved_params.push_back(p.detach().clone());
  auto saved_buffers = first_opt.momentum_buffers();
  CHECK(saved_buffers[0].defined());
  CHECK(!saved_buffers[2].defined());
  saved_buffers[2] = Tensor<float>::empty({0});  // a checkpoint format may store "none" as an empty tensor

  std::vector<Tensor<float>> resumed;
  for (auto& p : saved_params) resumed.push_back(param_from(p));
  SGD resumed_opt(resumed, options);
  resumed_opt.load_momentum_buffers(saved_buffers);
  run(resumed_opt, resumed, interrupt_after, total_steps);

  for (size_t j = 0; j < shapes.size(); ++j) {
    CAPTURE(j);
    CHECK(values(resumed[j]) == values(straight[j]));
    CHECK(values(resumed_opt.momentum_buffers()[j]) == values(straight_opt.momentum_buffers()[j]));
  }

  // Without the buffers the resumed run differs: the state really matters.
  std::vector<Tensor<float>> cold;
  for (auto& p : saved_params) cold.push_back(param_from(p));
  SGD cold_opt(cold, options);
  run(cold_opt, cold, interrupt_after, total_steps);
  CHECK(values(cold[0]) != values(straight[0]));
}

TEST_CASE("SGD error messages") {
  auto p = param_from(tv::tensor<float>({1, 2, 3}));
  CHECK_THROWS_WITH_AS(SGD({}, SGDOptions(0.1)), doctest::Contains("empty parameter list"), tv::Error);
  CHECK_THROWS_WITH_AS(SGD({p}, SGDOptions(-1)), doctest::Contains("expected lr >= 0, got -1"), tv::Error);
  CHECK_THROWS_WITH_AS(SGD({p}, SGDOptions(0.1).nesterov(true)),
                       doctest::Contains("nesterov momentum needs momentum > 0 and dampening 0, got momentum 0"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(SGD({p}, SGDOptions(0.1).momentum(0.9).dampening(0.1).nesterov(true)),
                       doctest::Contains("and dampening 0.1"), tv::Error);
  CHECK_THROWS_WITH_AS(SGD({p, p}, SGDOptions(0.1)), doctest::Contains("parameter 1 (shape [3]) appears more than once"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(SGD({p * 2.0f}, SGDOptions(0.1)), doctest::Contains("parameter 0 (shape [3]) is not a leaf"),
                       tv::Error);
  auto strided = tv::zeros<float>({2, 3}).t();
  CHECK_THROWS_WITH_AS(SGD({strided}, SGDOptions(0.1)),
                       doctest::Contains("parameter 0 (shape [3, 2], strides [1, 3]) is not contiguous"), tv::Error);

  SGD opt({p}, SGDOptions(0.1).momentum(0.9));
  CHECK_THROWS_WITH_AS(opt.set_lr(-0.5), doctest::Contains("expected lr >= 0, got -0.5"), tv::Error);
  p.set_grad(tv::ones<float>({2}));
  CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("parameter 0 has shape [3] but its grad has shape [2]"), tv::Error);
  p.set_grad(tv::zeros<float>({6}).slice(0, 0, 6, 2));
  CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("grad of parameter 0 (shape [3], strides [2]) is not contiguous"),
                       tv::Error);

  p.set_grad(tv::ones<float>({3}));
  opt.step();
  auto good = opt.momentum_buffers();
  CHECK_THROWS_WITH_AS(opt.load_momentum_buffers({}),
                       doctest::Contains("expected 1 buffers (one per parameter), got 0"), tv::Error);
  CHECK_THROWS_WITH_AS(opt.load_momentum_buffers({tv::zeros<float>({2, 2})}),
                       doctest::Contains("buffer 0 has shape [2, 2], expected the shape of parameter 0, [3]"),
                       tv::Error);
  CHECK(values(opt.momentum_buffers()[0]) == values(good[0]));  // a failed load changes nothing
}

TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_ (L2 below and above, L1, L3, inf)") {
  fixtures::Fixture f("optim_clip.txt");
  for (std::string name : {"l2_below", "l2_above", "l1_below", "linf_below", "l3_below"}) {
    CAPTURE(name);
    auto args = f.get<double>(name + ".args").to_vector();
    const double norm_type = args[1] == 0 ? std::numeric_limits<double>::infinity() : args[1];
    std::vector<Tensor<float>> params;
    for (const char* grad_name : {"g0", "g1", "g2"}) {
      auto g = f.get<float>(grad_name);
      auto p = tv::zeros<float>(g.shape()).requires_grad_();
      p.set_grad(g);
      params.push_back(p);
    }
    double total = tv::optim::clip_grad_norm(params, args[0], norm_type);
    CHECK(total == doctest::Approx(f.get<double>(name + ".total").item()).epsilon(1e-6));
    for (int j = 0; j < 3; ++j) {
      CAPTURE(j);
      auto expected = f.get<float>(name + ".g" + std::to_string(j));
      CHECK(fixtures::worst_ratio(params[j].grad(), expected, kAtol, kRtol) <= 1);
      if (name == "l2_above") CHECK(values(params[j].grad()) == values(expected));  // untouched, bit for bit
    }
  }
}

TEST_CASE("clip_grad_norm: skipped None grads, no grads, a large buffer, and errors") {
  auto a = tv::zeros<float>({2}).requires_grad_();
  auto b = tv::zeros<float>({1}).requires_grad_();
  CHECK(tv::optim::clip_grad_norm(std::vector<Tensor<float>>{a, b}, 1.0) == 0.0);  // no grads at all
  a.set_grad(tv::tensor<float>({3, 4}));
  CHECK(tv::optim::clip_grad_norm(std::vector<Tensor<float>>{a, b}, 1.0) == doctest::Approx(5.0));
  CHECK(!b.grad().defined());
  CHECK(a.grad().at({0}) == doctest::Approx(3.0 / (5.0 + 1e-6)));

  // Many blocks summed in parallel: the double accumulation keeps the total exact to rounding.
  const int64_t n = 5 * tv::kParallelGrain + 7;
  auto big = tv::zeros<float>({n}).requires_grad_();
  big.set_grad(tv::full<float>({n}, 0.5f));
  CHECK(tv::optim::clip_grad_norm(std::vector<Tensor<float>>{big}, 1e9) ==
        doctest::Approx(0.5 * std::sqrt(static_cast<double>(n))).epsilon(1e-12));

  std::vector<Tensor<float>> ps{a};
  CHECK_THROWS_WITH_AS(tv::optim::clip_grad_norm(ps, -1.0), doctest::Contains("expected max_norm >= 0, got -1"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::optim::clip_grad_norm(ps, 1.0, 0.0), doctest::Contains("expected norm_type > 0"),
                       tv::Error);
  a.set_grad(tv::zeros<float>({4}).slice(0, 0, 4, 2));
  CHECK_THROWS_WITH_AS(tv::optim::clip_grad_norm(ps, 1.0),
                       doctest::Contains("grad of parameter 0 (shape [2], strides [2]) is not contiguous"), tv::Error);
}

TEST_CASE("lr schedules match torch's CosineAnnealingLR and MultiStepLR") {
  fixtures::Fixture f("optim_sched.txt");
  constexpr double kScheduleRtol = 1e-12;  // torch's recursive cosine form and the closed form differ by rounding

  SUBCASE("cosine per iteration") {
    auto args = f.get<double>("cosine_iter.args").to_vector();
    const auto epochs = static_cast<int64_t>(args[1]), iters_per_epoch = static_cast<int64_t>(args[2]);
    auto s = LrSchedule::cosine_per_iteration(args[0], epochs, args[3]);
    auto expected = f.get<double>("cosine_iter.lr");
    for (int64_t e = 0; e < epochs; ++e)
      for (int64_t i = 0; i < iters_per_epoch; ++i)
        CHECK(s.lr(e, i, iters_per_epoch) ==
              doctest::Approx(expected.at({e * iters_per_epoch + i})).epsilon(kScheduleRtol));
  }
  SUBCASE("cosine per epoch (constant within an epoch)") {
    auto args = f.get<double>("cosine_epoch.args").to_vector();
    const auto epochs = static_cast<int64_t>(args[1]);
    auto s = LrSchedule::cosine_per_epoch(args[0], epochs, args[2]);
    auto expected = f.get<double>("cosine_epoch.lr");
    for (int64_t e = 0; e < epochs; ++e)
      for (int64_t i : {0, 1, 6})
        CHECK(s.lr(e, i, 7) == doctest::Approx(expected.at({e})).epsilon(kScheduleRtol));
  }
  SUBCASE("multi-step") {
    auto args = f.get<double>("multistep.args").to_vector();
    std::vector<int64_t> milestones;
    for (double m : f.get<double>("multistep.milestones").to_vector()) milestones.push_back(static_cast<int64_t>(m));
    auto s = LrSchedule::multi_step(args[0], milestones, args[1]);
    auto expected = f.get<double>("multistep.lr");
    for (int64_t e = 0; e < expected.numel(); ++e)
      for (int64_t i : {0, 9})
        CHECK(s.lr(e, i, 10) == doctest::Approx(expected.at({e})).epsilon(kScheduleRtol));
  }
}

TEST_CASE("lr schedule: mmcv0_cosine, the DNR recipe (K200: lr peaks near 0.065, never 0.1)") {
  const double base = 0.1, ratio = 0.01;
  const int64_t epochs = 120, iters_per_epoch = 1250, warmup = 60000;
  auto s = tv::optim::mmcv0_cosine(base, epochs, warmup, ratio);
  CHECK(s.kind() == LrSchedule::Kind::CosinePerEpoch);
  CHECK(s.warmup_iters() == warmup);

  // The formula written out independently: per-epoch cosine times the linear warm-up factor.
  auto formula = [&](int64_t e, int64_t i_global) {
    double regular = 0.5 * base * (1 + std::cos(std::numbers::pi * static_cast<double>(e) / epochs));
    return i_global < warmup ? regular * (ratio + (1 - ratio) * static_cast<double>(i_global) / warmup) : regular;
  };
  double peak = 0;
  int64_t peak_iter = -1;
  for (int64_t e = 0; e < epochs; ++e) {
    for (int64_t i = 0; i < iters_per_epoch; ++i) {
      const int64_t g = e * iters_per_epoch + i;
      const double lr = s.lr(e, i, iters_per_epoch);
      if (g % 997 == 0 || g == warmup - 1 || g == warmup) CHECK(lr == doctest::Approx(formula(e, g)).epsilon(1e-14));
      if (lr > peak) peak = lr, peak_iter = g;
    }
  }
  CHECK(peak < 0.1);
  CHECK(peak == doctest::Approx(0.0667).epsilon(0.002));  // 0.06669: the last warm-up iteration
  CHECK(peak_iter == warmup - 1);                          // epoch 47, iteration 1249
  CHECK(s.lr(48, 0, iters_per_epoch) == doctest::Approx(0.0654508497).epsilon(1e-9));  // regular from i = W
  CHECK(s.lr(0, 0, iters_per_epoch) == doctest::Approx(base * ratio).epsilon(1e-15));
  CHECK(s.lr(epochs - 1, iters_per_epoch - 1, iters_per_epoch) ==
        doctest::Approx(0.5 * base * (1 + std::cos(std::numbers::pi * 119.0 / 120.0))).epsilon(1e-14));
  // K400: 196 epochs, W = 127,840 iterations, about 34 epochs: the peak is near 0.093.
  auto k400 = tv::optim::mmcv0_cosine(base, 196, 127840, ratio);
  const int64_t k400_iters = 3760;  // 127,840 / 34
  double k400_peak = 0;
  for (int64_t e = 0; e < 40; ++e)
    for (int64_t i = 0; i < k400_iters; ++i) k400_peak = std::max(k400_peak, k400.lr(e, i, k400_iters));
  CHECK(k400_peak == doctest::Approx(0.093).epsilon(0.01));
}

TEST_CASE("lr schedule: warm-up combines with any kind, and errors") {
  auto step = LrSchedule::multi_step(0.2, {1}).linear_warmup(10, 0.1);
  CHECK(step.lr(0, 0, 4) == doctest::Approx(0.02));                    // ratio * base
  CHECK(step.lr(1, 1, 4) == doctest::Approx(0.02 * (0.1 + 0.9 * 0.5)));  // i = 5, past the milestone: 0.2 * 0.1
  CHECK(step.lr(2, 2, 4) == doctest::Approx(0.02));                    // i = 10: warm-up over
  auto smooth = LrSchedule::cosine_per_iteration(1.0, 2, 0.0).linear_warmup(2, 0.5);
  CHECK(smooth.lr(0, 1, 4) == doctest::Approx(0.5 * (1 + std::cos(std::numbers::pi / 8)) * 0.75));
  CHECK(LrSchedule::constant(0.3).lr(5, 2, 3) == 0.3);
  // Without warm-up, the first iteration is the base lr.
  CHECK(LrSchedule::cosine_per_epoch(0.1, 120).lr(0, 0, 1250) == 0.1);

  auto s = LrSchedule::cosine_per_epoch(0.1, 10);
  CHECK_THROWS_WITH_AS(s.lr(0, 5, 5), doctest::Contains("expected 0 <= iter_in_epoch < 5, got 5"), tv::Error);
  CHECK_THROWS_WITH_AS(s.lr(0, 0, 0), doctest::Contains("expected iters_per_epoch >= 1, got 0"), tv::Error);
  CHECK_THROWS_WITH_AS(s.lr(-1, 0, 5), doctest::Contains("expected epoch >= 0, got -1"), tv::Error);
  CHECK_THROWS_WITH_AS(s.linear_warmup(100, 0), doctest::Contains("expected 0 < ratio <= 1, got 0"), tv::Error);
  CHECK_THROWS_WITH_AS(s.linear_warmup(0, 0.1), doctest::Contains("expected iters >= 1, got 0"), tv::Error);
  CHECK_THROWS_WITH_AS(LrSchedule::cosine_per_epoch(0.1, 0), doctest::Contains("expected epochs >= 1, got 0"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(LrSchedule::multi_step(-0.1, {1}), doctest::Contains("expected base_lr >= 0, got -0.1"),
                       tv::Error);
}
