// nn ops: conv2d, batch_norm, pools, softmax, cross_entropy, dropout, linear, LSTM cell.
// Each is gradchecked in double and compared with PyTorch's values (tests/fixtures, made by
// tools/fixtures/make_nn_fixtures.py), in double and in float.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>

#include <tinyvid/tinyvid.hpp>

#include "fixtures.hpp"

using tv::Shape;
using tv::Tensor;
using Inputs = std::vector<Tensor<double>>;

namespace {
Tensor<double> randn(const Shape& s, uint64_t seed, double scale = 1.0) {
  tv::Generator g(seed);
  return tv::normal<double>(s, 0, scale, g).requires_grad_();
}
Tensor<int64_t> to_index(const Tensor<double>& t) {
  auto out = Tensor<int64_t>::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) out.data()[i] = static_cast<int64_t>(t.data()[i]);
  return out;
}
// Gradient of sum(y * gy) with respect to each input, through tinyvid's backward.
template <class T>
std::vector<Tensor<T>> grads_of(Tensor<T> y, const Tensor<T>& gy, std::vector<Tensor<T>> inputs) {
  for (auto& x : inputs) x.set_grad({});
  y.backward(gy);
  std::vector<Tensor<T>> g;
  for (auto& x : inputs) g.push_back(x.grad());
  return g;
}
constexpr double kAtolD = 1e-10, kRtolD = 1e-9;  // double against PyTorch's double
constexpr double kAtolF = 1e-4, kRtolF = 1e-4;   // float against the same values
// The kernel ISAs the tests run, the generic path first: those of this CPU up to the one in use at start-up
// (TINYVID_ISA lowers it: ctest unit_avx2). Every float conv test runs on each.
std::vector<tv::cpu::Isa> runnable_isas() {
  static const tv::cpu::Isa at_start = tv::cpu::active_isa();
  std::vector<tv::cpu::Isa> out;
  for (auto isa : {tv::cpu::Isa::Generic, tv::cpu::Isa::Avx2, tv::cpu::Isa::Avx512})
    if (isa <= at_start && tv::cpu::isa_supported(isa, tv::cpu::detect_cpu_features())) out.push_back(isa);
  return out;
}
}  // namespace

