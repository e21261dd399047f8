// A first tour of tinyvid: tensors, views, autograd, a gradient check, and a small model trained
// by hand with gradient descent. Read it top to bottom; run it with ./build/examples/autograd_basics.
#include <tinyvid/tinyvid.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

using tv::Tensor;

int main() {
  // 1. Tensors are handles onto shared storage; views share it (as in PyTorch).
  auto x = tv::arange<float>(6).reshape({2, 3});
  std::cout << "x =\n" << x << "\n";
  auto col = x.select(1, 2);  // the last column, a view
  col.fill_(-1);
  std::cout << "after writing through a view of column 2:\n" << x << "\n";

  // 2. Autograd: mark leaves with requires_grad_(), call backward() on a scalar.
  auto w = tv::tensor<float>({0.5f, -1.0f, 2.0f}).requires_grad_();
  auto loss = tv::sum(tv::pow(tv::matmul(x, w), 2.0f));  // sum((x w)^2)
  loss.backward();
  std::cout << "loss = " << loss.item() << ", d loss / d w = " << w.grad() << "\n";

  // 3. gradcheck: compare backward() with finite differences, in double. Use it for your own ops.
  auto a = tv::normal<double>({3, 4}).requires_grad_();
  auto check = tv::gradcheck([](const auto& in) { return tv::sigmoid(tv::matmul(in[0], in[0].t())); }, {a});
  std::cout << "gradcheck of sigmoid(a a^T): " << check << "\n";

  // 4. A two-layer network learns XOR-like data: the label is whether x0 and x1 have the same sign.
  tv::Generator gen(0);
  const int64_t n = 512;
  auto inputs = tv::uniform<float>({n, 2}, -1, 1, gen);
  auto labels = tv::zeros<float>({n, 1});
  for (int64_t i = 0; i < n; ++i) labels.at({i, 0}) = inputs.at({i, 0}) * inputs.at({i, 1}) > 0 ? 1.f : 0.f;
  auto w1 = tv::normal<float>({2, 32}, 0, 1, gen).requires_grad_();
  auto b1 = tv::zeros<float>({32}).requires_grad_();
  auto w2 = tv::normal<float>({32, 1}, 0, 0.2, gen).requires_grad_();
  auto b2 = tv::zeros<float>({1}).requires_grad_();
  std::vector<Tensor<float>> params{w1, b1, w2, b2};
  const float lr = 0.5f;
  float accuracy = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step <= 600; ++step) {
    auto hidden = tv::relu(tv::matmul(inputs, w1) + b1);
    auto p = tv::sigmoid(tv::matmul(hidden, w2) + b2);
    // binary cross-entropy, written with elementwise ops
    auto bce = -tv::mean(labels * tv::log(p + 1e-7f) + (1.0f - labels) * tv::log(1.0f - p + 1e-7f));
    for (auto& t : params) t.set_grad(Tensor<float>());
    bce.backward();
    {
      tv::NoGradGuard no_grad;  // the update itself is not part of the graph
      for (auto& t : params) t.add_(t.grad(), -lr);
    }
    if (step % 100 == 0) {
      auto pv = p.to_vector(), lv = labels.to_vector();
      int64_t correct = 0;
      for (size_t i = 0; i < pv.size(); ++i) correct += (pv[i] > 0.5f) == (lv[i] > 0.5f);
      accuracy = static_cast<float>(correct) / n;
      std::printf("step %3d  loss %.4f  accuracy %.3f\n", step, bce.item(), accuracy);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("trained in %.2f s; final accuracy %.3f\n", secs, accuracy);
  return accuracy > 0.9f ? 0 : 1;
}
