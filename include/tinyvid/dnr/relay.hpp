#pragma once
// DNR's relay cell (docs/DNR.md, "The relay cell"): an LSTM cell whose input and hidden maps are bottleneck
// projections, P(v) = W2 relu(W1 v + b1) + b2 (W1: C/r x C, W2: 4C x C/r), and whose hidden state
// is h = o * sigmoid(c), so h lies in (0, 1) and serves as a scale. Gate order i, f, g, o.
#include <memory>

#include "tinyvid/nn/layers.hpp"
#include "tinyvid/ops/lstm.hpp"

namespace tv::dnr {

// A relay state (h, c), each N x C; a default-constructed one is the chain's zero start.
template <class T>
using RelayState = LstmState<T>;

template <class T = float>
class RelayCell : public nn::Module<T> {
 public:
  // Parameter names (input_proj.0.weight, ..., hidden_proj.2.bias) are what
  // tools/convert_checkpoint.py maps the authors' w_ih.0.seq / w_hh.0.seq to.
  explicit RelayCell(int64_t channels, int64_t reduction = 4, Generator& gen = default_generator())
      : channels(channels) {
    TV_CHECK(channels >= 1 && reduction >= 1 && channels / reduction >= 1, "RelayCell: ", channels,
             " channels with reduction ratio ", reduction, " leave no bottleneck channel");
    auto projection = [&](const char* name) {
      const int64_t mid = channels / reduction;
      auto p = std::make_shared<nn::Sequential<T>>();
      p->push_back(std::make_shared<nn::Linear<T>>(channels, mid, gen));
      p->push_back(std::make_shared<nn::ReLU<T>>());
      p->push_back(std::make_shared<nn::Linear<T>>(mid, 4 * channels, gen));
      return this->register_module(name, p);
    };
    input_proj = projection("input_proj");
    hidden_proj = projection("hidden_proj");
  }

  // One relay step from the pooled input s (N x C).
  RelayState<T> forward(const Tensor<T>& s, const RelayState<T>& state) {
    TV_CHECK(s.dim() == 2 && s.size(1) == channels, "RelayCell: expected an input of shape N x ", channels, ", got ",
             s.shape());
    const Tensor<T> h = state.h.defined() ? state.h : zeros_like(s);  // on s's device
    const Tensor<T> c = state.c.defined() ? state.c : zeros_like(s);
    TV_CHECK(h.shape() == s.shape() && c.shape() == s.shape(), "RelayCell: the state has shapes ", h.shape(), " and ",
             c.shape(), ", the input ", s.shape());
    const Tensor<T> hc = lstm_gates(add((*input_proj)(s), (*hidden_proj)(h)), c, CellActivation::Sigmoid);
    return {hc.narrow(1, 0, channels), hc.narrow(1, channels, channels)};
  }
  RelayState<T> operator()(const Tensor<T>& s, const RelayState<T>& state) { return forward(s, state); }

  int64_t channels;
  std::shared_ptr<nn::Sequential<T>> input_proj, hidden_proj;
};

}  // namespace tv::dnr
