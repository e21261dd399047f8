// DNR step by step (docs/DNR.md, "A worked example") on a tiny clip: one clip of 4 frames, 4 channels, 2 x 2 pixels.
// It recomputes by hand what tinyvid's layers do, prints every intermediate with one line of
// explanation, and checks that the hand computation equals the layers' output (exit code 1 if not).
#include <tinyvid/tinyvid.hpp>

#include <cstdio>
#include <iostream>

using tv::Tensor;
using T = double;

static bool agree(const char* what, const Tensor<T>& a, const Tensor<T>& b) {
  const double diff = tv::max(tv::abs(tv::sub(a, b))).item();
  std::printf("  check: %s by hand and by tinyvid differ by %.1e\n", what, diff);
  return diff < 1e-12;
}

static void show(const char* name, const char* why, const Tensor<T>& t) {
  std::cout << "\n" << name << "  -- " << why << "\n" << t << "\n";
}

// The relay cell by hand: gates from both projections, i f g o, then c' and h' (h' uses a sigmoid).
static tv::dnr::RelayState<T> relay_by_hand(tv::dnr::RelayCell<T>& cell, const Tensor<T>& s, const tv::dnr::RelayState<T>& st) {
  const int64_t C = cell.channels;
  Tensor<T> h = st.h.defined() ? st.h : tv::zeros<T>(s.shape()), c = st.c.defined() ? st.c : tv::zeros<T>(s.shape());
  Tensor<T> gates = tv::add((*cell.input_proj)(s), (*cell.hidden_proj)(h));
  show("gates = P_x(s) + P_h(h)", "each projection is W2 relu(W1 v + b1) + b2 with a C/4 bottleneck; 4C values: i f g o", gates);
  Tensor<T> i = tv::sigmoid(gates.narrow(1, 0, C)), f = tv::sigmoid(gates.narrow(1, C, C));
  Tensor<T> g = tv::tanh(gates.narrow(1, 2 * C, C)), o = tv::sigmoid(gates.narrow(1, 3 * C, C));
  show("i (input gate)", "sigmoid: how much of the candidate g enters the cell", i);
  show("f (forget gate)", "sigmoid: how much of the previous cell state c is kept", f);
  Tensor<T> c2 = tv::add(tv::mul(f, c), tv::mul(i, g));
  Tensor<T> h2 = tv::mul(o, tv::sigmoid(c2));
  show("c' = f c + i g", "the new cell state: DNR uses it as the per-clip, per-channel SHIFT", c2);
  show("h' = o sigmoid(c')", "the new hidden state, in (0, 1): DNR uses it as the per-clip, per-channel SCALE", h2);
  return {h2, c2};
}

int main() {
  tv::manual_seed(7);
  const int64_t frames = 4, C = 4;
  bool ok = true;
  // A feature map as it leaves a conv: N*T x C x H x W with the T frames of the clip adjacent.
  Tensor<T> y = tv::add(tv::mul(tv::normal<T>({frames, C, 2, 2}), 2.0), tv::arange<T>(C).reshape({1, C, 1, 1}));
  show("y (4 frames x 4 channels x 2 x 2)", "the output of a block's conv1, one clip; channel k has mean about k", y);

  std::printf("\n==== Cross-layer DNR: replaces bn1; one relay cell per stage, state carried block to block ====\n");
  tv::dnr::RelayCell<T> stage_cell(C);
  tv::dnr::CrossLayerNorm<T> cl(C);
  Tensor<T> s = tv::mean(y.reshape({1, frames, C, 4}), {1, 3});
  show("s = mean of y over (T, H, W)", "the relay cell reads the clip's channel means, taken BEFORE normalization", s);
  tv::dnr::RelayState<T> start;  // the first block of a stage starts from h = c = 0
  auto state = relay_by_hand(stage_cell, s, start);
  Tensor<T> mu = tv::mean(y, {0, 2, 3}, true), var = tv::var(y, {0, 2, 3}, false, true);
  Tensor<T> z = tv::div(tv::sub(y, mu), tv::sqrt(tv::add(var, 1e-5)));
  show("z = (y - mean) / sqrt(var + eps)", "ordinary batch statistics over all frames; NO learned weight and bias", z);
  Tensor<T> out = tv::add(tv::mul(z, state.h.reshape({1, C, 1, 1})), state.c.reshape({1, C, 1, 1}));
  show("out = z * h' + c'", "the dynamic affine: scale and shift come from the relay, not from parameters", out);
  tv::dnr::RelayState<T> layer_state;
  ok &= agree("the cross-layer output", out, cl.forward(y, frames, stage_cell, layer_state));
  ok &= agree("the relayed h", state.h, layer_state.h);
  std::printf("  the next block of the stage starts its relay step from this (h', c')\n");

  std::printf("\n==== Cross-temporal DNR: replaces bn2; its own cell relays from one group of frames to the next ====\n");
  tv::dnr::DnrOptions o;
  o.ct_group_frames = 2;  // 4 frames -> 2 groups of 2 (the paper's default is 4 frames per group)
  tv::dnr::CrossTemporalNorm<T> ct(C, o);
  std::vector<Tensor<T>> parts;
  tv::dnr::RelayState<T> st;  // every forward pass starts from zero
  for (int64_t g = 0; g < 2; ++g) {
    std::printf("\n-- group %lld: frames %lld and %lld --\n", static_cast<long long>(g), static_cast<long long>(2 * g),
                static_cast<long long>(2 * g + 1));
    Tensor<T> yg = y.narrow(0, 2 * g, 2);
    Tensor<T> sg = tv::mean(yg.reshape({1, 2, C, 4}), {1, 3});
    show("s_g = mean over the group's frames and pixels", "what the relay reads for this step", sg);
    st = relay_by_hand(*ct.relay, sg, st);
    Tensor<T> mg = tv::mean(yg, {0, 2, 3}, true), vg = tv::var(yg, {0, 2, 3}, false, true);
    show("the group's own variance", "training mode normalizes each group with its own batch statistics", vg.flatten());
    Tensor<T> zg = tv::div(tv::sub(yg, mg), tv::sqrt(tv::add(vg, 1e-5)));
    parts.push_back(tv::add(tv::mul(zg, st.h.reshape({1, C, 1, 1})), st.c.reshape({1, C, 1, 1})));
  }
  Tensor<T> ct_out = tv::cat(parts, 0);
  show("out (both groups)", "each group scaled and shifted by its own relay step", ct_out);
  ok &= agree("the cross-temporal output", ct_out, ct.forward(y, frames));

  std::printf("\n==== Channel interlacing: on the residual branch's input, before conv1 ====\n");
  Tensor<T> x = tv::arange<T>(frames * 8).reshape({frames, 8, 1, 1});
  Tensor<T> shifted = tv::dnr::interlace(x, frames);
  show("x: 4 frames x 8 channels (value = 8 * frame + channel)", "8 channel groups of one channel each", x.reshape({frames, 8}));
  show("interlaced", "group 1 (channel 0) takes the next frame, group 2 (channel 1) the previous one; zeros fill in",
       shifted.reshape({frames, 8}));
  ok &= shifted.at({0, 0, 0, 0}) == 8 && shifted.at({1, 1, 0, 0}) == 1 && shifted.at({3, 0, 0, 0}) == 0;

  std::printf("\n%s\n", ok ? "all hand computations agree with tinyvid's layers" : "MISMATCH between hand computation and layers");
  return ok ? 0 : 1;
}
