#pragma once
// The shape of one conv2d call, shared by the op (ops/conv.hpp) and every device's kernels: plain numbers,
// no device, no Tensor.
#include <cstdint>

namespace tv {

struct ConvGeometry {
  int64_t N, C, H, W;        // input
  int64_t Cout, KH, KW;      // weight: Cout x C/groups x KH x KW
  int64_t sh, sw, ph, pw, dh, dw, groups;
  int64_t OH, OW;            // output
  constexpr int64_t Cg() const { return C / groups; }
  constexpr int64_t Cog() const { return Cout / groups; }
  constexpr int64_t K() const { return Cg() * KH * KW; }  // the GEMM's inner dimension
  constexpr int64_t HW() const { return H * W; }
  constexpr int64_t OHW() const { return OH * OW; }
};

}  // namespace tv
