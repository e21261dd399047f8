// cuDNN's convolutions for the CUDA backend (declared in backend/gpu/dnn.hpp): the legacy descriptor API,
// an algorithm chosen once per shape by cuDNN's heuristics (the same choice in every process, so a resumed run
// repeats; timing them, as cudnnFind does, would not, and would allocate outside tinyvid's allocator), the first
// deterministic one in their ranking, workspaces from tinyvid's caching allocator, all on the backend's stream.
// A shape cuDNN cannot take, or any failure while choosing, falls back to the caller's im2col + GEMM (remembered,
// so it is not asked again). Compiled only where CMake found cuDNN; otherwise dnn_none.cpp stands in.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "launch.cuh"
#include "tinyvid/backend/gpu/dnn.hpp"
#include "tinyvid/core/storage.hpp"

#include <cudnn.h>

namespace tv::cuda {

namespace {

void check_dnn(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) TV_FAIL("cuda: cuDNN ", what, ": ", cudnnGetErrorString(status));
}

// TINYVID_CUDNN=0 turns cuDNN off (the im2col path runs); TINYVID_TF32=1 lets float convolutions use TF32
// tensor cores (10 mantissa bits: faster, no longer equal to the CPU within float tolerance).
bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strcmp(v, "0") != 0 : fallback;
}

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t made = nullptr;
    const cudaStream_t s = stream();  // first: it binds this thread to the process's GPU, where the handle belongs
    check_dnn(cudnnCreate(&made), "cudnnCreate");
    check_dnn(cudnnSetStream(made, s), "cudnnSetStream");
    return made;
  }();
  return h;
}

template <class T>
constexpr cudnnDataType_t data_type() {
  return sizeof(T) == 4 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// The descriptors of one convolution, made and destroyed around each call (cheap next to the convolution).
template <class T>
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  explicit Descriptors(const ConvGeometry& g) {
    const cudnnDataType_t t = data_type<T>();
    check_dnn(cudnnCreateTensorDescriptor(&x), "descriptor");
    check_dnn(cudnnCreateTensorDescriptor(&y), "descriptor");
    check_dnn(cudnnCreateFilterDescriptor(&w), "descriptor");
    check_dnn(cudnnCreateConvolutionDescriptor(&conv), "descriptor");
    check_dnn(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, t, int(g.N), int(g.C), int(g.H), int(g.W)), "x");
    check_dnn(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, t, int(g.N), int(g.Cout), int(g.OH), int(g.OW)), "y");
    check_dnn(cudnnSetFilter4dDescriptor(w, t, CUDNN_TENSOR_NCHW, int(g.Cout), int(g.Cg()), int(g.KH), int(g.KW)), "w");
    check_dnn(cudnnSetConvolution2dDescriptor(conv, int(g.ph), int(g.pw), int(g.sh), int(g.sw), int(g.dh), int(g.dw),
                                              CUDNN_CROSS_CORRELATION, t),
              "convolution");
    check_dnn(cudnnSetConvolutionGroupCount(conv, int(g.groups)), "groups");
    tensor_ops = sizeof(T) == 4 && env_flag("TINYVID_TF32", false);
    check_dnn(cudnnSetConvolutionMathType(conv, tensor_ops ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH), "math type");
  }
  bool tensor_ops = false;  // TF32 tensor cores allowed
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

enum class Direction { Forward, BackwardInput, BackwardWeight };

struct Choice {
  int algorithm = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace = 0;
};

using Key = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, int64_t, int64_t>;

Key key_of(Direction d, size_t bytes, const ConvGeometry& g) {
  return {static_cast<int>(d), static_cast<int>(bytes), g.N, g.C, g.H, g.W, g.Cout, g.KH, g.KW, g.sh, g.sw, g.ph, g.pw,
          g.dh, g.dw, g.groups};
}

// The first deterministic algorithm in cuDNN's ranking that keeps to the math allowed (no tensor-op TF32 for
// float unless TINYVID_TF32=1), or none.
template <class Perf>
std::optional<Choice> pick(const Perf* perf, int count, bool tensor_ops) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
        (tensor_ops || perf[i].mathType != CUDNN_TENSOR_OP_MATH))
      return Choice{static_cast<int>(perf[i].algo), perf[i].mathType, perf[i].memory};
  return std::nullopt;
}

