#pragma once
// The LSTM cell's gate math, forward and backward, over N rows of H units; gate order i, f, g, o (PyTorch's).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tinyvid/core/parallel.hpp"

namespace tv::cpu {

// The logistic function without overflow for large |v|.
template <class T>
T lstm_sigmoid(T v) {
  return v >= T(0) ? T(1) / (T(1) + std::exp(-v)) : std::exp(v) / (T(1) + std::exp(v));
}

// From gate pre-activations z (N x 4H) and the cell state c (N x H): i, f, o = sigmoid, g = tanh,
// c' = f c + i g, h' = o act(c') with act = sigmoid when sigmoid_cell, else tanh. Writes out = [h' | c'] (N x 2H),
// the activated gates (N x 4H) and act(c') (N x H), which the backward reads.
template <class T>
void lstm_gates(const T* z_all, const T* c_all, T* out, T* activated, T* act_c, int64_t N, int64_t H,
                bool sigmoid_cell) {
  parallel_for(0, N, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(4 * H, 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* z = z_all + n * 4 * H;
      T* a = activated + n * 4 * H;
      T* ac = act_c + n * H;
      T* h_out = out + n * 2 * H;
      T* c_out = h_out + H;
      const T* c_in = c_all + n * H;
      for (int64_t j = 0; j < H; ++j) {
        const T i = lstm_sigmoid(z[j]), f = lstm_sigmoid(z[H + j]), g = std::tanh(z[2 * H + j]),
                o = lstm_sigmoid(z[3 * H + j]);
        const T c_new = f * c_in[j] + i * g;
        const T a_c = sigmoid_cell ? lstm_sigmoid(c_new) : std::tanh(c_new);
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
}

// lstm_gates' backward from the gradient of [h' | c'] (N x 2H), the saved activated gates, act(c') and the input
// cell state c: d_gates (N x 4H, the pre-activations' gradient) and d_c (N x H).
template <class T>
void lstm_gates_backward(const T* grad, const T* activated, const T* act_c, const T* c_in, T* d_gates, T* d_c,
                         int64_t N, int64_t H, bool sigmoid_cell) {
  parallel_for(0, N, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(4 * H, 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t j = 0; j < H; ++j) {
        const T* a = activated + n * 4 * H;
        const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        const T a_c = act_c[n * H + j];
        const T dh = grad[n * 2 * H + j], dc_out = grad[n * 2 * H + H + j];
        const T d_act = sigmoid_cell ? a_c * (T(1) - a_c) : T(1) - a_c * a_c;
        const T dc = dc_out + dh * o * d_act;  // everything that reaches c'
        T* dz = d_gates + n * 4 * H;
        dz[j] = dc * g * i * (T(1) - i);
        dz[H + j] = dc * c_in[n * H + j] * f * (T(1) - f);
        dz[2 * H + j] = dc * i * (T(1) - g * g);
        dz[3 * H + j] = dh * a_c * o * (T(1) - o);
        d_c[n * H + j] = dc * f;
      }
  });
}

}  // namespace tv::cpu
