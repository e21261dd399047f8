#include <tinyvid/tinyvid.hpp>

#include <iostream>

tv::Tensor<float> second_file_square(const tv::Tensor<float>& x);

int main() {
#ifdef TINYVID_COMPILED
  const bool compiled = true;
#else
  const bool compiled = false;
#endif
  if (compiled != bool(EXPECT_COMPILED)) {
    std::cout << "tinyvid::tinyvid: expected " << (EXPECT_COMPILED ? "compiled instances" : "the headers alone") << "\n";
    return 2;
  }
  auto x = tv::tensor<float>({1, 2, 3}).requires_grad_();
  auto y = tv::sum(second_file_square(x));
  y.backward();
  std::cout << "y = " << y.item() << ", dy/dx = " << x.grad() << "\n";
  // d(sum x^2)/dx = 2x
  return y.item() == 14.0f && x.grad().at({2}) == 6.0f ? 0 : 1;
}
