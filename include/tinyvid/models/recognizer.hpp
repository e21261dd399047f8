#pragma once
// Recognizers as MMAction2 builds them: a backbone (`backbone.*`) and a classification head
// (`cls_head.fc_cls.*`), so an MMAction2 checkpoint converts key for key.
// - TSN: backbone -> global average pool -> average over the T frames (segment consensus) -> dropout
//   -> fc. Averaging before the fc equals averaging the fc's outputs.
// - TSM: backbone with the temporal shift -> global average pool -> dropout -> fc -> average over T
//   (MMAction2's TSMHead). TANet's and TDN's heads are this one too (TDN: T segments of 5 input frames).
#include <algorithm>
#include <memory>
#include <vector>

#include "tinyvid/models/resnet.hpp"
#include "tinyvid/ops/join.hpp"
#include "tinyvid/ops/reduce.hpp"
#include "tinyvid/ops/softmax.hpp"

namespace tv::models {

enum class Consensus { BeforeFc, AfterFc };  // TSN, TSM
// How the scores of several test views are fused (MMAction2's average_clips).
enum class AverageClips { Prob, Score };

template <class T = float>
class ClsHead : public nn::Module<T> {
 public:
  // init_std: the fc's weights are normal(0, init_std), its bias 0 (MMAction2's heads; 0.01 for TSN and TSM, 0.001
  // in its TANet configs and in TDN's code).
  ClsHead(int64_t in_channels, int64_t num_classes, double dropout, Consensus consensus, Generator& gen = default_generator(),
          double init_std = 0.01)
      : dropout_p(dropout), consensus(consensus), gen_(&gen) {
    TV_CHECK(num_classes >= 1, "ClsHead: num_classes must be at least 1, got ", num_classes);
    TV_CHECK(dropout >= 0 && dropout < 1, "ClsHead: dropout must be in [0, 1), got ", dropout);
    fc_cls = this->register_module("fc_cls", std::make_shared<nn::Linear<T>>(in_channels, num_classes, gen));
    nn::init::normal_(fc_cls->weight, 0.0, init_std, gen);
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
  double init_std = 0.01;  // the fc's initial weights
};

template <class T = float>
class Recognizer : public nn::Module<T> {
 public:
  explicit Recognizer(const RecognizerOptions& o, Generator& gen = default_generator()) : options(o) {
    backbone = this->register_module("backbone", std::make_shared<ResNet<T>>(o.backbone, gen));
    cls_head = this->register_module(
        "cls_head",
        std::make_shared<ClsHead<T>>(backbone->out_channels, o.num_classes, o.dropout, o.consensus, gen, o.init_std));
  }
  // x: N*F x 3 x H x W (the F = frames() frames of a clip adjacent) -> class scores (logits) N x K. Every model input passes
  // here or through forward_views, which refuse an infinity or NaN by its index (a cheap scan next to the
  // backbone): inside the network it would become NaN scores or a NaN loss with no trace of where it came from.
  // Host inputs only: on a GPU the answer would make the host wait for the device at every forward, so the
  // trainer and evaluate check each batch on the host before its upload (train::clips_on_device), and a
  // program feeding device tensors of its own checks them where it makes them.
  Tensor<T> forward(const Tensor<T>& x) {
    if (x.device() == Device::CPU) check_finite(x, "Recognizer::forward: input");
    return cls_head->forward(backbone->forward(x), segments());
  }
  Tensor<T> operator()(const Tensor<T>& x) { return forward(x); }

  // Multi-view testing as MMAction2 fuses views. x: N*V*F frames, the V views (clips of F = frames()) of a video
  // adjacent -> N x K. TSN (consensus before the fc): the pooled features of all V*T frames are averaged, then
  // one fc; TSM (after the fc): scores per view, then `average` over the views (Prob: softmax per view, then
  // mean; Score: mean of the scores); TSN with Prob returns the softmax of its one score vector.
  // The backbone runs on at most max_views_per_pass clips at once (0: all), which bounds memory only.
  Tensor<T> forward_views(const Tensor<T>& x, int64_t views, AverageClips average, int64_t max_views_per_pass = 0) {
    const int64_t F = frames(), Tn = segments();
    TV_CHECK(x.dim() == 4 && views >= 1 && x.size(0) % (views * F) == 0, "Recognizer::forward_views: expected N*",
             views, "*", F, " frames (", views, " views of ", F, " frames per video), got ", x.shape());
    if (x.device() == Device::CPU) check_finite(x, "Recognizer::forward_views: input");
    const int64_t N = x.size(0) / (views * F), clips = N * views;
    const int64_t step = max_views_per_pass > 0 ? max_views_per_pass : clips;
    std::vector<Tensor<T>> pooled;  // (clips * T) x C in pieces
    for (int64_t c0 = 0; c0 < clips; c0 += step) {
      const int64_t c1 = std::min(clips, c0 + step);
      pooled.push_back(mean(backbone->forward(x.narrow(0, c0 * F, (c1 - c0) * F)), {2, 3}));
    }
    Tensor<T> feats = pooled.size() == 1 ? pooled[0] : cat(pooled, 0);
    const int64_t C = feats.size(1);
    Tensor<T> scores;
    if (cls_head->consensus == Consensus::BeforeFc) {
      scores = (*cls_head->fc_cls)(mean(feats.reshape({N, views * Tn, C}), {1}));  // N x K
      return average == AverageClips::Prob ? softmax(scores, 1) : scores;
    }
    Tensor<T> per_view = mean((*cls_head->fc_cls)(feats).reshape({N * views, Tn, -1}), {1});  // N*V x K
    if (average == AverageClips::Prob) per_view = softmax(per_view, 1);
    return mean(per_view.reshape({N, views, per_view.size(1)}), {1});
  }

  // Input frames per clip (what a sampler delivers: TDN's are 5 per segment) and the segments the head averages.
  int64_t frames() const { return backbone->input_frames(); }
  int64_t segments() const { return options.backbone.frames; }
  RecognizerOptions options;
  std::shared_ptr<ResNet<T>> backbone;
  std::shared_ptr<ClsHead<T>> cls_head;
};

}  // namespace tv::models
