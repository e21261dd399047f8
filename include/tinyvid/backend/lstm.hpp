#pragma once
// Dispatch of the LSTM cell's gate kernels (contiguous N x 4H gates, N x H cell states, N x 2H [h | c]).
#include "tinyvid/backend/cpu/lstm.hpp"
#include "tinyvid/backend/dispatch.hpp"

namespace tv::detail {
template <class T>
void check_lstm_rows(const char* what, const Tensor<T>& t, int64_t N, int64_t width) {
  TV_CHECK(t.dim() == 2 && t.is_contiguous() && t.size(0) == N && t.size(1) == width, "lstm_gates: expected ", what,
           " contiguous of shape [", N, ", ", width, "], got ", t.shape());
}
}  // namespace tv::detail

namespace tv::kernel {

// out = [h' | c'], activated = the activated gates, act_c = act(c') from gates (N x 4H) and c (N x H);
// act = sigmoid when sigmoid_cell, else tanh.
template <class T>
void lstm_gates(const Tensor<T>& gates, const Tensor<T>& c, Tensor<T>& out, Tensor<T>& activated, Tensor<T>& act_c,
                bool sigmoid_cell) {
  const int64_t N = gates.size(0), H = gates.size(1) / 4;
  ::tv::detail::check_lstm_rows("gates", gates, N, 4 * H);
  ::tv::detail::check_lstm_rows("c", c, N, H);
  ::tv::detail::check_lstm_rows("out", out, N, 2 * H);
  ::tv::detail::check_lstm_rows("activated", activated, N, 4 * H);
  ::tv::detail::check_lstm_rows("act_c", act_c, N, H);
  TV_DISPATCH("lstm_gates", device_of("lstm_gates", gates, c, out, activated, act_c),
              lstm_gates<T>(gates.data(), c.data(), out.data(), activated.data(), act_c.data(), N, H, sigmoid_cell));
}

// d_gates (N x 4H) and d_c (N x H) from grad (N x 2H, the gradient of [h' | c']) and what the forward saved.
template <class T>
void lstm_gates_backward(const Tensor<T>& grad, const Tensor<T>& activated, const Tensor<T>& act_c, const Tensor<T>& c,
                         Tensor<T>& d_gates, Tensor<T>& d_c, bool sigmoid_cell) {
  const int64_t N = c.size(0), H = c.size(1);
  ::tv::detail::check_lstm_rows("grad", grad, N, 2 * H);
  ::tv::detail::check_lstm_rows("activated", activated, N, 4 * H);
  ::tv::detail::check_lstm_rows("act_c", act_c, N, H);
  ::tv::detail::check_lstm_rows("c", c, N, H);
  ::tv::detail::check_lstm_rows("d_gates", d_gates, N, 4 * H);
  ::tv::detail::check_lstm_rows("d_c", d_c, N, H);
  TV_DISPATCH("lstm_gates_backward", device_of("lstm_gates_backward", grad, activated, act_c, c, d_gates, d_c),
              lstm_gates_backward<T>(grad.data(), activated.data(), act_c.data(), c.data(), d_gates.data(), d_c.data(),
                                     N, H, sigmoid_cell));
}

}  // namespace tv::kernel