TEST_CASE("conv2d: gradcheck over strides, padding, dilation, groups, bias, 1x1") {
  struct Case {
    const char* name;
    Shape x, w;
    tv::Pair stride, padding, dilation;
    int64_t groups;
    bool bias;
  };
  const Case cases[] = {
      {"3x3 pad 1", {2, 3, 5, 5}, {4, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
      {"1x1 (GEMM path)", {2, 4, 3, 4}, {3, 4, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, false},
      {"1x1 stride 2", {1, 4, 5, 5}, {3, 4, 1, 1}, {2, 2}, {0, 0}, {1, 1}, 1, true},
      {"7x7 stride 2 pad 3", {1, 2, 9, 8}, {2, 2, 7, 7}, {2, 2}, {3, 3}, {1, 1}, 1, false},
      {"3x3 stride 2, odd width (column phases)", {2, 2, 7, 9}, {3, 2, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true},
      {"stride 2, dilation 2, groups (column phases)", {1, 4, 9, 11}, {4, 2, 3, 3}, {2, 2}, {2, 2}, {2, 2}, 2, true},
      {"groups and dilation", {1, 4, 7, 6}, {6, 2, 3, 2}, {1, 2}, {2, 1}, {2, 1}, 2, true},
      {"depthwise", {2, 3, 4, 4}, {3, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 3, false},
      {"stride 2 on a larger map (several tiles per image)", {1, 2, 40, 40}, {2, 2, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true},
      {"1x1 on a larger map (several tiles per image)", {2, 2, 17, 17}, {3, 2, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, false},
      {"3x3 on a wide map (shifted GEMMs)", {2, 3, 3, 20}, {4, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
      {"2x3 kernel, uneven padding (shifted GEMMs)", {1, 2, 4, 24}, {3, 2, 2, 3}, {1, 1}, {1, 2}, {1, 1}, 1, false},
      {"3x3 with 16 channels (Winograd)", {1, 16, 5, 6}, {16, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
      {"3x3 with 16 channels, padding (2, 0) (Winograd)", {1, 16, 4, 7}, {17, 16, 3, 3}, {1, 1}, {2, 0}, {1, 1}, 1, false},
  };
  for (const auto& c : cases) {
    SUBCASE(c.name) {
      Inputs in;
      in.push_back(randn(c.x, 1));
      in.push_back(randn(c.w, 2));
      if (c.bias) in.push_back(randn({c.w[0]}, 3));
      auto ok = tv::gradcheck(
          [&](const Inputs& v) {
            return tv::conv2d(v[0], v[1], c.bias ? v[2] : Tensor<double>(), c.stride, c.padding, c.dilation, c.groups);
          },
          in);
      CHECK_MESSAGE(ok, ok.message);
    }
  }
}

TEST_CASE("conv2d: the algorithm is chosen from the shape") {
  auto geometry = [](int64_t k, int64_t s, int64_t p) {
    return tv::cpu::ConvGeometry{1, 8, 10, 10, 8, k, k, s, s, p, p, 1, 1, 1, 10, 10};
  };
  CHECK(tv::cpu::choose_conv_algorithm(geometry(1, 1, 0)) == tv::cpu::ConvAlgorithm::Gemm1x1);
  CHECK(tv::cpu::choose_conv_algorithm(geometry(1, 2, 0)) == tv::cpu::ConvAlgorithm::Im2colGemm);
  // Stride 2: shifted GEMMs on the input's phases where the phase width adds at most 15% (the stem: 115 for
  // 112 outputs; 3x3 at 56: 29 for 28), else im2col (3x3 at 7: 5 for 4); a 1x1 stride-2 conv unrolls.
  auto strided = [](int64_t size, int64_t k) {
    const int64_t p = k / 2, out = (size + 2 * p - k) / 2 + 1;
    return tv::cpu::ConvGeometry{8, 64, size, size, 64, k, k, 2, 2, p, p, 1, 1, 1, out, out};
  };
  CHECK(tv::cpu::choose_conv_algorithm(strided(224, 7)) == tv::cpu::ConvAlgorithm::ShiftedGemm);
  CHECK(tv::cpu::choose_conv_algorithm(strided(56, 3)) == tv::cpu::ConvAlgorithm::ShiftedGemm);
  CHECK(tv::cpu::choose_conv_algorithm(strided(7, 3)) == tv::cpu::ConvAlgorithm::Im2colGemm);
  CHECK(tv::cpu::choose_conv_algorithm(strided(56, 1)) == tv::cpu::ConvAlgorithm::Im2colGemm);
  // A 3x3 stride-2 conv's input gradient on an even map: by phases of gx, where tinyvid's GEMM runs.
  CHECK(tv::cpu::detail::input_gradient_by_phases(strided(56, 3), tv::cpu::Isa::Avx512));
  CHECK_FALSE(tv::cpu::detail::input_gradient_by_phases(strided(7, 3), tv::cpu::Isa::Avx512));
  CHECK_FALSE(tv::cpu::detail::input_gradient_by_phases(strided(56, 3), tv::cpu::Isa::Avx2));
  CHECK_FALSE(tv::cpu::detail::input_gradient_by_phases(strided(224, 7), tv::cpu::Isa::Avx512));
  // 3x3 stride 1 with 16+ channels: Winograd at every ResNet size; with fewer channels, shifted GEMMs
  // when the padded width adds at most 15% (56 -> 58), else im2col (10 -> 12).
  auto map = [](int64_t size, int64_t ch) { return tv::cpu::ConvGeometry{8, ch, size, size, ch, 3, 3, 1, 1, 1, 1, 1, 1, 1, size, size}; };
  for (int64_t size : {56, 28, 14, 7}) CHECK(tv::cpu::choose_conv_algorithm(map(size, 64)) == tv::cpu::ConvAlgorithm::Winograd3x3);
  CHECK(tv::cpu::choose_conv_algorithm(map(56, 8)) == tv::cpu::ConvAlgorithm::ShiftedGemm);
  CHECK(tv::cpu::choose_conv_algorithm(map(10, 8)) == tv::cpu::ConvAlgorithm::Im2colGemm);
}

namespace {
// Direct convolution by its definition (stride 1, no dilation, one group), with its two gradients.
template <class T>
Tensor<T> cast(const Tensor<double>& t) {
  auto out = Tensor<T>::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) out.data()[i] = static_cast<T>(t.data()[i]);
  return out;
}
struct NaiveConv {
  int64_t N, C, H, W, Cout, KH, KW, ph, pw, OH, OW, stride = 1;
  template <class F>
  void each(F&& f) const {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < Cout; ++k)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox)
              for (int64_t i = 0; i < KH; ++i)
                for (int64_t j = 0; j < KW; ++j) {
                  const int64_t iy = oy * stride - ph + i, ix = ox * stride - pw + j;
                  if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                    f(((n * Cout + k) * OH + oy) * OW + ox, ((n * C + c) * H + iy) * W + ix, ((k * C + c) * KH + i) * KW + j);
                }
  }
  // tv::conv2d's forward and both gradients against the direct sums, in double and float, on seeded inputs.
  // Rounding grows with the length of each sum (terms of size ~1): y sums KH KW C products, gx KH KW Cout
  // (at most), gw N OH OW.
  void check(uint64_t seed) const {
    tv::Generator gen(seed);
    auto x = tv::normal<double>({N, C, H, W}, 0, 1, gen), w = tv::normal<double>({Cout, C, KH, KW}, 0, 1, gen);
    auto gy = tv::normal<double>({N, Cout, OH, OW}, 0, 1, gen);
    auto y_ref = tv::zeros<double>(gy.shape()), gx_ref = tv::zeros<double>(x.shape()), gw_ref = tv::zeros<double>(w.shape());
    each([&](int64_t yo, int64_t xo, int64_t wo) {
      y_ref.data()[yo] += x.data()[xo] * w.data()[wo];
      gx_ref.data()[xo] += gy.data()[yo] * w.data()[wo];
      gw_ref.data()[wo] += gy.data()[yo] * x.data()[xo];
    });
    auto run = [&](auto tag, double per_term) {
      using T = decltype(tag);
      {
        // With no gradient to follow the forward may take another path (Winograd: F(4x4, 3x3)).
        tv::NoGradGuard no_grad;
        auto y = tv::conv2d(cast<T>(x), cast<T>(w), Tensor<T>(), {stride, stride}, {ph, pw});
        CHECK(fixtures::worst_ratio(y, y_ref, per_term * KH * KW * C, 1e-4) <= 1);
      }
      auto xt = cast<T>(x).requires_grad_(), wt = cast<T>(w).requires_grad_();
      auto y = tv::conv2d(xt, wt, Tensor<T>(), {stride, stride}, {ph, pw});
      CHECK(fixtures::worst_ratio(y, y_ref, per_term * KH * KW * C, 1e-4) <= 1);
      y.backward(cast<T>(gy));
      CHECK(fixtures::worst_ratio(xt.grad(), gx_ref, per_term * KH * KW * Cout, 1e-4) <= 1);
      CHECK(fixtures::worst_ratio(wt.grad(), gw_ref, per_term * N * OH * OW, 1e-4) <= 1);
    };
    run(double{}, 1e-13);
    for (auto isa : runnable_isas()) {
      const std::string isa_label = tv::cpu::isa_name(isa);
      CAPTURE(isa_label);
      tv::cpu::ScopedIsa scoped(isa);
      run(float{}, 1e-6);
    }
  }
};
}  // namespace

TEST_CASE("conv2d: Winograd equals the direct sum, forward (both variants) and both gradients, in one chunk and in several") {
  struct Case {
    const char* name;
    int64_t N, C, H, W, Cout, ph, pw;
  };
  const Case cases[] = {{"two 200 x 180 maps: several chunks", 2, 16, 200, 180, 16, 1, 1},
                        {"two 200 x 199 maps: the weight gradient in groups of chunks", 2, 16, 200, 199, 16, 1, 1},
                        {"odd sizes, micro-kernel rows", 3, 24, 7, 9, 32, 1, 0},
                        {"padding 2, 17 outputs", 2, 16, 5, 5, 17, 2, 2}};
  for (const auto& c : cases) {
    SUBCASE(c.name) {
      const NaiveConv nc{c.N, c.C, c.H, c.W, c.Cout, 3, 3, c.ph, c.pw, c.H + 2 * c.ph - 2, c.W + 2 * c.pw - 2};
      const tv::cpu::ConvGeometry g{c.N, c.C, c.H, c.W, c.Cout, 3, 3, 1, 1, c.ph, c.pw, 1, 1, 1, nc.OH, nc.OW};
      REQUIRE(tv::cpu::choose_conv_algorithm(g) == tv::cpu::ConvAlgorithm::Winograd3x3);
      namespace wg = tv::cpu::winograd;
      const bool groups_case = c.H == 200 && c.W == 199;
      if (c.H == 200 && c.W == 180) {  // several chunks in each pass (the weight gradient's one chunk goes to 32 MB)
        const auto f2 = wg::TileLayout::of<wg::F2x2>(c.N, c.C, c.Cout, nc.OH, nc.OW, 48);
        const auto f4 = wg::TileLayout::of<wg::F4x4>(c.N, c.C, c.Cout, nc.OH, nc.OW, 48);
        const auto wl = wg::weight_grad_layout(c.N, c.C, c.Cout, nc.OH, nc.OW);
        CHECK(f2.chunk_rows < f2.rows);
        CHECK(f4.chunk_rows < f4.rows);
        CHECK(wl.chunk_rows < wl.rows);
      }
      // backward_weight's two ways: chunk by chunk (the 200 x 180 maps above) and in groups of chunks (the 200 x 199
      // maps), whose sums come out the same, bit for bit, on any thread count.
      CHECK((wg::weight_grad_groups(wg::weight_grad_layout(c.N, c.C, c.Cout, nc.OH, nc.OW), c.C, c.Cout) > 0) == groups_case);
      if (groups_case) {
        tv::Generator gen(3);
        const auto x = tv::normal<float>({c.N, c.C, c.H, c.W}, 0, 1, gen);
        const auto gy = tv::normal<float>({c.N, c.Cout, nc.OH, nc.OW}, 0, 1, gen);
        std::vector<std::vector<float>> gw;
        for (int t : {1, 2, 3}) {
          const tv::ScopedNumThreads threads(t);
          gw.emplace_back(static_cast<size_t>(c.Cout * c.C * 9));
          wg::backward_weight(x.data(), c.N, c.C, c.H, c.W, c.ph, c.pw, gy.data(), c.Cout, gw.back().data());
        }
        CHECK(gw[0] == gw[1]);
        CHECK(gw[0] == gw[2]);
      }
      nc.check(7);
    }
  }
}

TEST_CASE("conv2d: Winograd's rounding in float on ResNet's 3x3 shapes, F(4x4, 3x3) in inference and F(2x2, 3x3) in training") {
  // The largest error against the double result, over the output's rms, for unit inputs and He-scaled weights.
  // Measured (2026-12-05, each ISA): F(4x4, 3x3) 1.5-3.3e-5, F(2x2, 3x3) 1.8-5.7e-6.
  struct Case {
    int64_t C, H;
  };
  for (auto isa : runnable_isas()) {
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    tv::cpu::ScopedIsa scoped(isa);
    for (const Case c : {Case{64, 56}, Case{128, 28}, Case{256, 14}, Case{512, 7}}) {
      CAPTURE(c.C);
      tv::Generator gen(1);
      const auto x = tv::normal<double>({2, c.C, c.H, c.H}, 0, 1, gen);
      const auto w = tv::normal<double>({c.C, c.C, 3, 3}, 0, std::sqrt(2.0 / (9.0 * static_cast<double>(c.C))), gen);
      tv::Tensor<double> ref;
      tv::Tensor<float> inference, training;
      {
        tv::NoGradGuard no_grad;
        ref = tv::conv2d(x, w, Tensor<double>(), {1, 1}, {1, 1});
        inference = tv::conv2d(cast<float>(x), cast<float>(w), Tensor<float>(), {1, 1}, {1, 1});
      }
      training = tv::conv2d(cast<float>(x), cast<float>(w).requires_grad_(), Tensor<float>(), {1, 1}, {1, 1}).detach();
      const std::vector<double> r = ref.to_vector();
      const std::vector<float> a = inference.to_vector(), b = training.to_vector();
      double rms = 0, worst_inference = 0, worst_training = 0;
      for (size_t i = 0; i < r.size(); ++i) {
        rms += r[i] * r[i];
        worst_inference = std::max(worst_inference, std::abs(a[i] - r[i]));
        worst_training = std::max(worst_training, std::abs(b[i] - r[i]));
      }
      rms = std::sqrt(rms / static_cast<double>(r.size()));
      CHECK(worst_inference / rms <= 1e-4);
      CHECK(worst_training / rms <= 2e-5);
      CHECK(worst_inference > worst_training);  // the two paths do differ: inference did take F(4x4, 3x3)
    }
  }
}

TEST_CASE("conv2d: the stem's output past 16 MB, written by streaming stores, equals each image's alone, bit for bit") {
  // Batch 6 at 224 x 224: 19 MB of output (kShiftedStreamBytes), panels along its rows of 112 (48 and 48, then the last
  // 16 columns of up to three rows of one image in one call: 112 rows an image, stacks of 3, 3, ..., 1); one image
  // (3.2 MB) goes through the grid's panels and the kernel's tile. The same sums either way, on each ISA. Each thread
  // pads the input rows its output rows read: 4 and 5 threads start their shares inside an image.
  tv::Generator gen(31);
  const auto x = tv::normal<float>({6, 3, 224, 224}, 0, 1, gen), w = tv::normal<float>({64, 3, 7, 7}, 0, 0.1, gen);
  const int threads_before = tv::get_num_threads();
  for (auto isa : runnable_isas()) {
    if (!tv::cpu::has_micro_kernels(isa)) continue;
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    tv::cpu::ScopedIsa scoped(isa);
    tv::NoGradGuard no_grad;
    std::vector<tv::Tensor<float>> alone;
    for (int64_t n = 0; n < 6; ++n) alone.push_back(tv::conv2d(x.narrow(0, n, 1).contiguous(), w, {}, {2, 2}, {3, 3}));
    for (int threads : {threads_before, 4, 5}) {
      CAPTURE(threads);
      const tv::ScopedNumThreads scoped_threads(threads);
      const auto y = tv::conv2d(x, w, {}, {2, 2}, {3, 3});
      bool same = true;
      for (int64_t n = 0; n < 6; ++n) {
        const auto part = y.narrow(0, n, 1).contiguous();
        same = same && std::equal(alone[n].data(), alone[n].data() + alone[n].numel(), part.data());
      }
      CHECK(same);
    }
  }
}

TEST_CASE("conv2d: stride-2 shifted GEMMs on the input's phases equal the direct sum, forward and both gradients") {
  struct Case {
    const char* name;
    int64_t N, C, H, W, Cout, K, pad;
  };
  // Odd and even sizes (a last phase column of padding only), the stem's 7x7 / pad 3, channel counts for the
  // micro-kernels (Cout multiple of 16: 48 = a partial 64-block) and for the plain path (Cout 6).
  const Case cases[] = {{"stem-like 7x7, pad 3", 2, 3, 40, 41, 48, 7, 3},
                        {"3x3 pad 1, 64 + 16 channels", 2, 5, 30, 30, 80, 3, 1},
                        {"3x3 pad 0, odd Cout", 1, 4, 23, 26, 6, 3, 0},
                        {"5x5 pad 2, several chunks", 3, 2, 64, 60, 16, 5, 2},
                        {"3x3 pad 1 on an even map (AVX-512: the input gradient by phases of gx)", 2, 16, 20, 24, 44, 3, 1}};
  for (const auto& c : cases) {
    SUBCASE(c.name) {
      const int64_t OH = (c.H + 2 * c.pad - c.K) / 2 + 1, OW = (c.W + 2 * c.pad - c.K) / 2 + 1;
      const NaiveConv nc{c.N, c.C, c.H, c.W, c.Cout, c.K, c.K, c.pad, c.pad, OH, OW, 2};
      const tv::cpu::ConvGeometry g{c.N, c.C, c.H, c.W, c.Cout, c.K, c.K, 2, 2, c.pad, c.pad, 1, 1, 1, OH, OW};
      REQUIRE(tv::cpu::choose_conv_algorithm(g) == tv::cpu::ConvAlgorithm::ShiftedGemm);
      if (c.C == 16) REQUIRE(tv::cpu::detail::input_gradient_by_phases(g, tv::cpu::Isa::Avx512));
      nc.check(11);
    }
  }
}

TEST_CASE("conv2d: the weight gradient skips the grid's extra columns, as an infinite input shows") {
  // 7x7 / 2, pad 3 on a 40-wide map: a 23-wide phase grid for 20 outputs. The extra grid columns read the
  // next row's first input columns at taps where no real output reads them; an infinite input there must
  // leave those taps' gradients finite, as the direct sum (and PyTorch) leaves them. 12 rows: the image's grid is
  // one chunk of the weight gradient (small maps); 40 rows: several.
  for (const int64_t H : {12, 40}) {
    CAPTURE(H);
    const int64_t OH = (H + 6 - 7) / 2 + 1;
    const NaiveConv nc{1, 2, H, 40, 16, 7, 7, 3, 3, OH, 20, 2};
    const tv::cpu::ConvGeometry g{1, 2, H, 40, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1, OH, 20};
    REQUIRE(tv::cpu::choose_conv_algorithm(g) == tv::cpu::ConvAlgorithm::ShiftedGemm);
    tv::Generator gen(3);
    auto x = tv::normal<double>({1, 2, H, 40}, 0, 1, gen), w = tv::normal<double>({16, 2, 7, 7}, 0, 1, gen);
    x.data()[5 * 40] = std::numeric_limits<double>::infinity();  // channel 0, row 5, column 0
    auto gw_ref = tv::zeros<double>(w.shape());
    nc.each([&](int64_t, int64_t xo, int64_t wo) { gw_ref.data()[wo] += x.data()[xo]; });  // gy = 1
    auto run = [&](auto tag) {
      using T = decltype(tag);
      auto wt = cast<T>(w).requires_grad_();
      auto y = tv::conv2d(cast<T>(x), wt, Tensor<T>(), {2, 2}, {3, 3});
      y.backward(tv::ones<T>(y.shape()));
      int64_t finite = 0, same = 0;
      for (int64_t i = 0; i < w.numel(); ++i) {
        finite += std::isfinite(gw_ref.data()[i]);
        same += std::isfinite(static_cast<double>(wt.grad().data()[i])) == std::isfinite(gw_ref.data()[i]);
      }
      CHECK(finite > w.numel() / 2);  // most taps never see the infinite pixel
      CHECK(same == w.numel());
    };
    run(double{});
    for (auto isa : runnable_isas()) {
      const std::string isa_label = tv::cpu::isa_name(isa);
      CAPTURE(isa_label);
      tv::cpu::ScopedIsa scoped(isa);
      run(float{});
    }
  }
}

TEST_CASE("conv2d: the three algorithms agree on the same convolution") {
  // A 3x3 stride-1 conv at 40 x 40 runs as shifted GEMMs; the same conv with dilation (1, 1) routed
  // through groups=1 im2col is checked by computing it as a sum of 1x1 convs on shifted views.
  tv::Generator gen(4);
  auto x = tv::normal<float>({2, 5, 40, 40}, 0, 1, gen), w = tv::normal<float>({6, 5, 3, 3}, 0, 1, gen);
  auto b = tv::normal<float>({6}, 0, 1, gen);
  auto y = tv::conv2d(x, w, b, {1, 1}, {1, 1});
  auto padded = tv::zeros<float>({2, 5, 42, 42});
  padded.narrow(2, 1, 40).narrow(3, 1, 40).copy_(x);
  auto ref = tv::zeros<float>({2, 6, 40, 40});
  for (int64_t ki = 0; ki < 3; ++ki)
    for (int64_t kj = 0; kj < 3; ++kj) {
      auto tap = w.narrow(2, ki, 1).narrow(3, kj, 1).contiguous();  // 6 x 5 x 1 x 1: the Gemm1x1 path
      ref = ref + tv::conv2d(padded.narrow(2, ki, 40).narrow(3, kj, 40).contiguous(), tap);
    }
  ref = ref + b.reshape({1, 6, 1, 1});
  CHECK(fixtures::worst_ratio(y, ref, 1e-4, 1e-4) <= 1);
  // and im2col: the same conv on a 7-wide map (im2col) equals its shifted-GEMM result on a copy
  // placed in a wider, zero-filled map.
  auto narrow_x = x.narrow(3, 0, 7).contiguous();
  auto y7 = tv::conv2d(narrow_x, w, b, {1, 1}, {1, 1});
  auto wide = tv::zeros<float>({2, 5, 40, 40});
  wide.narrow(3, 0, 7).copy_(narrow_x);
  auto y_wide = tv::conv2d(wide, w, b, {1, 1}, {1, 1}).narrow(3, 0, 6);
  CHECK(fixtures::worst_ratio(y7.narrow(3, 0, 6), y_wide, 1e-4, 1e-4) <= 1);
}

TEST_CASE("conv2d: a weight gradient summed in runs of work items (more runs than threads, groups) is each image's summed") {
  // conv2d_backward_weight sums its work items in fixed runs, each into a sum of its own, that the threads claim as
  // they come free; a group a run never reaches is skipped when the sums are added. The batch's gradient must be
  // the sum of the images' (each image alone has fewer items, so fewer runs).
  struct Case {
    const char* name;
    tv::ConvGeometry g;
  };
  const Case cases[] = {{"1x1, 2 groups", {8, 64, 56, 56, 32, 1, 1, 1, 1, 0, 0, 1, 1, 2, 56, 56}},
                        {"3x3 dilated, 2 groups (im2col)", {8, 32, 40, 40, 16, 3, 3, 1, 1, 2, 2, 2, 2, 2, 40, 40}},
                        {"1x1 stride 2", {8, 64, 57, 57, 32, 1, 1, 2, 2, 0, 0, 1, 1, 1, 29, 29}}};
  for (const auto& c : cases) {
    SUBCASE(c.name) {
      const tv::ConvGeometry& g = c.g;
      CHECK(tv::cpu::choose_conv_algorithm(g) != tv::cpu::ConvAlgorithm::Winograd3x3);
      CHECK(tv::cpu::detail::blocks_for(g, sizeof(double)).items(g) >= 8);  // runs: a multiple of the threads, up to 16
      auto x = randn({g.N, g.C, g.H, g.W}, 41), gy = randn({g.N, g.Cout, g.OH, g.OW}, 42);
      const int64_t wsize = g.Cout * g.K();
      std::vector<double> batch(wsize), summed(wsize, 0.0), one(wsize);
      tv::cpu::conv2d_backward_weight<double>(g, x.data(), gy.data(), batch.data());
      tv::ConvGeometry single = g;
      single.N = 1;
      for (int64_t n = 0; n < g.N; ++n) {
        tv::cpu::conv2d_backward_weight<double>(single, x.data() + n * g.C * g.HW(), gy.data() + n * g.Cout * g.OH * g.OW,
                                                one.data());
        for (int64_t i = 0; i < wsize; ++i) summed[i] += one[i];
      }
      double worst = 0;
      for (int64_t i = 0; i < wsize; ++i) worst = std::max(worst, std::abs(batch[i] - summed[i]) / (1e-10 + 1e-12 * std::abs(summed[i])));
      CHECK(worst <= 1);
    }
  }
}

TEST_CASE("conv2d matches PyTorch") {
  fixtures::Fixture f("nn_conv.txt");
  struct Case {
    std::string name;
    tv::Pair stride, padding, dilation;
    int64_t groups;
  };
  const Case cases[] = {{"stem", {2, 2}, {3, 3}, {1, 1}, 1},
                        {"pw", {1, 1}, {0, 0}, {1, 1}, 1},
                        {"3x3", {1, 1}, {1, 1}, {1, 1}, 1},
                        {"strided_dilated_groups", {2, 1}, {1, 2}, {2, 1}, 2},
                        {"winograd", {1, 1}, {1, 1}, {1, 1}, 1},
                        {"winograd_uneven", {1, 1}, {0, 2}, {1, 1}, 1}};
  for (const auto& c : cases) {
    SUBCASE(c.name.c_str()) {
      const bool has_bias = f.has(c.name + ".b");
      auto run = [&](auto tag, double atol, double rtol) {
        using T = decltype(tag);
        auto x = f.get<T>(c.name + ".x").requires_grad_();
        auto w = f.get<T>(c.name + ".w").requires_grad_();
        auto b = has_bias ? f.get<T>(c.name + ".b").requires_grad_() : Tensor<T>();
        auto y = tv::conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
        CHECK(fixtures::worst_ratio(y, f.get(c.name + ".y"), atol, rtol) <= 1);
        auto g = grads_of(y, f.get<T>(c.name + ".gy"), has_bias ? std::vector<Tensor<T>>{x, w, b} : std::vector<Tensor<T>>{x, w});
        CHECK(fixtures::worst_ratio(g[0], f.get(c.name + ".gx"), atol, rtol) <= 1);
        CHECK(fixtures::worst_ratio(g[1], f.get(c.name + ".gw"), atol, rtol) <= 1);
        if (has_bias) CHECK(fixtures::worst_ratio(g[2], f.get(c.name + ".gb"), atol, rtol) <= 1);
      };
      run(double{}, kAtolD, kRtolD);
      run(float{}, kAtolF, kRtolF);
    }
  }
}

TEST_CASE("conv2d in float agrees with double on every path and every kernel ISA") {
  // Double always runs through BLAS; float convs with a multiple of 8 output channels run the micro-kernels
  // (AVX-512 or AVX2, chosen at run time) or, with Isa::Generic, BLAS. Forward and both gradients.
  struct Case {
    const char* name;
    Shape x, w;
    tv::Pair stride, padding;
  };
  const Case cases[] = {{"3x3 pad 1 (Winograd)", {2, 16, 12, 40}, {16, 16, 3, 3}, {1, 1}, {1, 1}},
                        {"5x5 pad 2", {1, 8, 9, 33}, {8, 8, 5, 5}, {1, 1}, {2, 2}},
                        {"1x3 pad (0, 1), odd channels", {2, 5, 6, 50}, {24, 5, 1, 3}, {1, 1}, {0, 1}},
                        {"3x3 no padding", {1, 16, 10, 45}, {8, 16, 3, 3}, {1, 1}, {0, 0}},
                        {"7x7 stride 2 (the stem's shifted phases)", {1, 3, 40, 40}, {16, 3, 7, 7}, {2, 2}, {3, 3}},
                        {"3x3 stride 2", {2, 16, 56, 56}, {32, 16, 3, 3}, {2, 2}, {1, 1}},
                        {"1x1 (one GEMM over the batch)", {2, 24, 19, 21}, {40, 24, 1, 1}, {1, 1}, {0, 0}},
                        {"1x1 on 7x7 maps (panels across images)", {4, 64, 7, 7}, {72, 64, 1, 1}, {1, 1}, {0, 0}},
                        {"1x1 stride 2 (pixels gathered, then one GEMM)", {2, 16, 14, 14}, {32, 16, 1, 1}, {2, 2}, {0, 0}},
                        {"1x1 stride 2 onto 8x8 (weight gradient over every image's pixels)", {3, 24, 15, 15}, {16, 24, 1, 1}, {2, 2}, {0, 0}},
                        {"1x1 stride 2 onto 9x9 (weight gradient over its pixels gathered once)", {2, 16, 17, 17}, {24, 16, 1, 1}, {2, 2}, {0, 0}},
                        {"1x1 stride (2, 1) onto 10x10 (the same)", {2, 8, 20, 10}, {16, 8, 1, 1}, {2, 1}, {0, 0}},
                        {"3x3 stride 2 on 7x7 (unrolled)", {3, 16, 7, 7}, {24, 16, 3, 3}, {2, 2}, {1, 1}},
                        {"3x3 stride 2, weights past L2 (AVX-512: the batch unrolled, one GEMM; AVX2: K in slices, panels "
                         "across two images' grids, the output channels in one share per thread)", {3, 256, 20, 20},
                         {128, 256, 3, 3}, {2, 2}, {1, 1}}};
  const auto isas = runnable_isas();
  for (const auto& c : cases) {
    SUBCASE(c.name) {
      auto xd = randn(c.x, 31), wd = randn(c.w, 32, 0.2), bd = randn({c.w[0]}, 33);
      auto cast = [](const Tensor<double>& t) {
        auto f = Tensor<float>::empty(t.shape());
        for (int64_t i = 0; i < t.numel(); ++i) f.data()[i] = static_cast<float>(t.data()[i]);
        return f.requires_grad_();
      };
      auto yd = tv::conv2d(xd, wd, bd, c.stride, c.padding);
      auto gy = randn(yd.shape(), 34);
      auto gd = grads_of(yd, gy, {xd, wd, bd});
      for (auto isa : isas) {
        const std::string isa_label = tv::cpu::isa_name(isa);
        CAPTURE(isa_label);
        tv::cpu::ScopedIsa scoped(isa);
        auto xf = cast(xd), wf = cast(wd), bf = cast(bd);
        auto yf = tv::conv2d(xf, wf, bf, c.stride, c.padding);
        CHECK(fixtures::worst_ratio(yf, yd, 1e-4, 1e-4) <= 1);
        auto gf = grads_of(yf, cast(gy).detach(), {xf, wf, bf});
        for (size_t i = 0; i < 3; ++i) CHECK(fixtures::worst_ratio(gf[i], gd[i], 1e-3, 1e-4) <= 1);
      }
    }
  }
}

TEST_CASE("cpu ISA: chosen from the CPU's features, lowered on request, never raised past them") {
  using tv::cpu::Isa;
  tv::cpu::CpuFeatures none, avx2, avx512;
  avx2.avx2 = avx2.fma = true;
  avx512 = avx2;
  avx512.avx512f = avx512.avx512vl = true;
  CHECK(tv::cpu::best_isa(none) == Isa::Generic);
  CHECK(tv::cpu::isa_supported(Isa::Generic, none));
#ifdef TINYVID_X86_KERNELS
  CHECK(tv::cpu::best_isa(avx2) == Isa::Avx2);
  CHECK(tv::cpu::best_isa(avx512) == Isa::Avx512);
#endif
  CHECK_FALSE(tv::cpu::isa_supported(Isa::Avx512, avx2));
  auto avx2_no_fma = avx2;
  avx2_no_fma.fma = false;
  CHECK(tv::cpu::best_isa(avx2_no_fma) == Isa::Generic);  // the kernels need FMA
  CHECK(tv::cpu::parse_isa("avx2", "TINYVID_ISA") == Isa::Avx2);
  CHECK_THROWS_WITH_AS(tv::cpu::parse_isa("sse4", "TINYVID_ISA"),
                       doctest::Contains("TINYVID_ISA: expected generic, avx2 or avx512, got 'sse4'"), tv::Error);
  MESSAGE("kernel ISAs tested (each float conv test runs on every one): ", runnable_isas().size() - 1, " of 2, the widest ",
          std::string(tv::cpu::isa_name(runnable_isas().back())), "; this CPU's best ",
          std::string(tv::cpu::isa_name(tv::cpu::cpu_isa())));
  if (const char* env = std::getenv("TINYVID_ISA"); env && *env)  // the environment's choice is the one in use
    CHECK(tv::cpu::active_isa() == tv::cpu::parse_isa(env, "TINYVID_ISA"));
  const Isa before = tv::cpu::active_isa();
  {
    tv::cpu::ScopedIsa generic(Isa::Generic);
    CHECK(tv::cpu::active_isa() == Isa::Generic);
  }
  CHECK(tv::cpu::active_isa() == before);
  if (tv::cpu::cpu_isa() != Isa::Avx512)
    CHECK_THROWS_WITH_AS(tv::cpu::set_isa(Isa::Avx512), doctest::Contains("this CPU supports at most"), tv::Error);
}

TEST_CASE("micro-kernels: each ISA's 8x48 kernel, 16x16 transpose and broadcast kernel agree with plain loops") {
  using tv::cpu::kMicroCols;
  using tv::cpu::kMicroRows;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& e : v) e = uniform(rng);
    return v;
  };
  for (auto isa : runnable_isas()) {
    if (!tv::cpu::has_micro_kernels(isa)) continue;
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    // 8 x 48 over taps read in place: C = 300 spans the AVX2 body's chunks of 128; C = 0 is an empty sum. A
    // narrower width (a GEMM's last column panel) must be right in its first width columns.
    const int64_t taps = 3, plane = 61, ldc = 53, offsets[taps] = {0, 7, 200};
    for (int64_t C : {0, 5, 130, 300})
      for (bool accumulate : {false, true})
        for (int64_t width : {kMicroCols, int64_t(40), int64_t(16), int64_t(5)}) {
          CAPTURE(C);
          CAPTURE(accumulate);
          CAPTURE(width);
          // The columns the ISA's vectors cover: width rounded up to 16 (AVX-512) or 24 (AVX2's sub-tiles).
          const int64_t vec = isa == tv::cpu::Isa::Avx512 ? 16 : 24, covered = (width + vec - 1) / vec * vec;
          const auto ap = random(static_cast<size_t>(taps * C * kMicroRows));
          const auto base = random(static_cast<size_t>(200 + C * plane + kMicroCols));
          auto cm = random(static_cast<size_t>(kMicroRows * ldc));
          const auto before = cm;
          if (!accumulate)
            for (int64_t i = 0; i < kMicroRows; ++i) std::fill_n(cm.begin() + i * ldc, covered, NAN);  // never read
          tv::cpu::micro_kernel_8x48_taps(isa, taps, C, offsets, plane, ap.data(), base.data(), cm.data(), ldc, accumulate,
                                          width);
          double worst = 0;
          for (int64_t i = 0; i < kMicroRows; ++i) {
            for (int64_t j = 0; j < width; ++j) {
              double ref = accumulate ? before[i * ldc + j] : 0.0, scale = 1;
              for (int64_t t = 0; t < taps; ++t)
                for (int64_t ch = 0; ch < C; ++ch) {
                  const double term = double(ap[(t * C + ch) * kMicroRows + i]) * base[offsets[t] + ch * plane + j];
                  ref += term;
                  scale += std::abs(term);
                }
              worst = std::max(worst, std::abs(cm[i * ldc + j] - ref) / (1e-6 * scale));
            }
            for (int64_t j = covered; j < ldc; ++j) CHECK(cm[i * ldc + j] == before[i * ldc + j]);  // untouched
          }
          CHECK(worst <= 1);
        }
    // With copy_b (one tap, full width, the next rows asked for ahead), the same sums bit for bit and B's rows
    // packed: copy[k][48] = row k.
    for (int64_t C : {5, 300})
      for (bool accumulate : {false, true}) {
        CAPTURE(C);
        CAPTURE(accumulate);
        const auto ap = random(static_cast<size_t>(C * kMicroRows));
        const auto base = random(static_cast<size_t>(C * plane + 2 * kMicroCols));
        const auto cm = random(static_cast<size_t>(kMicroRows * ldc));
        auto plain = cm, copying = cm;
        std::vector<float> copy(static_cast<size_t>(C * kMicroCols), NAN);
        const int64_t no_offset = 0;
        tv::cpu::micro_kernel_8x48_taps(isa, 1, C, &no_offset, plane, ap.data(), base.data(), plain.data(), ldc, accumulate);
        tv::cpu::micro_kernel_8x48_taps(isa, 1, C, &no_offset, plane, ap.data(), base.data(), copying.data(), ldc, accumulate,
                                        kMicroCols, true, copy.data());
        CHECK(copying == plain);
        bool packed = true;
        for (int64_t k = 0; k < C; ++k)
          for (int64_t j = 0; j < kMicroCols; ++j) packed = packed && copy[k * kMicroCols + j] == base[k * plane + j];
        CHECK(packed);
      }
    // The transpose is exact.
    const int64_t lds = 19, ldd = 21;
    const auto src = random(16 * lds);
    std::vector<float> dst(16 * ldd, -7.0f);
    tv::cpu::transpose_16x16(isa, src.data(), lds, dst.data(), ldd);
    bool exact = true;
    for (int64_t i = 0; i < 16; ++i)
      for (int64_t j = 0; j < 16; ++j) exact = exact && dst[i * ldd + j] == src[j * lds + i];
    CHECK(exact);
    // Broadcast: every row count and width, rows of B in place (41 apart), Ap packed [k][width].
    const int64_t K = 37, ldb = 41, ldo = 70;
    const auto bdata = random(static_cast<size_t>(tv::cpu::kBroadcastRows * ldb));
    for (int64_t rows = 1; rows <= tv::cpu::kBroadcastRows; ++rows)
      for (int64_t width : {16, 32, 48, 64}) {
        CAPTURE(rows);
        CAPTURE(width);
        const float* b[tv::cpu::kBroadcastRows];
        for (int64_t r = 0; r < rows; ++r) b[r] = bdata.data() + r * ldb;
        const auto ap = random(static_cast<size_t>(K * width));
        auto cm = random(static_cast<size_t>(rows * ldo));
        const auto before = cm;
        tv::cpu::micro_kernel_broadcast(isa, rows, width, K, b, ap.data(), cm.data(), ldo);
        double worst = 0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < width; ++j) {
            double ref = before[r * ldo + j], scale = 1;
            for (int64_t k = 0; k < K; ++k) {
              const double term = double(b[r][k]) * ap[k * width + j];
              ref += term;
              scale += std::abs(term);
            }
            worst = std::max(worst, std::abs(cm[r * ldo + j] - ref) / (1e-6 * scale));
          }
          for (int64_t j = width; j < ldo; ++j) CHECK(cm[r * ldo + j] == before[r * ldo + j]);
        }
        CHECK(worst <= 1);
      }
  }
}

namespace {
// U[xi] = G g G^T for every kernel, in the GEMM's rows and in the micro-kernel's panels, against the product in double:
// of w's kernels, and of its input gradient's, read from w in place (channel axes swapped, each kernel turned around);
// whole panels of 8 kernels gathered by 8 x 8 transposes (AVX2 and AVX-512), partial ones tap by tap.
template <class F>
void check_weight_transform(tv::cpu::Isa isa) {
  namespace wg = tv::cpu::winograd;
  const int64_t C = 10, Cout = 20;
  tv::Generator gen(5);
  const auto w = tv::normal<float>({Cout, C, 3, 3}, 0, 1, gen);
  // kernels: K x Cin of them; tap(k, c, a, b): kernel (k, c)'s tap (a, b) as w holds it.
  auto check = [&](const wg::Kernels3x3<float>& kernels, int64_t K, int64_t Cin, auto tap) {
    const int64_t padded = (K + 7) / 8 * 8, xs = wg::xi_stride(K * Cin), xp = wg::xi_stride(padded * Cin);
    std::vector<float> rows(static_cast<size_t>(F::taps * xs), 0.0f), panels(static_cast<size_t>(F::taps * xp), 0.0f);
    wg::transform_weight_rows<F>(isa, kernels, Cin, 0, K, false, rows.data(), xs);
    wg::transform_weight_rows<F>(isa, kernels, Cin, 0, K, true, panels.data(), xp);
    double worst = 0;
    for (int64_t k = 0; k < padded; ++k)
      for (int64_t c = 0; c < Cin; ++c)
        for (int64_t r = 0; r < F::patch; ++r)
          for (int64_t s = 0; s < F::patch; ++s) {
            double ref = 0;
            for (int a = 0; a < 3; ++a)
              for (int b = 0; b < 3; ++b)
                if (k < K) ref += F::G[r][a] * double(tap(k, c, a, b)) * F::G[s][b];
            const int64_t xi = r * F::patch + s;
            const double packed = panels[xi * xp + (k / 8) * 8 * Cin + c * 8 + k % 8];  // kernels past K: zeros
            worst = std::max(worst, std::abs(packed - ref) / (1e-6 * (1 + std::abs(ref))));
            if (k < K) worst = std::max(worst, std::abs(double(rows[xi * xs + k * Cin + c]) - ref) / (1e-6 * (1 + std::abs(ref))));
          }
    CHECK(worst <= 1);
  };
  // 20 kernels: two full panels and a partial one, which the packed layout pads to 24 with zeros.
  check(wg::Kernels3x3<float>::of(w.data(), C), Cout, C,
        [&](int64_t k, int64_t c, int a, int b) { return w.data()[(k * C + c) * 9 + a * 3 + b]; });
  // The input gradient's: 10 x 20 kernels (a full panel and a partial one), kernel (c, k) w's (k, c) turned around.
  check(wg::Kernels3x3<float>::input_gradient_of(w.data(), C), C, Cout,
        [&](int64_t c, int64_t k, int a, int b) { return w.data()[(k * C + c) * 9 + (2 - a) * 3 + (2 - b)]; });
}
}  // namespace

TEST_CASE("Winograd's weight transform: G g G^T in the GEMM's rows and in packed panels, in both variants, of a conv's kernels and of its input gradient's") {
  for (auto isa : runnable_isas()) {
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    check_weight_transform<tv::cpu::winograd::F2x2>(isa);
    check_weight_transform<tv::cpu::winograd::F4x4>(isa);
  }
}

TEST_CASE("packed GEMM: the same bits on 1, 2 and 3 threads") {
  // 270 x 100: two M blocks (the second with a short row panel) of 3 column panels (the last short); on 3 threads
  // one run crosses the blocks and one ends inside a block.
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const int64_t M = 270, N = 100, K = 300;
  std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N));
  for (auto& v : A) v = uniform(rng);
  for (auto& v : B) v = uniform(rng);
  for (auto isa : runnable_isas()) {
    if (!tv::cpu::has_micro_kernels(isa)) continue;
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      const tv::ScopedNumThreads scoped_threads(threads);
      std::vector<float> Cm(static_cast<size_t>(M * N), 0.5f);
      tv::cpu::gemm_packed(isa, {A.data(), M, K, K, 1}, {B.data(), K, N, N, 1}, {Cm.data(), M, N, N, 1}, 1.0f);
      results.push_back(Cm);
    }
    CHECK(results[0] == results[1]);
    CHECK(results[0] == results[2]);
  }
}

TEST_CASE("scratch buffers are 64-byte aligned in every slot and size (a 16-byte start split every vector load)") {
  for (int slot = 0; slot < tv::cpu::kScratchSlots; ++slot)
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(1) << 18}) {  // 1 MB: past malloc's mmap threshold
      CAPTURE(slot);
      CAPTURE(n);
      CHECK(reinterpret_cast<uintptr_t>(tv::cpu::scratch<float>(n, slot)) % 64 == 0);
      CHECK(reinterpret_cast<uintptr_t>(tv::cpu::scratch<double>(n, slot)) % 64 == 0);
    }
  tv::cpu::AlignedVector<float> v(12345);
  CHECK(reinterpret_cast<uintptr_t>(v.data()) % 64 == 0);
}

