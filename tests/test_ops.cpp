// Every differentiable op as a row of one table, driving generic checks: gradcheck in double on
// contiguous inputs, the same on non-contiguous copies (permuted or strided) with the forward
// unchanged, and for elementwise ops the forward against a scalar reference.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <tinyvid/tinyvid.hpp>

using tv::Shape;
using tv::Tensor;
using Inputs = std::vector<Tensor<double>>;

namespace {

// Where an op's inputs are drawn from: away from kinks and poles, so finite differences hold.
enum class Domain { Any, Positive, AwayFromZero };

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  std::function<Tensor<double>(const Inputs&)> fn;
  std::vector<Domain> domains = {};  // per input; Any when missing
  std::function<double(double)> ref1 = nullptr;          // scalar reference for unary ops
  std::function<double(double, double)> ref2 = nullptr;  // and for binary ones
};

Tensor<double> draw(const Shape& shape, Domain d, tv::Generator& gen) {
  auto t = tv::normal<double>(shape, 0, 1, gen);
  double* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (d == Domain::Positive) p[i] = 0.5 + std::abs(p[i]);
    if (d == Domain::AwayFromZero) p[i] = (p[i] < 0 ? -1 : 1) * (0.3 + std::abs(p[i]));
  }
  return t;
}

// The same values in a non-contiguous layout: a transposed copy transposed back where that
// changes the layout, else every other element along the last dim longer than 1.
Tensor<double> non_contiguous(const Tensor<double>& x) {
  tv::NoGradGuard no_grad;
  if (x.dim() >= 2) {
    auto t = x.transpose(0, -1).contiguous().transpose(0, -1);
    if (!t.is_contiguous()) return t;
  }
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    if (x.size(d) < 2) continue;
    Shape wide = x.shape();
    wide[d] *= 2;
    auto strided = tv::zeros<double>(wide).slice(d, 0, wide[d], 2);
    strided.copy_(x);
    return strided;
  }
  return x.clone();
}

// Keep away from the kinks of abs, relu and clamp(-0.5, 0.5).
double away_from_kinks(double v) {
  for (double k : {-0.5, 0.0, 0.5})
    if (std::abs(v - k) < 0.05) v = k + 0.1;
  return v;
}

