#pragma once
// linear: y = x W^T + b for x of shape [..., in], as torch.nn.functional.linear. Its own node rather than
// matmul(x, W.t()): the weight gradient comes out as g^T x in the weight's layout, where matmul's would come
// out transposed and be copied back through the view (a 4 MB scattered copy per LSTM weight and step).
#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/backend/elementwise.hpp"
#include "tinyvid/backend/functors.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/matmul.hpp"

namespace tv {

template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = Tensor<T>()) {
  TV_CHECK(weight.dim() == 2, "linear: expected a weight of shape out x in, got ", weight.shape());
  TV_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input of shape ", x.shape(), " has ",
           x.dim() ? x.size(-1) : 0, " features, but the weight of shape ", weight.shape(), " expects ", weight.size(1));
  const int64_t in = weight.size(1), out = weight.size(0);
  if (bias.defined())
    TV_CHECK(bias.dim() == 1 && bias.size(0) == out, "linear: bias of shape ", bias.shape(), " does not match ", out,
             " output features");
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  Shape out_shape = x.shape();
  out_shape.back() = out;
  Tensor<T> x2, y;
  {
    NoGradGuard no_grad;  // raw computation: the node below is the op's only record
    x2 = x.contiguous().reshape({rows, in});
    Tensor<T> y2 = detail::matmul_raw(x2, weight.t());  // the weight read transposed where it lies
    if (bias.defined()) kernel::zip(y2, bias, y2, fn::Add{}, "linear");  // each row += bias
    y = y2.reshape(out_shape);
  }
  autograd::record(y, "LinearBackward", {x, weight, bias},
                   [sx = autograd::Saved<T>(x2), sw = autograd::Saved<T>(weight), rows, out,
                    x_shape = x.shape()](const Tensor<T>& g, const autograd::Node<T>& n) {
                     const Tensor<T> g2 = g.contiguous().reshape({rows, out});
                     std::vector<Tensor<T>> r(3);
                     if (n.needs_grad(0)) r[0] = detail::matmul_raw(g2, sw.get("linear")).reshape(x_shape);
                     if (n.needs_grad(1)) r[1] = detail::matmul_raw(g2.transpose(0, 1), sx.get("linear"));  // out x in
                     if (n.needs_grad(2)) r[2] = detail::sum_raw(g2, {true, false}, false, 1.0);
                     return r;
                   });
  return y;
}

}  // namespace tv
