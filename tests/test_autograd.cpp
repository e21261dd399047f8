// Autograd: accumulation, graph freeing, no-grad mode, views, deep graphs, custom ops, gradcheck.
#include <doctest/doctest.h>

#include <thread>
#include <tinyvid/tinyvid.hpp>

using tv::Shape;
using tv::Tensor;

TEST_CASE("gradients accumulate in .grad across backward calls") {
  auto x = tv::tensor<double>({1, 2, 3}).requires_grad_();
  tv::sum(x * x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4, 6});
  tv::sum(x * 3.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{5, 7, 9});
  x.grad().zero_();
  tv::sum(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1});
}

TEST_CASE("a tensor used twice gets the sum of both paths (diamond graph)") {
  auto x = tv::tensor<double>({2}).requires_grad_();
  auto y = tv::exp(x);
  auto z = tv::sum(y * y + y);  // z = e^2x + e^x, dz/dx = 2e^2x + e^x
  z.backward();
  CHECK(x.grad().item() == doctest::Approx(2 * std::exp(4.0) + std::exp(2.0)));
}

TEST_CASE("a post-accumulate hook runs once per backward, after the leaf's whole gradient is in .grad") {
  auto x = tv::tensor<double>({1, 2}).requires_grad_();
  auto w = tv::tensor<double>({3}).requires_grad_();
  std::vector<std::vector<double>> seen;  // .grad of x as each call of the hook finds it
  const uint64_t id = x.register_post_accumulate_grad_hook([&] { seen.push_back(x.grad().to_vector()); });
  // x reaches the loss by three paths; the hook sees their sum, once.
  tv::sum(x * x + x * w + tv::exp(x * 0.0)).backward();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == std::vector<double>{2 + 3, 4 + 3});
  tv::sum(x).backward();  // the next backward: once more, with the accumulated .grad
  REQUIRE(seen.size() == 2);
  CHECK(seen[1] == std::vector<double>{6, 8});
  x.remove_grad_hook(id);
  tv::sum(x).backward();
  CHECK(seen.size() == 2);
  CHECK_THROWS_WITH_AS((x * 2.0).register_post_accumulate_grad_hook([] {}), doctest::Contains("only a leaf"), tv::Error);
}