// The algorithm for this shape and direction, or none (cuDNN then declines, once and for all).
template <class T>
std::optional<Choice> choose(Direction d, const ConvGeometry& g, const Descriptors<T>& desc) {
  static std::mutex mu;
  static std::map<Key, std::optional<Choice>> chosen;
  std::lock_guard<std::mutex> lock(mu);
  const Key key = key_of(d, sizeof(T), g);
  if (auto it = chosen.find(key); it != chosen.end()) return it->second;
  constexpr int kMax = 16;
  int count = 0;
  std::optional<Choice> c;
  cudnnStatus_t status;
  if (d == Direction::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    status = cudnnGetConvolutionForwardAlgorithm_v7(handle(), desc.x, desc.w, desc.conv, desc.y, kMax, &count, perf);
    if (status == CUDNN_STATUS_SUCCESS) c = pick(perf, count, desc.tensor_ops);
  } else if (d == Direction::BackwardInput) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
    status = cudnnGetConvolutionBackwardDataAlgorithm_v7(handle(), desc.w, desc.y, desc.conv, desc.x, kMax, &count, perf);
    if (status == CUDNN_STATUS_SUCCESS) c = pick(perf, count, desc.tensor_ops);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
    status = cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle(), desc.x, desc.y, desc.conv, desc.w, kMax, &count, perf);
    if (status == CUDNN_STATUS_SUCCESS) c = pick(perf, count, desc.tensor_ops);
  }
  chosen.emplace(key, c);
  return c;
}

// alpha = 1, beta = 0, in the scaling type cuDNN wants for T.
template <class T>
struct Scale {
  T one = T(1), zero = T(0);
};

}  // namespace

// Whether cuDNN takes this convolution: not when turned off, nor for an empty one (the caller's loops do nothing).
bool cudnn_takes(const ConvGeometry& g) {
  static const bool on = env_flag("TINYVID_CUDNN", true);
  return on && g.N > 0 && g.Cout > 0 && g.C > 0 && g.OH > 0 && g.OW > 0;
}

template <class T>
bool dnn_conv2d_forward(const ConvGeometry& g, const T* x, const T* w, T* y) {
  if (!cudnn_takes(g)) return false;
  Descriptors<T> desc(g);
  const std::optional<Choice> c = choose<T>(Direction::Forward, g, desc);
  if (!c) return false;
  check_dnn(cudnnSetConvolutionMathType(desc.conv, c->math), "math type");
  Storage<char> workspace(static_cast<int64_t>(c->workspace), Device::CUDA);
  Scale<T> s;
  check_dnn(cudnnConvolutionForward(handle(), &s.one, desc.x, x, desc.w, w, desc.conv,
                                    static_cast<cudnnConvolutionFwdAlgo_t>(c->algorithm), workspace.data(), c->workspace,
                                    &s.zero, desc.y, y),
            "forward convolution");
  return true;
}

template <class T>
bool dnn_conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx) {
  if (!cudnn_takes(g)) return false;
  Descriptors<T> desc(g);
  const std::optional<Choice> c = choose<T>(Direction::BackwardInput, g, desc);
  if (!c) return false;
  check_dnn(cudnnSetConvolutionMathType(desc.conv, c->math), "math type");
  Storage<char> workspace(static_cast<int64_t>(c->workspace), Device::CUDA);
  Scale<T> s;
  check_dnn(cudnnConvolutionBackwardData(handle(), &s.one, desc.w, w, desc.y, gy, desc.conv,
                                         static_cast<cudnnConvolutionBwdDataAlgo_t>(c->algorithm), workspace.data(),
                                         c->workspace, &s.zero, desc.x, gx),
            "input gradient");
  return true;
}

template <class T>
bool dnn_conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw) {
  if (!cudnn_takes(g)) return false;
  Descriptors<T> desc(g);
  const std::optional<Choice> c = choose<T>(Direction::BackwardWeight, g, desc);
  if (!c) return false;
  check_dnn(cudnnSetConvolutionMathType(desc.conv, c->math), "math type");
  Storage<char> workspace(static_cast<int64_t>(c->workspace), Device::CUDA);
  Scale<T> s;
  check_dnn(cudnnConvolutionBackwardFilter(handle(), &s.one, desc.x, x, desc.y, gy, desc.conv,
                                           static_cast<cudnnConvolutionBwdFilterAlgo_t>(c->algorithm), workspace.data(),
                                           c->workspace, &s.zero, desc.w, gw),
            "weight gradient");
  return true;
}

template bool dnn_conv2d_forward<float>(const ConvGeometry&, const float*, const float*, float*);
template bool dnn_conv2d_forward<double>(const ConvGeometry&, const double*, const double*, double*);
template bool dnn_conv2d_backward_input<float>(const ConvGeometry&, const float*, const float*, float*);
template bool dnn_conv2d_backward_input<double>(const ConvGeometry&, const double*, const double*, double*);
template bool dnn_conv2d_backward_weight<float>(const ConvGeometry&, const float*, const float*, float*);
template bool dnn_conv2d_backward_weight<double>(const ConvGeometry&, const double*, const double*, double*);

}  // namespace tv::cuda