std::vector<OpCase> op_cases() {
  using D = Domain;
  std::vector<OpCase> c;
  // unary
  c.push_back({"neg", {{3, 4}}, [](const Inputs& x) { return tv::neg(x[0]); }, {}, [](double a) { return -a; }});
  c.push_back({"exp", {{3, 4}}, [](const Inputs& x) { return tv::exp(x[0]); }, {}, [](double a) { return std::exp(a); }});
  c.push_back({"log", {{3, 4}}, [](const Inputs& x) { return tv::log(x[0]); }, {D::Positive}, [](double a) { return std::log(a); }});
  c.push_back({"sqrt", {{3, 4}}, [](const Inputs& x) { return tv::sqrt(x[0]); }, {D::Positive}, [](double a) { return std::sqrt(a); }});
  c.push_back({"abs", {{3, 4}}, [](const Inputs& x) { return tv::abs(x[0]); }, {D::AwayFromZero}, [](double a) { return std::abs(a); }});
  c.push_back({"relu", {{3, 4}}, [](const Inputs& x) { return tv::relu(x[0]); }, {D::AwayFromZero}, [](double a) { return a > 0 ? a : 0; }});
  c.push_back({"sigmoid", {{3, 4}}, [](const Inputs& x) { return tv::sigmoid(x[0]); }, {}, [](double a) { return 1 / (1 + std::exp(-a)); }});
  c.push_back({"tanh", {{3, 4}}, [](const Inputs& x) { return tv::tanh(x[0]); }, {}, [](double a) { return std::tanh(a); }});
  c.push_back({"clamp", {{4, 5}}, [](const Inputs& x) { return tv::clamp(x[0], -0.5, 0.5); }, {}, [](double a) { return std::clamp(a, -0.5, 0.5); }});
  c.push_back({"pow_scalar_int", {{3, 4}}, [](const Inputs& x) { return tv::pow(x[0], 3.0); }, {}, [](double a) { return a * a * a; }});
  c.push_back({"pow_scalar_frac", {{3, 4}}, [](const Inputs& x) { return tv::pow(x[0], 2.5); }, {D::Positive}, [](double a) { return std::pow(a, 2.5); }});
  c.push_back({"add_scalar", {{3, 4}}, [](const Inputs& x) { return x[0] + 2.0; }, {}, [](double a) { return a + 2; }});
  c.push_back({"sub_scalar", {{3, 4}}, [](const Inputs& x) { return x[0] - 2.0; }, {}, [](double a) { return a - 2; }});
  c.push_back({"scalar_sub", {{3, 4}}, [](const Inputs& x) { return 2.0 - x[0]; }, {}, [](double a) { return 2 - a; }});
  c.push_back({"mul_scalar", {{3, 4}}, [](const Inputs& x) { return x[0] * -1.5; }, {}, [](double a) { return a * -1.5; }});
  c.push_back({"div_scalar", {{3, 4}}, [](const Inputs& x) { return x[0] / 4.0; }, {}, [](double a) { return a / 4; }});
  c.push_back({"scalar_div", {{3, 4}}, [](const Inputs& x) { return 2.0 / x[0]; }, {D::AwayFromZero}, [](double a) { return 2 / a; }});
  // binary, with broadcasting variants
  const std::vector<std::pair<std::string, std::vector<Shape>>> bshapes = {
      {"same", {{3, 4}, {3, 4}}}, {"row", {{3, 4}, {4}}}, {"col_3d", {{2, 1, 4}, {3, 1}}}, {"scalar", {{}, {3}}}};
  for (const auto& [tag, shapes] : bshapes) {
    c.push_back({"add_" + tag, shapes, [](const Inputs& x) { return x[0] + x[1]; }, {}, nullptr, [](double a, double b) { return a + b; }});
    c.push_back({"sub_" + tag, shapes, [](const Inputs& x) { return x[0] - x[1]; }, {}, nullptr, [](double a, double b) { return a - b; }});
    c.push_back({"mul_" + tag, shapes, [](const Inputs& x) { return x[0] * x[1]; }, {}, nullptr, [](double a, double b) { return a * b; }});
    c.push_back({"div_" + tag, shapes, [](const Inputs& x) { return x[0] / x[1]; }, {D::Any, D::AwayFromZero}, nullptr,
                 [](double a, double b) { return a / b; }});
    c.push_back({"pow_" + tag, shapes, [](const Inputs& x) { return tv::pow(x[0], x[1]); }, {D::Positive, D::Any}, nullptr,
                 [](double a, double b) { return std::pow(a, b); }});
  }
  // reductions
  c.push_back({"sum_all", {{3, 4}}, [](const Inputs& x) { return tv::sum(x[0]); }});
  c.push_back({"sum_dim", {{3, 4, 2}}, [](const Inputs& x) { return tv::sum(x[0], {1}); }});
  c.push_back({"sum_dims_keepdim", {{3, 4, 2}}, [](const Inputs& x) { return tv::sum(x[0], {0, 2}, true); }});
  c.push_back({"sum_neg_dim", {{3, 4, 2}}, [](const Inputs& x) { return tv::sum(x[0], {-1}); }});
  c.push_back({"mean_all", {{3, 4}}, [](const Inputs& x) { return tv::mean(x[0]); }});
  c.push_back({"mean_dims", {{2, 3, 4}}, [](const Inputs& x) { return tv::mean(x[0], {0, 2}); }});
  c.push_back({"var_unbiased", {{3, 5}}, [](const Inputs& x) { return tv::var(x[0], {1}); }});
  c.push_back({"var_biased_keepdim", {{2, 3, 4}}, [](const Inputs& x) { return tv::var(x[0], {0, 2}, false, true); }});
  c.push_back({"var_all", {{2, 3}}, [](const Inputs& x) { return tv::var(x[0]); }});
  c.push_back({"max_dim", {{3, 5}}, [](const Inputs& x) { return tv::max(x[0], 1).values; }});
  c.push_back({"max_dim0_keepdim", {{3, 5}}, [](const Inputs& x) { return tv::max(x[0], 0, true).values; }});
  c.push_back({"max_all", {{3, 5}}, [](const Inputs& x) { return tv::max(x[0]); }});
  // matmul
  c.push_back({"matmul_2d", {{3, 4}, {4, 5}}, [](const Inputs& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_batched", {{2, 3, 4}, {2, 4, 5}}, [](const Inputs& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_broadcast", {{2, 1, 3, 4}, {3, 4, 2}}, [](const Inputs& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_vec_mat", {{4}, {4, 5}}, [](const Inputs& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_mat_vec", {{3, 4}, {4}}, [](const Inputs& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_dot", {{4}, {4}}, [](const Inputs& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_transposed", {{4, 3}, {5, 4}}, [](const Inputs& x) { return tv::matmul(x[0].t(), x[1].t()); }});
  // views (multiplied by a weight so the gradient is not all ones)
  auto w = [](const Tensor<double>& v) { return v * tv::arange<double>(1, 1 + v.numel()).reshape(v.shape()); };
  c.push_back({"reshape", {{3, 4}}, [w](const Inputs& x) { return w(x[0].reshape({2, 6})); }});
  c.push_back({"view", {{3, 4}}, [w](const Inputs& x) { return w(x[0].contiguous().view({4, -1})); }});
  c.push_back({"flatten", {{2, 3, 2}}, [w](const Inputs& x) { return w(x[0].flatten(1)); }});
  c.push_back({"permute", {{2, 3, 4}}, [w](const Inputs& x) { return w(x[0].permute({2, 0, 1})); }});
  c.push_back({"transpose", {{2, 3, 4}}, [w](const Inputs& x) { return w(x[0].transpose(0, 2)); }});
  c.push_back({"narrow", {{4, 5}}, [w](const Inputs& x) { return w(x[0].narrow(1, 1, 3)); }});
  c.push_back({"slice_step", {{4, 7}}, [w](const Inputs& x) { return w(x[0].slice(1, 1, 7, 2)); }});
  c.push_back({"select", {{3, 4}}, [w](const Inputs& x) { return w(x[0].select(0, 1)); }});
  c.push_back({"unsqueeze_squeeze", {{3, 4}}, [w](const Inputs& x) { return w(x[0].unsqueeze(1).squeeze(1)); }});
  c.push_back({"expand", {{3, 1}}, [w](const Inputs& x) { return w(x[0].expand({2, 3, 4})); }});
  c.push_back({"contiguous", {{3, 4}}, [w](const Inputs& x) { return w(x[0].t().contiguous()); }});
  c.push_back({"clone", {{3, 4}}, [w](const Inputs& x) { return w(x[0].clone()); }});
  // join and split
  c.push_back({"cat_dim0", {{2, 3}, {4, 3}}, [w](const Inputs& x) { return w(tv::cat(x, 0)); }});
  c.push_back({"cat_dim1", {{2, 3}, {2, 1}, {2, 2}}, [w](const Inputs& x) { return w(tv::cat(x, 1)); }});
  c.push_back({"stack", {{2, 3}, {2, 3}}, [w](const Inputs& x) { return w(tv::stack(x, 1)); }});
  c.push_back({"split", {{5, 3}}, [w](const Inputs& x) {
                 auto p = tv::split(x[0], 2, 0);  // sizes 2, 2, 1
                 return w(p[0]) + tv::sum(w(p[2]));
               }});
  c.push_back({"chunk", {{3, 6}}, [w](const Inputs& x) {
                 auto p = tv::chunk(x[0], 3, 1);
                 return w(p[1]) * p[2];
               }});
  // indexing
  c.push_back({"gather", {{3, 4}}, [w](const Inputs& x) {
                 // [[0, 3, 2], [0, 1, 2]], non-contiguous; a repeated index accumulates in backward
                 auto idx = tv::tensor<int64_t>({0, 0, 3, 1, 2, 2}, {3, 2}).t();
                 return w(tv::gather(x[0].t(), 0, idx));
               }});
  for (int64_t steps : {1, -1, 2, -5})
    c.push_back({"shift_" + std::to_string(steps), {{2, 4, 3}}, [w, steps](const Inputs& x) { return w(tv::shift(x[0], 1, steps)); }});
  return c;
}

}  // namespace

TEST_CASE("every op: gradcheck in double, contiguous and not, forward against a reference") {
  for (const auto& op : op_cases()) {
    SUBCASE(op.name.c_str()) {
      tv::Generator gen(42);
      Inputs xs;
      for (size_t i = 0; i < op.shapes.size(); ++i) {
        Domain d = i < op.domains.size() ? op.domains[i] : Domain::Any;
        auto t = draw(op.shapes[i], d, gen);
        if (op.name == "abs" || op.name == "relu" || op.name == "clamp")
          for (int64_t k = 0; k < t.numel(); ++k) t.data()[k] = away_from_kinks(t.data()[k]);
        xs.push_back(t.requires_grad_());
      }
      auto ok = tv::gradcheck(op.fn, xs);
      CHECK_MESSAGE(ok, ok.message);

      Inputs nc;
      for (const auto& x : xs) nc.push_back(non_contiguous(x.detach()).requires_grad_());
      for (size_t i = 0; i < xs.size(); ++i)
        if (xs[i].numel() > 1) CHECK(!nc[i].is_contiguous());
      auto ok_nc = tv::gradcheck(op.fn, nc);
      CHECK_MESSAGE(ok_nc, ok_nc.message);
      {
        tv::NoGradGuard no_grad;
        auto a = op.fn(xs).to_vector(), b = op.fn(nc).to_vector();  // summation order may differ
        REQUIRE(a.size() == b.size());
        for (size_t k = 0; k < a.size(); ++k) CHECK(a[k] == doctest::Approx(b[k]).epsilon(1e-12));
      }

      if (op.ref1 || op.ref2) {
        tv::NoGradGuard no_grad;
        auto out = op.fn(xs);
        Shape shape = xs.size() == 1 ? xs[0].shape() : tv::broadcast_shapes(xs[0].shape(), xs[1].shape(), "test");
        REQUIRE(out.shape() == shape);
        auto a = xs[0].expand(shape).contiguous().to_vector();
        auto b = xs.size() > 1 ? xs[1].expand(shape).contiguous().to_vector() : a;
        auto o = out.to_vector();
        for (size_t k = 0; k < o.size(); ++k)
          CHECK(o[k] == doctest::Approx(op.ref1 ? op.ref1(a[k]) : op.ref2(a[k], b[k])).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("reductions: values") {
  auto x = tv::tensor<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(tv::sum(x).item() == 21);
  CHECK(tv::sum(x, {0}).to_vector() == std::vector<double>{5, 7, 9});
  CHECK(tv::sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(tv::mean(x, {1}).to_vector() == std::vector<double>{2, 5});
  CHECK(tv::var(x, {1}).to_vector() == std::vector<double>{1, 1});
  CHECK(tv::var(x, {1}, false).to_vector()[0] == doctest::Approx(2.0 / 3));
  CHECK(tv::var(x).item() == doctest::Approx(3.5));
  auto [values, indices] = tv::max(tv::tensor<double>({3, 9, 9, -1, 0, -2}, {2, 3}), 1);
  CHECK(values.to_vector() == std::vector<double>{9, 0});
  CHECK(indices.to_vector() == std::vector<int64_t>{1, 1});  // the first maximum
  CHECK(tv::argmax(tv::tensor<float>({1, NAN, 3}), 0).item() == 1);  // NaN propagates
  CHECK(tv::sum(tv::zeros<float>({0, 3}), {0}).to_vector() == std::vector<float>{0, 0, 0});
  // float sums accumulate in double: 1e7 ones plus small values stay exact
  auto big = tv::ones<float>({10000000});
  CHECK(tv::sum(big).item() == 10000000.0f);
  CHECK(tv::sum(big.reshape({1000, 10000}), {0}).to_vector()[17] == 1000.0f);
  CHECK(tv::mean(tv::full<float>({4000, 3}, 0.1f), {0}).to_vector()[2] == doctest::Approx(0.1f).epsilon(1e-7));
}

TEST_CASE("matmul: values, float, large and transposed operands") {
  auto a = tv::tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto b = tv::tensor<float>({7, 8, 9, 10, 11, 12}, {3, 2});
  CHECK(tv::matmul(a, b).to_vector() == std::vector<float>{58, 64, 139, 154});
  CHECK(tv::matmul(a.t(), a).shape() == Shape{3, 3});
  CHECK(tv::matmul(a.t(), a).at({2, 1}) == 3 * 2 + 6 * 5);
  // A product large enough for the threaded GEMM, against a naive double loop.
  tv::Generator g(3);
  auto x = tv::normal<float>({130, 257}, 0, 1, g), y = tv::normal<float>({257, 190}, 0, 1, g);
  auto z = tv::matmul(x, y);
  for (int64_t i = 0; i < 130; i += 43)
    for (int64_t j = 0; j < 190; j += 37) {
      double ref = 0;
      for (int64_t k = 0; k < 257; ++k) ref += double(x.at({i, k})) * y.at({k, j});
      CHECK(z.at({i, j}) == doctest::Approx(ref).epsilon(1e-4));
    }
  // An expanded (zero-stride) operand is copied, not misread.
  auto e = tv::tensor<float>({1, 2}, {2, 1}).expand({2, 3});
  CHECK(tv::matmul(e, tv::ones<float>({3, 1})).to_vector() == std::vector<float>{3, 6});
}

TEST_CASE("gather, shift, cat and split: values") {
  auto x = tv::tensor<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto idx = tv::tensor<int64_t>({2, 0, 1, 1}, {2, 2});
  CHECK(tv::gather(x, 1, idx).to_vector() == std::vector<double>{3, 1, 5, 5});
  CHECK(tv::shift(x, 1, 1).to_vector() == std::vector<double>{0, 1, 2, 0, 4, 5});
  CHECK(tv::shift(x, 1, -1).to_vector() == std::vector<double>{2, 3, 0, 5, 6, 0});
  CHECK(tv::shift(x, 0, 3).to_vector() == std::vector<double>(6, 0.0));
  CHECK(tv::cat<double>({x, x}, 1).shape() == Shape{2, 6});
  CHECK(tv::cat<double>({x, x}, 1).at({1, 4}) == 5);
  CHECK(tv::stack<double>({x, x}, 0).shape() == Shape{2, 2, 3});
  auto parts = tv::chunk(tv::arange<double>(7), 3);
  REQUIRE(parts.size() == 3);
  CHECK(parts[2].to_vector() == std::vector<double>{6});
  parts[0].fill_(-1);  // splits are views
}

TEST_CASE("float and double give the same results") {
  tv::Generator g(9);
  auto xd = tv::normal<double>({5, 6}, 0, 1, g);
  Tensor<float> xf = Tensor<float>::empty(xd.shape());
  for (int64_t i = 0; i < xd.numel(); ++i) xf.data()[i] = static_cast<float>(xd.data()[i]);
  auto fd = tv::sum(tv::sigmoid(xd) * tv::tanh(xd), {1});
  auto ff = tv::sum(tv::sigmoid(xf) * tv::tanh(xf), {1});
  for (int64_t i = 0; i < 5; ++i) CHECK(ff.at({i}) == doctest::Approx(fd.at({i})).epsilon(1e-5));
}