TEST_CASE("backward with an explicit gradient, and its checks") {
  auto x = tv::tensor<double>({1, 2}).requires_grad_();
  auto y = x * 2.0;
  y.backward(tv::tensor<double>({10, 100}));
  CHECK(x.grad().to_vector() == std::vector<double>{20, 200});
  auto y2 = x * 2.0;
  CHECK_THROWS_WITH_AS(y2.backward(), doctest::Contains("implied only for a one-element tensor, got shape [2]"), tv::Error);
  CHECK_THROWS_WITH_AS(y2.backward(tv::ones<double>({3})), doctest::Contains("gradient of shape [3] given for a tensor of shape [2]"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(tv::sum(tv::ones<double>({2})).backward(), doctest::Contains("does not require grad"), tv::Error);
}

TEST_CASE("the graph is freed after backward unless retained") {
  auto x = tv::tensor<double>({1, 2}).requires_grad_();
  auto y = tv::sum(tv::exp(x));
  y.backward(Tensor<double>(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().at({0}) == doctest::Approx(2 * std::exp(1.0)));
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("backward through a graph a second time"), tv::Error);
}

TEST_CASE("NoGradGuard records nothing, nests, and is per thread") {
  auto x = tv::ones<float>({2}).requires_grad_();
  {
    tv::NoGradGuard guard;
    CHECK(!(x * 2.0f).requires_grad());
    {
      tv::NoGradGuard inner;
      CHECK(!tv::is_grad_enabled());
    }
    CHECK(!tv::is_grad_enabled());
    bool other_thread_enabled = false;
    std::thread([&] { other_thread_enabled = tv::is_grad_enabled(); }).join();
    CHECK(other_thread_enabled);
    x.mul_(3.0f);  // allowed: no grad mode, as in an optimizer step
  }
  CHECK(tv::is_grad_enabled());
  CHECK((x * 2.0f).requires_grad());
  CHECK_THROWS_WITH_AS(x.mul_(2.0f), doctest::Contains("in-place write to a tensor that requires grad"), tv::Error);
}

TEST_CASE("detach stops gradients; leaves and non-leaves") {
  auto x = tv::tensor<double>({3}).requires_grad_();
  auto y = x * x;
  CHECK(x.is_leaf());
  CHECK(!y.is_leaf());
  auto z = tv::sum(y.detach() * x);  // dz/dx = y = 9, not 3 x^2 = 27
  z.backward();
  CHECK(x.grad().item() == 9);
  CHECK_THROWS_WITH_AS(y.requires_grad_(false), doctest::Contains("only leaf tensors"), tv::Error);
  CHECK_THROWS_AS(tv::zeros<int64_t>({2}).requires_grad_(), tv::Error);
}

TEST_CASE("gradients flow through views into their base") {
  auto x = tv::arange<double>(12).reshape({3, 4}).detach().requires_grad_();
  auto v = x.t().narrow(0, 1, 2).select(1, 2);  // x[2, 1:3]
  tv::sum(v * tv::tensor<double>({10, 20})).backward();
  std::vector<double> expect(12, 0.0);
  expect[2 * 4 + 1] = 10;
  expect[2 * 4 + 2] = 20;
  CHECK(x.grad().to_vector() == expect);
}

TEST_CASE("a tensor modified in place after being saved is an error, not a wrong gradient") {
  auto w = tv::tensor<double>({1, 2}).requires_grad_();
  auto a = tv::tensor<double>({3, 4});
  auto y = tv::sum(w * a);  // saves a
  a.mul_(2.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("modified in place"), tv::Error);
}

TEST_CASE("a deep graph does not overflow the stack") {
  auto x = tv::scalar_tensor<double>(0).requires_grad_();
  auto y = x;
  for (int i = 0; i < 100000; ++i) y = y + 1.0;
  y.backward();
  CHECK(x.grad().item() == 1);
  y = Tensor<double>();  // destroying a long chain of nodes must not overflow either
}

TEST_CASE("a leaf's .grad never aliases another tensor's memory") {
  auto a = tv::ones<double>({3}).requires_grad_();
  auto b = tv::ones<double>({3}).requires_grad_();
  tv::sum(a + b).backward();  // add's backward hands the same gradient to both
  CHECK(a.grad().storage() != b.grad().storage());
  a.grad().fill_(5);
  CHECK(b.grad().at({0}) == 1);
}

// An op whose backward may add its gradient (all ones) into the input's gradient the engine has gathered so far.
namespace {
struct Offered {
  bool defined = false;
  std::vector<double> values;
};
Tensor<double> probe(const Tensor<double>& x, bool add_in, Offered& seen) {
  Tensor<double> result;
  {
    tv::NoGradGuard no_grad;
    result = x * 1.0;
  }
  tv::autograd::record(result, "ProbeBackward", {x}, [add_in, &seen](const Tensor<double>& g, const auto& n) {
    Tensor<double> sum = n.gathered_gradient(0);
    seen.defined = sum.defined();
    if (sum.defined()) seen.values = sum.to_vector();
    if (add_in && sum.defined()) {
      const Tensor<double> gc = g.contiguous();  // (sum's gradient is one value, expanded)
      for (int64_t i = 0; i < sum.numel(); ++i) sum.data()[i] += gc.data()[i];
      return std::vector<Tensor<double>>{sum};
    }
    return std::vector<Tensor<double>>{g.clone()};
  });
  return result;
}
}  // namespace

TEST_CASE("a backward is offered the input's gradient gathered so far where only the engine holds it") {
  for (bool add_in : {false, true}) {
    CAPTURE(add_in);
    auto x = tv::tensor<double>({1, 2, 3}).requires_grad_();
    Offered seen;
    // x * 2's backward (run first: the later consumer's node is taken first) gives x a gradient of its own, 2s.
    tv::sum(probe(x, add_in, seen) + x * 2.0).backward();
    CHECK(seen.defined);
    CHECK(seen.values == std::vector<double>{2, 2, 2});
    CHECK(x.grad().to_vector() == std::vector<double>{3, 3, 3});  // added by the op or by the engine, once
  }
  // add's backward hands one tensor to both inputs: not the engine's alone, so not offered.
  auto x = tv::tensor<double>({1, 2}).requires_grad_();
  Offered seen;
  auto y = x * 1.0;
  tv::sum(probe(y, true, seen) + y).backward();
  CHECK_FALSE(seen.defined);
  CHECK(x.grad().to_vector() == std::vector<double>{2, 2});
}

TEST_CASE("a backward that throws leaves no gradient offered to its node") {
  auto x = tv::tensor<double>({1, 2}).requires_grad_();
  Tensor<double> thrown;
  {
    tv::NoGradGuard no_grad;
    thrown = x * 1.0;
  }
  tv::autograd::record(thrown, "ThrowingBackward", {x}, [](const Tensor<double>&, const auto& n) -> std::vector<Tensor<double>> {
    CHECK(n.gathered_gradient(0).defined());  // x * 2's gradient, offered
    throw tv::Error("backward failed on purpose");
  });
  CHECK_THROWS_AS(tv::sum(thrown + x * 2.0).backward(), tv::Error);
  CHECK(thrown.impl()->grad_fn->gathered.empty());
}

// A user's own op, written as tinyvid's ops are: forward, then autograd::record with its backward.
namespace {
Tensor<double> cube(const Tensor<double>& x, double wrong_factor) {
  Tensor<double> result;
  {
    tv::NoGradGuard no_grad;  // the forward records nothing; record() below adds the one node
    result = x * x * x;
  }
  tv::autograd::record(result, "CubeBackward", {x},
                       [sx = tv::autograd::Saved<double>(x), wrong_factor](const Tensor<double>& g, const auto&) {
                         auto xv = sx.get("cube");
                         return std::vector<Tensor<double>>{g * xv * xv * (3.0 * wrong_factor)};
                       });
  return result;
}
}  // namespace

TEST_CASE("gradcheck accepts a right gradient and pinpoints a wrong one") {
  tv::Generator gen(1);
  auto x = tv::normal<double>({2, 3}, 0, 1, gen).requires_grad_();
  auto right = tv::gradcheck([](const auto& in) { return cube(in[0], 1.0); }, {x});
  CHECK(right);
  auto wrong = tv::gradcheck([](const auto& in) { return cube(in[0], 1.01); }, {x});
  CHECK(!wrong);
  CHECK(wrong.message.find("input 0 (shape [2, 3]), element [0, 0], output element [0, 0]") != std::string::npos);
  CHECK_THROWS_WITH_AS(tv::gradcheck([](const auto& in) { return in[0] * 2.0; }, {x.detach()}),
                       doctest::Contains("no input requires grad"), tv::Error);
}
