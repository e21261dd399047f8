#pragma once
// Recognizers as MMAction2 builds them: a backbone (`backbone.*`) and a classification head
// (`cls_head.fc_cls.*`), so an MMAction2 checkpoint converts key for key.
// - TSN: backbone -> global average pool -> average over the T frames (segment consensus) -> dropout
//   -> fc. Averaging before the fc equals averaging the fc's outputs.
// - TSM: backbone with the temporal shift -> global average pool -> dropout -> fc -> average over T
//   (MMAction2's TSMHead).
#include <memory>

#include "tinyvid/models/resnet.hpp"

namespace tv::models {

enum class Consensus { BeforeFc, AfterFc };  // TSN, TSM

template <class T = float>
class ClsHead : public nn::Module<T> {
 public:
  ClsHead(int64_t in_channels, int64_t num_classes, double dropout, Consensus consensus, Generator& gen = default_generator())
      : dropout_p(dropout), consensus(consensus), gen_(&gen) {
    TV_CHECK(num_classes >= 1, "ClsHead: num_classes must be at least 1, got ", num_classes);
    TV_CHECK(dropout >= 0 && dropout < 1, "ClsHead: dropout must be in [0, 1), got ", dropout);
    fc_cls = this->register_module("fc_cls", std::make_shared<nn::Linear<T>>(in_channels, num_classes, true, gen));
    nn::init::normal_(fc_cls->weight, 0.0, 0.01, gen);  // MMAction2's heads: normal(std 0.01), bias 0
    nn::init::constant_(fc_cls->bias, 0.0);
  }
  // features: N*T x C x h x w -> class scores N x K.
  Tensor<T> forward(const Tensor<T>& features, int64_t frames) {
    const int64_t NT = features.size(0), C = features.size(1), N = NT / frames;
    Tensor<T> pooled = mean(features, {2, 3});  // NT x C
    if (consensus == Consensus::BeforeFc) {
      Tensor<T> clip = mean(pooled.reshape({N, frames, C}), {1});
      return (*fc_cls)(dropout(clip, dropout_p, this->is_training(), *gen_));
    }
    Tensor<T> scores = (*fc_cls)(dropout(pooled, dropout_p, this->is_training(), *gen_));
    return mean(scores.reshape({N, frames, scores.size(1)}), {1});
  }
  double dropout_p;
  Consensus consensus;
  std::shared_ptr<nn::Linear<T>> fc_cls;

 private:
  Generator* gen_;
};

struct RecognizerOptions {
  ResNetOptions backbone;
  int64_t num_classes = 400;
  double dropout = 0.4;
  Consensus consensus = Consensus::BeforeFc;
};

template <class T = float>
class Recognizer : public nn::Module<T> {
 public:
  explicit Recognizer(const RecognizerOptions& o, Generator& gen = default_generator()) : options(o) {
    backbone = this->register_module("backbone", std::make_shared<ResNet<T>>(o.backbone, gen));
    cls_head = this->register_module(
        "cls_head", std::make_shared<ClsHead<T>>(backbone->out_channels, o.num_classes, o.dropout, o.consensus, gen));
  }
  // x: N*T x 3 x H x W (frames of a clip adjacent) -> class scores (logits) N x K.
  Tensor<T> forward(const Tensor<T>& x) { return cls_head->forward(backbone->forward(x), frames()); }
  Tensor<T> operator()(const Tensor<T>& x) { return forward(x); }
  int64_t frames() const { return options.backbone.frames; }
  RecognizerOptions options;
  std::shared_ptr<ResNet<T>> backbone;
  std::shared_ptr<ClsHead<T>> cls_head;
};

}  // namespace tv::models
