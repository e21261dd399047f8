// Every differentiable op as a row of one table (the backend table, after ggml's test-backend-ops), driving
// generic checks:
// - on the CPU in double: gradcheck on contiguous inputs, the same on non-contiguous copies (permuted or
//   strided) with the forward unchanged, and for elementwise ops the forward against a scalar reference;
// - on every backend (the CPU always, CUDA when this build has it), in float and in double: the forward and
//   the inputs' gradients for a fixed random upstream gradient, against the CPU in double.
// Each case is written once, as a generic lambda over the element type; the table keeps its float and its
// double instantiation. The table comes first; the generic checks follow it; a few checks that do not fit a
// row of tensors in, tensor out (dropout's mask, an SGD step, the DNR modules) close the file.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>
#include <tinyvid/tinyvid.hpp>
#include <type_traits>

using tv::Device;
using tv::Shape;
using tv::Tensor;
using Inputs = std::vector<Tensor<double>>;

namespace {

// Where an op's inputs are drawn from: away from kinks and poles, so finite differences hold.
enum class Domain { Any, Positive, AwayFromZero };

template <class T>
using CaseFn = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

// A case's function, written once as a generic lambda and kept in both element types.
struct Generic {
  CaseFn<float> f32;
  CaseFn<double> f64;
  template <class F>
  Generic(F f) : f32(f), f64(f) {}  // NOLINT: implicit, so a table row takes the lambda as it is
  template <class T>
  const CaseFn<T>& get() const {
    if constexpr (std::is_same_v<T, float>) return f32;
    else return f64;
  }
};

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  Generic fn;
  std::vector<Domain> domains = {};                      // per input; Any when missing
  std::function<double(double)> ref1 = nullptr;          // scalar reference for unary ops
  std::function<double(double, double)> ref2 = nullptr;  // and for binary ones
  double tol = 1;          // multiplies the backend comparison's tolerances (long sums, Winograd's transforms)
  // false where the output also holds values no gradient flows to (running statistics), or where finite
  // differences cost too much and test_nn_ops.cpp checks the gradients another way (Winograd: the direct sum)
  bool gradcheck = true;

  OpCase without_gradcheck() && {
    gradcheck = false;
    return std::move(*this);
  }
};

// The element type of a case's inputs (std::vector<Tensor<T>>) and of a tensor.
template <class Xs>
using elem_t = typename std::remove_cvref_t<Xs>::value_type::value_type;
template <class X>
using tensor_elem_t = typename std::remove_cvref_t<X>::value_type;

// A constant made on the host, moved to the device of the case's inputs (a case runs on any backend).
template <class T, class U>
Tensor<U> on_device_of(const std::vector<Tensor<T>>& x, const Tensor<U>& host) {
  return host.to(x[0].device());
}

// conv2d's rows, one or more per algorithm of backend/cpu/conv.hpp; a test below checks that
// choose_conv_algorithm picks `algorithm` for each.
struct ConvCase {
  std::string name;
  Shape x, w;
  tv::Pair stride, padding, dilation;
  int64_t groups;
  bool bias;
  tv::cpu::ConvAlgorithm algorithm;
  double tol = 1;
  bool gradcheck = true;
};

