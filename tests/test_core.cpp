// Tensor core: layout, views sharing storage, creation, printing, randomness, threads, errors; and the plots
// (viz/plot.hpp): their tick chooser and layout, which need no image library.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>
#include <tinyvid/tinyvid.hpp>
#include <tinyvid/viz/plot.hpp>

using tv::Shape;
using tv::Tensor;

namespace {
template <class T>
std::string str(const Tensor<T>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}
}  // namespace

TEST_CASE("a new tensor is contiguous, row-major") {
  auto t = tv::zeros<float>({2, 3, 4});
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.strides() == Shape{12, 4, 1});
  CHECK(t.numel() == 24);
  CHECK(t.dim() == 3);
  CHECK(t.size(-1) == 4);
  CHECK(t.is_contiguous());
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
}

TEST_CASE("creation functions") {
  CHECK(tv::ones<float>({2, 2}).to_vector() == std::vector<float>{1, 1, 1, 1});
  CHECK(tv::full<double>({3}, 2.5).to_vector() == std::vector<double>{2.5, 2.5, 2.5});
  CHECK(tv::arange<float>(4).to_vector() == std::vector<float>{0, 1, 2, 3});
  CHECK(tv::arange<double>(1, 2, 0.25).to_vector() == std::vector<double>{1, 1.25, 1.5, 1.75});
  auto t = tv::tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.at({1, 0}) == 4);
  CHECK(tv::scalar_tensor<float>(3).dim() == 0);
  CHECK(tv::scalar_tensor<float>(3).item() == 3);
  CHECK_THROWS_WITH_AS(tv::tensor<float>({1, 2, 3}, {2, 2}), doctest::Contains("3 values do not fill shape [2, 2]"),
                       tv::Error);
}

