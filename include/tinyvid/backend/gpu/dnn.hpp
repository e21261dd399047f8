#pragma once
// cuDNN's convolutions, behind the same conv2d kernels as the CUDA backend's own im2col + GEMM path: where the
// CUDA library was built with cuDNN (and the environment does not set TINYVID_CUDNN=0), these run and return
// true; otherwise they return false and gpu/conv.hpp takes its own path (always, in the tests' host stand-in).
// Algorithms are chosen once per shape by cuDNN's heuristics, deterministic ones only, so a run (and a resumed
// run) repeats exactly; a shape cuDNN declines takes the backend's own path.
#include "tinyvid/backend/conv_geometry.hpp"

namespace tv::cuda {

// y = conv(x, w), no bias.
template <class T>
bool dnn_conv2d_forward(const ConvGeometry& g, const T* x, const T* w, T* y);
// gx = the input gradient from gy.
template <class T>
bool dnn_conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx);
// gw = the weight gradient (overwritten, not accumulated).
template <class T>
bool dnn_conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw);

}  // namespace tv::cuda
