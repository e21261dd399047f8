// The CUDA backend without cuDNN (a toolkit without it, -DTINYVID_CUDNN=OFF, and the tests' host stand-in):
// every cuDNN entry of backend/gpu/dnn.hpp declines, and gpu/conv.hpp runs its own im2col + GEMM.
#include "tinyvid/backend/gpu/dnn.hpp"

namespace tv::cuda {

template <class T>
bool dnn_conv2d_forward(const ConvGeometry&, const T*, const T*, T*) {
  return false;
}
template <class T>
bool dnn_conv2d_backward_input(const ConvGeometry&, const T*, const T*, T*) {
  return false;
}
template <class T>
bool dnn_conv2d_backward_weight(const ConvGeometry&, const T*, const T*, T*) {
  return false;
}

template bool dnn_conv2d_forward<float>(const ConvGeometry&, const float*, const float*, float*);
template bool dnn_conv2d_forward<double>(const ConvGeometry&, const double*, const double*, double*);
template bool dnn_conv2d_backward_input<float>(const ConvGeometry&, const float*, const float*, float*);
template bool dnn_conv2d_backward_input<double>(const ConvGeometry&, const double*, const double*, double*);
template bool dnn_conv2d_backward_weight<float>(const ConvGeometry&, const float*, const float*, float*);
template bool dnn_conv2d_backward_weight<double>(const ConvGeometry&, const double*, const double*, double*);

}  // namespace tv::cuda