TEST_CASE("packed GEMM: every layout, tail and beta, on each ISA, against a double reference") {
  // Sizes around the 8 x 48 tile, the K slice of 256 and the M block of 256 rows (270: a second block and a tail
  // row panel; 520 x 100: three blocks of 3 column panels, so that one thread's run of work items crosses a block);
  // last column panels of 47, 32 and 4 columns (the narrower kernels); operands row- or column-major with leading
  // dimensions wider than the matrix; beta 0 must not read C (filled with NaN), 1 adds, 0.5 scales first.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (auto isa : runnable_isas()) {
    if (!tv::cpu::has_micro_kernels(isa)) continue;
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    for (int64_t M : {1, 9, 270, 520})
      for (int64_t N : {1, 47, 48, 80, 100})
        for (int64_t K : {0, 1, 129, 257})
          for (int layout = 0; layout < 4; ++layout)
            for (float beta : {0.0f, 1.0f, 0.5f}) {
              const bool a_col = layout & 1, b_col = layout & 2;
              CAPTURE(M);
              CAPTURE(N);
              CAPTURE(K);
              CAPTURE(layout);
              CAPTURE(beta);
              const int64_t lda = (a_col ? M : K) + 3, ldb = (b_col ? K : N) + 5, ldc = N + 2;
              std::vector<float> A(static_cast<size_t>((a_col ? K : M) * lda + 1)),
                  B(static_cast<size_t>((b_col ? N : K) * ldb + 1)), Cm(static_cast<size_t>(M * ldc));
              for (auto& v : A) v = uniform(rng);
              for (auto& v : B) v = uniform(rng);
              for (auto& v : Cm) v = uniform(rng);
              const auto before = Cm;
              if (beta == 0.0f)
                for (int64_t i = 0; i < M; ++i) std::fill_n(Cm.begin() + i * ldc, N, NAN);
              const tv::cpu::MatrixRef<const float> a{A.data(), M, K, a_col ? 1 : lda, a_col ? lda : 1};
              const tv::cpu::MatrixRef<const float> b{B.data(), K, N, b_col ? 1 : ldb, b_col ? ldb : 1};
              tv::cpu::gemm_packed(isa, a, b, {Cm.data(), M, N, ldc, 1}, beta);
              double worst = 0;
              bool untouched = true;
              for (int64_t i = 0; i < M; ++i) {
                for (int64_t j = 0; j < N; ++j) {
                  double ref = beta == 0.0f ? 0.0 : double(beta) * before[i * ldc + j], scale = 1;
                  for (int64_t k = 0; k < K; ++k) {
                    const double term = double(a.data[i * a.row_stride + k * a.col_stride]) * b.data[k * b.row_stride + j * b.col_stride];
                    ref += term;
                    scale += std::abs(term);
                  }
                  worst = std::max(worst, std::abs(Cm[i * ldc + j] - ref) / (1e-6 * scale));
                }
                for (int64_t j = N; j < ldc; ++j) untouched = untouched && Cm[i * ldc + j] == before[i * ldc + j];
              }
              CHECK(worst <= 1);
              CHECK(untouched);
            }
  }
}