TEST_CASE("views share storage with their base") {
  auto base = tv::arange<float>(12).reshape({3, 4});
  SUBCASE("narrow") {
    auto v = base.narrow(1, 1, 2);
    CHECK(v.shape() == Shape{3, 2});
    CHECK(!v.is_contiguous());
    v.at({2, 1}) = -1;
    CHECK(base.at({2, 2}) == -1);
  }
  SUBCASE("transpose and permute") {
    auto v = base.t();
    CHECK(v.strides() == Shape{1, 4});
    v.at({3, 0}) = 100;
    CHECK(base.at({0, 3}) == 100);
    auto p = base.reshape({3, 2, 2}).permute({2, 0, 1});
    CHECK(p.shape() == Shape{2, 3, 2});
    CHECK(p.at({1, 2, 0}) == base.at({2, 1}));
  }
  SUBCASE("select, unsqueeze, squeeze") {
    auto row = base.select(0, -1);
    CHECK(row.to_vector() == std::vector<float>{8, 9, 10, 11});
    CHECK(base.unsqueeze(1).shape() == Shape{3, 1, 4});
    CHECK(base.unsqueeze(-1).shape() == Shape{3, 4, 1});
    CHECK(base.unsqueeze(1).squeeze().shape() == Shape{3, 4});
    CHECK(base.unsqueeze(0).squeeze(0).shape() == Shape{3, 4});
    CHECK(base.squeeze(0).shape() == Shape{3, 4});  // not of size 1: unchanged, as in PyTorch
    row.fill_(7);
    CHECK(base.at({2, 0}) == 7);
  }
  SUBCASE("expand reads one element many times") {
    auto col = tv::tensor<float>({1, 2, 3}, {3, 1});
    auto e = col.expand({3, 4});
    CHECK(e.strides() == Shape{1, 0});
    CHECK(e.to_vector() == std::vector<float>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
    CHECK(col.expand({2, -1, 4}).shape() == Shape{2, 3, 4});
  }
  SUBCASE("slice with a step") {
    auto s = base.slice(1, 0, 4, 2);
    CHECK(s.to_vector() == std::vector<float>{0, 2, 4, 6, 8, 10});
    CHECK(base.slice(0, -2, 100).shape() == Shape{2, 4});
  }
  SUBCASE("view and reshape") {
    auto v = base.view({2, -1});
    CHECK(v.shape() == Shape{2, 6});
    CHECK(v.storage() == base.storage());
    auto r = base.t().reshape({12});  // not viewable: reshape copies
    CHECK(r.storage() != base.storage());
    CHECK(r.to_vector() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
    CHECK(base.t().t().view({12}).storage() == base.storage());
    CHECK(base.reshape({3, 2, 2}).narrow(2, 0, 1).view({3, 2}).shape() == Shape{3, 2});
    CHECK_THROWS_WITH_AS(base.t().view({12}), doctest::Contains("use reshape()"), tv::Error);
    CHECK(base.flatten().shape() == Shape{12});
    CHECK(tv::zeros<float>({2, 3, 4, 5}).flatten(1, 2).shape() == Shape{2, 12, 5});
  }
  SUBCASE("contiguous, clone, detach") {
    auto t = base.t();
    auto c = t.contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.storage() != base.storage());
    CHECK(base.contiguous().storage() == base.storage());
    auto k = base.clone();
    k.at({0, 0}) = 42;
    CHECK(base.at({0, 0}) == 0);
    auto d = base.detach();
    d.at({0, 0}) = 42;
    CHECK(base.at({0, 0}) == 42);
  }
}

TEST_CASE("buffers of 64 KB and more are reused at their size, and empty_cache gives them back") {
  tv::empty_cache();
  const float* first = nullptr;
  {
    auto a = tv::zeros<float>({1024, 1024});  // 4 MB: cached when freed
    first = a.data();
  }
  CHECK(tv::allocator(tv::Device::CPU).cached_bytes() == 4u << 20);
  {
    auto b = tv::ones<float>({512, 2048});  // the same size: the same block, filled anew
    CHECK(b.data() == first);
    CHECK(b.data()[12345] == 1.0f);
    CHECK(tv::allocator(tv::Device::CPU).cached_bytes() == 0);
    auto small = tv::zeros<float>({16});  // small buffers never enter the cache
  }
  CHECK(tv::allocator(tv::Device::CPU).cached_bytes() == 4u << 20);
  { auto last_stage = tv::zeros<float>({8, 512, 7, 7}); }  // 0.8 MB (ResNet-50's last stage): cached too
  CHECK(tv::allocator(tv::Device::CPU).cached_bytes() == (4u << 20) + 8 * 512 * 49 * 4);
  CHECK(tv::empty_cache() == (4u << 20) + 8 * 512 * 49 * 4);
  CHECK(tv::empty_cache() == 0);
}

TEST_CASE("in-place writes, broadcasting and the version counter") {
  auto t = tv::zeros<float>({2, 3});
  auto v0 = t.storage()->version();
  t.copy_(tv::tensor<float>({1, 2, 3}));
  CHECK(t.to_vector() == std::vector<float>{1, 2, 3, 1, 2, 3});
  t.add_(tv::ones<float>({2, 1}), 2);
  CHECK(t.to_vector() == std::vector<float>{3, 4, 5, 3, 4, 5});
  t.mul_(0.5f);
  CHECK(t.at({1, 2}) == 2.5f);
  CHECK(t.storage()->version() == v0 + 3);
  CHECK_THROWS_WITH_AS(t.copy_(tv::zeros<float>({3, 3})), doctest::Contains("copy_"), tv::Error);
  auto e = tv::zeros<float>({3, 1}).expand({3, 4});
  CHECK_THROWS_WITH_AS(e.add_(tv::ones<float>({3, 4})), doctest::Contains("add_: the tensor (shape [3, 4], strides [1, 0]) is an expanded view"),
                       tv::Error);
}

TEST_CASE("printing follows PyTorch's format") {
  CHECK(str(tv::tensor<float>({1, 2, 3})) == "tensor([1., 2., 3.])");
  CHECK(str(tv::tensor<float>({0.5f, -1.25f, 3, 4}, {2, 2})) == "tensor([[ 0.5000, -1.2500],\n        [ 3.0000,  4.0000]])");
  CHECK(str(tv::scalar_tensor<double>(2.5)) == "tensor(2.5000, dtype=float64)");
  CHECK(str(tv::tensor<float>({1e-5f, 1})) == "tensor([1.0000e-05, 1.0000e+00])");
  CHECK(str(tv::zeros<float>({2, 1, 2})) == "tensor([[[0., 0.]],\n\n        [[0., 0.]]])");
  CHECK(str(tv::arange<float>(2000)) == "tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.])");
  CHECK(str(tv::tensor<int64_t>({3, -12})) == "tensor([  3, -12])");
  auto x = tv::ones<float>({1}).requires_grad_();
  CHECK(str(x) == "tensor([1.], requires_grad=True)");
  CHECK(str(tv::exp(x)) == "tensor([2.7183], grad_fn=<ExpBackward>)");
}

TEST_CASE("seeded randomness: same seed, same numbers") {
  // The engine is std::mt19937_64, whose 10000th output the C++ standard fixes.
  tv::Generator g(5489u);
  uint64_t v = 0;
  for (int i = 0; i < 10000; ++i) v = g.next_u64();
  CHECK(v == 9981545732273789042ull);

  tv::Generator a(7), b(7), c(8);
  auto ta = tv::normal<float>({1000}, 0, 1, a), tb = tv::normal<float>({1000}, 0, 1, b);
  CHECK(ta.to_vector() == tb.to_vector());
  CHECK(tv::uniform<float>({10}, 0, 1, c).to_vector() != tv::uniform<float>({10}, 0, 1, a).to_vector());

  tv::manual_seed(3);
  auto d1 = tv::uniform<double>({5});
  tv::manual_seed(3);
  CHECK(tv::uniform<double>({5}).to_vector() == d1.to_vector());

  tv::Generator s(1);
  auto n = tv::normal<double>({200000}, 2.0, 3.0, s);
  CHECK(tv::mean(n).item() == doctest::Approx(2.0).epsilon(0.03));
  CHECK(std::sqrt(tv::var(n).item()) == doctest::Approx(3.0).epsilon(0.01));
  auto u = tv::uniform<double>({100000}, -1.0, 3.0, s);
  CHECK(tv::max(u).item() < 3.0);
  CHECK(-tv::max(-u).item() >= -1.0);
  CHECK(tv::mean(u).item() == doctest::Approx(1.0).epsilon(0.02));
}

TEST_CASE("thread count: one setting, and results that do not depend on it") {
  const int before = tv::get_num_threads();
  const tv::ScopedNumThreads restore(before);
  auto x = tv::normal<float>({3000, 1000});
  tv::set_num_threads(1);
  CHECK(tv::get_num_threads() == 1);
  auto s1 = tv::sum(x, {0}).to_vector();
  float full1 = tv::sum(x).item();
  auto m1 = tv::matmul(x.narrow(0, 0, 300), x.narrow(0, 0, 300).t()).to_vector();
  tv::set_num_threads(2);
  auto s2 = tv::sum(x, {0}).to_vector();
  CHECK(tv::sum(x).item() == full1);
  auto m2 = tv::matmul(x.narrow(0, 0, 300), x.narrow(0, 0, 300).t());
  CHECK(s1 == s2);
  for (size_t i = 0; i < m1.size(); i += 997) CHECK(m1[i] == doctest::Approx(m2.to_vector()[i]).epsilon(1e-4));
  CHECK_THROWS_AS(tv::set_num_threads(0), tv::Error);
  // ScopedNumThreads gives the count back at the end of its scope, also when the scope throws.
  tv::set_num_threads(before);
  try {
    const tv::ScopedNumThreads three(3);
    CHECK(tv::get_num_threads() == 3);
    throw std::runtime_error("a check that failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(tv::get_num_threads() == before);
}

TEST_CASE("parallel_for: each item once, in pieces aligned within a share; a slow thread's items taken over") {
  const tv::ScopedNumThreads restore(tv::get_num_threads());  // (the checks below set other counts)
  for (int threads : {1, 2, 3, 4})
    for (int64_t n : {1, 7, 100, 1001})
      for (int64_t grain : {1, 3})
        for (int64_t batch : {1, 5}) {
          tv::set_num_threads(threads);
          INFO("threads ", threads, ", n ", n, ", grain ", grain, ", batch ", batch);
          // parallel_for's shares, for a team of one thread per grain at most
          const int64_t begin = 10, team = std::min<int64_t>(threads, (n + grain - 1) / grain), per = (n + team - 1) / team;
          std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
          std::mutex mu;
          std::vector<std::pair<int64_t, int64_t>> pieces;
          tv::parallel_for(begin, begin + n, grain, batch, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) runs[i - begin]++;
            std::lock_guard<std::mutex> lock(mu);
            pieces.emplace_back(b - begin, e - begin);
          });
          for (int64_t i = 0; i < n; ++i) REQUIRE(runs[i].load() == 1);
          if (threads == 1) CHECK(pieces.size() == 1);
          for (auto [b, e] : pieces) {
            CHECK(b < e);
            CHECK(b / per == (e - 1) / per);          // within one share
            CHECK((b - b / per * per) % grain == 0);  // a whole number of grains from the share's start
          }
        }
  // Thread 0 slowed down (2 ms an item): the other thread, done with its own share, runs some of thread 0's.
  tv::set_num_threads(2);
  std::vector<int> ran_on(64, -1);
  tv::parallel_for(0, 64, 1, [&](int64_t b, int64_t e) {
    const int t = omp_get_thread_num();
    for (int64_t i = b; i < e; ++i) {
      ran_on[i] = t;
      if (t == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  CHECK(std::count(ran_on.begin(), ran_on.end(), -1) == 0);
  CHECK(std::count(ran_on.begin(), ran_on.begin() + 32, 1) > 0);  // of thread 0's share
  // The last grain of a share, too: thread 0 owns items 0 and 1 and runs item 0 first, which waits (up to 10 s) until
  // item 1 has run; the other thread, done with items 2 and 3, must take item 1. (When the last grain was its owner's,
  // item 1 waited for item 0 to give up.)
  {
    std::atomic<int> item1_on{-1};
    std::atomic<bool> item0_gave_up{false};
    tv::parallel_for(0, 4, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (i == 1) item1_on = omp_get_thread_num();
        if (i != 0) continue;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (item1_on.load() < 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
        item0_gave_up = item1_on.load() < 0;
      }
    });
    CHECK_FALSE(item0_gave_up.load());
    CHECK(item1_on.load() == 1);
  }
  // How much a thread takes: of its own share whole batches until two are left, then halves; of another's, half of
  // the rest, the last grain too.
  using tv::detail::grains_to_take;
  CHECK(grains_to_take(12, 4, true) == 4);  // half of 12 is 6, rounded down to a batch
  CHECK(grains_to_take(40, 4, true) == 20);
  CHECK(grains_to_take(9, 4, true) == 4);
  CHECK(grains_to_take(8, 4, true) == 4);   // two batches left: half
  CHECK(grains_to_take(6, 4, true) == 3);
  CHECK(grains_to_take(1, 4, true) == 1);
  CHECK(grains_to_take(7, 1, true) == 4);
  CHECK(grains_to_take(0, 1, true) == 0);
  CHECK(grains_to_take(1, 1, false) == 1);
  CHECK(grains_to_take(3, 5, false) == 2);
  CHECK(grains_to_take(0, 1, false) == 0);
  // parallel_for_static: one call per thread, on its equal share (what per-thread sums rely on).
  for (int threads : {1, 2, 3}) {
    tv::set_num_threads(threads);
    INFO("parallel_for_static, threads ", threads);
    std::mutex mu;
    std::vector<std::pair<int64_t, int64_t>> calls;
    tv::parallel_for_static(0, 100, 1, [&](int64_t b, int64_t e) {
      std::lock_guard<std::mutex> lock(mu);
      calls.emplace_back(b, e);
    });
    std::sort(calls.begin(), calls.end());
    REQUIRE(calls.size() == static_cast<size_t>(threads));
    const int64_t per = (100 + threads - 1) / threads;
    for (int t = 0; t < threads; ++t) CHECK(calls[t] == std::pair<int64_t, int64_t>(t * per, std::min<int64_t>(100, (t + 1) * per)));
  }
}

TEST_CASE("elementwise loops and batch norm's passes: each element once, in pieces the threads can share") {
  const tv::ScopedNumThreads two(2);
  // A contiguous tensor is one row: cut into pieces of about kParallelGrain, not one per thread, so that a thread
  // done first takes over pieces of the other's (a slower core's).
  for (int64_t numel : {int64_t{5}, int64_t{40000}, int64_t{300001}}) {
    INFO("numel ", numel);
    std::vector<std::atomic<int>> seen(static_cast<size_t>(numel));
    std::mutex mu;
    int64_t pieces = 0, longest = 0;
    tv::cpu::for_each_row<1>(tv::Shape{numel}, {tv::Shape{1}}, [&](tv::cpu::Offsets<1> off, int64_t n, tv::cpu::Offsets<1> st) {
      for (int64_t i = 0; i < n; ++i) seen[off[0] + i * st[0]]++;
      std::lock_guard<std::mutex> lock(mu);
      ++pieces, longest = std::max(longest, n);
    });
    CHECK(std::count_if(seen.begin(), seen.end(), [](const auto& v) { return v.load() != 1; }) == 0);
    CHECK(longest <= tv::kParallelGrain + 16);
    if (numel > 8 * tv::kParallelGrain) CHECK(pieces >= 8);
  }
  // Batch norm's elementwise passes: blocks of channels, their runs (images) in parts where the blocks are few.
  for (auto [channels, images, inner] : {std::array<int64_t, 3>{64, 8, 49}, {3, 1, 10}, {2048, 2, 4}, {1, 5, 7}}) {
    INFO("channels ", channels, ", images ", images);
    const tv::Shape shape{images, channels, inner};
    tv::cpu::ChannelWalk<1> walk(shape, {tv::contiguous_strides(shape)}, 1);
    const int64_t runs = walk.num_runs();  // (one where the channel's runs coalesce)
    std::vector<std::atomic<int>> seen(static_cast<size_t>(channels * runs));
    std::atomic<int64_t> items{0};
    tv::cpu::for_channel_pieces(walk, [&](int64_t c0, int64_t c1, int64_t r0, int64_t r1) {
      CHECK(c0 < c1);
      CHECK(r0 < r1);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) seen[c * runs + r]++;
      items++;
    });
    CHECK(std::count_if(seen.begin(), seen.end(), [](const auto& v) { return v.load() != 1; }) == 0);
    if (channels == 64) CHECK(items.load() >= 16);  // 4 blocks of 16 channels, each in parts
  }
}

TEST_CASE("shape errors name the op and both shapes") {
  auto a = tv::zeros<float>({2, 3}), b = tv::zeros<float>({4});
  CHECK_THROWS_WITH_AS(a + b, doctest::Contains("add: shapes [2, 3] and [4] cannot be broadcast"), tv::Error);
  CHECK_THROWS_WITH_AS(a * b, doctest::Contains("mul: shapes [2, 3] and [4]"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::matmul(a, a), doctest::Contains("matmul: shapes [2, 3] and [2, 3] cannot be multiplied"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::sum(a, {2}), doctest::Contains("sum: dim 2 is out of range for a tensor with 2 dims"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::sum(a, {1, -1}), doctest::Contains("appears more than once"), tv::Error);
  CHECK_THROWS_WITH_AS(a.narrow(1, 2, 2), doctest::Contains("narrow: range [2, 4) is out of bounds for dim 1 of size 3"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(a.view({4, 2}), doctest::Contains("view: shape [4, 2] is invalid for a tensor of shape [2, 3]"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(a.permute({0, 0}), doctest::Contains("permute: dim 0 is repeated"), tv::Error);
  CHECK_THROWS_WITH_AS(a.expand({3, 3}), doctest::Contains("expand: shape [2, 3] cannot be expanded to [3, 3]"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::cat<float>({a, b}), doctest::Contains("cat: tensor 1 has shape [4], but tensor 0 has shape [2, 3]"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::stack<float>({a, a.t()}), doctest::Contains("stack: tensor 1 has shape [3, 2]"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::split(a, std::vector<int64_t>{1, 1}, 1), doctest::Contains("split: sizes add up to 2 but dim 1 has length 3"),
                       tv::Error);
  auto idx = tv::tensor<int64_t>({0, 3}, {1, 2});
  CHECK_THROWS_WITH_AS(tv::gather(a, 1, idx), doctest::Contains("gather: index 3 is out of range for dim 1 of size 3"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(a.at({2, 0}), doctest::Contains("at: index 2 is out of range for dim 0 of size 2"), tv::Error);
  CHECK_THROWS_WITH_AS(a.item(), doctest::Contains("item: expected a tensor with one element, got shape [2, 3]"), tv::Error);
  CHECK_THROWS_WITH_AS(Tensor<float>().shape(), doctest::Contains("undefined tensor"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::max(tv::zeros<float>({0})), doctest::Contains("max: cannot take the maximum of an empty tensor"),
                       tv::Error);
}

TEST_CASE("copies of permuted views keep every element (tiled transposing copy included)") {
  auto x = tv::arange<float>(3 * 70 * 45).reshape({3, 70, 45});
  for (Shape perm : {Shape{0, 2, 1}, Shape{2, 1, 0}, Shape{1, 0, 2}, Shape{2, 0, 1}, Shape{1, 2, 0}}) {
    CAPTURE(perm);
    auto p = x.permute(perm);
    auto c = p.contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.to_vector() == p.to_vector());  // to_vector walks element by element, another path
  }
  auto t = tv::zeros<float>({45, 70});
  t.copy_(x.select(0, 1).t());
  CHECK(t.to_vector() == x.select(0, 1).t().to_vector());
}

// ---- plots (viz/plot.hpp): round ticks, labels that fit ----

TEST_CASE("plots: round 1-2-5 ticks, labelled with the digits the step needs") {
  using tv::viz::format_tick;
  using tv::viz::nice_axis;
  auto labels = [](double lo, double hi, int intervals = 6, bool percent = false) {
    const auto a = nice_axis(lo, hi, intervals);
    std::vector<std::string> out;
    for (double v : a.ticks()) out.push_back(format_tick(v, a.step, percent));
    return out;
  };
  using L = std::vector<std::string>;
  CHECK(labels(3, 1130) == L{"0", "200", "400", "600", "800", "1000", "1200"});  // never 1.13e+03
  CHECK(labels(3, 1130, 3) == L{"0", "500", "1000", "1500"});
  CHECK(labels(0.0213, 0.0789) == L{"0.02", "0.03", "0.04", "0.05", "0.06", "0.07", "0.08"});
  CHECK(labels(-0.036, 0.044) == L{"-0.04", "-0.02", "0", "0.02", "0.04", "0.06"});  // a zero, not -0.00
  CHECK(labels(0, 1, 5) == L{"0", "0.2", "0.4", "0.6", "0.8", "1.0"});
  CHECK(labels(0, 1, 5, true) == L{"0%", "20%", "40%", "60%", "80%", "100%"});
  CHECK(labels(0, 2.5e6, 5) == L{"0", "500000", "1000000", "1500000", "2000000", "2500000"});
  CHECK(labels(2e-6, 4e-6, 2) == L{"2e-06", "3e-06", "4e-06"});
  CHECK(labels(5, 5) == L{"4.4", "4.6", "4.8", "5.0", "5.2", "5.4", "5.6"});  // one value: an axis around it
  const auto a = nice_axis(0.5, 0.5000001);  // a tiny spread still gets a few round ticks
  CHECK(a.ticks().size() >= 2);
  CHECK(a.ticks().size() <= 7);
}

TEST_CASE("plots: every label of a chart lies inside its box, and a fixed y range is kept") {
  using tv::viz::Canvas;
  using tv::viz::Series;
  // Drawn in the middle of a larger white canvas: a pixel outside the box is a label the box's edge would cut.
  auto spill = [](int64_t w, int64_t h, const std::vector<Series>& series, const std::string& title,
                  const tv::viz::ChartOptions& o = {}) {
    const int64_t m = 100;
    Canvas cv(w + 2 * m, h + 2 * m);
    tv::viz::line_chart(cv, m, m, w, h, series, title, "iteration", o);
    int64_t outside = 0, inside = 0;
    for (int64_t y = 0; y < cv.height(); ++y)
      for (int64_t x = 0; x < cv.width(); ++x) {
        const uint8_t* p = cv.image().row(y) + x * 3;
        const bool ink = p[0] != 255 || p[1] != 255 || p[2] != 255;
        const bool in_box = x >= m && x < m + w && y >= m && y < m + h;
        (in_box ? inside : outside) += ink;
      }
    CHECK(inside > 0);
    return outside;
  };
  const Series loss{"train loss", {3, 400, 800, 1130}, {6.2, 2.1, 0.8, 0.41}};
  CHECK(spill(600, 260, {loss}, "loss") == 0);
  const Series wide{"x", {0, 1.7e6, 2.5e6}, {-1234567, 0, 2345678}};  // long labels on both axes
  CHECK(spill(400, 200, {wide}, "wide") == 0);
  // A long title: the legend moves below it instead of over it, still inside.
  const Series a{"train top-1", {10, 20}, {0.2, 0.9}}, b{"val top-1", {20}, {0.7}};
  CHECK(spill(420, 240, {a, b}, "a long title for a narrow chart", {.y_range = {0, 1}, .percent = true}) == 0);
  CHECK(spill(300, 160, {}, "empty") == 0);
  CHECK(spill(300, 160, {a}, "a title far too long for its chart, cut rather than drawn past the edge") == 0);

  // With y_range {0, 1}, a curve between 0.2 and 0.9 is drawn on the whole [0, 1] axis: its top value sits
  // 90% of the way up, as the plot of another run would place it.
  Canvas cv(400, 300);
  const Series flat{"acc", {0, 10}, {0.9, 0.9}, {255, 0, 0}};
  tv::viz::line_chart(cv, 0, 0, 400, 300, {flat}, "t", "x", {.y_range = {0, 1}});
  std::vector<int64_t> red_rows;
  for (int64_t y = 0; y < cv.height(); ++y) {
    const uint8_t* p = cv.image().row(y) + 200 * 3;  // a column in the middle of the plot
    if (p[0] == 255 && p[1] == 0 && p[2] == 0) red_rows.push_back(y);
  }
  REQUIRE(!red_rows.empty());
  // The axis' ends: the y of the grid lines at 0 and 1 is the plot's bottom and top; measure them from the axis line.
  int64_t axis_top = -1, axis_bottom = -1;
  for (int64_t y = 0; y < cv.height(); ++y) {
    const uint8_t* p = cv.image().row(y) + 200 * 3;
    if (p[0] == 60 && p[1] == 60 && p[2] == 60) axis_bottom = y;  // the x axis
  }
  for (int64_t y = 0; y < cv.height(); ++y) {
    const uint8_t* p = cv.image().row(y) + 200 * 3;
    if (p[0] == 228 && p[1] == 228 && p[2] == 228) {
      axis_top = y;  // the first grid line from the top: the tick at 1
      break;
    }
  }
  REQUIRE(axis_top > 0);
  REQUIRE(axis_bottom > axis_top);
  const double up = static_cast<double>(axis_bottom - red_rows.front()) / static_cast<double>(axis_bottom - axis_top);
  CHECK(up == doctest::Approx(0.9).epsilon(0.03));
}

TEST_CASE("plots: bar chart heights measured from 0, error bars, legend, and group names that fit") {
  using tv::viz::Bar;
  using tv::viz::Canvas;
  using tv::viz::Rgb;
  const double none = std::nan("");
  auto is = [](const Canvas& cv, int64_t x, int64_t y, Rgb c) {
    const uint8_t* p = cv.image().row(y) + x * 3;
    return p[0] == c.r && p[1] == c.g && p[2] == c.b;
  };
  // Each bar of colour c, left to right: its columns and the top and bottom of its longest vertical run of c
  // (the widest of its columns, as the error bar's whisker splits the middle one; the 7-pixel legend swatch
  // is too short to count).
  struct Found {
    int64_t x0, x1, top, bottom;
  };
  auto bars_of = [&](const Canvas& cv, Rgb c) {
    std::vector<Found> out;
    for (int64_t x = 0; x < cv.width(); ++x) {
      int64_t best = 0, best_top = 0, run = 0;
      for (int64_t y = 0; y < cv.height(); ++y) {
        run = is(cv, x, y, c) ? run + 1 : 0;
        if (run > best) best = run, best_top = y - run + 1;
      }
      if (best < 10) continue;
      if (out.empty() || out.back().x1 != x - 1) out.push_back({x, x, best_top, best_top + best - 1});
      Found& f = out.back();
      f.x1 = x;
      if (best > f.bottom - f.top + 1) f.top = best_top, f.bottom = best_top + best - 1;
    }
    return out;
  };
  const Rgb blue{31, 119, 180}, orange{255, 127, 14}, axis{60, 60, 60}, whisker{40, 40, 40};
  const std::vector<Bar> bars = {{"a", "tsn", 0.6, 0.55, 0.62},
                                 {"a", "tsm", 0.9, 0.85, 0.97},
                                 {"b", "tsn", 0.3, none, none},
                                 {"b", "tsm", 0.45, none, 0.5}};
  const Canvas cv = tv::viz::bar_chart(bars, "top-1 over seeds", "top-1", {.percent = true});
  const std::vector<Found> b = bars_of(cv, blue), o = bars_of(cv, orange);
  REQUIRE(b.size() == 2);
  REQUIRE(o.size() == 2);
  // Groups in order along x, series in order inside a group.
  CHECK(b[0].x1 < o[0].x0);
  CHECK(o[0].x1 < b[1].x0);
  CHECK(b[1].x1 < o[1].x0);
  // Every bar stands on the x axis, which is 0: the data (0.3 to 0.97) would otherwise get an axis from 0.3.
  for (const Found& f : {b[0], b[1], o[0], o[1]}) CHECK(is(cv, f.x0, f.bottom + 1, axis));
  auto height = [](const Found& f) { return static_cast<double>(f.bottom - f.top + 1); };
  CHECK(height(o[0]) / height(b[0]) == doctest::Approx(0.9 / 0.6).epsilon(0.02));
  CHECK(height(b[1]) / height(b[0]) == doctest::Approx(0.3 / 0.6).epsilon(0.03));
  CHECK(height(o[1]) / height(b[0]) == doctest::Approx(0.45 / 0.6).epsilon(0.03));
  // Error bars: a whisker above the bars with hi > value, none above the bar without one.
  auto whisker_above = [&](const Found& f) {
    int64_t n = 0;
    for (int64_t x = f.x0; x <= f.x1; ++x)
      for (int64_t y = f.top - 30; y < f.top; ++y) n += is(cv, x, y, whisker);
    return n;
  };
  CHECK(whisker_above(o[0]) >= 10);  // 0.07 of an axis to about 1.0
  CHECK(whisker_above(b[0]) >= 1);
  CHECK(whisker_above(o[1]) >= 5);
  CHECK(whisker_above(b[1]) == 0);
  // The legend: a swatch of each series' colour above the plot, left of its name.
  auto swatch_above = [&](Rgb c, int64_t below) {
    for (int64_t y = 0; y < below; ++y)
      for (int64_t x = 0; x + 10 <= cv.width(); ++x) {
        int64_t k = 0;
        while (k < 10 && is(cv, x + k, y, c)) ++k;
        if (k == 10) return true;
      }
    return false;
  };
  CHECK(swatch_above(blue, o[0].top - 20));
  CHECK(swatch_above(orange, o[0].top - 20));

  // A fixed range: a value above it is drawn at its top, as high as a value at the top.
  const Canvas fixed = tv::viz::bar_chart({{"g", "s", 1.0, none, none}, {"h", "s", 1.7, none, none}}, "t", "y",
                                          {.y_range = {0, 1}});
  const std::vector<Found> f = bars_of(fixed, blue);
  REQUIRE(f.size() == 2);
  CHECK(f[0].top == f[1].top);
  // The canvas grows with the groups, so bars stay readable.
  std::vector<Bar> many;
  for (int k = 0; k < 12; ++k) many.push_back({"group " + std::to_string(k), "s", 1.0 + k, none, none});
  CHECK(tv::viz::bar_chart(many, "t", "y").width() > cv.width() + 200);

  // Group names: whole when they fit, else two lines broken at a space or after '_' (balanced), else cut
  // with "..": never wider than the group.
  using tv::viz::detail::label_lines;
  using L = std::vector<std::string>;
  CHECK(label_lines("tsn_r18", 12) == L{"tsn_r18"});
  CHECK(label_lines("kinetics 400", 8) == L{"kinetics", "400"});
  CHECK(label_lines("tsm_r50_dnr_ct", 8) == L{"tsm_r50_", "dnr_ct"});
  CHECK(label_lines("abcdefghijklmnopqrstuvwxyz", 10) == L{"abcdefghij", "klmnopqr.."});
  CHECK(label_lines("a_verylongwordthatgoeson", 10) == L{"a_verylong", "wordthat.."});
  for (const char* name : {"tanet_r50_with_a_long_name", "x y z", "__________________"})
    for (const std::string& line : label_lines(name, 7)) CHECK(line.size() <= 7);
}

TEST_CASE("a tensor too large for memory is a tv::Error with its size, not std::bad_alloc") {
  CHECK_THROWS_WITH_AS(tv::empty<float>({int64_t(1) << 20, int64_t(1) << 20, 1024}),
                       doctest::Contains("storage: out of memory allocating 4503599627370496 bytes"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::empty<float>({int64_t(1) << 31, int64_t(1) << 31}),
                       doctest::Contains("elements of 4 bytes is beyond any memory"), tv::Error);
}

TEST_CASE("a shape whose element count overflows int64 is an error, not a wrapped small tensor") {
  CHECK_THROWS_WITH_AS(tv::empty<float>({int64_t(1) << 32, int64_t(1) << 32}),
                       doctest::Contains("has more elements than a 64-bit count holds"), tv::Error);
}

namespace {
// A second device for the seam's tests: host memory under the CUDA tag, so a CPU-only build can make
// tensors that live "elsewhere" and check that nothing reads or mixes them silently.
class HostBackedAllocator final : public tv::Allocator {
 public:
  void* allocate(size_t bytes) override { return std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }
  void deallocate(void* p, size_t) override { std::free(p); }
};
struct FakeDevice {
  HostBackedAllocator allocator;
  FakeDevice() { tv::register_allocator(tv::Device::CUDA, &allocator); }
  ~FakeDevice() { tv::register_allocator(tv::Device::CUDA, nullptr); }
};
}  // namespace

TEST_CASE("the device seam: a device the build lacks, mixing devices, explicit host reads") {
  auto x = tv::ones<float>({2, 3});
  CHECK(x.to(tv::Device::CPU).is_same(x));  // already there: the tensor itself, as PyTorch's Tensor.to
#ifdef TINYVID_WITH_CUDA
  // A CUDA build on a machine without a GPU says why; with one, the device tests run in test_ops.cpp.
  if (tv::device_available(tv::Device::CUDA)) return;
  CHECK_THROWS_WITH_AS(Tensor<float>::empty({2}, tv::Device::CUDA), doctest::Contains("device cuda is not available: "),
                       tv::Error);
#else
  CHECK_FALSE(tv::device_available(tv::Device::CUDA));
  CHECK_THROWS_WITH_AS(Tensor<float>::empty({2}, tv::Device::CUDA),
                       doctest::Contains("device cuda is not available in this build"), tv::Error);
#endif
  CHECK_THROWS_WITH_AS(x.to(tv::Device::CUDA), doctest::Contains("device cuda is not available"), tv::Error);
  {
    FakeDevice fake;
    auto y = Tensor<float>::empty({2, 3}, tv::Device::CUDA);
    CHECK(y.device() == tv::Device::CUDA);
    // Host reads of a device tensor are refused, naming the way to do it.
    CHECK_THROWS_WITH_AS(Tensor<float>::empty({}, tv::Device::CUDA).item(),
                         doctest::Contains("item: the tensor (shape []) is on cuda"), tv::Error);
    CHECK_THROWS_WITH_AS(y.at({0, 0}), doctest::Contains("is on cuda; read it on the host with .to(tv::Device::CPU)"),
                         tv::Error);
    CHECK_THROWS_WITH_AS(y.to_vector(), doctest::Contains("to_vector: the tensor (shape [2, 3]) is on cuda"), tv::Error);
    // Ops on two devices name the op and both devices; ops with no kernel for the device say so.
    CHECK_THROWS_WITH_AS(x + y, doctest::Contains("expected all tensors on one device, got cpu and cuda"), tv::Error);
#ifndef TINYVID_WITH_CUDA  // with the CUDA backend these reach its kernels, which need the GPU the fake lacks
    CHECK_THROWS_WITH_AS(tv::exp(y), doctest::Contains("no kernel for device cuda in this build"), tv::Error);
    CHECK_THROWS_WITH_AS(tv::softmax(y, 1), doctest::Contains("no kernel for device cuda"), tv::Error);
    CHECK_THROWS_WITH_AS(x.to(tv::Device::CUDA), doctest::Contains("to: no kernel for device cuda"), tv::Error);
#endif
    // Outputs are allocated on the inputs' device before any kernel runs: a shape error comes first.
    CHECK_THROWS_WITH_AS(tv::matmul(y, y), doctest::Contains("matmul"), tv::Error);
  }
  CHECK_FALSE(tv::device_available(tv::Device::CUDA));
}

TEST_CASE("Module::to keeps the tensors' identity (an optimizer built before still holds them)") {
  tv::nn::Conv2d<float> conv(tv::nn::Conv2dOptions(2, 3, 1));
  auto w = conv.weight;
  conv.to(tv::Device::CPU);
  CHECK(conv.weight.is_same(w));
  if (tv::device_available(tv::Device::CUDA)) return;  // a GPU machine: moving is tested in test_ops.cpp
  CHECK_THROWS_WITH_AS(conv.to(tv::Device::CUDA), doctest::Contains("device cuda is not available"), tv::Error);
  CHECK(conv.weight.device() == tv::Device::CPU);
}