std::vector<ConvCase> conv_cases() {
  using A = tv::cpu::ConvAlgorithm;
  return {
      {"1x1", {2, 4, 3, 5}, {6, 4, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true, A::Gemm1x1},
      // Winograd needs 16 channels at least: a gradcheck in double would take a minute, so it has none here
      // (test_nn_ops.cpp checks Winograd's gradients against the direct sum)
      {"3x3_winograd", {2, 16, 6, 5}, {16, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true, A::Winograd3x3, 2, false},
      {"3x3_shifted", {1, 3, 5, 14}, {4, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false, A::ShiftedGemm},
      {"3x3_stride2_shifted", {1, 2, 5, 28}, {3, 2, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true, A::ShiftedGemm},
      {"3x3_stride2_im2col", {2, 3, 7, 7}, {4, 3, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true, A::Im2colGemm},
      {"1x1_stride2", {1, 4, 5, 5}, {3, 4, 1, 1}, {2, 2}, {0, 0}, {1, 1}, 1, false, A::Im2colGemm},
      {"3x3_small_map", {1, 3, 6, 6}, {2, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true, A::Im2colGemm},
      {"dilated", {1, 4, 7, 6}, {5, 4, 3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, true, A::Im2colGemm},
      {"grouped_dilated", {1, 4, 7, 6}, {6, 2, 3, 2}, {1, 2}, {2, 1}, {2, 1}, 2, true, A::Im2colGemm},
      {"depthwise", {2, 3, 5, 5}, {3, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 3, false, A::Im2colGemm},
      // more images than groups and groups of a pointwise conv: the CUDA backend batches its products both ways
      {"1x1_grouped", {3, 4, 3, 5}, {6, 2, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 2, true, A::Gemm1x1},
  };
}

// ======================================== the table ========================================
std::vector<OpCase> op_cases() {
  using D = Domain;
  std::vector<OpCase> c;
  // unary
  c.push_back({"neg", {{3, 4}}, [](const auto& x) { return tv::neg(x[0]); }, {}, [](double a) { return -a; }});
  c.push_back({"exp", {{3, 4}}, [](const auto& x) { return tv::exp(x[0]); }, {}, [](double a) { return std::exp(a); }});
  c.push_back({"log", {{3, 4}}, [](const auto& x) { return tv::log(x[0]); }, {D::Positive}, [](double a) { return std::log(a); }});
  c.push_back({"sqrt", {{3, 4}}, [](const auto& x) { return tv::sqrt(x[0]); }, {D::Positive}, [](double a) { return std::sqrt(a); }});
  c.push_back({"abs", {{3, 4}}, [](const auto& x) { return tv::abs(x[0]); }, {D::AwayFromZero}, [](double a) { return std::abs(a); }});
  c.push_back({"relu", {{3, 4}}, [](const auto& x) { return tv::relu(x[0]); }, {D::AwayFromZero}, [](double a) { return a > 0 ? a : 0; }});
  c.push_back({"sigmoid", {{3, 4}}, [](const auto& x) { return tv::sigmoid(x[0]); }, {}, [](double a) { return 1 / (1 + std::exp(-a)); }});
  c.push_back({"tanh", {{3, 4}}, [](const auto& x) { return tv::tanh(x[0]); }, {}, [](double a) { return std::tanh(a); }});
  c.push_back({"clamp", {{4, 5}}, [](const auto& x) { return tv::clamp(x[0], -0.5, 0.5); }, {}, [](double a) { return std::clamp(a, -0.5, 0.5); }});
  c.push_back({"pow_scalar_int", {{3, 4}}, [](const auto& x) { return tv::pow(x[0], 3.0); }, {}, [](double a) { return a * a * a; }});
  c.push_back({"pow_scalar_frac", {{3, 4}}, [](const auto& x) { return tv::pow(x[0], 2.5); }, {D::Positive}, [](double a) { return std::pow(a, 2.5); }});
  c.push_back({"add_scalar", {{3, 4}}, [](const auto& x) { return x[0] + 2.0; }, {}, [](double a) { return a + 2; }});
  c.push_back({"sub_scalar", {{3, 4}}, [](const auto& x) { return x[0] - 2.0; }, {}, [](double a) { return a - 2; }});
  c.push_back({"scalar_sub", {{3, 4}}, [](const auto& x) { return 2.0 - x[0]; }, {}, [](double a) { return 2 - a; }});
  c.push_back({"mul_scalar", {{3, 4}}, [](const auto& x) { return x[0] * -1.5; }, {}, [](double a) { return a * -1.5; }});
  c.push_back({"div_scalar", {{3, 4}}, [](const auto& x) { return x[0] / 4.0; }, {}, [](double a) { return a / 4; }});
  c.push_back({"scalar_div", {{3, 4}}, [](const auto& x) { return 2.0 / x[0]; }, {D::AwayFromZero}, [](double a) { return 2 / a; }});
  // binary, with broadcasting variants
  const std::vector<std::pair<std::string, std::vector<Shape>>> bshapes = {
      {"same", {{3, 4}, {3, 4}}}, {"row", {{3, 4}, {4}}}, {"col_3d", {{2, 1, 4}, {3, 1}}}, {"scalar", {{}, {3}}}};
  for (const auto& [tag, shapes] : bshapes) {
    c.push_back({"add_" + tag, shapes, [](const auto& x) { return x[0] + x[1]; }, {}, nullptr, [](double a, double b) { return a + b; }});
    c.push_back({"sub_" + tag, shapes, [](const auto& x) { return x[0] - x[1]; }, {}, nullptr, [](double a, double b) { return a - b; }});
    c.push_back({"mul_" + tag, shapes, [](const auto& x) { return x[0] * x[1]; }, {}, nullptr, [](double a, double b) { return a * b; }});
    c.push_back({"div_" + tag, shapes, [](const auto& x) { return x[0] / x[1]; }, {D::Any, D::AwayFromZero}, nullptr,
                 [](double a, double b) { return a / b; }});
    c.push_back({"pow_" + tag, shapes, [](const auto& x) { return tv::pow(x[0], x[1]); }, {D::Positive, D::Any}, nullptr,
                 [](double a, double b) { return std::pow(a, b); }});
  }
  // reductions
  c.push_back({"sum_all", {{3, 4}}, [](const auto& x) { return tv::sum(x[0]); }});
  c.push_back({"sum_dim", {{3, 4, 2}}, [](const auto& x) { return tv::sum(x[0], {1}); }});
  c.push_back({"sum_dims_keepdim", {{3, 4, 2}}, [](const auto& x) { return tv::sum(x[0], {0, 2}, true); }});
  c.push_back({"sum_neg_dim", {{3, 4, 2}}, [](const auto& x) { return tv::sum(x[0], {-1}); }});
  // Long sums: a GPU cuts them into pieces (3 outputs of 5000 values), and 300000 values into enough pieces
  // that their partials are added in a second level of groups.
  c.push_back(OpCase{"sum_long_rows", {{3, 5000}}, [](const auto& x) { return tv::sum(x[0], {1}); }}.without_gradcheck());
  c.push_back(OpCase{"sum_long_all", {{300000}}, [](const auto& x) { return tv::sum(x[0]); }}.without_gradcheck());
  c.push_back({"mean_all", {{3, 4}}, [](const auto& x) { return tv::mean(x[0]); }});
  c.push_back({"mean_dims", {{2, 3, 4}}, [](const auto& x) { return tv::mean(x[0], {0, 2}); }});
  c.push_back({"var_unbiased", {{3, 5}}, [](const auto& x) { return tv::var(x[0], {1}); }});
  c.push_back({"var_biased_keepdim", {{2, 3, 4}}, [](const auto& x) { return tv::var(x[0], {0, 2}, false, true); }});
  c.push_back({"var_all", {{2, 3}}, [](const auto& x) { return tv::var(x[0]); }});
  c.push_back({"max_dim", {{3, 5}}, [](const auto& x) { return tv::max(x[0], 1).values; }});
  c.push_back({"max_dim0_keepdim", {{3, 5}}, [](const auto& x) { return tv::max(x[0], 0, true).values; }});
  c.push_back({"max_all", {{3, 5}}, [](const auto& x) { return tv::max(x[0]); }});
  // matmul and linear
  c.push_back({"matmul_2d", {{3, 4}, {4, 5}}, [](const auto& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_batched", {{2, 3, 4}, {2, 4, 5}}, [](const auto& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_broadcast", {{2, 1, 3, 4}, {3, 4, 2}}, [](const auto& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_vec_mat", {{4}, {4, 5}}, [](const auto& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_mat_vec", {{3, 4}, {4}}, [](const auto& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_dot", {{4}, {4}}, [](const auto& x) { return tv::matmul(x[0], x[1]); }});
  c.push_back({"matmul_transposed", {{4, 3}, {5, 4}}, [](const auto& x) { return tv::matmul(x[0].t(), x[1].t()); }});
  c.push_back({"linear", {{2, 3, 4}, {5, 4}, {5}}, [](const auto& x) { return tv::linear(x[0], x[1], x[2]); }});
  c.push_back({"linear_no_bias", {{3, 4}, {2, 4}}, [](const auto& x) { return tv::linear(x[0], x[1]); }});
  // views (multiplied by a weight so the gradient is not all ones)
  auto w = [](const auto& v) {
    using T = tensor_elem_t<decltype(v)>;
    return v * tv::arange<T>(1, 1 + v.numel()).reshape(v.shape()).to(v.device());
  };
  c.push_back({"reshape", {{3, 4}}, [w](const auto& x) { return w(x[0].reshape({2, 6})); }});
  c.push_back({"view", {{3, 4}}, [w](const auto& x) { return w(x[0].contiguous().view({4, -1})); }});
  c.push_back({"flatten", {{2, 3, 2}}, [w](const auto& x) { return w(x[0].flatten(1)); }});
  c.push_back({"permute", {{2, 3, 4}}, [w](const auto& x) { return w(x[0].permute({2, 0, 1})); }});
  c.push_back({"transpose", {{2, 3, 4}}, [w](const auto& x) { return w(x[0].transpose(0, 2)); }});
  c.push_back({"narrow", {{4, 5}}, [w](const auto& x) { return w(x[0].narrow(1, 1, 3)); }});
  c.push_back({"slice_step", {{4, 7}}, [w](const auto& x) { return w(x[0].slice(1, 1, 7, 2)); }});
  c.push_back({"select", {{3, 4}}, [w](const auto& x) { return w(x[0].select(0, 1)); }});
  c.push_back({"unsqueeze_squeeze", {{3, 4}}, [w](const auto& x) { return w(x[0].unsqueeze(1).squeeze(1)); }});
  c.push_back({"expand", {{3, 1}}, [w](const auto& x) { return w(x[0].expand({2, 3, 4})); }});
  c.push_back({"contiguous", {{3, 4}}, [w](const auto& x) { return w(x[0].t().contiguous()); }});
  c.push_back({"clone", {{3, 4}}, [w](const auto& x) { return w(x[0].clone()); }});
  // join and split
  c.push_back({"cat_dim0", {{2, 3}, {4, 3}}, [w](const auto& x) { return w(tv::cat(x, 0)); }});
  c.push_back({"cat_dim1", {{2, 3}, {2, 1}, {2, 2}}, [w](const auto& x) { return w(tv::cat(x, 1)); }});
  c.push_back({"stack", {{2, 3}, {2, 3}}, [w](const auto& x) { return w(tv::stack(x, 1)); }});
  c.push_back({"split", {{5, 3}}, [w](const auto& x) {
                 auto p = tv::split(x[0], 2, 0);  // sizes 2, 2, 1
                 return w(p[0]) + tv::sum(w(p[2]));
               }});
  c.push_back({"chunk", {{3, 6}}, [w](const auto& x) {
                 auto p = tv::chunk(x[0], 3, 1);
                 return w(p[1]) * p[2];
               }});
  // indexing
  c.push_back({"gather", {{3, 4}}, [w](const auto& x) {
                 // [[0, 3, 2], [0, 1, 2]], non-contiguous; a repeated index accumulates in backward
                 auto idx = on_device_of(x, tv::tensor<int64_t>({0, 0, 3, 1, 2, 2}, {3, 2})).t();
                 return w(tv::gather(x[0].t(), 0, idx));
               }});
  for (int64_t steps : {1, -1, 2, -5})
    c.push_back({"shift_" + std::to_string(steps), {{2, 4, 3}}, [w, steps](const auto& x) { return w(tv::shift(x[0], 1, steps)); }});
  // nearest upsampling: a whole-number enlargement (a broadcast) and a ratio float cannot hold (gathers)
  c.push_back({"upsample_nearest_x2", {{2, 3, 2, 3}}, [w](const auto& x) { return w(tv::upsample_nearest(x[0], 4, 6)); }});
  c.push_back({"upsample_nearest_3_to_7", {{1, 2, 3, 4}}, [w](const auto& x) { return w(tv::upsample_nearest(x[0], 7, 5)); }});
  // softmax
  c.push_back({"softmax_dim1", {{3, 5}}, [](const auto& x) { return tv::softmax(x[0], 1); }});
  c.push_back({"softmax_dim0_3d", {{4, 3, 2}}, [](const auto& x) { return tv::softmax(x[0], 0); }});
  c.push_back({"log_softmax_dim1", {{3, 5}}, [](const auto& x) { return tv::log_softmax(x[0], 1); }});
  c.push_back({"log_softmax_neg_dim_3d", {{2, 3, 4}}, [](const auto& x) { return tv::log_softmax(x[0], -2); }});
  // losses (ops/loss.hpp has cross_entropy, with label smoothing)
  c.push_back({"cross_entropy", {{4, 5}}, [](const auto& x) {
                 return tv::cross_entropy(x[0], on_device_of(x, tv::tensor<int64_t>({2, 0, 4, 1})));
               }});
  c.push_back({"cross_entropy_label_smoothing", {{4, 5}}, [](const auto& x) {
                 return tv::cross_entropy(x[0], on_device_of(x, tv::tensor<int64_t>({3, 3, 0, 1})), 0.1);
               }});
  // conv2d in each algorithm
  for (const ConvCase& cc : conv_cases()) {
    std::vector<Shape> shapes = {cc.x, cc.w};
    if (cc.bias) shapes.push_back({cc.w[0]});
    OpCase row{"conv2d_" + cc.name, shapes, [cc](const auto& x) {
                 using T = elem_t<decltype(x)>;
                 return tv::conv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor<T>(), cc.stride, cc.padding, cc.dilation,
                                   cc.groups);
               }};
    row.tol = cc.tol;
    row.gradcheck = cc.gradcheck;
    c.push_back(std::move(row));
  }
  // batch norm: training with batch statistics (the running statistics' update joins the output in the
  // *_running_stats rows, which gradcheck skips: finite differences would see the update, autograd does not),
  // statistics groups along dim 0, channels in dim 2 as DNR uses them, and eval with running statistics.
  auto bn_train = [](int64_t channel_dim, int64_t stats_group, bool affine, bool with_stats) {
    return [=](const auto& x) {
      using T = elem_t<decltype(x)>;
      const int64_t C = x[0].size(channel_dim);
      auto rm = on_device_of(x, tv::full<T>({C}, 0.2)), rv = on_device_of(x, tv::full<T>({C}, 1.5));
      auto y = tv::batch_norm(x[0], rm, rv, tv::BatchNormFuncOptions<T>().weight(affine ? x[1] : Tensor<T>()).bias(affine ? x[2] : Tensor<T>()).training(true).channel_dim(channel_dim).stats_group_clips(stats_group));
      return with_stats ? tv::cat<T>({y.flatten(), rm, rv}) : y;
    };
  };
  c.push_back({"batch_norm_train", {{4, 3, 2, 2}, {3}, {3}}, bn_train(1, 0, true, false)});
  c.push_back(OpCase{"batch_norm_train_running_stats", {{4, 3, 2, 2}, {3}, {3}}, bn_train(1, 0, true, true)}.without_gradcheck());
  c.push_back({"batch_norm_train_stats_groups", {{6, 3, 2, 2}, {3}, {3}}, bn_train(1, 4, true, false)});  // groups of 4, 2
  c.push_back(OpCase{"batch_norm_train_stats_groups_running_stats", {{6, 3, 2, 2}, {3}, {3}}, bn_train(1, 4, true, true)}
                  .without_gradcheck());
  // 3200 values a channel: a GPU sums the statistics in pieces, then the pieces in order
  c.push_back(OpCase{"batch_norm_train_long", {{2, 3, 40, 40}, {3}, {3}}, bn_train(1, 0, true, true)}.without_gradcheck());
  c.push_back({"batch_norm_train_channel_dim2_groups", {{4, 2, 3, 2, 2}}, bn_train(2, 2, false, false)});
  c.push_back({"batch_norm_eval", {{3, 4, 2, 3}, {4}, {4}}, [](const auto& x) {
                 using T = elem_t<decltype(x)>;
                 auto rm = on_device_of(x, tv::tensor<T>({0.1, -0.3, 0.5, 0.0})),
                      rv = on_device_of(x, tv::tensor<T>({0.8, 1.2, 2.0, 0.5}));
                 return tv::batch_norm(x[0], rm, rv, tv::BatchNormFuncOptions<T>().weight(x[1]).bias(x[2]));
               }});
  // batch norm with a residual and ReLU in its output pass (nn::conv_bn's training path), and eval with a residual
  auto bn_fused = [](bool training, int64_t stats_group, bool relu) {
    return [=](const auto& x) {
      using T = elem_t<decltype(x)>;
      const int64_t C = x[0].size(1);
      auto rm = on_device_of(x, tv::full<T>({C}, 0.2)), rv = on_device_of(x, tv::full<T>({C}, 1.5));
      return tv::batch_norm(x[0], rm, rv, tv::BatchNormFuncOptions<T>().weight(x[1]).bias(x[2]).training(training).stats_group_clips(stats_group).residual(x[3]).relu(relu));
    };
  };
  c.push_back({"batch_norm_train_add_relu", {{4, 3, 2, 2}, {3}, {3}, {4, 3, 2, 2}}, bn_fused(true, 0, true)});
  c.push_back({"batch_norm_train_add_relu_stats_groups", {{6, 3, 2, 2}, {3}, {3}, {6, 3, 2, 2}}, bn_fused(true, 4, true)});
  c.push_back({"batch_norm_eval_add", {{3, 4, 2, 3}, {4}, {4}, {3, 4, 2, 3}}, bn_fused(false, 0, false)});
  // ReLU with no residual (nn::conv_bn's training path for a bottleneck's first two batch norms)
  // (its backward recomputes the ReLU's mask from x: in training and evaluation, with groups, channels in dim 2)
  auto bn_relu = [](int64_t stats_group, bool training = true, int64_t channel_dim = 1) {
    return [=](const auto& x) {
      using T = elem_t<decltype(x)>;
      const int64_t C = x[0].size(channel_dim);
      auto rm = on_device_of(x, tv::full<T>({C}, 0.2)), rv = on_device_of(x, tv::full<T>({C}, 1.5));
      return tv::batch_norm(x[0], rm, rv, tv::BatchNormFuncOptions<T>().weight(x[1]).bias(x[2]).training(training).stats_group_clips(stats_group).channel_dim(channel_dim).relu(true));
    };
  };
  c.push_back({"batch_norm_train_relu", {{4, 3, 2, 2}, {3}, {3}}, bn_relu(0)});
  c.push_back({"batch_norm_train_relu_stats_groups", {{6, 3, 2, 2}, {3}, {3}}, bn_relu(4)});
  c.push_back({"batch_norm_eval_relu", {{3, 4, 2, 3}, {4}, {4}}, bn_relu(0, false)});
  c.push_back({"batch_norm_train_relu_channel_dim2_groups", {{4, 2, 3, 2, 2}, {3}, {3}}, bn_relu(2, true, 2)});
  // pools (2-D only: tinyvid has no 3-D pool)
  c.push_back({"max_pool2d", {{2, 3, 7, 6}}, [](const auto& x) { return tv::max_pool2d(x[0], tv::MaxPool2dOptions(3).stride(2).padding(1)); }});
  c.push_back({"max_pool2d_ceil", {{1, 2, 5, 5}}, [](const auto& x) { return tv::max_pool2d(x[0], tv::MaxPool2dOptions(2).ceil_mode(true)); }});
  c.push_back({"avg_pool2d", {{2, 3, 7, 6}}, [](const auto& x) { return tv::avg_pool2d(x[0], tv::AvgPool2dOptions(3).stride(2).padding(1)); }});
  c.push_back({"avg_pool2d_ceil_exclude_pad", {{1, 2, 6, 7}}, [](const auto& x) {
                 return tv::avg_pool2d(x[0], tv::AvgPool2dOptions({2, 3}).stride({1, 2}).padding(1).ceil_mode(true).count_include_pad(false));
               }});
  c.push_back({"adaptive_avg_pool2d", {{2, 2, 7, 5}}, [](const auto& x) { return tv::adaptive_avg_pool2d(x[0], tv::AdaptiveAvgPool2dOptions({3, 4})); }});
  c.push_back({"adaptive_avg_pool2d_global", {{2, 3, 4, 5}}, [](const auto& x) { return tv::adaptive_avg_pool2d(x[0], 1); }});
  // dropout: the mask comes from the seed inside the case, the same on every call and every backend
  c.push_back({"dropout", {{4, 5}}, [](const auto& x) {
                 tv::Generator gen(7);
                 return tv::dropout(x[0], 0.3, true, gen);
               }});
  // LSTM: the fused gates (tanh, and sigmoid as DNR's relay reads its state) and the whole cell
  c.push_back({"lstm_gates_tanh", {{3, 8}, {3, 2}}, [](const auto& x) { return tv::lstm_gates(x[0], x[1]); }});
  c.push_back({"lstm_gates_sigmoid", {{3, 8}, {3, 2}}, [](const auto& x) {
                 return tv::lstm_gates(x[0], x[1], tv::CellActivation::Sigmoid);
               }});
  c.push_back({"lstm_cell", {{3, 4}, {3, 2}, {3, 2}, {8, 4}, {8, 2}, {8}, {8}}, [](const auto& x) {
                 auto s = tv::lstm_cell(x[0], {x[1], x[2]}, x[3], x[4], x[5], x[6]);
                 return tv::cat(std::vector{s.h, s.c}, 1);
               }});
  // DNR's ops (dnr/): channel interlacing, the dynamic affine, and the relay cell's step written out
  // (bottleneck projections of the input and the hidden state into sigmoid-read LSTM gates). The norm
  // modules themselves are checked at the end of the file.
  c.push_back({"dnr_interlace", {{8, 16, 2, 2}}, [w](const auto& x) { return w(tv::dnr::interlace(x[0], 4)); }});
  c.push_back({"dnr_dynamic_affine", {{2, 4, 3, 2, 2}, {2, 2, 3}, {2, 2, 3}}, [](const auto& x) {
                 return tv::dnr::dynamic_affine(x[0], x[1], x[2]);
               }});
  // Long per-group sums (4 frames x 2 x 2000 values per channel): the scale and shift gradients are summed in
  // pieces on a GPU, then the pieces in order.
  c.push_back(OpCase{"dnr_dynamic_affine_long", {{1, 4, 2, 2000}, {1, 2, 2}, {1, 2, 2}}, [](const auto& x) {
                       return tv::dnr::dynamic_affine(x[0], x[1], x[2]);
                     }}.without_gradcheck());
  c.push_back({"dnr_relay_step", {{3, 4}, {3, 4}, {3, 4}, {2, 4}, {2}, {16, 2}, {16}, {2, 4}, {2}, {16, 2}, {16}},
               [](const auto& x) {
                 auto proj = [](const auto& v, const auto& w1, const auto& b1, const auto& w2, const auto& b2) {
                   return tv::linear(tv::relu(tv::linear(v, w1, b1)), w2, b2);
                 };
                 return tv::lstm_gates(tv::add(proj(x[0], x[3], x[4], x[5], x[6]), proj(x[1], x[7], x[8], x[9], x[10])),
                                       x[2], tv::CellActivation::Sigmoid);
               }});
  return c;
}

// ======================================== the generic checks ========================================

Tensor<double> draw(const Shape& shape, Domain d, tv::Generator& gen) {
  auto t = tv::normal<double>(shape, 0, 1, gen);
  double* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (d == Domain::Positive) p[i] = 0.5 + std::abs(p[i]);
    if (d == Domain::AwayFromZero) p[i] = (p[i] < 0 ? -1 : 1) * (0.3 + std::abs(p[i]));
  }
  return t;
}

// Keep away from the kinks of abs, relu and clamp(-0.5, 0.5).
double away_from_kinks(double v) {
  for (double k : {-0.5, 0.0, 0.5})
    if (std::abs(v - k) < 0.05) v = k + 0.1;
  return v;
}

// A case's inputs in double on the CPU, seeded; they do not require grad.
Inputs draw_inputs(const OpCase& op, uint64_t seed) {
  tv::Generator gen(seed);
  Inputs xs;
  for (size_t i = 0; i < op.shapes.size(); ++i) {
    Domain d = i < op.domains.size() ? op.domains[i] : Domain::Any;
    auto t = draw(op.shapes[i], d, gen);
    if (op.name == "abs" || op.name == "relu" || op.name == "clamp")
      for (int64_t k = 0; k < t.numel(); ++k) t.data()[k] = away_from_kinks(t.data()[k]);
    xs.push_back(t);
  }
  return xs;
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

// double -> T through host values (the library has no dtype cast); a CPU tensor, contiguous, no grad.
template <class T>
Tensor<T> cast(const Tensor<double>& x) {
  const std::vector<double> v = x.to(Device::CPU).to_vector();
  auto out = Tensor<T>::empty(x.shape());
  for (size_t i = 0; i < v.size(); ++i) out.data()[i] = static_cast<T>(v[i]);
  return out;
}

// The backends of this build: the CPU always, CUDA when its backend registered itself.
std::vector<Device> backends() {
  std::vector<Device> out{Device::CPU};
  if (tv::device_available(Device::CUDA)) out.push_back(Device::CUDA);
  return out;
}

// Whether `device` runs double kernels: the CPU does; a device without them throws on the first one.
bool supports_double(Device device) {
  if (device == Device::CPU) return true;
  try {
    auto t = tv::exp(tv::ones<double>({2}).to(device));
    (void)t.to(Device::CPU);
    return true;
  } catch (const tv::Error&) {
    return false;
  }
}

// A backend's result against the CPU in double: |got - ref| <= atol + rtol |ref| elementwise, as
// torch.testing.assert_close. Float: rtol 1.3e-6, atol 1e-5 (torch's defaults for float32), which leave
// room for the inputs' rounding to float and for sums of a few dozen terms; double: 1e-12 both (a different
// summation order on another device). A case's `tol` multiplies both where its sums are long or its
// algorithm rounds more (Winograd's transforms).
struct Tolerance {
  double rtol, atol;
};
template <class T>
Tolerance tolerance(double k = 1) {
  if constexpr (std::is_same_v<T, float>) return {1.3e-6 * k, 1e-5 * k};
  else return {1e-12 * k, 1e-12 * k};
}

// One CHECK per tensor (not per element), naming the worst element when it fails. NaNs must match.
// An undefined tensor stands for zeros of ref's shape (an input the output does not depend on).
template <class T>
void check_close(const std::string& what, const Tensor<T>& got, const Tensor<double>& ref, Tolerance tol) {
  if (!got.defined() && !ref.defined()) return;
  const Shape shape = got.defined() ? got.shape() : ref.shape();
  const Tensor<double> r = ref.defined() ? ref : tv::zeros<double>(shape);
  const Tensor<T> g = got.defined() ? got.to(Device::CPU) : tv::zeros<T>(shape);
  REQUIRE_MESSAGE(g.shape() == r.shape(), what << ": shape " << g.shape() << ", expected " << r.shape());
  const std::vector<T> gv = g.to_vector();
  const std::vector<double> rv = r.to_vector();
  double worst = 0;  // the largest |got - ref| / (atol + rtol |ref|)
  size_t at = 0;
  for (size_t i = 0; i < rv.size(); ++i) {
    const double a = static_cast<double>(gv[i]), b = rv[i];
    double ratio;
    if (std::isnan(a) || std::isnan(b)) ratio = std::isnan(a) && std::isnan(b) ? 0 : INFINITY;
    else if (a == b) ratio = 0;  // equal infinities too
    else ratio = std::abs(a - b) / (tol.atol + tol.rtol * std::abs(b));
    if (!(ratio <= worst)) worst = ratio, at = i;
  }
  std::ostringstream msg;
  msg.precision(17);
  if (!rv.empty())
    msg << what << ": element " << at << " is " << static_cast<double>(gv[at]) << ", expected " << rv[at] << " ("
        << worst << " times the tolerance, rtol " << tol.rtol << " atol " << tol.atol << ")";
  CHECK_MESSAGE(worst <= 1, msg.str());
}

// The CPU in double: the forward value and the inputs' gradients for the upstream gradient gy.
struct Reference {
  Tensor<double> y, gy;
  std::vector<Tensor<double>> grads;
};
Reference reference(const OpCase& op, const Inputs& xs, tv::Generator& gen) {
  Inputs in;
  for (const auto& x : xs) in.push_back(x.clone().requires_grad_());
  Reference r;
  r.y = op.fn.f64(in);
  r.gy = tv::normal<double>(r.y.shape(), 0, 1, gen);
  if (r.y.requires_grad()) r.y.backward(r.gy);
  for (const auto& x : in) r.grads.push_back(x.grad());
  return r;
}

// Runs a case on `device` in T, inputs cast from double and moved there, and compares with the reference.
template <class T>
void check_on_backend(const OpCase& op, Device device, const Inputs& xs, const Reference& ref) {
  const char* type = std::is_same_v<T, float> ? "float" : "double";
  const Tolerance tol = tolerance<T>(op.tol);
  std::vector<Tensor<T>> in;
  for (const auto& x : xs) in.push_back(cast<T>(x).to(device).requires_grad_());
  Tensor<T> y = op.fn.get<T>()(in);
  CHECK_MESSAGE(y.device() == device, type << " output is on " << y.device() << ", its inputs on " << device);
  check_close(std::string(type) + " forward", y, ref.y, tol);
  if (!ref.y.requires_grad()) return;
  y.backward(cast<T>(ref.gy).to(device));
  for (size_t i = 0; i < in.size(); ++i) {
    const Tensor<T> g = in[i].grad();
    if (g.defined()) CHECK_MESSAGE(g.device() == device, type << " gradient of input " << i << " is on " << g.device());
    check_close(std::string(type) + " gradient of input " + std::to_string(i), g, ref.grads[i], tol);
  }
}

std::string subcase_name(Device device, const std::string& what) { return std::string(tv::device_name(device)) + "/" + what; }

// Says once per backend that its double runs are skipped.
void note_no_double(Device device) {
  static std::set<Device> told;
  if (told.insert(device).second) MESSAGE(tv::device_name(device) << " has no double kernels: its double runs are skipped");
}

}  // namespace

TEST_CASE("every op: gradcheck in double, contiguous and not, forward against a reference") {
  for (const auto& op : op_cases()) {
    if (!op.gradcheck) continue;
    SUBCASE(op.name.c_str()) {
      Inputs xs = draw_inputs(op, 42);
      for (auto& x : xs) x.requires_grad_();
      auto ok = tv::gradcheck(op.fn.f64, xs);
      CHECK_MESSAGE(ok, ok.message);

      Inputs nc;
      for (const auto& x : xs) nc.push_back(non_contiguous(x.detach()).requires_grad_());
      for (size_t i = 0; i < xs.size(); ++i)
        if (xs[i].numel() > 1) CHECK(!nc[i].is_contiguous());
      auto ok_nc = tv::gradcheck(op.fn.f64, nc);
      CHECK_MESSAGE(ok_nc, ok_nc.message);
      {
        tv::NoGradGuard no_grad;
        auto a = op.fn.f64(xs).to_vector(), b = op.fn.f64(nc).to_vector();  // summation order may differ
        REQUIRE(a.size() == b.size());
        for (size_t k = 0; k < a.size(); ++k) CHECK(a[k] == doctest::Approx(b[k]).epsilon(1e-12));
      }

      if (op.ref1 || op.ref2) {
        tv::NoGradGuard no_grad;
        auto out = op.fn.f64(xs);
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

TEST_CASE("backend table: every case on every backend, in float and double, against the CPU in double") {
  for (Device device : backends()) {
    const bool with_double = supports_double(device);
    for (const auto& op : op_cases()) {
      const std::string name = subcase_name(device, op.name);
      SUBCASE(name.c_str()) {
        const Inputs xs = draw_inputs(op, 42);
        tv::Generator gen(1234);
        const Reference ref = reference(op, xs, gen);
        check_on_backend<float>(op, device, xs, ref);
        if (with_double) check_on_backend<double>(op, device, xs, ref);
        else note_no_double(device);
      }
    }
  }
}

TEST_CASE("backend table: each conv2d row runs the algorithm it is named for") {
  for (const ConvCase& cc : conv_cases()) {
    SUBCASE(cc.name.c_str()) {
      auto x = tv::zeros<float>(cc.x), w = tv::zeros<float>(cc.w);
      auto y = tv::conv2d(x, w, Tensor<float>(), cc.stride, cc.padding, cc.dilation, cc.groups);
      const tv::cpu::ConvGeometry g{cc.x[0], cc.x[1], cc.x[2], cc.x[3], cc.w[0], cc.w[2], cc.w[3],
                                    cc.stride[0], cc.stride[1], cc.padding[0], cc.padding[1], cc.dilation[0],
                                    cc.dilation[1], cc.groups, y.size(2), y.size(3)};
      CHECK(tv::cpu::choose_conv_algorithm(g) == cc.algorithm);
    }
  }
}

TEST_CASE("Philox4x32-10, dropout's counter-based generator, gives Random123's known answers") {
  const auto check = [](tv::Philox got, std::array<uint32_t, 4> want) {
    for (int i = 0; i < 4; ++i) CHECK(got.x[i] == want[i]);
  };
  check(tv::Philox::block(0, 0, 0, 0, 0, 0), {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  check(tv::Philox::block(~0u, ~0u, ~0u, ~0u, ~0u, ~0u), {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  check(tv::Philox::block(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u),
        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("backend: dropout's mask comes from the seed alone, the same on every backend and type") {
  for (double p : {0.3, 0.5}) {
    tv::Generator g(11);
    const auto ref = tv::dropout(tv::ones<double>({2000}), p, true, g);
    for (Device device : backends()) {
      const std::string name = subcase_name(device, "p=" + std::to_string(p));
      SUBCASE(name.c_str()) {
        auto compare = [&](auto tag) {
          using T = decltype(tag);
          tv::Generator gen(11);
          const auto got = tv::dropout(tv::ones<T>({2000}).to(device), p, true, gen).to(Device::CPU);
          const auto a = got.to_vector();
          const auto b = ref.to_vector();
          int64_t differ = 0, kept = 0;
          for (size_t i = 0; i < b.size(); ++i) {
            differ += (a[i] == 0) != (b[i] == 0);
            kept += b[i] != 0;
            // p = 0.5 scales by 2: exact in both types, so the values match exactly, not just the mask
            if (p == 0.5) differ += static_cast<double>(a[i]) != b[i];
          }
          CHECK(differ == 0);
          CHECK(std::abs(kept - 2000 * (1 - p)) < 100);  // a mask that keeps about 1 - p
        };
        compare(float{});
        if (supports_double(device)) compare(double{});
      }
    }
  }
}

TEST_CASE("backend: SGD steps (momentum, dampening, nesterov, weight decay) against the CPU in double") {
  struct Setting {
    std::string name;
    double momentum, dampening, decay;
    bool nesterov;
  };
  const std::vector<Setting> settings = {{"momentum", 0.9, 0, 0.01, false},
                                         {"nesterov", 0.9, 0, 0.01, true},
                                         {"plain", 0, 0, 0, false},
                                         {"dampening", 0.9, 0.5, 0, false}};
  for (Device device : backends()) {
    for (const Setting& s : settings) {
      const std::string name = subcase_name(device, s.name);
      SUBCASE(name.c_str()) {
        tv::Generator gen(5);
        const Tensor<double> p0 = tv::normal<double>({7, 5}, 0, 1, gen);
        std::vector<Tensor<double>> grads;
        for (int i = 0; i < 3; ++i) grads.push_back(tv::normal<double>({7, 5}, 0, 1, gen));
        const double lr = 0.1;
        // torch.optim.SGD's update in double, by hand
        std::vector<double> p = p0.to_vector(), buf(p.size(), 0);
        auto param = cast<float>(p0).to(device).requires_grad_();
        tv::optim::SGD opt({param}, tv::optim::SGDOptions(lr)
                                        .momentum(s.momentum)
                                        .dampening(s.dampening)
                                        .weight_decay(s.decay)
                                        .nesterov(s.nesterov));
        for (size_t step = 0; step < grads.size(); ++step) {
          const std::vector<double> g0 = grads[step].to_vector();
          for (size_t i = 0; i < p.size(); ++i) {
            double g = g0[i] + s.decay * p[i];
            if (s.momentum != 0) {
              buf[i] = step == 0 ? g : s.momentum * buf[i] + (1 - s.dampening) * g;
              g = s.nesterov ? g + s.momentum * buf[i] : buf[i];
            }
            p[i] -= lr * g;
          }
          param.set_grad(cast<float>(grads[step]).to(device));
          opt.step();
          CHECK(param.device() == device);
          check_close("parameter after step " + std::to_string(step + 1), param, tv::tensor<double>(p, p0.shape()),
                      tolerance<float>());
        }
      }
    }
  }
}

TEST_CASE("backend: gradient clipping (p = 2, 1, inf; a long grad) against the CPU in double") {
  tv::Generator gen(9);
  // 70000 values: the device sums them in pieces, then the pieces in order.
  const std::vector<Tensor<double>> g0 = {tv::normal<double>({70000}, 0, 1, gen), tv::normal<double>({3, 4}, 0, 1, gen)};
  for (Device device : backends()) {
    for (double p : {2.0, 1.0, double(INFINITY)}) {
      const std::string name = subcase_name(device, "p=" + std::to_string(p));
      SUBCASE(name.c_str()) {
        // The reference: torch.nn.utils.clip_grad_norm_ by hand, in double.
        double total = 0;
        for (const auto& g : g0)
          for (double v : g.to_vector()) total = std::isinf(p) ? std::max(total, std::abs(v)) : total + std::pow(std::abs(v), p);
        if (!std::isinf(p)) total = std::pow(total, 1 / p);
        const double max_norm = total / 4, coef = max_norm / (total + 1e-6);
        auto run = [&](auto tag) {
          using T = decltype(tag);
          std::vector<Tensor<T>> params;
          for (const auto& g : g0) {
            params.push_back(tv::zeros<T>(g.shape()).to(device).requires_grad_());
            params.back().set_grad(cast<T>(g).to(device));
          }
          const double got = tv::optim::clip_grad_norm(params, max_norm, p);
          // the grads in T, summed in double: float rounding of the values only
          CHECK(got == doctest::Approx(total).epsilon(std::is_same_v<T, float> ? 1e-6 : 1e-12));
          for (size_t i = 0; i < g0.size(); ++i)
            check_close("clipped grad " + std::to_string(i), params[i].grad(), tv::mul(g0[i], coef), tolerance<T>(4));
        };
        run(float{});
        if (supports_double(device)) run(double{});
      }
    }
  }
}

TEST_CASE("backend: top-k accuracy (ties, NaN) and out-of-range class indices, as on the CPU") {
  const double nan = std::nan("");
  // Row 1 ties at the top (the lower index ranks first); row 2 has a NaN, which ranks above every number.
  const auto logits_d = tv::tensor<double>({0.1, 0.9, 0.3, 0.2, 0.5, 0.5, 0.1, 0.0, 0.2, nan, 0.3, 0.1, 1.0, 2.0, 3.0, 4.0},
                                           {4, 4});
  const auto target = tv::tensor<int64_t>({1, 1, 2, 0}, {4});
  for (Device device : backends()) {
    SUBCASE(subcase_name(device, "topk").c_str()) {
      const auto logits = cast<float>(logits_d).to(device);
      for (int64_t k = 1; k <= 4; ++k)
        CHECK(tv::topk_accuracy(logits, target.to(device), k) == tv::topk_accuracy(cast<float>(logits_d), target, k));
      // Top-1 picks 1 (a hit), 0 (the tie's lower index), 1 (the NaN) and 3; top-2 adds 1, 2 and 2.
      CHECK(tv::topk_accuracy(logits, target.to(device), 1) == 0.25);
      CHECK(tv::topk_accuracy(logits, target.to(device), 2) == 0.75);
      CHECK_THROWS_WITH_AS(tv::topk_accuracy(logits, tv::tensor<int64_t>({1, 4, 2, 0}, {4}).to(device), 1),
                           doctest::Contains("topk_accuracy: target 4 is not a class index in [0, 4)"), tv::Error);
      CHECK_THROWS_WITH_AS(tv::cross_entropy(logits, tv::tensor<int64_t>({1, 7, 2, 0}, {4}).to(device)),
                           doctest::Contains("cross_entropy: target 7 (sample 1) is not a class index in [0, 4)"),
                           tv::Error);
      // Two bad entries: the first in the index's order is named.
      CHECK_THROWS_WITH_AS(tv::gather(logits, 1, tv::tensor<int64_t>({0, 5, 0, 1, 0, 0, 0, -1}, {4, 2}).to(device)),
                           doctest::Contains("gather: index 5 is out of range for dim 1 of size 4"), tv::Error);
    }
  }
}

namespace {

template <class T>
void load_cast(tv::nn::Module<T>& dst, const tv::nn::Module<double>& src) {
  tv::nn::StateDict<T> sd;
  for (const auto& [name, t] : src.state_dict()) sd.emplace_back(name, cast<T>(t));
  dst.load_state_dict(sd);
}

// A DNR norm on `device` in T, its weights those of one seed in double: a training forward on the clips x
// (6 frames a clip; the cross-layer norm from the relay state h0, c0), backward with gy, then an eval
// forward. Returns every result to compare, by name: both outputs, the gradients of x, of the state and of
// each parameter, the buffers (running statistics), the relay's new state.
template <class T>
std::vector<std::pair<std::string, Tensor<T>>> run_dnr_norm(const std::string& which, Device device, const Tensor<double>& x,
                                                             const Tensor<double>& h0, const Tensor<double>& c0,
                                                             const Tensor<double>& gy) {
  const int64_t C = x.size(1), frames = 6;
  tv::dnr::DnrOptions o;
  o.ct_group_frames = 2;
  o.ct_bidirectional = which == "cross_temporal_bidirectional";
  tv::Generator gen_d(3), gen_t(3);
  tv::dnr::RelayCell<double> cell_d(C, 2, gen_d);
  tv::dnr::CrossLayerNorm<double> cl_d(C);
  tv::dnr::CrossTemporalNorm<double> ct_d(C, o, 0.1, 1e-5, gen_d);
  tv::dnr::RelayCell<T> cell(C, 2, gen_t);
  tv::dnr::CrossLayerNorm<T> cl(C);
  tv::dnr::CrossTemporalNorm<T> ct(C, o, 0.1, 1e-5, gen_t);
  load_cast(cell, cell_d);
  load_cast(cl, cl_d);
  load_cast(ct, ct_d);
  cell.to(device);
  cl.to(device);
  ct.to(device);
  const bool cross_layer = which == "cross_layer";
  tv::nn::Module<T>& norm = cross_layer ? static_cast<tv::nn::Module<T>&>(cl) : ct;

  std::vector<std::pair<std::string, Tensor<T>>> out;
  auto xt = cast<T>(x).to(device).requires_grad_();
  tv::dnr::RelayState<T> state{cast<T>(h0).to(device).requires_grad_(), cast<T>(c0).to(device).requires_grad_()};
  const tv::dnr::RelayState<T> start = state;
  Tensor<T> y = cross_layer ? cl.forward(xt, frames, cell, state) : ct.forward(xt, frames);
  y.backward(cast<T>(gy).to(device));
  out.emplace_back("train output", y);
  out.emplace_back("input gradient", xt.grad());
  if (cross_layer) {
    out.emplace_back("gradient of h0", start.h.grad());
    out.emplace_back("gradient of c0", start.c.grad());
    out.emplace_back("relay h", state.h);
    out.emplace_back("relay c", state.c);
    for (const auto& [name, p] : cell.named_parameters()) out.emplace_back("gradient of relay." + name, p.grad());
  }
  for (const auto& [name, p] : norm.named_parameters()) out.emplace_back("gradient of " + name, p.grad());
  for (const auto& [name, b] : norm.named_buffers()) out.emplace_back(name, b);
  norm.eval();
  tv::NoGradGuard no_grad;
  tv::dnr::RelayState<T> eval_state{start.h.detach(), start.c.detach()};
  out.emplace_back("eval output", cross_layer ? cl.forward(xt.detach(), frames, cell, eval_state)
                                              : ct.forward(xt.detach(), frames));
  return out;
}

}  // namespace

TEST_CASE("backend: DNR norms (cross-layer with its relay cell, cross-temporal) on a tiny clip against the CPU in double") {
  for (Device device : backends()) {
    for (const char* which : {"cross_layer", "cross_temporal", "cross_temporal_bidirectional"}) {
      const std::string name = subcase_name(device, which);
      SUBCASE(name.c_str()) {
        tv::Generator gen(21);
        const auto x = tv::normal<double>({12, 8, 3, 2}, 0.5, 2.0, gen);  // 2 clips of 6 frames, 8 channels
        const auto h0 = tv::sigmoid(tv::normal<double>({2, 8}, 0, 1, gen)), c0 = tv::normal<double>({2, 8}, 0, 1, gen);
        const auto gy = tv::normal<double>(x.shape(), 0, 1, gen);
        const auto ref = run_dnr_norm<double>(which, Device::CPU, x, h0, c0, gy);
        auto compare = [&](auto tag) {
          using T = decltype(tag);
          const auto got = run_dnr_norm<T>(which, device, x, h0, c0, gy);
          REQUIRE(got.size() == ref.size());
          for (size_t i = 0; i < ref.size(); ++i) {
            REQUIRE(got[i].first == ref[i].first);
            check_close(std::string(std::is_same_v<T, float> ? "float " : "double ") + ref[i].first, got[i].second,
                        ref[i].second, tolerance<T>());
          }
        };
        compare(float{});
        if (supports_double(device)) compare(double{});
        else note_no_double(device);
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

TEST_CASE("upsample_nearest: PyTorch's source rows (float ratio), same size, and its errors") {
  // F.interpolate(torch.arange(3.).view(1, 1, 3, 1), size=(7, 1)) picks rows 0 0 0 1 1 2 2; 2 -> 5: 0 0 0 1 1.
  auto x = tv::tensor<double>({0, 1, 2}, {1, 1, 3, 1});
  CHECK(tv::upsample_nearest(x, 7, 1).to_vector() == std::vector<double>{0, 0, 0, 1, 1, 2, 2});
  CHECK(tv::upsample_nearest(tv::tensor<double>({0, 1}, {1, 1, 2, 1}), 5, 1).to_vector() ==
        std::vector<double>{0, 0, 0, 1, 1});
  // Shrinking picks floor(i * in / out): 7 -> 3 reads rows 0, 2, 4.
  CHECK(tv::upsample_nearest(tv::arange<double>(7).view({1, 1, 7, 1}), 3, 1).to_vector() == std::vector<double>{0, 2, 4});
  CHECK(tv::upsample_nearest(tv::tensor<double>({1, 2, 3, 4}, {1, 1, 2, 2}), 4, 4).to_vector() ==
        std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  CHECK(tv::upsample_nearest(x, 3, 1).data() == x.data());  // the same size is the input itself
  CHECK_THROWS_WITH_AS(tv::upsample_nearest(tv::zeros<double>({3, 4}), 2, 2),
                       doctest::Contains("upsample_nearest: expected an input of shape N x C x H x W"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::upsample_nearest(x, 0, 2), doctest::Contains("sizes must be at least 1"), tv::Error);
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
