#pragma once
// The LSTM cell with PyTorch's gate order (i, f, g, o) and weight layout (weight_ih: 4H x in,
// weight_hh: 4H x H, bias_ih, bias_hh: 4H), built from two linear maps and one fused op for the gate
// math, lstm_gates, which DNR's relay cell shares (it reads its hidden state as o * sigmoid(c)).
#include "tinyvid/autograd/node.hpp"
#include "tinyvid/backend/lstm.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/linear.hpp"

namespace tv {

template <class T>
struct LstmState {
  Tensor<T> h, c;
};

enum class CellActivation { Tanh, Sigmoid };  // h = o * act(c): tanh for LSTM, sigmoid for DNR's relay

// From gate pre-activations (N x 4H, in the order i, f, g, o) and the cell state c (N x H), in one
// pass: i, f, o = sigmoid, g = tanh, c' = f c + i g, h' = o act(c'). Returns [h' | c'] (N x 2H) as one
// tensor, so the op has one output; backward saves the activated gates and act(c').
template <class T>
Tensor<T> lstm_gates(const Tensor<T>& gates, const Tensor<T>& c, CellActivation act = CellActivation::Tanh) {
  TV_CHECK(gates.dim() == 2 && gates.size(1) % 4 == 0, "lstm_gates: expected gates of shape N x 4H, got ", gates.shape());
  const int64_t N = gates.size(0), H = gates.size(1) / 4;
  TV_CHECK(c.dim() == 2 && c.size(0) == N && c.size(1) == H, "lstm_gates: expected a cell state of shape [", N, ", ", H,
           "] for gates of shape ", gates.shape(), ", got ", c.shape());
  const Tensor<T> gc = gates.contiguous(), cc = c.contiguous();
  const Device device = gates.device();
  Tensor<T> activated = Tensor<T>::empty({N, 4 * H}, device), out = Tensor<T>::empty({N, 2 * H}, device),
            act_c = Tensor<T>::empty({N, H}, device);
  const bool sigmoid_cell = act == CellActivation::Sigmoid;
  kernel::lstm_gates(gc, cc, out, activated, act_c, sigmoid_cell);
  autograd::record(out, "LstmGatesBackward", {gates, c},
                   [activated, act_c, sc = autograd::Saved<T>(cc), sigmoid_cell, N, H](const Tensor<T>& grad,
                                                                                      const autograd::Node<T>& node) {
                     const Tensor<T> gr = grad.contiguous();
                     const Tensor<T>& c_in = sc.get("lstm_gates");
                     Tensor<T> d_gates = Tensor<T>::empty({N, 4 * H}, gr.device()),
                               d_c = Tensor<T>::empty({N, H}, gr.device());
                     kernel::lstm_gates_backward(gr, activated, act_c, c_in, d_gates, d_c, sigmoid_cell);
                     return std::vector<Tensor<T>>{node.needs_grad(0) ? d_gates : Tensor<T>(),
                                                   node.needs_grad(1) ? d_c : Tensor<T>()};
                   });
  return out;
}

// One step of torch.nn.LSTMCell: gates = x W_ih^T + b_ih + h W_hh^T + b_hh, then lstm_gates.
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
  const int64_t H = weight_hh.size(1);
  const Tensor<T> hc = lstm_gates(add(linear(x, weight_ih, bias_ih), linear(state.h, weight_hh, bias_hh)), state.c);
  return {hc.narrow(1, 0, H), hc.narrow(1, H, H)};
}

}  // namespace tv
