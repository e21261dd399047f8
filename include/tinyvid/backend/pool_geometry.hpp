#pragma once
// The shape of one 2-D pool call, shared by the op (ops/pool.hpp) and every device's kernels: plain numbers,
// no device, no Tensor.
#include <cstdint>

namespace tv {

// planes (N * C) of H x W, kernel KH x KW, stride sh x sw, padding ph x pw, output OH x OW.
struct PoolGeometry {
  int64_t planes, H, W, KH, KW, sh, sw, ph, pw, OH, OW;
};

}  // namespace tv