TEST_CASE("packed GEMM: A read in place (rows or columns apart) gives the packed A's bits, kernel and product") {
  // The kernel entry on every ISA (AVX2 packs an in-place A itself), then whole products on the ISAs of tinyvid's
  // GEMM: M a multiple of 8 with a second block (264), K past one slice (300), N up to kInPlaceAColumns, beta 0 and 1.
  std::mt19937 rng(14);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (auto isa : runnable_isas()) {
    if (!tv::cpu::has_micro_kernels(isa)) continue;
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    const int64_t K = 37, lda = 45;
    std::vector<float> rows(static_cast<size_t>(8 * lda)), cols(static_cast<size_t>(K * lda)), packed(static_cast<size_t>(K * 8)),
        B(static_cast<size_t>(K * 48));
    for (auto& v : rows) v = uniform(rng);
    for (auto& v : B) v = uniform(rng);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < 8; ++i) packed[k * 8 + i] = cols[k * lda + i] = rows[i * lda + k];
    const int64_t no_offset = 0;
    for (int64_t width : {16, 48}) {
      std::vector<float> want(8 * 48, 0.0f), got_rows(8 * 48, 0.0f), got_cols(8 * 48, 0.0f);
      tv::cpu::micro_kernel_8x48_taps(isa, 1, K, &no_offset, 48, packed.data(), B.data(), want.data(), 48, false, width);
      tv::cpu::micro_kernel_8x48_taps(isa, 1, K, &no_offset, 48, rows.data(), B.data(), got_rows.data(), 48, false, width,
                                      false, nullptr, tv::cpu::ALayout::Rows, lda);
      tv::cpu::micro_kernel_8x48_taps(isa, 1, K, &no_offset, 48, cols.data(), B.data(), got_cols.data(), 48, false, width,
                                      false, nullptr, tv::cpu::ALayout::Columns, lda);
      CAPTURE(width);
      CHECK(got_rows == want);
      CHECK(got_cols == want);
    }
    if (!tv::cpu::use_own_gemm(isa)) continue;
    for (int64_t M : {16, 264})
      for (int64_t N : {int64_t(47), int64_t(100), tv::cpu::kInPlaceAColumns})
        for (int64_t Kp : {1, 129, 300})
          for (bool a_col : {false, true})
            for (float beta : {0.0f, 1.0f}) {
              CAPTURE(M);
              CAPTURE(N);
              CAPTURE(Kp);
              CAPTURE(a_col);
              CAPTURE(beta);
              const int64_t ld = (a_col ? M : Kp) + 3;
              std::vector<float> A(static_cast<size_t>((a_col ? Kp : M) * ld)), Bm(static_cast<size_t>(Kp * N)),
                  C0(static_cast<size_t>(M * N));
              for (auto& v : A) v = uniform(rng);
              for (auto& v : Bm) v = uniform(rng);
              for (auto& v : C0) v = uniform(rng);
              const tv::cpu::MatrixRef<const float> a{A.data(), M, Kp, a_col ? 1 : ld, a_col ? ld : 1};
              const auto in_place = tv::cpu::in_place_a(isa, a);
              REQUIRE(in_place.has_value());
              if (Kp > 1)  // (one column reads the same either way)
                CHECK(in_place->layout == (a_col ? tv::cpu::ALayout::Columns : tv::cpu::ALayout::Rows));
              std::vector<float> pa(static_cast<size_t>(tv::cpu::packed_a_size(M, Kp)));
              auto want = C0, got = C0;
              tv::cpu::gemm_packed(isa, tv::cpu::pack_a(isa, a, pa.data()), {Bm.data(), Kp, N, N, 1}, {want.data(), M, N, N, 1}, beta);
              tv::cpu::gemm_packed(isa, *in_place, {Bm.data(), Kp, N, N, 1}, {got.data(), M, N, N, 1}, beta);
              CHECK(got == want);
            }
  }
}

TEST_CASE("packed GEMM over column runs (a batch of images side by side): each element summed and finished once") {
  // Runs of 1, 7, 49 (a 7 x 7 map: panels cross runs), 48 (panels fit runs exactly) and 100 columns, 1-5 runs; B
  // row- or column-major, runs apart by more than a run; M = 270 (two blocks, a short row panel), K past one slice.
  // finish sees every element of C once, with its complete sum, and what it writes stays.
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (auto isa : runnable_isas()) {
    if (!tv::cpu::use_own_gemm(isa)) continue;
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    for (int64_t len : {1, 7, 48, 49, 100})
      for (int64_t count : {1, 3, 5})
        for (int64_t M : {9, 270})
          for (int64_t K : {0, 5, 300})
            for (bool b_col : {false, true})
              for (float beta : {0.0f, 1.0f}) {
                CAPTURE(len);
                CAPTURE(count);
                CAPTURE(M);
                CAPTURE(K);
                CAPTURE(b_col);
                CAPTURE(beta);
                const int64_t N = len * count;
                // B's run r: K x len at B + r * b_stride, rows ldb apart (row-major) or columns ldb apart.
                const int64_t ldb = (b_col ? K : len) + 3, b_stride = (b_col ? len : K) * ldb + 11;
                const int64_t ldc = len + 2, c_stride = M * ldc + 5;
                std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(count * b_stride)),
                    Cm(static_cast<size_t>(count * c_stride));
                for (auto& v : A) v = uniform(rng);
                for (auto& v : B) v = uniform(rng);
                for (auto& v : Cm) v = uniform(rng);
                const auto before = Cm;
                auto b_at = [&](int64_t k, int64_t j) {
                  const int64_t r = j / len, q = j % len;
                  return B[r * b_stride + (b_col ? q * ldb + k : k * ldb + q)];
                };
                auto c_index = [&](int64_t i, int64_t j) { return (j / len) * c_stride + i * ldc + j % len; };
                std::vector<float> packed(static_cast<size_t>(tv::cpu::packed_a_size(M, K)));
                const auto pa = tv::cpu::pack_a(isa, {A.data(), M, K, K, 1}, packed.data());
                std::vector<int> finished(static_cast<size_t>(M * N), 0);
                std::vector<float> seen(static_cast<size_t>(M * N), NAN);
                bool in_place = true;
                tv::cpu::gemm_packed(isa, pa, {B.data(), K, N, b_col ? 1 : ldb, b_col ? ldb : 1}, {Cm.data(), M, N, ldc, 1},
                                     beta, {len, b_stride, c_stride},
                                     [&](float* row, int64_t i, int64_t run, int64_t at, int64_t n) {
                                       in_place = in_place && row == Cm.data() + run * c_stride + i * ldc + at;
                                       for (int64_t q = 0; q < n; ++q) {
                                         finished[i * N + run * len + at + q] += 1;
                                         seen[i * N + run * len + at + q] = row[q];
                                         row[q] = 2 * row[q] + 1;
                                       }
                                     });
                CHECK(in_place);
                double worst = 0;
                bool once = true, final_is_finished = true;
                for (int64_t i = 0; i < M; ++i)
                  for (int64_t j = 0; j < N; ++j) {
                    double ref = beta == 0.0f ? 0.0 : double(before[c_index(i, j)]), scale = 1;
                    for (int64_t k = 0; k < K; ++k) {
                      const double term = double(A[i * K + k]) * b_at(k, j);
                      ref += term;
                      scale += std::abs(term);
                    }
                    worst = std::max(worst, std::abs(seen[i * N + j] - ref) / (1e-6 * scale));
                    once = once && finished[i * N + j] == 1;
                    final_is_finished = final_is_finished && Cm[c_index(i, j)] == 2 * seen[i * N + j] + 1;
                  }
                CHECK(worst <= 1);
                CHECK(once);
                CHECK(final_is_finished);
                bool gaps_untouched = true;  // the columns past each run's and the space between runs
                for (int64_t r = 0; r < count; ++r)
                  for (int64_t i = 0; i < M; ++i)
                    for (int64_t q = len; q < ldc; ++q)
                      gaps_untouched = gaps_untouched && Cm[r * c_stride + i * ldc + q] == before[r * c_stride + i * ldc + q];
                CHECK(gaps_untouched);
              }
  }
}

