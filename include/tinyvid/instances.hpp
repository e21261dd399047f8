#pragma once
// The template instances a compiled tinyvid holds, so that a user's file does not compile them again.
//
// tinyvid is header-only; the CMake target tinyvid::tinyvid additionally builds these instances once into a
// static library (src/instances.cpp) and defines TINYVID_COMPILED, under which <tinyvid/tinyvid.hpp> ends by
// declaring them `extern template`: a file that includes it then parses the templates but generates no code
// for them (bench/compile_time.sh measures the difference). Without the define nothing changes: every use is
// instantiated where it is made, as in any header-only library.
//
// One list, used twice: TINYVID_FLOATING_INSTANCES(X, T) and TINYVID_INDEX_INSTANCES(X, T) expand to
// `X <declaration>;` for each entry, with X `extern template` here and `template` in src/instances.cpp.
// The list is about compile time only: a template left out is instantiated where it is used, as before.
// Add an entry when a new public op or layer appears; decltype names a function that has no overloads.
#include "tinyvid/tinyvid.hpp"

// Every op, layer and model for a floating type T (float, double).
#define TINYVID_FLOATING_INSTANCES(X, T)                                                                 \
  X class Tensor<T>;                                                                                     \
  X class Storage<T>;                                                                                    \
  X class autograd::Node<T>;                                                                             \
  X class autograd::AccumulateGrad<T>;                                                                   \
  X decltype(autograd::backward<T>) autograd::backward<T>;                                               \
  /* ops/creation.hpp */                                                                                 \
  X decltype(empty<T>) empty<T>;                                                                         \
  X decltype(full<T>) full<T>;                                                                           \
  X decltype(zeros<T>) zeros<T>;                                                                         \
  X decltype(ones<T>) ones<T>;                                                                           \
  X decltype(empty_like<T>) empty_like<T>;                                                               \
  X decltype(zeros_like<T>) zeros_like<T>;                                                               \
  X decltype(ones_like<T>) ones_like<T>;                                                                 \
  X decltype(full_like<T>) full_like<T>;                                                                 \
  X decltype(scalar_tensor<T>) scalar_tensor<T>;                                                         \
  X decltype(tensor<T>) tensor<T>;                                                                       \
  X decltype(uniform<T>) uniform<T>;                                                                     \
  X decltype(normal<T>) normal<T>;                                                                       \
  /* ops/elementwise.hpp */                                                                              \
  X Tensor<T> add(const Tensor<T>&, const Tensor<T>&);                                                   \
  X Tensor<T> sub(const Tensor<T>&, const Tensor<T>&);                                                   \
  X Tensor<T> mul(const Tensor<T>&, const Tensor<T>&);                                                   \
  X Tensor<T> div(const Tensor<T>&, const Tensor<T>&);                                                   \
  X Tensor<T> pow(const Tensor<T>&, const Tensor<T>&);                                                   \
  X Tensor<T> add(const Tensor<T>&, std::type_identity_t<T>);                                            \
  X Tensor<T> sub(const Tensor<T>&, std::type_identity_t<T>);                                            \
  X Tensor<T> mul(const Tensor<T>&, std::type_identity_t<T>);                                            \
  X Tensor<T> div(const Tensor<T>&, std::type_identity_t<T>);                                            \
  X Tensor<T> pow(const Tensor<T>&, std::type_identity_t<T>);                                            \
  X decltype(neg<T>) neg<T>;                                                                             \
  X decltype(exp<T>) exp<T>;                                                                             \
  X decltype(log<T>) log<T>;                                                                             \
  X decltype(sqrt<T>) sqrt<T>;                                                                           \
  X decltype(abs<T>) abs<T>;                                                                             \
  X decltype(relu<T>) relu<T>;                                                                           \
  X decltype(sigmoid<T>) sigmoid<T>;                                                                     \
  X decltype(tanh<T>) tanh<T>;                                                                           \
  X decltype(clamp<T>) clamp<T>;                                                                         \
  /* ops/index.hpp, join.hpp, matmul.hpp, linear.hpp */                                                  \
  X decltype(gather<T>) gather<T>;                                                                       \
  X decltype(shift<T>) shift<T>;                                                                         \
  X decltype(temporal_shift<T>) temporal_shift<T>;                                                       \
  X decltype(cat<T>) cat<T>;                                                                             \
  X decltype(stack<T>) stack<T>;                                                                         \
  X std::vector<Tensor<T>> split(const Tensor<T>&, const std::vector<int64_t>&, int64_t);                \
  X std::vector<Tensor<T>> split(const Tensor<T>&, int64_t, int64_t);                                    \
  X decltype(chunk<T>) chunk<T>;                                                                         \
  X decltype(matmul<T>) matmul<T>;                                                                       \
  X decltype(linear<T>) linear<T>;                                                                       \
  /* ops/reduce.hpp, softmax.hpp, loss.hpp */                                                            \
  X decltype(sum_to<T>) sum_to<T>;                                                                       \
  X decltype(sum<T>) sum<T>;                                                                             \
  X decltype(mean<T>) mean<T>;                                                                           \
  X decltype(var<T>) var<T>;                                                                             \
  X ValuesIndices<T> max(const Tensor<T>&, int64_t, bool);                                               \
  X Tensor<T> max(const Tensor<T>&);                                                                     \
  X decltype(argmax<T>) argmax<T>;                                                                       \
  X decltype(check_finite<T>) check_finite<T>;                                                           \
  X decltype(softmax<T>) softmax<T>;                                                                     \
  X decltype(log_softmax<T>) log_softmax<T>;                                                             \
  X decltype(cross_entropy<T>) cross_entropy<T>;                                                         \
  X decltype(topk_accuracy<T>) topk_accuracy<T>;                                                         \
  /* ops/conv.hpp, batch_norm.hpp, pool.hpp, dropout.hpp, lstm.hpp, print.hpp */                         \
  X decltype(conv2d<T>) conv2d<T>;                                                                       \
  X decltype(conv2d_inference<T>) conv2d_inference<T>;                                                   \
  X decltype(batch_norm_eval_coefficients<T>) batch_norm_eval_coefficients<T>;                           \
  X decltype(batch_norm<T>) batch_norm<T>;                                                               \
  X decltype(max_pool2d<T>) max_pool2d<T>;                                                               \
  X decltype(avg_pool2d<T>) avg_pool2d<T>;                                                               \
  X decltype(adaptive_avg_pool2d<T>) adaptive_avg_pool2d<T>;                                             \
  X decltype(dropout<T>) dropout<T>;                                                                     \
  X decltype(lstm_gates<T>) lstm_gates<T>;                                                               \
  X decltype(lstm_cell<T>) lstm_cell<T>;                                                                 \
  X std::ostream& operator<<(std::ostream&, const Tensor<T>&);                                           \
  /* nn/, optim/ */                                                                                      \
  X decltype(nn::conv_bn<T>) nn::conv_bn<T>;                                                             \
  X decltype(nn::init::uniform_<T>) nn::init::uniform_<T>;                                               \
  X decltype(nn::init::normal_<T>) nn::init::normal_<T>;                                                 \
  X decltype(nn::init::constant_<T>) nn::init::constant_<T>;                                             \
  X decltype(nn::init::kaiming_normal_<T>) nn::init::kaiming_normal_<T>;                                 \
  X decltype(nn::init::kaiming_uniform_<T>) nn::init::kaiming_uniform_<T>;                               \
  X class nn::Module<T>;                                                                                 \
  X class nn::UnaryModule<T>;                                                                            \
  X class nn::Conv2d<T>;                                                                                 \
  X class nn::BatchNorm2d<T>;                                                                            \
  X class nn::Linear<T>;                                                                                 \
  X class nn::LSTMCell<T>;                                                                               \
  X class nn::Dropout<T>;                                                                                \
  X class nn::ReLU<T>;                                                                                   \
  X class nn::MaxPool2d<T>;                                                                              \
  X class nn::AvgPool2d<T>;                                                                              \
  X class nn::AdaptiveAvgPool2d<T>;                                                                      \
  X class nn::Sequential<T>;                                                                             \
  X decltype(io::save_weights<T>) io::save_weights<T>;                                                   \
  X decltype(io::load_weights<T>) io::load_weights<T>;                                                   \
  X decltype(optim::clip_grad_norm<T>) optim::clip_grad_norm<T>;                                         \
  /* dnr/, models/ */                                                                                    \
  X decltype(dnr::interlace<T>) dnr::interlace<T>;                                                       \
  X decltype(dnr::dynamic_affine<T>) dnr::dynamic_affine<T>;                                             \
  X class dnr::RelayCell<T>;                                                                             \
  X class dnr::DynamicNorm<T>;                                                                           \
  X class dnr::CrossLayerNorm<T>;                                                                        \
  X class dnr::CrossTemporalNorm<T>;                                                                     \
  X class models::Block<T>;                                                                              \
  X class models::BasicBlock<T>;                                                                         \
  X class models::Bottleneck<T>;                                                                         \
  X class models::ResLayer<T>;                                                                           \
  X class models::ResNet<T>;                                                                             \
  X class models::ClsHead<T>;                                                                            \
  X class models::Recognizer<T>;                                                                         \
  X decltype(models::summarize<T>) models::summarize<T>;

// The tensor itself and the ops an index or label tensor takes (T = int64_t).
#define TINYVID_INDEX_INSTANCES(X, T)                                                                    \
  X class Tensor<T>;                                                                                     \
  X class Storage<T>;                                                                                    \
  X decltype(empty<T>) empty<T>;                                                                         \
  X decltype(full<T>) full<T>;                                                                           \
  X decltype(zeros<T>) zeros<T>;                                                                         \
  X decltype(ones<T>) ones<T>;                                                                           \
  X decltype(zeros_like<T>) zeros_like<T>;                                                               \
  X decltype(tensor<T>) tensor<T>;                                                                       \
  X decltype(cat<T>) cat<T>;                                                                             \
  X decltype(stack<T>) stack<T>;                                                                         \
  X std::ostream& operator<<(std::ostream&, const Tensor<T>&);

#if defined(TINYVID_COMPILED)
namespace tv {
TINYVID_FLOATING_INSTANCES(extern template, float)
TINYVID_FLOATING_INSTANCES(extern template, double)
TINYVID_INDEX_INSTANCES(extern template, int64_t)
}  // namespace tv
#endif
