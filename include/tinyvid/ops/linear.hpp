#pragma once
// linear (y = x W^T + b, x of shape [..., in]) and the LSTM cell with PyTorch's gate order (i, f, g, o)
// and weight layout (weight_ih: 4H x in, weight_hh: 4H x H, bias_ih, bias_hh: 4H).
#include <utility>

#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/join.hpp"
#include "tinyvid/ops/matmul.hpp"

namespace tv {

template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = Tensor<T>()) {
  TV_CHECK(weight.dim() == 2, "linear: expected a weight of shape out x in, got ", weight.shape());
  TV_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input of shape ", x.shape(), " has ",
           x.dim() ? x.size(-1) : 0, " features, but the weight of shape ", weight.shape(), " expects ", weight.size(1));
  Tensor<T> y = matmul(x, weight.t());
  if (bias.defined()) {
    TV_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias of shape ", bias.shape(),
             " does not match ", weight.size(0), " output features");
    y = add(y, bias);
  }
  return y;
}

template <class T>
struct LstmState {
  Tensor<T> h, c;
};

// One step of torch.nn.LSTMCell: gates = x W_ih^T + b_ih + h W_hh^T + b_hh, split as i, f, g, o;
// c' = f c + i g; h' = o tanh(c').
template <class T>
LstmState<T> lstm_cell(const Tensor<T>& x, const LstmState<T>& state, const Tensor<T>& weight_ih,
                       const Tensor<T>& weight_hh, const Tensor<T>& bias_ih, const Tensor<T>& bias_hh) {
  TV_CHECK(weight_ih.dim() == 2 && weight_hh.dim() == 2 && weight_ih.size(0) % 4 == 0 &&
               weight_hh.size(0) == weight_ih.size(0) && weight_hh.size(1) * 4 == weight_hh.size(0),
           "lstm_cell: expected weight_ih 4H x in and weight_hh 4H x H, got ", weight_ih.shape(), " and ",
           weight_hh.shape());
  TV_CHECK(state.h.shape() == state.c.shape() && state.h.dim() == 2 && state.h.size(1) == weight_hh.size(1),
           "lstm_cell: expected h and c of shape N x ", weight_hh.size(1), ", got ", state.h.shape(), " and ",
           state.c.shape());
  const Tensor<T> gates = add(linear(x, weight_ih, bias_ih), linear(state.h, weight_hh, bias_hh));
  auto parts = chunk(gates, 4, 1);
  const Tensor<T> i = sigmoid(parts[0]), f = sigmoid(parts[1]), g = tanh(parts[2]), o = sigmoid(parts[3]);
  Tensor<T> c = add(mul(f, state.c), mul(i, g));
  Tensor<T> h = mul(o, tanh(c));
  return {h, c};
}

}  // namespace tv
