#pragma once
// The LSTM cell with PyTorch's gate order (i, f, g, o) and weight layout (weight_ih: 4H x in,
// weight_hh: 4H x H, bias_ih, bias_hh: 4H), built from two linear maps and one fused op for the gate
// math, lstm_gates, which DNR's relay cell shares (it reads its hidden state as o * sigmoid(c)).
#include <cmath>

#include "tinyvid/autograd/node.hpp"
#include "tinyvid/core/parallel.hpp"
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
  Tensor<T> activated = Tensor<T>::empty({N, 4 * H}), out = Tensor<T>::empty({N, 2 * H}), act_c = Tensor<T>::empty({N, H});
  auto sig = [](T v) { return v >= T(0) ? T(1) / (T(1) + std::exp(-v)) : std::exp(v) / (T(1) + std::exp(v)); };
  parallel_for(0, N, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(4 * H, 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* z = gc.data() + n * 4 * H;
      T* a = activated.data() + n * 4 * H;
      T* ac = act_c.data() + n * H;
      T* h_out = out.data() + n * 2 * H;
      T* c_out = h_out + H;
      const T* c_in = cc.data() + n * H;
      for (int64_t j = 0; j < H; ++j) {
        const T i = sig(z[j]), f = sig(z[H + j]), g = std::tanh(z[2 * H + j]), o = sig(z[3 * H + j]);
        const T c_new = f * c_in[j] + i * g;
        const T a_c = act == CellActivation::Tanh ? std::tanh(c_new) : sig(c_new);
        a[j] = i;
        a[H + j] = f;
        a[2 * H + j] = g;
        a[3 * H + j] = o;
        ac[j] = a_c;
        c_out[j] = c_new;
        h_out[j] = o * a_c;
      }
    }
  });
  autograd::record(out, "LstmGatesBackward", {gates, c},
                   [activated, act_c, sc = autograd::Saved<T>(cc), act, N, H](const Tensor<T>& grad, const autograd::Node<T>& node) {
                     const Tensor<T> gr = grad.contiguous();
                     const Tensor<T>& c_in = sc.get("lstm_gates");
                     Tensor<T> d_gates = Tensor<T>::empty({N, 4 * H}), d_c = Tensor<T>::empty({N, H});
                     for (int64_t n = 0; n < N; ++n)
                       for (int64_t j = 0; j < H; ++j) {
                         const T* a = activated.data() + n * 4 * H;
                         const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                         const T a_c = act_c.data()[n * H + j];
                         const T dh = gr.data()[n * 2 * H + j], dc_out = gr.data()[n * 2 * H + H + j];
                         const T d_act = act == CellActivation::Tanh ? T(1) - a_c * a_c : a_c * (T(1) - a_c);
                         const T dc = dc_out + dh * o * d_act;  // everything that reaches c'
                         T* dz = d_gates.data() + n * 4 * H;
                         dz[j] = dc * g * i * (T(1) - i);
                         dz[H + j] = dc * c_in.data()[n * H + j] * f * (T(1) - f);
                         dz[2 * H + j] = dc * i * (T(1) - g * g);
                         dz[3 * H + j] = dh * a_c * o * (T(1) - o);
                         d_c.data()[n * H + j] = dc * f;
                       }
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
