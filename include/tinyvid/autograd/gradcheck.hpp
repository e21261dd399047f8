#pragma once
// gradcheck: compares the gradients backward() computes with central finite differences, in double,
// for every element of every input that requires grad. Use it for your own layers:
//
//   auto x = tv::normal<double>({3, 4}).requires_grad_();
//   CHECK(tv::gradcheck([](const auto& in) { return my_layer(in[0]); }, {x}));
//
// The result converts to bool; when it is false, its message says which input, element and output
// element disagree, with both values (doctest prints it). It runs on CPU tensors: it perturbs the inputs and
// reads the gradients on the host, element by element (a test tool, host reads by design).
#include <cmath>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "tinyvid/autograd/engine.hpp"
#include "tinyvid/backend/elementwise.hpp"

namespace tv {

struct GradcheckResult {
  bool ok = true;
  std::string message;
  explicit operator bool() const { return ok; }
};

inline std::ostream& operator<<(std::ostream& os, const GradcheckResult& r) {
  return os << (r.ok ? "gradcheck passed" : r.message);
}

namespace detail {
inline Shape unravel(int64_t linear, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = linear % shape[d];
    linear /= shape[d];
  }
  return idx;
}
}  // namespace detail

// fn: any callable taking `const std::vector<Tensor<double>>&` and returning a Tensor<double>.
template <class F>
GradcheckResult gradcheck(F&& fn, const std::vector<Tensor<double>>& inputs, double eps = 1e-6,
                                 double atol = 1e-5, double rtol = 1e-3) {
  std::vector<size_t> checked;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    TV_CHECK(inputs[i].device() == Device::CPU, "gradcheck: input ", i, " is on ", device_name(inputs[i].device()),
             "; gradcheck runs on the CPU (pass .to(tv::Device::CPU) copies)");
    for (int64_t d = 0; d < inputs[i].dim(); ++d)
      TV_CHECK(inputs[i].stride(d) != 0 || inputs[i].size(d) <= 1, "gradcheck: input ", i, " (shape ",
               inputs[i].shape(), ") has overlapping elements (an expanded view); pass a contiguous copy");
    checked.push_back(i);
  }
  TV_CHECK(!checked.empty(), "gradcheck: no input requires grad; call requires_grad_() on the inputs to check");

  Tensor<double> out = fn(inputs);
  TV_CHECK(out.requires_grad(), "gradcheck: the function's output does not require grad (shape ", out.shape(),
           "): it does not depend differentiably on the inputs");
  TV_CHECK(out.device() == Device::CPU, "gradcheck: the function's output is on ", device_name(out.device()),
           "; gradcheck runs on the CPU");
  const int64_t n_out = out.numel();
  const Shape out_shape = out.shape();

  // Analytic Jacobian, one row per output element: backward with a one-hot gradient.
  std::vector<std::vector<std::vector<double>>> analytic(inputs.size());  // [input][out][elem]
  for (size_t i : checked) analytic[i].assign(n_out, std::vector<double>(inputs[i].numel(), 0.0));
  for (int64_t j = 0; j < n_out; ++j) {
    for (size_t i : checked) inputs[i].impl()->grad.reset();
    Tensor<double> onehot = Tensor<double>::empty(out_shape);
    kernel::fill(onehot, 0.0);
    onehot.data()[j] = 1.0;
    out.backward(onehot, /*retain_graph=*/true);
    for (size_t i : checked) {
      Tensor<double> g = inputs[i].grad();
      if (g.defined()) analytic[i][j] = g.to_vector();
    }
  }
  for (size_t i : checked) inputs[i].impl()->grad.reset();

  // Numeric Jacobian: perturb one element at a time, through the input's own strides.
  NoGradGuard no_grad;
  for (size_t i : checked) {
    const Tensor<double>& x = inputs[i];
    std::vector<int64_t> offsets;
    for_each_offset(x.shape(), x.strides(), [&](int64_t off) { offsets.push_back(off); });
    double* base = const_cast<double*>(x.data());
    for (size_t e = 0; e < offsets.size(); ++e) {
      double& v = base[offsets[e]];
      const double saved = v;
      v = saved + eps;
      std::vector<double> plus = fn(inputs).to_vector();
      v = saved - eps;
      std::vector<double> minus = fn(inputs).to_vector();
      v = saved;
      for (int64_t j = 0; j < n_out; ++j) {
        const double numeric = (plus[j] - minus[j]) / (2 * eps);
        const double a = analytic[i][j][e];
        if (!(std::abs(a - numeric) <= atol + rtol * std::abs(numeric))) {
          std::ostringstream os;
          os << "gradcheck failed: input " << i << " (shape " << x.shape() << "), element "
             << detail::unravel(static_cast<int64_t>(e), x.shape()) << ", output element "
             << detail::unravel(j, out_shape) << ": analytic " << a << " vs numeric " << numeric
             << " (atol " << atol << ", rtol " << rtol << ")";
          return {false, os.str()};
        }
      }
    }
  }
  return {};
}

}  // namespace tv