TEST_CASE("conv2d_inference: the fused conv equals conv2d, batch norm, add and relu bit for bit, on every path and ISA; "
          "a residual handed over is added in place") {
  struct Case {
    const char* name;
    Shape x, w;
    tv::Pair stride, padding, dilation = {1, 1};
    int64_t groups = 1;
  };
  const Case cases[] = {{"1x1", {2, 24, 19, 21}, {40, 24, 1, 1}, {1, 1}, {0, 0}},
                        {"1x1 on 7x7 maps", {4, 32, 7, 7}, {48, 32, 1, 1}, {1, 1}, {0, 0}},
                        {"1x1 stride 2", {2, 16, 14, 14}, {32, 16, 1, 1}, {2, 2}, {0, 0}},
                        {"3x3 stride 2, weights past L2", {2, 256, 9, 9}, {128, 256, 3, 3}, {2, 2}, {1, 1}},
                        {"1x1, no input channels (K = 0)", {2, 0, 5, 7}, {16, 0, 1, 1}, {1, 1}, {0, 0}},
                        {"1x1, 2 groups", {2, 16, 6, 9}, {24, 8, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 2},
                        // K in two slices, rows in two blocks and a short last panel, panels across images
                        {"1x1, 300 -> 270 channels", {3, 300, 5, 13}, {270, 300, 1, 1}, {1, 1}, {0, 0}},
                        {"3x3 Winograd", {2, 16, 12, 40}, {16, 16, 3, 3}, {1, 1}, {1, 1}},
                        {"3x3 Winograd, 20 outputs (no micro-kernel)", {1, 16, 9, 9}, {20, 16, 3, 3}, {1, 1}, {1, 1}},
                        {"7x7 stride 2 (stem)", {1, 3, 40, 40}, {16, 3, 7, 7}, {2, 2}, {3, 3}},
                        {"5x5 shifted", {1, 8, 9, 33}, {8, 8, 5, 5}, {1, 1}, {2, 2}},
                        {"3x3 stride 2 on 7x7 (unrolled)", {3, 16, 7, 7}, {24, 16, 3, 3}, {2, 2}, {1, 1}},
                        {"3x3 Winograd, several chunks", {1, 16, 200, 150}, {16, 16, 3, 3}, {1, 1}, {1, 1}},
                        {"3x3, 2 groups (unrolled)", {2, 8, 9, 9}, {12, 4, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 2},
                        {"3x3 dilated (unrolled)", {2, 8, 11, 11}, {8, 8, 3, 3}, {1, 1}, {2, 2}, {2, 2}}};
  const int threads = tv::get_num_threads();
  for (const auto& c : cases)
    for (int t : {threads, 1}) {  // one thread: column blocks of several images in the unrolled paths
    if (t == 1 && threads == 1) continue;
    SUBCASE((std::string(c.name) + (t == 1 ? ", 1 thread" : "")).c_str()) {
      const tv::ScopedNumThreads scoped_threads(t);
      tv::Generator gen(21);
      const int64_t cout = c.w[0];
      const auto x = tv::normal<float>(c.x, 0, 1, gen), w = tv::normal<float>(c.w, 0, 0.2, gen);
      const auto b = tv::normal<float>({cout}, 0, 1, gen);
      const auto mean = tv::normal<float>({cout}, 0, 1, gen), var = tv::uniform<float>({cout}, 0.5, 2.0, gen);
      const auto gamma = tv::normal<float>({cout}, 1, 0.3, gen), beta = tv::normal<float>({cout}, 0, 0.5, gen);
      const auto [scale, shift] = tv::batch_norm_eval_coefficients(mean, var, gamma, beta, 1e-5);
      for (auto isa : runnable_isas()) {
        const std::string isa_label = tv::cpu::isa_name(isa);
        CAPTURE(isa_label);
        tv::cpu::ScopedIsa scoped(isa);
        const auto y = tv::conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
        const auto normed = tv::batch_norm(y, mean, var, tv::BatchNormFuncOptions<float>().weight(gamma).bias(beta));
        const auto r = tv::normal<float>(y.shape(), 0, 1, gen);
        for (int variant = 0; variant < 4; ++variant) {  // bn, residual and relu; relu alone; residual alone; bn alone
          CAPTURE(variant);
          const bool with_bn = variant == 0 || variant == 3, with_residual = variant == 0 || variant == 2,
                     with_relu = variant == 0 || variant == 1;
          auto expected = with_bn ? normed : y;
          if (with_residual) expected = tv::add(expected, r);
          if (with_relu) expected = tv::relu(expected);
          tv::ConvFusion<float> then;
          if (with_bn) then.scale = scale, then.shift = shift;
          if (with_residual) then.residual = r;
          then.relu = with_relu;
          const auto r_before = r.to_vector();
          const auto fused = tv::conv2d_inference(x, w, b, then, c.stride, c.padding, c.dilation, c.groups);
          REQUIRE(fused.shape() == expected.shape());
          auto same_bits = [&](const Tensor<float>& t) {
            int64_t same = 0;
            for (int64_t i = 0; i < t.numel(); ++i) same += t.data()[i] == expected.data()[i];
            return same == t.numel();
          };
          CHECK(same_bits(fused));
          if (!with_residual) continue;
          CHECK(r.to_vector() == r_before);  // held here as well: read, not overwritten
          // Handed over (moved in, held by nothing else): a 1x1 conv returns the residual's memory with the result.
          Tensor<float> owned = r.clone();
          const float* memory = owned.data();
          tv::ConvFusion<float> handed{then.scale, then.shift, std::move(owned), then.relu};
          const auto in_place = tv::conv2d_inference(x, w, b, std::move(handed), c.stride, c.padding, c.dilation, c.groups);
          CHECK(same_bits(in_place));
          const bool pointwise = c.w[2] == 1 && c.w[3] == 1;  // (on the packed GEMM; elsewhere a copy would be read)
          CHECK((in_place.data() == memory) == (pointwise && isa == tv::cpu::Isa::Avx512));
          // The backend with y = the residual on every path (those that write sums into y read a copy).
          Tensor<float> y_is_r = r.clone();
          const auto g = tv::detail::conv_geometry(x, w, b, c.stride, c.padding, c.dilation, c.groups);
          tv::kernel::conv2d_forward_fused(g, x, w, b, then.scale, then.shift, y_is_r, then.relu, y_is_r);
          CHECK(same_bits(y_is_r));
        }
      }
    }
    }
  // No gradient flows through it: an input that requires grad is refused while grad mode is on; shapes are checked.
  auto x = tv::normal<float>({1, 4, 5, 5}).requires_grad_();
  auto w = tv::normal<float>({8, 4, 3, 3});
  CHECK_THROWS_WITH_AS(tv::conv2d_inference(x, w, Tensor<float>(), tv::ConvFusion<float>{}), doctest::Contains("requires grad"),
                       tv::Error);
  tv::ConvFusion<float> bad;
  bad.residual = tv::zeros<float>({1, 8, 5, 5});
  CHECK_THROWS_WITH_AS(tv::conv2d_inference(x.detach(), w, Tensor<float>(), bad),
                       doctest::Contains("residual of shape [1, 8, 5, 5] for an output of shape [1, 8, 3, 3]"), tv::Error);
  bad = {};
  bad.scale = tv::ones<float>({4});
  bad.shift = tv::zeros<float>({4});
  CHECK_THROWS_WITH_AS(tv::conv2d_inference(x.detach(), w, Tensor<float>(), bad),
                       doctest::Contains("one value per output channel (8), got shape [4]"), tv::Error);
  bad = {};
  bad.scale = tv::ones<float>({8});
  CHECK_THROWS_WITH_AS(tv::conv2d_inference(x.detach(), w, Tensor<float>(), bad),
                       doctest::Contains("give both scale and shift, or neither"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::batch_norm_eval_coefficients(tv::zeros<float>({8}), tv::ones<float>({4}), Tensor<float>(),
                                                        Tensor<float>(), 1e-5),
                       doctest::Contains("expected running_mean and running_var of one shape (C), got [8] and [4]"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::batch_norm_eval_coefficients(tv::zeros<float>({8}), tv::ones<float>({8}), tv::ones<float>({3}),
                                                        Tensor<float>(), 1e-5),
                       doctest::Contains("weight and bias must have shape [8], got [3]"), tv::Error);
  tv::NoGradGuard no_grad;
  CHECK(tv::conv2d_inference(x, w, Tensor<float>(), tv::ConvFusion<float>{}).shape() == Shape{1, 8, 3, 3});
}

TEST_CASE("nn::conv_bn: eval without grad is one fused conv, with the values of the ops one by one") {
  tv::Generator gen(4);
  tv::nn::Conv2d<float> conv(tv::nn::Conv2dOptions(8, 16, 3).padding(1), gen);  // with a bias
  tv::nn::BatchNorm2d<float> bn(tv::nn::BatchNormOptions(16));
  auto randomize = [&](uint64_t seed) {
    tv::Generator g(seed);
    tv::NoGradGuard no_grad;
    bn.running_mean.copy_(tv::normal<float>({16}, 0, 1, g));
    bn.running_var.copy_(tv::uniform<float>({16}, 0.5, 2.0, g));
    bn.weight.copy_(tv::normal<float>({16}, 1, 0.3, g));
    bn.bias.copy_(tv::normal<float>({16}, 0, 0.5, g));
  };
  randomize(1);
  conv.eval();
  bn.eval();
  const auto x = tv::normal<float>({2, 8, 10, 12}, 0, 1, gen), r = tv::normal<float>({2, 16, 10, 12}, 0, 1, gen);
  auto check = [&] {
    const auto op_by_op = tv::nn::conv_bn(conv, bn, x, r, true).detach();  // grad on: conv, then batch_norm's pass
    tv::NoGradGuard no_grad;
    CHECK(tv::nn::conv_bn(conv, bn, x, r, true).to_vector() == op_by_op.to_vector());  // the same bits
  };
  const int64_t fused_before = tv::nn::fused_conv_bn_count();
  check();
  CHECK(tv::nn::fused_conv_bn_count() == fused_before + 1);  // the no-grad call fused, the other did not
  bn.running_mean.data()[3] = 5.0f;  // even a raw write is seen: nothing folded is kept between calls
  check();
  {
    tv::NoGradGuard no_grad;
    const auto once = tv::nn::conv_bn(conv, bn, x);
    bn.running_var.data()[0] = 9.0f;  // channel 0's outputs change
    const auto after = tv::nn::conv_bn(conv, bn, x);
    CHECK(tv::sum(tv::abs(tv::sub(after, once))).item() > 0);
    tv::nn::set_fused_inference(false);  // the switch: op by op, the same values
    const int64_t n = tv::nn::fused_conv_bn_count();
    CHECK(tv::nn::conv_bn(conv, bn, x).to_vector() == after.to_vector());
    CHECK(tv::nn::fused_conv_bn_count() == n);
    tv::nn::set_fused_inference(true);
  }
  SUBCASE("a 1x1 conv adds a residual handed over in place, and only reads one held elsewhere") {
    tv::nn::Conv2d<float> pointwise(tv::nn::Conv2dOptions(8, 16, 1), gen);
    pointwise.eval();
    const auto held = tv::normal<float>({2, 16, 10, 12}, 0, 1, gen);
    const auto held_before = held.to_vector();
    tv::NoGradGuard no_grad;
    const auto from_held = tv::nn::conv_bn(pointwise, bn, x, held, true);
    CHECK(held.to_vector() == held_before);
    CHECK(from_held.data() != held.data());
    Tensor<float> owned = held.clone();
    const float* memory = owned.data();
    const auto from_owned = tv::nn::conv_bn(pointwise, bn, x, std::move(owned), true);
    // In place where tinyvid's GEMM runs the 1x1 conv (AVX-512); with AVX2 the product is OpenBLAS's, into new memory.
    CHECK((from_owned.data() == memory) == tv::cpu::use_own_gemm(tv::cpu::active_isa()));
    CHECK(from_owned.to_vector() == from_held.to_vector());
    Tensor<float> shared = held.clone(), view = shared.view({2, 16, 120});  // its storage held by a view too
    const auto from_shared = tv::nn::conv_bn(pointwise, bn, x, std::move(shared), true);
    CHECK(from_shared.data() != view.data());
    CHECK(view.to_vector() == held_before);
  }
}

TEST_CASE("nn::freeze: a frozen conv keeps its prepared weights, gives the unfrozen values, and sees weight updates") {
  struct Case {
    int64_t cin, cout, kernel, padding;
  };
  for (auto isa : runnable_isas()) {
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    tv::cpu::ScopedIsa scoped(isa);
    for (const Case c : {Case{24, 40, 1, 0}, Case{16, 24, 3, 1}}) {  // the packed GEMM's, Winograd's
      CAPTURE(c.kernel);
      tv::Generator gen(8);
      tv::nn::Conv2d<float> conv(tv::nn::Conv2dOptions(c.cin, c.cout, c.kernel).padding(c.padding), gen);
      tv::nn::BatchNorm2d<float> bn(tv::nn::BatchNormOptions(c.cout));
      conv.eval();
      bn.eval();
      tv::NoGradGuard no_grad;
      for (int64_t size : {6, 60}) {  // Winograd: one chunk (U kept panel by panel), several (all of U)
        CAPTURE(size);
        const auto x = tv::normal<float>({2, c.cin, size, size}, 0, 1, gen);
        const auto plain = tv::nn::conv_bn(conv, bn, x, Tensor<float>(), true).to_vector();
        tv::nn::freeze(conv);
        CHECK(tv::nn::conv_bn(conv, bn, x, Tensor<float>(), true).to_vector() == plain);  // prepares
        const bool keeps = c.kernel == 3 || isa == tv::cpu::Isa::Avx512;  // (1x1: where the packed GEMM runs)
        CHECK((tv::nn::frozen_bytes(conv) > 0) == keeps);
        CHECK(tv::nn::conv_bn(conv, bn, x, Tensor<float>(), true).to_vector() == plain);  // reads them
        // An update through an op is seen at the next call.
        conv.weight.copy_(tv::mul(conv.weight, -0.5f));
        const auto updated = tv::nn::conv_bn(conv, bn, x, Tensor<float>(), true).to_vector();
        tv::nn::freeze(conv, false);
        CHECK(tv::nn::frozen_bytes(conv) == 0);
        CHECK(tv::nn::conv_bn(conv, bn, x, Tensor<float>(), true).to_vector() == updated);
      }
      {  // one freeze, two input sizes one after the other: Winograd's layout changes, the values do not
        const auto small = tv::normal<float>({2, c.cin, 6, 6}, 0, 1, gen), large = tv::normal<float>({2, c.cin, 60, 60}, 0, 1, gen);
        const auto small_plain = tv::nn::conv_bn(conv, bn, small).to_vector(), large_plain = tv::nn::conv_bn(conv, bn, large).to_vector();
        tv::nn::freeze(conv);
        for (int pass = 0; pass < 2; ++pass) {
          CHECK(tv::nn::conv_bn(conv, bn, small).to_vector() == small_plain);
          CHECK(tv::nn::conv_bn(conv, bn, large).to_vector() == large_plain);
        }
      }
      conv.train();  // training lets them go
      CHECK(tv::nn::frozen_bytes(conv) == 0);
    }
  }
  {  // New weights in a freed tensor's memory, at the same version (a block of 1 MB the host allocator hands back at
     // the next request of its size), are not the old ones: the cache holds the storage, not only the address.
    tv::empty_cache();  // (so that the freed block is the only one of its size)
    tv::kernel::ConvWeightCache cache;
    const Shape ws{256, 256, 2, 2};  // 1 MB
    auto old_weights = tv::zeros<float>(ws);
    const float* memory = old_weights.data();
    const uint64_t version = old_weights.storage()->version();
    cache.for_weight(old_weights)->get(7, 4, [](float* d) { std::fill(d, d + 4, 1.0f); });
    CHECK(cache.bytes() == 16);
    old_weights = Tensor<float>();
    const auto new_weights = tv::zeros<float>(ws);
    REQUIRE(new_weights.data() == memory);  // the premise: the same memory, at the same version
    REQUIRE(new_weights.storage()->version() == version);
    CHECK(cache.for_weight(new_weights)->tag == 0);
    CHECK(cache.bytes() == 0);
  }
}

TEST_CASE("batch_norm with a residual and ReLU in its pass: the values and gradients of the ops one by one") {
  tv::Generator gen(12);
  const Shape shape{4, 6, 5, 7};
  auto x = tv::normal<float>(shape, 0.3, 1.2, gen).requires_grad_(), r = tv::normal<float>(shape, 0, 1, gen).requires_grad_();
  auto w = tv::normal<float>({6}, 1, 0.3, gen).requires_grad_(), b = tv::normal<float>({6}, 0, 0.5, gen).requires_grad_();
  const auto gout = tv::normal<float>(shape, 0, 1, gen);
  auto bits = [](const Tensor<float>& t) { return t.to_vector(); };
  // (expanded: the output's gradient a sum's, one value expanded over every element, stride 0: the backward's sums
  // then run on ReluGrad's contiguous copy, as the ops one by one do, not on gy where it lies)
  for (const bool expanded : {false, true})
  for (const bool training : {true, false})
    for (const bool with_residual : {true, false})
      for (const bool relu : {true, false}) {
        CAPTURE(expanded);
        CAPTURE(training);
        CAPTURE(with_residual);
        CAPTURE(relu);
        // Each run on its own running statistics (a training call updates them) and its own leaves' gradients.
        auto run = [&](bool fused) {
          auto rm = tv::full<float>({6}, 0.1), rv = tv::full<float>({6}, 1.3);
          for (auto* t : {&x, &r, &w, &b}) t->set_grad(Tensor<float>());
          auto o = tv::BatchNormFuncOptions<float>().weight(w).bias(b).training(training).stats_group_clips(training ? 2 : 0);
          Tensor<float> y;
          if (fused) {
            y = tv::batch_norm(x, rm, rv, o.residual(with_residual ? r : Tensor<float>()).relu(relu));
            CHECK(y.grad_fn()->name() == (with_residual || relu ? "BatchNormAddReluBackward" : "BatchNormBackward"));
          } else {
            y = tv::batch_norm(x, rm, rv, o);
            if (with_residual) y = tv::add(y, r);
            if (relu) y = tv::relu(y);
          }
          tv::sum(expanded ? y : tv::mul(y, gout)).backward();
          std::vector<std::vector<float>> out = {bits(y), bits(rm), bits(rv), bits(x.grad()), bits(w.grad()), bits(b.grad())};
          if (with_residual) out.push_back(bits(r.grad()));
          else CHECK_FALSE(r.grad().defined());
          return out;
        };
        const auto fused = run(true), op_by_op = run(false);
        REQUIRE(fused.size() == op_by_op.size());
        for (size_t i = 0; i < fused.size(); ++i) CHECK_MESSAGE(fused[i] == op_by_op[i], "output ", i);  // the same bits
      }
  CHECK_THROWS_WITH_AS(tv::batch_norm(x, Tensor<float>(), Tensor<float>(), tv::BatchNormFuncOptions<float>().training(true).residual(tv::zeros<float>({4, 6, 5, 1}))),
                       doctest::Contains("the residual's shape [4, 6, 5, 1] must be the input's, [4, 6, 5, 7]"), tv::Error);
}

TEST_CASE("batch_norm's backward: the ReLU's mask recomputed from x is the forward's, also where the output rounds to 0") {
  // Each channel's shift is minus the product of its first value and its scale, and that value recurs along the
  // channel: there the batch norm's output is the product's rounding error (a fused multiply-add) or exactly 0 (none).
  // A backward that rounded otherwise than the forward would let another set of gradients through.
  const int64_t N = 3, C = 24, HW = 41;
  tv::Generator gen(31);
  auto x = tv::normal<float>({N, C, HW}, 0, 1, gen);
  const auto gy = tv::normal<float>({N, C, HW}, 0, 1, gen);
  auto scale = Tensor<float>::empty({1, C}), shift = Tensor<float>::empty({1, C});
  for (int64_t c = 0; c < C; ++c) {
    const float first = x.data()[c * HW];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; i += 3) x.data()[(n * C + c) * HW + i] = first;
    scale.data()[c] = 0.1f + 0.013f * static_cast<float>(c);
    volatile float product = first * scale.data()[c];  // (rounded to float: nothing to fuse with)
    shift.data()[c] = -product;
  }
  auto y = Tensor<float>::empty(x.shape());
  tv::kernel::batch_norm_apply(x, 1, N, scale, shift, Tensor<float>(), true, y);
  // The ReLU's gradient as ReluBackward gives it, from y.
  auto g = Tensor<float>::empty(x.shape());
  int64_t through = 0, kinks = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    g.data()[i] = y.data()[i] <= 0.0f ? 0.0f : gy.data()[i];
    if ((i % HW) % 3 == 0) ++kinks, through += y.data()[i] > 0.0f;
  }
  MESSAGE(through, " of ", kinks, " values at the ReLU's kink came out above 0");
  auto mean = tv::full<double>({1, C}, 0.2), invstd = tv::full<double>({1, C}, 1.7);
  const auto weight = tv::normal<float>({C}, 1, 0.3, gen);
  for (const bool batch_stats : {true, false}) {
    CAPTURE(batch_stats);
    auto gx = Tensor<float>::empty(x.shape()), gw = Tensor<float>::empty({C}), gb = Tensor<float>::empty({C});
    auto gx_ref = Tensor<float>::empty(x.shape()), gw_ref = Tensor<float>::empty({C}), gb_ref = Tensor<float>::empty({C});
    tv::kernel::batch_norm_backward(gy, x, 1, N, HW, mean, invstd, weight, batch_stats, gx, gw, gb, scale, shift);
    tv::kernel::batch_norm_backward(g, x, 1, N, HW, mean, invstd, weight, batch_stats, gx_ref, gw_ref, gb_ref,
                                    Tensor<float>(), Tensor<float>());
    CHECK(gx.to_vector() == gx_ref.to_vector());  // the same bits
    CHECK(gw.to_vector() == gw_ref.to_vector());
    CHECK(gb.to_vector() == gb_ref.to_vector());
  }
  auto gx = Tensor<float>::empty(x.shape()), none = Tensor<float>();
  CHECK_THROWS_WITH_AS(tv::kernel::batch_norm_backward(gy, x, 1, N, HW, mean, invstd, weight, true, gx, none, none, scale, none),
                       doctest::Contains("give both relu_scale and relu_shift, or neither"), tv::Error);
}

TEST_CASE("batch_norm's backward: the ReLU after a residual folded into its sums pass, the bits of ReluGrad then the pass") {
  // relu_out and g_out: the sums pass reads the ReLU's output and writes the gradient it lets through, which the
  // input-gradient pass then reads. The same bits as ReluGrad's pass followed by the plain backward, for contiguous
  // operands (the vectorized spans and their tails), strided ones (channels last: no span) and statistics groups.
  const int64_t N = 4, C = 20, HW = 37;  // (37: two vectors of 16 lanes and a tail of 5)
  tv::Generator gen(43);
  auto make = [&](bool channels_last, float mean, float sd) {
    return channels_last ? tv::normal<float>({N, HW, C}, mean, sd, gen).transpose(1, 2) : tv::normal<float>({N, C, HW}, mean, sd, gen);
  };
  for (const bool channels_last : {false, true})
    for (const int64_t group_rows : {N, int64_t{3}}) {
      CAPTURE(channels_last);
      CAPTURE(group_rows);
      const auto x = make(channels_last, 0.3f, 1.0f), gy = make(channels_last, 0.0f, 1.0f);
      auto out = make(channels_last, 0.0f, 1.0f);
      int64_t zeros = 0;
      for (int64_t i = 0; i < out.numel(); ++i)  // a ReLU's output: 0 where it cut (and about half are)
        if (float& v = out.data()[i]; v < 0.0f) v = 0.0f, ++zeros;
      CHECK(zeros > out.numel() / 4);
      const int64_t G = tv::cpu::stats_group_count(N, group_rows);
      auto mean = tv::normal<double>({G, C}, 0.3, 0.1, gen), invstd = tv::uniform<double>({G, C}, 0.5, 2.0, gen);
      const auto weight = tv::normal<float>({C}, 1, 0.3, gen);
      auto g_ref = tv::zeros<float>(x.shape());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t i = 0; i < HW; ++i) {
            const float o = out.at({n, c, i}), g = gy.at({n, c, i});
            g_ref.data()[(n * C + c) * HW + i] = o <= 0.0f ? 0.0f : g;
          }
      for (const bool batch_stats : {true, false}) {
        CAPTURE(batch_stats);
        auto gx = Tensor<float>::empty(x.shape()), gw = Tensor<float>::empty({C}), gb = Tensor<float>::empty({C});
        auto gx_ref = Tensor<float>::empty(x.shape()), gw_ref = Tensor<float>::empty({C}), gb_ref = Tensor<float>::empty({C});
        auto g = make(channels_last, 0.0f, 1.0f), none = Tensor<float>();  // (overwritten; strided as the rest)
        tv::kernel::batch_norm_backward(gy, x, 1, group_rows, HW, mean, invstd, weight, batch_stats, gx, gw, gb, none,
                                        none, out, g);
        tv::kernel::batch_norm_backward(g_ref, x, 1, group_rows, HW, mean, invstd, weight, batch_stats, gx_ref, gw_ref,
                                        gb_ref, none, none);
        CHECK(g.contiguous().to_vector() == g_ref.to_vector());  // the same bits
        CHECK(gx.to_vector() == gx_ref.to_vector());
        CHECK(gw.to_vector() == gw_ref.to_vector());
        CHECK(gb.to_vector() == gb_ref.to_vector());
        // Operands of mixed layouts (x and g as the other four are not) take the loops element by element: the same
        // gradient g, sums in another order (within float rounding); without gx, g still written.
        auto x_other = make(!channels_last, 0.0f, 1.0f), g_other = make(!channels_last, 0.0f, 1.0f);
        x_other.copy_(x);
        auto gx_mixed = Tensor<float>::empty(x.shape()), gw_mixed = Tensor<float>::empty({C}), gb_mixed = Tensor<float>::empty({C});
        tv::kernel::batch_norm_backward(gy, x_other, 1, group_rows, HW, mean, invstd, weight, batch_stats, gx_mixed, gw_mixed,
                                        gb_mixed, none, none, out, g_other);
        CHECK(g_other.to_vector() == g_ref.to_vector());
        const auto near = [](const std::vector<float>& a, const std::vector<float>& b) {
          for (size_t i = 0; i < a.size(); ++i)
            if (std::abs(a[i] - b[i]) > 1e-5f * (1.0f + std::abs(b[i]))) return false;
          return a.size() == b.size();
        };
        CHECK(near(gx_mixed.to_vector(), gx_ref.to_vector()));
        CHECK(near(gw_mixed.to_vector(), gw_ref.to_vector()));
        CHECK(near(gb_mixed.to_vector(), gb_ref.to_vector()));
        auto g_only = Tensor<float>::empty(x.shape());
        tv::kernel::batch_norm_backward(gy, x, 1, group_rows, HW, mean, invstd, weight, batch_stats, none, gw_mixed, none,
                                        none, none, out, g_only);
        CHECK(g_only.to_vector() == g_ref.to_vector());
        CHECK(gw_mixed.to_vector() == gw_ref.to_vector());
      }
    }
  auto x = tv::normal<float>({N, C, HW}, 0, 1, gen), gx = Tensor<float>::empty(x.shape()), none = Tensor<float>();
  auto mean = tv::zeros<double>({1, C}), invstd = tv::ones<double>({1, C});
  auto scale = tv::ones<float>({1, C});
  CHECK_THROWS_WITH_AS(tv::kernel::batch_norm_backward(x, x, 1, N, HW, mean, invstd, none, true, gx, none, none, none, none, x, none),
                       doctest::Contains("give relu_out with g_out, and neither with relu_scale"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::kernel::batch_norm_backward(x, x, 1, N, HW, mean, invstd, none, true, gx, none, none, scale, scale, x, gx),
                       doctest::Contains("give relu_out with g_out, and neither with relu_scale"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::kernel::batch_norm_backward(x, x, 1, N, HW, mean, invstd, none, true, gx, none, none, none, none,
                                                       x.narrow(2, 0, 5), gx),
                       doctest::Contains("relu_out of shape [4, 20, 5] and g_out of shape [4, 20, 37] must have the input's, [4, 20, 37]"),
                       tv::Error);
}

TEST_CASE("nn::conv_bn in training: the add and ReLU in the batch norm's pass, the values of the ops one by one") {
  tv::Generator gen(5);
  tv::nn::Conv2d<float> conv(tv::nn::Conv2dOptions(8, 16, 3).padding(1).bias(false), gen);
  tv::nn::BatchNorm2d<float> bn(tv::nn::BatchNormOptions(16));
  auto x = tv::normal<float>({2, 8, 10, 12}, 0, 1, gen).requires_grad_();
  auto r = tv::normal<float>({2, 16, 10, 12}, 0, 1, gen).requires_grad_();
  auto run = [&] {
    conv.zero_grad();
    bn.zero_grad();
    x.set_grad(Tensor<float>());
    r.set_grad(Tensor<float>());
    auto y = tv::nn::conv_bn(conv, bn, x, r, true);
    const std::string node = y.grad_fn()->name();
    tv::sum(tv::mul(y, y)).backward();
    return std::make_pair(node, std::vector<std::vector<float>>{y.to_vector(), conv.weight.grad().to_vector(), bn.weight.grad().to_vector(),
                                                                bn.bias.grad().to_vector(), x.grad().to_vector(), r.grad().to_vector()});
  };
  const auto [fused_node, fused] = run();
  CHECK(fused_node == "BatchNormAddReluBackward");
  tv::nn::set_fused_inference(false);
  const auto [plain_node, op_by_op] = run();
  tv::nn::set_fused_inference(true);
  CHECK(plain_node == "ReluBackward");
  CHECK(fused == op_by_op);  // the same bits
}

TEST_CASE("conv2d: a 1x1 conv's input gradient added into the shortcut's, as in a bottleneck block, equals the sum") {
  // x feeds a 1x1 conv and, as the residual, the batch norm after it: the batch norm's backward gives x the ReLU's
  // gradient first, and the conv's backward (float, AVX-512) adds its input gradient into that tensor. Against the
  // same graph in double, where the gradients are added by the engine.
  const Shape xs{2, 16, 7, 9};
  auto xd = randn(xs, 41).requires_grad_(), wd = randn({16, 16, 1, 1}, 42, 0.3).requires_grad_();
  auto gy = randn(xs, 43);
  auto graph = [&](auto x, auto w, auto g) {
    using T = typename decltype(x)::value_type;
    auto rm = tv::zeros<T>({16}), rv = tv::ones<T>({16});
    auto y = tv::batch_norm(tv::conv2d(x, w), rm, rv, tv::BatchNormFuncOptions<T>().training(true).residual(x).relu(true));
    tv::sum(y * g).backward();
  };
  graph(xd, wd, gy);
  for (auto isa : runnable_isas()) {
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    tv::cpu::ScopedIsa scoped(isa);
    auto xf = cast<float>(xd.detach()).requires_grad_(), wf = cast<float>(wd.detach()).requires_grad_();
    graph(xf, wf, cast<float>(gy));
    CHECK(fixtures::worst_ratio(xf.grad(), xd.grad(), 1e-4, 1e-4) <= 1);
    CHECK(fixtures::worst_ratio(wf.grad(), wd.grad(), 1e-4, 1e-4) <= 1);
  }
}

TEST_CASE("conv2d: an empty batch gives an empty output and zero weight gradient") {
  for (int64_t size : {4, 20}) {  // the unrolled path and the shifted one
    auto x = tv::zeros<float>({0, 3, size, size}).requires_grad_();
    auto w = tv::normal<float>({8, 3, 3, 3}).requires_grad_();
    auto y = tv::conv2d(x, w, {}, {1, 1}, {1, 1});
    CHECK(y.shape() == Shape{0, 8, size, size});
    tv::sum(y).backward();
    CHECK(tv::sum(tv::abs(w.grad())).item() == 0);
    CHECK(x.grad().shape() == x.shape());
  }
}

TEST_CASE("conv2d: an infinite input pixel poisons only the weight-gradient taps that read it") {
  // Input column 0 is read by taps kj = 0 (output column 1) and kj = 1 (output column 0), never by kj = 2
  // (padding 1): the kj = 2 taps stay finite. 16 channels in float take the micro-kernel, 8 the BLAS path.
  auto run = [](auto tag, int64_t channels) {
    using T = decltype(tag);
    auto x = tv::normal<T>({1, channels, 20, 20}).requires_grad_();
    x.detach().at({0, 0, 5, 0}) = INFINITY;
    auto w = tv::normal<T>({8, channels, 3, 3}).requires_grad_();
    tv::sum(tv::conv2d(x, w, {}, {1, 1}, {1, 1})).backward();
    for (int64_t o = 0; o < 8; ++o)
      for (int64_t ki = 0; ki < 3; ++ki) CHECK(std::isfinite(w.grad().at({o, 0, ki, 2})));
  };
  for (auto isa : runnable_isas()) {
    const std::string isa_label = tv::cpu::isa_name(isa);
    CAPTURE(isa_label);
    tv::cpu::ScopedIsa scoped(isa);
    run(float{}, 16);
  }
  run(float{}, 8);
  run(double{}, 8);
}

TEST_CASE("Module: a shared submodule's parameters are listed once, as in PyTorch") {
  auto lin = std::make_shared<tv::nn::Linear<float>>(3, 3);
  tv::nn::Sequential<float> seq({lin, std::make_shared<tv::nn::ReLU<float>>(), lin});
  CHECK(seq.parameters().size() == 2);
  CHECK(seq.state_dict().size() == 4);  // state_dict keeps both names: 0.weight, 0.bias, 2.weight, 2.bias
  tv::optim::SGD opt(seq.parameters(), tv::optim::SGDOptions(0.1));
}

TEST_CASE("conv2d: bad input is a clear error") {
  auto x = tv::zeros<float>({1, 3, 8, 8});
  CHECK_THROWS_WITH_AS(tv::conv2d(x, tv::zeros<float>({4, 2, 3, 3})),
                       doctest::Contains("weight of shape [4, 2, 3, 3] expects 2 input channels, but the input of shape [1, 3, 8, 8] has 3"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::conv2d(x, tv::zeros<float>({4, 3, 9, 9})),
                       doctest::Contains("kernel 9 x 9 (with dilation) is larger than the padded input 8 x 8"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::conv2d(tv::zeros<float>({3, 8, 8}), tv::zeros<float>({4, 3, 3, 3})),
                       doctest::Contains("expected a 4-D input (N x C x H x W), got shape [3, 8, 8]"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::conv2d(x, tv::zeros<float>({4, 3, 3, 3}), tv::zeros<float>({5})),
                       doctest::Contains("bias of shape [5] does not match 4 output channels"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::conv2d(x, tv::zeros<float>({4, 1, 3, 3}), {}, {1, 1}, {0, 0}, {1, 1}, 2),
                       doctest::Contains("must both be divisible by groups 2"), tv::Error);
}

TEST_CASE("batch_norm matches PyTorch: training with running statistics, eval, affine=False") {
  fixtures::Fixture f("nn_batch_norm.txt");
  auto run = [&](auto tag, double atol, double rtol) {
    using T = decltype(tag);
    auto x = f.get<T>("x").requires_grad_(), w = f.get<T>("w").requires_grad_(), b = f.get<T>("b").requires_grad_();
    auto rm = f.get<T>("rm0"), rv = f.get<T>("rv0");
    auto y = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<T>().weight(w).bias(b).training(true));
    CHECK(fixtures::worst_ratio(y, f.get("train.y"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(rm, f.get("train.rm"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(rv, f.get("train.rv"), atol, rtol) <= 1);
    auto g = grads_of(y, f.get<T>("train.gy"), {x, w, b});
    CHECK(fixtures::worst_ratio(g[0], f.get("train.gx"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(g[1], f.get("train.gw"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(g[2], f.get("train.gb"), atol, rtol) <= 1);

    y = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<T>().weight(w).bias(b));
    CHECK(fixtures::worst_ratio(y, f.get("eval.y"), atol, rtol) <= 1);
    g = grads_of(y, f.get<T>("eval.gy"), {x, w, b});
    CHECK(fixtures::worst_ratio(g[0], f.get("eval.gx"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(g[1], f.get("eval.gw"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(g[2], f.get("eval.gb"), atol, rtol) <= 1);

    y = tv::batch_norm(x, Tensor<T>(), Tensor<T>(), tv::BatchNormFuncOptions<T>().training(true));
    CHECK(fixtures::worst_ratio(y, f.get("plain.y"), atol, rtol) <= 1);
    g = grads_of(y, f.get<T>("plain.gy"), {x});
    CHECK(fixtures::worst_ratio(g[0], f.get("plain.gx"), atol, rtol) <= 1);
  };
  run(double{}, kAtolD, kRtolD);
  run(float{}, kAtolF, kRtolF);
}

TEST_CASE("batch_norm: no channels in evaluation mode give an empty output and gradient") {
  auto x = tv::zeros<float>({2, 0, 3, 3}).requires_grad_();
  auto y = tv::batch_norm(x, tv::zeros<float>({0}), tv::ones<float>({0}), tv::BatchNormFuncOptions<float>().relu(true));
  CHECK(y.shape() == Shape{2, 0, 3, 3});
  tv::sum(y).backward();
  CHECK(x.grad().shape() == Shape{2, 0, 3, 3});
}

TEST_CASE("batch_norm: gradcheck, and a group of frames normalized through a view") {
  // stats_group_clips 0: the whole batch; 1: a group per sample; 2: groups of 2, 2, 1; 5 and 8: the whole batch.
  auto x = randn({5, 2, 4, 3}, 5), w = randn({2}, 6), b = randn({2}, 7);
  for (auto setting : {std::pair<bool, int64_t>{true, 0}, {false, 0}, {true, 1}, {true, 2}, {true, 5}, {true, 8}}) {
    const bool training = setting.first;
    const int64_t group = setting.second;
    CAPTURE(training);
    CAPTURE(group);
    auto ok = tv::gradcheck(
        [&](const Inputs& v) {
          auto rm = tv::zeros<double>({2}), rv = tv::ones<double>({2});
          return tv::batch_norm(v[0], rm, rv, tv::BatchNormFuncOptions<double>().weight(v[1]).bias(v[2]).training(training).stats_group_clips(group));
        },
        {x, w, b});
    CHECK_MESSAGE(ok, ok.message);
  }
  // N clips of T=4 frames, C=3: frames 1..2 of every clip with channel_dim 2, statistics over all clips, and
  // (DNR's use with stats_group_clips) over groups of 2 of 3 clips.
  for (auto setting : {std::pair<int64_t, int64_t>{2, 0}, {3, 2}}) {
    const int64_t clips = setting.first, group = setting.second;
    CAPTURE(group);
    auto ok = tv::gradcheck(
        [clips, group](const Inputs& v) {
          auto part = v[0].view({clips, 4, 3, 2, 2}).narrow(1, 1, 2);
          return tv::batch_norm(part, Tensor<double>(), Tensor<double>(), tv::BatchNormFuncOptions<double>().training(true).channel_dim(2).stats_group_clips(group));
        },
        {randn({clips * 4, 3, 2, 2}, 8)});
    CHECK_MESSAGE(ok, ok.message);
  }
  auto frames = randn({8, 3, 2, 2}, 8);
  // The same numbers as normalizing a contiguous copy of the group with the channel moved to dim 1.
  tv::NoGradGuard no_grad;
  auto group = frames.view({2, 4, 3, 2, 2}).narrow(1, 1, 2);
  auto via_view = tv::batch_norm(group, Tensor<double>(), Tensor<double>(), tv::BatchNormFuncOptions<double>().training(true).channel_dim(2));
  auto moved = group.permute({0, 2, 1, 3, 4}).contiguous();
  auto via_copy = tv::batch_norm(moved, Tensor<double>(), Tensor<double>(), tv::BatchNormFuncOptions<double>().training(true));
  CHECK(fixtures::worst_ratio(via_view.permute({0, 2, 1, 3, 4}), via_copy, 1e-12, 1e-12) <= 1);
  // Data far from zero (mean 1000, std 1) still normalizes to mean 0, variance 1 in float.
  tv::Generator gen(9);
  auto far = tv::add(tv::normal<float>({16, 2, 8, 8}, 0, 1, gen), 1000.0f);
  auto z = tv::batch_norm(far, Tensor<float>(), Tensor<float>(), tv::BatchNormFuncOptions<float>().training(true).eps(0.0));
  auto zm = tv::mean(z, {0, 2, 3}).to_vector(), zv = tv::var(z, {0, 2, 3}, false).to_vector();
  for (int c = 0; c < 2; ++c) {
    CHECK(std::abs(zm[c]) < 1e-3);
    CHECK(zv[c] == doctest::Approx(1.0).epsilon(1e-3));
  }
  CHECK_THROWS_WITH_AS(tv::batch_norm(tv::zeros<float>({1, 3}), Tensor<float>(), Tensor<float>(), tv::BatchNormFuncOptions<float>().training(true)),
                       doctest::Contains("expected more than 1 value per channel when training"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::batch_norm(tv::zeros<float>({2, 3}), Tensor<float>(), Tensor<float>(), tv::BatchNormFuncOptions<float>()),
                       doctest::Contains("running_mean and running_var must be given in evaluation mode"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::batch_norm(tv::zeros<float>({2, 3}), tv::zeros<float>({4}), tv::ones<float>({4}), tv::BatchNormFuncOptions<float>().training(true)),
                       doctest::Contains("running_mean of shape [4] does not match 3 channels"), tv::Error);
}

TEST_CASE("batch_norm over groups of samples matches one PyTorch BatchNorm2d replica per group") {
  fixtures::Fixture f("nn_batch_norm_groups.txt");
  auto run = [&](auto tag, double atol, double rtol) {
    using T = decltype(tag);
    auto x = f.get<T>("x").requires_grad_(), w = f.get<T>("w").requires_grad_(), b = f.get<T>("b").requires_grad_();
    auto rm = f.get<T>("rm0"), rv = f.get<T>("rv0");
    // 10 samples in groups of 4: 4, 4 and 2.
    auto y = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<T>().weight(w).bias(b).training(true).stats_group_clips(4));
    CHECK(fixtures::worst_ratio(y, f.get("y"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(rm, f.get("rm"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(rv, f.get("rv"), atol, rtol) <= 1);
    auto g = grads_of(y, f.get<T>("gy"), {x, w, b});
    CHECK(fixtures::worst_ratio(g[0], f.get("gx"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(g[1], f.get("gw"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(g[2], f.get("gb"), atol, rtol) <= 1);
  };
  run(double{}, kAtolD, kRtolD);
  run(float{}, kAtolF, kRtolF);
}

TEST_CASE("batch_norm over groups of samples: per-group values, running statistics, eval and edge cases") {
  auto x = randn({5, 2, 3, 2}, 11), w = randn({2}, 12), b = randn({2}, 13);
  tv::NoGradGuard no_grad;
  // Each group is normalized as if it were the batch; the running statistics move by the groups' mean.
  auto rm = tv::zeros<double>({2}), rv = tv::ones<double>({2});
  auto y = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<double>().weight(w).bias(b).training(true).momentum(0.5).stats_group_clips(2));
  double expect_mean[2] = {0, 0}, expect_var[2] = {0, 0};
  for (auto [start, rows] : {std::pair<int64_t, int64_t>{0, 2}, {2, 2}, {4, 1}}) {
    auto part = x.narrow(0, start, rows);
    auto alone = tv::batch_norm(part, Tensor<double>(), Tensor<double>(), tv::BatchNormFuncOptions<double>().weight(w).bias(b).training(true));
    CHECK(fixtures::worst_ratio(y.narrow(0, start, rows), alone, 1e-12, 1e-12) <= 1);
    auto m = tv::mean(part, {0, 2, 3}).to_vector(), v = tv::var(part, {0, 2, 3}, /*unbiased=*/true).to_vector();
    for (int c = 0; c < 2; ++c) {
      expect_mean[c] += rows / 5.0 * m[c];
      expect_var[c] += rows / 5.0 * v[c];
    }
  }
  for (int c = 0; c < 2; ++c) {
    CHECK(rm.to_vector()[c] == doctest::Approx(0.5 * expect_mean[c]).epsilon(1e-12));
    CHECK(rv.to_vector()[c] == doctest::Approx(0.5 + 0.5 * expect_var[c]).epsilon(1e-12));
  }
  // Eval uses the running statistics whatever the grouping.
  auto e1 = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<double>().weight(w).bias(b).stats_group_clips(2)), e0 = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<double>().weight(w).bias(b));
  CHECK(fixtures::worst_ratio(e1, e0, 0, 0) <= 1);

  CHECK_THROWS_WITH_AS(tv::batch_norm(tv::zeros<float>({3, 2}), Tensor<float>(), Tensor<float>(), tv::BatchNormFuncOptions<float>().training(true).stats_group_clips(2)),
                       doctest::Contains("more than 1 value per channel when training, got input shape [3, 2] in "
                                         "statistics groups of 2 along dim 0"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::batch_norm(tv::zeros<float>({3, 4}), Tensor<float>(), Tensor<float>(), tv::BatchNormFuncOptions<float>().training(true).channel_dim(0).stats_group_clips(2)),
                       doctest::Contains("stats_group_clips splits dim 0 into groups"), tv::Error);
}

TEST_CASE("pools, softmax, cross_entropy and the LSTM cell match PyTorch") {
  fixtures::Fixture f("nn_misc.txt");
  auto run = [&](auto tag, double atol, double rtol) {
    using T = decltype(tag);
    auto x = f.get<T>("x").requires_grad_();
    auto check = [&](const std::string& name, Tensor<T> y, const Tensor<T>& in) {
      CAPTURE(name);
      CHECK(fixtures::worst_ratio(y, f.get(name + ".y"), atol, rtol) <= 1);
      auto g = grads_of(y, f.get<T>(name + ".gy"), {in});
      CHECK(fixtures::worst_ratio(g[0], f.get(name + ".gx"), atol, rtol) <= 1);
    };
    check("maxpool", tv::max_pool2d(x, tv::MaxPool2dOptions(3).stride(2).padding(1)), x);
    check("maxpool_ceil", tv::max_pool2d(x, tv::MaxPool2dOptions(2).ceil_mode(true)), x);
    {  // inference: the values alone, no argmax
      tv::NoGradGuard no_grad;
      CHECK(fixtures::worst_ratio(tv::max_pool2d(x, tv::MaxPool2dOptions(3).stride(2).padding(1)), f.get("maxpool.y"), atol, rtol) <= 1);
      CHECK(fixtures::worst_ratio(tv::max_pool2d(x, tv::MaxPool2dOptions(2).ceil_mode(true)), f.get("maxpool_ceil.y"), atol, rtol) <= 1);
    }
    {  // Stride past the kernel, padding, ceil mode: against the plain loop (first maximum, row by row)
      const auto xv = x.detach().contiguous().to_vector();
      const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), k = 2, s = 3, p = 1;
      auto y = tv::max_pool2d(x, tv::MaxPool2dOptions(k).stride(s).padding(p).ceil_mode(true));
      const int64_t OH = y.size(2), OW = y.size(3);
      std::vector<T> ref_y, ref_gx(xv.size(), T(0));
      for (int64_t q = 0; q < planes; ++q)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            T best = -std::numeric_limits<T>::infinity();
            int64_t arg = -1;
            for (int64_t iy = std::max<int64_t>(oy * s - p, 0); iy < std::min(oy * s - p + k, H); ++iy)
              for (int64_t ix = std::max<int64_t>(ox * s - p, 0); ix < std::min(ox * s - p + k, W); ++ix)
                if (arg < 0 || xv[(q * H + iy) * W + ix] > best) best = xv[(q * H + iy) * W + ix], arg = (q * H + iy) * W + ix;
            ref_y.push_back(best);
            ref_gx[arg] += T(1);
          }
      CHECK(y.detach().to_vector() == ref_y);
      {  // and the values alone (inference): rows no window reaches, columns past the last window
        tv::NoGradGuard no_grad;
        CHECK(tv::max_pool2d(x, tv::MaxPool2dOptions(k).stride(s).padding(p).ceil_mode(true)).to_vector() == ref_y);
      }
      auto g = grads_of(y, tv::ones_like(y), {x});
      CHECK(g[0].to_vector() == ref_gx);
    }
    check("avgpool", tv::avg_pool2d(x, tv::AvgPool2dOptions(3).stride(2).padding(1)), x);
    check("avgpool_nopad", tv::avg_pool2d(x, tv::AvgPool2dOptions(3).stride(2).padding(1).count_include_pad(false)), x);
    check("adaptive", tv::adaptive_avg_pool2d(x, tv::AdaptiveAvgPool2dOptions({4, 3})), x);
    auto logits = f.get<T>("logits").requires_grad_();
    check("softmax", tv::softmax(logits, 1), logits);
    check("log_softmax", tv::log_softmax(logits, 1), logits);
    check("softmax0", tv::softmax(logits, 0), logits);
    auto target = to_index(f.get("target"));
    for (const auto& setting : {std::pair<std::string, double>{"ce", 0.0}, {"ce_smooth", 0.1}}) {
      const std::string& name = setting.first;
      const double eps = setting.second;
      CAPTURE(name);
      logits.set_grad({});
      auto loss = tv::cross_entropy(logits, target, eps);
      CHECK(fixtures::worst_ratio(loss, f.get(name + ".y").reshape({}), atol, rtol) <= 1);
      loss.backward();
      CHECK(fixtures::worst_ratio(logits.grad(), f.get(name + ".gx"), atol, rtol) <= 1);
    }
    auto [h, c] = tv::lstm_cell(f.get<T>("lstm.x"), {f.get<T>("lstm.h0"), f.get<T>("lstm.c0")}, f.get<T>("lstm.weight_ih"),
                                f.get<T>("lstm.weight_hh"), f.get<T>("lstm.bias_ih"), f.get<T>("lstm.bias_hh"));
    CHECK(fixtures::worst_ratio(h, f.get("lstm.h"), atol, rtol) <= 1);
    CHECK(fixtures::worst_ratio(c, f.get("lstm.c"), atol, rtol) <= 1);
  };
  run(double{}, kAtolD, kRtolD);
  run(float{}, kAtolF, kRtolF);
}

TEST_CASE("pools, softmax, losses, linear, LSTM cell, dropout: gradcheck") {
  auto x = randn({2, 2, 5, 6}, 11);
  auto check = [](const char* name, auto fn, Inputs in) {
    CAPTURE(name);
    auto ok = tv::gradcheck(fn, in);
    CHECK_MESSAGE(ok, ok.message);
  };
  check("max_pool2d", [](const Inputs& v) { return tv::max_pool2d(v[0], tv::MaxPool2dOptions(3).stride(2).padding(1)); }, {x});
  check("avg_pool2d", [](const Inputs& v) { return tv::avg_pool2d(v[0], tv::AvgPool2dOptions({2, 3}).stride({1, 2}).padding(1).ceil_mode(true)); }, {x});
  check("adaptive_avg_pool2d", [](const Inputs& v) { return tv::adaptive_avg_pool2d(v[0], tv::AdaptiveAvgPool2dOptions({3, 4})); }, {x});
  check("global average pool", [](const Inputs& v) { return tv::adaptive_avg_pool2d(v[0], 1); }, {x});
  auto logits = randn({4, 5}, 12);
  check("softmax dim 0", [](const Inputs& v) { return tv::softmax(v[0], 0); }, {logits});
  check("log_softmax", [](const Inputs& v) { return tv::log_softmax(v[0], -1); }, {logits});
  auto target = tv::tensor<int64_t>({4, 0, 2, 2});
  check("cross_entropy smoothed", [&](const Inputs& v) { return tv::cross_entropy(v[0], target, 0.2); }, {logits});
  check("linear", [](const Inputs& v) { return tv::linear(v[0], v[1], v[2]); }, {randn({2, 3, 4}, 13), randn({5, 4}, 14), randn({5}, 15)});
  check("lstm_cell",
        [](const Inputs& v) {
          auto s = tv::lstm_cell(v[0], {v[1], v[2]}, v[3], v[4], v[5], v[6]);
          return tv::cat<double>({s.h, s.c}, 1);
        },
        {randn({2, 3}, 16), randn({2, 2}, 17), randn({2, 2}, 18), randn({8, 3}, 19), randn({8, 2}, 20), randn({8}, 21),
         randn({8}, 22)});
  for (auto act : {tv::CellActivation::Tanh, tv::CellActivation::Sigmoid})
    check(act == tv::CellActivation::Tanh ? "lstm_gates tanh" : "lstm_gates sigmoid (DNR's relay)",
          [act](const Inputs& v) { return tv::lstm_gates(v[0], v[1], act); }, {randn({3, 8}, 24, 2.0), randn({3, 2}, 25)});
  check("dropout (same mask each call)",
        [](const Inputs& v) {
          tv::Generator g(7);
          return tv::dropout(v[0], 0.3, true, g);
        },
        {randn({4, 5}, 23)});
}

namespace {
// Equal as PyTorch's NaN semantics need: NaN matches only NaN, infinities match exactly, numbers to 1e-5.
bool same_values(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    const float a = got[i], b = want[i];
    if (std::isnan(a) != std::isnan(b)) return false;
    if (!std::isnan(b) && !(a == b || std::abs(a - b) <= 1e-5f * (1 + std::abs(b)))) return false;
  }
  return true;
}
}  // namespace

// A corrupt weight or input must reach the loss (and the trainer's NaN check) as NaN, never as plausible
// numbers: every op whose max, min or compare could swallow a NaN, against PyTorch 1.13's values and
// gradients (of y.sum()) for the same inputs.
TEST_CASE("NaN and infinity pass through every op as in PyTorch, values and gradients") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Row {
    const char* name;
    std::vector<float> x;
    Shape shape;
    std::function<Tensor<float>(const Tensor<float>&)> fn;
    std::vector<float> y, gx;
  };
  const std::vector<float> line = {nan, -1, 0, 2, inf, -inf};
  const std::vector<float> pair_rows = {1, nan, 2, 3};  // 2 x 2: a NaN row and a plain one
  const Row rows[] = {
      // threshold_backward passes the gradient where out <= 0 is false: out > 0 and NaN.
      {"relu", line, {6}, [](const Tensor<float>& x) { return tv::relu(x); }, {nan, 0, 0, 2, inf, 0}, {1, 0, 0, 1, 1, 0}},
      {"clamp", line, {6}, [](const Tensor<float>& x) { return tv::clamp(x, -0.5f, 1.0f); }, {nan, -0.5f, 0, 1, 1, -0.5f},
       {0, 0, 1, 0, 0, 0}},
      // The first NaN is the maximum, and takes the gradient.
      {"max along a dim", {1, nan, 3, nan, 1, 5, 2, 0}, {2, 4}, [](const Tensor<float>& x) { return tv::max(x, 1).values; },
       {nan, 5}, {0, 1, 0, 0, 0, 1, 0, 0}},
      {"max of all", {1, nan, 3, 2}, {4}, [](const Tensor<float>& x) { return tv::max(x); }, {nan}, {0, 1, 0, 0}},
      // Windows [[1, nan], [nan, 0]] and [[nan, 2], [0, 3]]: the last NaN of a window wins (PyTorch's CPU kernel).
      {"max_pool2d", {1, nan, 2, nan, 0, 3}, {1, 1, 2, 3},
       [](const Tensor<float>& x) { return tv::max_pool2d(x, tv::MaxPool2dOptions(2).stride(1)); }, {nan, nan}, {0, 1, 0, 1, 0, 0}},
      // Ties: the first maximum of the window (row by row) takes the gradient; a window of -inf takes its first.
      {"max_pool2d ties", {2, 2, 2, -inf, -inf, -inf}, {1, 1, 2, 3},
       [](const Tensor<float>& x) { return tv::max_pool2d(x, tv::MaxPool2dOptions(2).stride(1)); }, {2, 2}, {1, 1, 0, 0, 0, 0}},
      {"max_pool2d of -inf", {-inf, -inf, -inf, -inf}, {1, 1, 2, 2},
       [](const Tensor<float>& x) { return tv::max_pool2d(x, tv::MaxPool2dOptions(2)); }, {-inf}, {1, 0, 0, 0}},
      {"adaptive_avg_pool2d", pair_rows, {1, 1, 2, 2}, [](const Tensor<float>& x) { return tv::adaptive_avg_pool2d(x, 1); },
       {nan}, {0.25f, 0.25f, 0.25f, 0.25f}},
      {"softmax", pair_rows, {2, 2}, [](const Tensor<float>& x) { return tv::softmax(x, 1); },
       {nan, nan, 0.26894143f, 0.7310586f}, {nan, nan, 0, 0}},
      {"softmax with +inf", {inf, 1, -inf, 1}, {2, 2}, [](const Tensor<float>& x) { return tv::softmax(x, 1); },
       {nan, nan, 0, 1}, {nan, nan, 0, 0}},
      {"log_softmax", pair_rows, {2, 2}, [](const Tensor<float>& x) { return tv::log_softmax(x, 1); },
       {nan, nan, -1.3132616f, -0.31326166f}, {nan, nan, 0.46211714f, -0.4621172f}},
      {"cross_entropy", pair_rows, {2, 2},
       [](const Tensor<float>& x) { return tv::cross_entropy(x, tv::tensor<int64_t>({0, 1})); }, {nan},
       {nan, nan, 0.13447072f, -0.1344707f}},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    auto x = tv::tensor<float>(r.x, r.shape).requires_grad_();
    {  // inference (max_pool2d keeps no argmax then): the same values
      tv::NoGradGuard no_grad;
      CHECK(same_values(r.fn(x).to_vector(), r.y));
    }
    auto y = r.fn(x);
    CHECK(same_values(y.to_vector(), r.y));
    tv::sum(y).backward();
    CHECK(same_values(x.grad().to_vector(), r.gx));
  }
  CHECK((tv::argmax(tv::tensor<float>({1, nan, 3, nan, 1, 5, 2, 0}, {2, 4}), 1).to_vector() == std::vector<int64_t>{1, 1}));
  {  // max_pool2d's order bit for bit on the stem's window (3, stride 2, padding 1), with the argmax and without it:
     // a tie of -0 and +0 keeps the first, row by row (across rows both ways), and of two NaNs the last wins.
    auto bits = [](float f) { return std::bit_cast<uint32_t>(f); };
    const float na = std::bit_cast<float>(0x7fc00001u), nb = std::bit_cast<float>(0xffc00002u);
    const std::vector<float> xv = {-0.0f, -1, na, -1, 0.0f, -1, -1, nb, -0.0f, -1, -1, -1, -1, -1, na, -1};
    const std::vector<uint32_t> want = {bits(-0.0f), bits(nb), bits(0.0f), bits(na)};
    for (bool grad : {false, true}) {
      CAPTURE(grad);
      auto x = tv::tensor<float>(xv, {1, 1, 4, 4}).requires_grad_(grad);
      std::vector<uint32_t> got;
      for (float v : tv::max_pool2d(x, tv::MaxPool2dOptions(3).stride(2).padding(1)).to_vector()) got.push_back(bits(v));
      CHECK(got == want);
    }
  }

  // batch_norm in training: a NaN or an infinity in a channel makes that channel's output NaN and its running
  // variance NaN (not the clamped 0 of max(0, NaN)); the other channel is untouched.
  for (float bad : {nan, inf}) {
    CAPTURE(bad);
    auto x = tv::tensor<float>({1, bad, 2, 3, 0, 4, 5, 1}, {2, 2, 1, 2}).requires_grad_();
    auto rm = tv::zeros<float>({2}), rv = tv::ones<float>({2});
    auto y = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<float>().training(true));
    CHECK(same_values(y.to_vector(), {nan, nan, -0.5070914f, 0.16903043f, nan, nan, 1.521274f, -1.1832132f}));
    tv::sum(y).backward();
    CHECK(same_values(x.grad().to_vector(), {nan, nan, 0, 0, nan, nan, 0, 0}));
    CHECK(same_values(rm.to_vector(), {bad, 0.275f}));  // PyTorch: nan, or inf for the infinity
    CHECK(same_values(rv.to_vector(), {nan, 1.1916667f}));
  }

  // top-k accuracy ranks as torch.topk: NaN above every number, so a NaN score is no hit for what lies below it.
  // torch.topk(k=1) of these rows: 0, 1, 0; k=2: {0, 2}, {1, 0}, {0, 1}.
  auto logits = tv::tensor<float>({nan, 1, 2, 1, nan, 0, nan, nan, 0}, {3, 3});
  auto target = tv::tensor<int64_t>({2, 0, 1});
  CHECK(tv::topk_accuracy(logits, target, 1) == 0.0);
  CHECK(tv::topk_accuracy(logits, target, 2) == 1.0);
  CHECK(tv::topk_accuracy(logits, tv::tensor<int64_t>({0, 1, 0}), 1) == 1.0);

  CHECK_THROWS_WITH_AS(tv::clamp(tv::zeros<float>({2}), nan, 1.0f), doctest::Contains("clamp: expected bounds that are numbers"),
                       tv::Error);
}

// Every model input passes Recognizer::forward or forward_views, which refuse an infinity or NaN by its
// index; a NaN born inside the backbone (a corrupt weight) comes out as NaN scores, not plausible ones.
TEST_CASE("Recognizer: a non-finite input is refused by its index; a NaN weight reaches the scores") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  auto model = tv::models::make_model<float>("tsn_r18", {.num_classes = 3, .frames = 2, .dropout = 0, .set = {{"width", "4"}}});
  model->eval();
  tv::NoGradGuard no_grad;
  tv::Generator gen(5);
  const auto x = tv::normal<float>({2, 3, 32, 32}, 0, 1, gen);
  auto all_finite = [](const Tensor<float>& t) {
    for (float v : t.to_vector())
      if (!std::isfinite(v)) return false;
    return true;
  };
  REQUIRE(all_finite(model->forward(x)));

  auto bad = x.clone();
  bad.data()[((1 * 3 + 2) * 32 + 3) * 32 + 4] = nan;  // [1, 2, 3, 4]
  CHECK_THROWS_WITH_AS(model->forward(bad),
                       doctest::Contains("Recognizer::forward: input of shape [2, 3, 32, 32]: expected finite values, got nan "
                                         "at index [1, 2, 3, 4]"),
                       tv::Error);
  bad = x.clone();
  bad.data()[x.numel() - 1] = -inf;
  CHECK_THROWS_WITH_AS(model->forward_views(bad, 1, tv::models::AverageClips::Prob),
                       doctest::Contains("Recognizer::forward_views: input of shape [2, 3, 32, 32]: expected finite values, "
                                         "got -inf at index [1, 2, 31, 31]"),
                       tv::Error);
  // A view is scanned as its elements: the first bad one in index order, whatever the strides.
  bad = x.transpose(2, 3).contiguous().transpose(2, 3);
  bad.data()[5 * 32 + 0] = inf;  // element [0, 0, 0, 5] of the view
  bad.data()[0 * 32 + 9] = nan;  // element [0, 0, 9, 0], later in index order
  CHECK_THROWS_WITH_AS(tv::check_finite(bad, "x"), doctest::Contains("x of shape [2, 3, 32, 32]: expected finite values, got inf at index [0, 0, 0, 5]"),
                       tv::Error);

  // A NaN weight in the stem: ReLU and max pooling keep it, so every score is NaN (it used to be a ReLU's 0).
  for (auto& [name, p] : model->named_parameters())
    if (name == "backbone.conv1.weight") p.data()[0] = nan;
  const auto scores = model->forward(x).to_vector();
  CHECK(std::all_of(scores.begin(), scores.end(), [](float v) { return std::isnan(v); }));
}

TEST_CASE("dropout: seeded, scaled, identity in eval; top-k accuracy") {
  auto x = tv::ones<float>({100000});
  tv::Generator g1(3), g2(3);
  auto a = tv::dropout(x, 0.4, true, g1), b = tv::dropout(x, 0.4, true, g2);
  CHECK(a.to_vector() == b.to_vector());
  double kept = 0, other = 0;
  for (float v : a.to_vector()) {
    kept += v == 1 / 0.6f;
    other += v != 0.0f && v != 1 / 0.6f;
  }
  CHECK(other == 0);  // every element is dropped or scaled by 1 / (1 - p)
  CHECK(kept / 100000 == doctest::Approx(0.6).epsilon(0.02));
  CHECK(tv::dropout(x, 0.4, false).is_same(x));
  auto logits = tv::tensor<float>({0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f}, {2, 3});
  auto target = tv::tensor<int64_t>({2, 0});
  CHECK(tv::topk_accuracy(logits, target, 1) == 0.5);
  CHECK(tv::topk_accuracy(logits, target, 2) == 1.0);
  CHECK_THROWS_WITH_AS(tv::cross_entropy(logits, tv::tensor<int64_t>({3, 0})),
                       doctest::Contains("target 3 (sample 0) is not a class index in [0, 3)"), tv::Error);
}

// ---- modules ----

namespace {
// A small network built the way the ResNet will be: named members registered in order.
struct TinyNet : tv::nn::UnaryModule<float> {
  TinyNet() {
    using namespace tv::nn;
    conv1 = register_module("conv1", std::make_shared<Conv2d<float>>(Conv2dOptions(3, 4, 3).padding(1).bias(false)));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d<float>>(BatchNormOptions(4)));
    layer1 = register_module("layer1", std::make_shared<Sequential<float>>());
    layer1->push_back(std::make_shared<Conv2d<float>>(Conv2dOptions(4, 4, 1)));
    layer1->push_back(std::make_shared<ReLU<float>>());
    fc = register_module("fc", std::make_shared<Linear<float>>(4, 5));
  }
  Tensor<float> forward(const Tensor<float>& x) override {
    auto y = (*layer1)(tv::relu((*bn1)((*conv1)(x))));
    return (*fc)(tv::adaptive_avg_pool2d(y, 1).flatten(1));
  }
  std::shared_ptr<tv::nn::Conv2d<float>> conv1;
  std::shared_ptr<tv::nn::BatchNorm2d<float>> bn1;
  std::shared_ptr<tv::nn::Sequential<float>> layer1;
  std::shared_ptr<tv::nn::Linear<float>> fc;
};
}  // namespace

TEST_CASE("Module: PyTorch's dotted names, in PyTorch's order") {
  TinyNet net;
  std::vector<std::string> keys;
  for (auto& [name, t] : net.state_dict()) keys.push_back(name);
  const std::vector<std::string> expected = {
      "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
      "layer1.0.weight", "layer1.0.bias", "fc.weight", "fc.bias"};
  CHECK(keys == expected);
  CHECK(net.parameters().size() == 7);
  int64_t count = 0;
  for (auto& p : net.parameters()) count += p.numel();
  CHECK(count == 4 * 3 * 9 + 4 + 4 + 4 * 4 + 4 + 5 * 4 + 5);
  CHECK(net.submodule("layer1.0") == net.layer1->named_children()[0].second);
  CHECK_THROWS_WITH_AS(net.submodule("layer1.7"), doctest::Contains("no child named '7' in path 'layer1.7'"), tv::Error);
  for (auto& p : net.parameters()) CHECK(p.requires_grad());
  net.to(tv::Device::CPU);
  if (!tv::device_available(tv::Device::CUDA))
    CHECK_THROWS_WITH_AS(net.to(tv::Device::CUDA), doctest::Contains("device cuda is not available"), tv::Error);
}

TEST_CASE("Module: state_dict round trip and strict loading errors") {
  TinyNet a, b;
  auto y_in = tv::normal<float>({2, 3, 5, 5});
  a.eval();
  b.eval();
  b.load_state_dict(a.state_dict());
  CHECK(a(y_in).to_vector() == b(y_in).to_vector());
  auto sd = a.state_dict();
  auto missing = sd;
  missing.erase(missing.begin() + 1);
  CHECK_THROWS_WITH_AS(b.load_state_dict(missing), doctest::Contains("missing keys [bn1.weight], unexpected keys []"),
                       tv::Error);
  auto extra = sd;
  extra.emplace_back("head.weight", tv::zeros<float>({1}));
  CHECK_THROWS_WITH_AS(b.load_state_dict(extra), doctest::Contains("unexpected keys [head.weight]"), tv::Error);
  b.load_state_dict(extra, /*strict=*/false);
  auto wrong = sd;
  wrong[0].second = tv::zeros<float>({4, 3, 5, 5});
  CHECK_THROWS_WITH_AS(b.load_state_dict(wrong),
                       doctest::Contains("size mismatch for conv1.weight: the checkpoint has shape [4, 3, 5, 5], the module has shape [4, 3, 3, 3]"),
                       tv::Error);
}

TEST_CASE("BatchNorm2d module matches PyTorch, counts batches, and uses running statistics in eval") {
  fixtures::Fixture f("nn_batch_norm.txt");
  tv::nn::BatchNorm2d<double> bn(tv::nn::BatchNormOptions(3));
  bn.load_state_dict({{"weight", f.get("w")}, {"bias", f.get("b")}, {"running_mean", f.get("rm0")},
                      {"running_var", f.get("rv0")}, {"num_batches_tracked", tv::zeros<double>({})}});
  auto x = f.get("x");
  auto y = bn(x);
  CHECK(fixtures::worst_ratio(y, f.get("train.y"), kAtolD, kRtolD) <= 1);
  CHECK(fixtures::worst_ratio(bn.running_mean, f.get("train.rm"), kAtolD, kRtolD) <= 1);
  CHECK(fixtures::worst_ratio(bn.running_var, f.get("train.rv"), kAtolD, kRtolD) <= 1);
  CHECK(bn.num_batches_tracked.item() == 1);
  bn.eval();
  auto rm = bn.running_mean.clone();
  CHECK(fixtures::worst_ratio(bn(x), f.get("eval.y"), kAtolD, kRtolD) <= 1);
  CHECK(bn.running_mean.to_vector() == rm.to_vector());
  CHECK(bn.num_batches_tracked.item() == 1);
}

TEST_CASE("LSTMCell module loads PyTorch's weights by name and matches") {
  fixtures::Fixture f("nn_misc.txt");
  tv::nn::LSTMCell<double> cell(6, 4);
  cell.load_state_dict({{"weight_ih", f.get("lstm.weight_ih")}, {"weight_hh", f.get("lstm.weight_hh")},
                        {"bias_ih", f.get("lstm.bias_ih")}, {"bias_hh", f.get("lstm.bias_hh")}});
  auto [h, c] = cell(f.get("lstm.x"), {f.get("lstm.h0"), f.get("lstm.c0")});
  CHECK(fixtures::worst_ratio(h, f.get("lstm.h"), kAtolD, kRtolD) <= 1);
  CHECK(fixtures::worst_ratio(c, f.get("lstm.c"), kAtolD, kRtolD) <= 1);
  auto zero_state = cell(f.get("lstm.x"));
  CHECK(zero_state.h.shape() == Shape{3, 4});
}

TEST_CASE("initializers follow PyTorch's formulas") {
  tv::Generator g(1);
  tv::nn::Conv2d<float> conv(tv::nn::Conv2dOptions(64, 128, 3), g);
  const double bound = 1.0 / std::sqrt(64.0 * 9);  // kaiming_uniform(a=sqrt(5)) on fan_in 576
  CHECK(tv::max(tv::abs(conv.weight)).item() <= bound);
  CHECK(tv::max(tv::abs(conv.weight)).item() > 0.95 * bound);
  tv::nn::init::kaiming_normal_(conv.weight, tv::nn::init::FanMode::FanOut, g);
  const double std_expected = std::sqrt(2.0 / (128 * 9));
  CHECK(std::sqrt(tv::var(conv.weight).item()) == doctest::Approx(std_expected).epsilon(0.02));
  tv::nn::Linear<float> fc(2048, 400);
  int64_t count = 0;
  for (auto& p : fc.parameters()) count += p.numel();
  CHECK(count == 819600);  // DNR.md's fc for 400 classes
  CHECK_THROWS_WITH_AS(tv::nn::Conv2d<float>(tv::nn::Conv2dOptions(3, 4, 3).groups(2)),
                       doctest::Contains("must be divisible by groups 2"), tv::Error);
}

TEST_CASE("train() and eval() reach every child: dropout and batch norm") {
  auto seq = std::make_shared<tv::nn::Sequential<float>>();
  seq->push_back(std::make_shared<tv::nn::Dropout<float>>(0.5));
  auto x = tv::ones<float>({1000});
  CHECK((*seq)(x).to_vector() != x.to_vector());
  seq->eval();
  CHECK(!(*seq)[0]->is_training());
  CHECK((*seq)(x).to_vector() == x.to_vector());
  TinyNet net;
  net.eval();
  CHECK(!net.bn1->is_training());
  net.train();
  CHECK(net.bn1->is_training());
  auto loss = tv::sum(net(tv::normal<float>({2, 3, 4, 4})));
  loss.backward();
  for (auto& p : net.parameters()) CHECK(p.grad().defined());
  net.zero_grad();
  for (auto& p : net.parameters()) CHECK(!p.grad().defined());
}

TEST_CASE("batch_norm: exact statistics for a channel whose mean is far larger than its spread") {
  // mean 1e6, std 1: unshifted sums of x and x^2 in double would lose the variance entirely.
  tv::Generator gen(11);
  auto x = tv::add(tv::normal<double>({64, 2, 3, 3}, 0, 1, gen), 1e6);
  auto rm = tv::zeros<double>({2}), rv = tv::ones<double>({2});
  auto y = tv::batch_norm(x, rm, rv, tv::BatchNormFuncOptions<double>().training(true).momentum(1.0).eps(0.0));
  auto centered = tv::sub(x, tv::mean(x, {0, 2, 3}, true));
  auto ref = tv::div(centered, tv::sqrt(tv::mean(tv::mul(centered, centered), {0, 2, 3}, true)));
  CHECK(fixtures::worst_ratio(y, ref, 1e-9, 1e-9) <= 1);
}
