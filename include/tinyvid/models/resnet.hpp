#pragma once
// ResNet 18/34/50/101/152 ('pytorch' style: the stride sits on the 3x3 conv) for clip batches
// (N*T x 3 x H x W, the T frames of a clip adjacent), with torchvision's parameter names and init, and
// the normalization chosen per model: batch norm, or DNR (bn1 -> cross-layer, bn2 -> cross-temporal,
// channel interlacing on the residual input; docs/DNR.md, "Where DNR sits"). TSM's temporal shift is a switch too,
// and so is TANet's TAM (models/tam.hpp) after each block's conv1 + bn1 + ReLU, as MMAction2's TABlock, and TDN
// (models/tdn.hpp): 5 frames per segment, their differences at the stem, a long-term difference module and a
// learnable shift in the blocks of layer2..layer4, convs with biases, as its authors' code.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tinyvid/dnr/norm.hpp"
#include "tinyvid/models/tam.hpp"
#include "tinyvid/models/tdn.hpp"
#include "tinyvid/nn/fuse.hpp"
#include "tinyvid/nn/layers.hpp"

namespace tv::models {

enum class Norm { Batch, Dnr };

struct ResNetOptions {
  int64_t depth = 50;
  int64_t frames = 8;           // frames per clip: DNR and the temporal shift work per clip
  Norm norm = Norm::Batch;
  dnr::DnrOptions dnr;          // used when norm == Norm::Dnr
  bool temporal_shift = false;  // TSM: shift each block's residual input
  int64_t shift_div = 8;        // TSM's fold: 1 / shift_div of the channels each way
  bool tam = false;             // TANet: a TAM in every block, after conv1's norm and ReLU
  TamOptions tam_options;
  bool tdn = false;             // TDN: input of frames x 5 frames per clip (a segment's 5 adjacent), see ResNet
  int64_t width = 64;           // channels of the stem and of stage 1 (64 in ResNet; less for small demos)
  int64_t stats_group_clips = 0; // > 0: every norm's training statistics over groups of this many clips, as
                                // per-GPU batch norm (the paper: 8); 0: over the whole batch
};

// What a block needs from its stage: the clip length and, for cross-layer DNR, the stage's relay cell
// with the state it carries from block to block.
template <class T>
struct StageContext {
  int64_t frames;
  dnr::RelayCell<T>* relay = nullptr;
  dnr::RelayState<T> state;
};

namespace detail {
// TDN's convs have biases (its authors' ResNet); the others' do not.
template <class T>
std::shared_ptr<nn::Conv2d<T>> conv(int64_t in, int64_t out, int64_t k, int64_t stride, const ResNetOptions& o,
                                    Generator& gen) {
  auto c = std::make_shared<nn::Conv2d<T>>(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(o.tdn), gen);
  nn::init::kaiming_normal_(c->weight, nn::init::FanMode::FanOut, gen);  // torchvision's and MMAction2's ResNet init
  return c;
}
template <class T>
std::shared_ptr<nn::BatchNorm2d<T>> bn(int64_t c, const ResNetOptions& o) {
  return std::make_shared<nn::BatchNorm2d<T>>(nn::BatchNormOptions(c).stats_group_clips(o.stats_group_clips).rows_per_clip(o.frames));
}
}  // namespace detail

// The two norms of a residual block that DNR replaces (docs/DNR.md, "Where DNR sits"): bn1, after the block's
// first conv, is the cross-layer slot (CrossLayerNorm, with the stage's relay cell); bn2, after the 3x3 conv that
// follows, is the cross-temporal slot (CrossTemporalNorm, with the block's own cell). Either stays a BatchNorm2d
// when its DNR switch is off or the model has batch norm.
enum class NormSlot { CrossLayer, CrossTemporal };

template <class T = float>
class Block : public nn::Module<T> {
 public:
  // x by value: a stage hands each block its input (std::move), so that the last conv may add it in place.
  virtual Tensor<T> forward(Tensor<T> x, StageContext<T>& ctx) = 0;

 protected:
  // Registers a block's norm in `slot`: bn1 or bn2, each a BatchNorm2d, or the DNR norm the options put there.
  void make_norm(NormSlot slot, int64_t c, const ResNetOptions& o, Generator& gen) {
    const bool dnr = o.norm == Norm::Dnr;
    const bool cross_layer = slot == NormSlot::CrossLayer;
    const std::string name = cross_layer ? "bn1" : "bn2";
    if (cross_layer && dnr && o.dnr.cross_layer) {
      cl_norm = this->register_module(name, std::make_shared<dnr::CrossLayerNorm<T>>(c));
      cl_norm->stats_group_clips = o.stats_group_clips;
    } else if (!cross_layer && dnr && o.dnr.cross_temporal) {
      ct_norm = this->register_module(name, std::make_shared<dnr::CrossTemporalNorm<T>>(c, o.dnr, 0.1, 1e-5, gen));
      ct_norm->stats_group_clips = o.stats_group_clips;
    } else {
      (cross_layer ? bn1_ : bn2_) = this->register_module(name, detail::bn<T>(c, o));
    }
  }
  Tensor<T> norm1(const Tensor<T>& y, StageContext<T>& ctx) {
    if (!cl_norm) return (*bn1_)(y);
    TV_CHECK(ctx.relay != nullptr, "ResNet block: cross-layer DNR needs the stage's relay cell");
    return cl_norm->forward(y, ctx.frames, *ctx.relay, ctx.state);
  }
  Tensor<T> norm2(const Tensor<T>& y, StageContext<T>& ctx) { return ct_norm ? ct_norm->forward(y, ctx.frames) : (*bn2_)(y); }
  // The residual branch's input: shifted in time for TSM and for DNR's channel interlacing (once
  // when a model has both: they are the same operation in the same place).
  Tensor<T> branch_input(const Tensor<T>& x, const StageContext<T>& ctx) const {
    return shift_ ? temporal_shift(x, ctx.frames, shift_div_) : x;
  }
  void set_shift(const ResNetOptions& o) {
    shift_ = o.temporal_shift || (o.norm == Norm::Dnr && o.dnr.interlace);
    shift_div_ = o.temporal_shift ? o.shift_div : 8;
  }
  Tensor<T> residual(Tensor<T> x) {
    if (!downsample) return x;
    if (downsample->size() != 2) return (*downsample)(x);
    auto conv = std::dynamic_pointer_cast<nn::Conv2d<T>>((*downsample)[0]);
    auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d<T>>((*downsample)[1]);
    return conv && bn ? nn::conv_bn(*conv, *bn, x) : (*downsample)(x);
  }
  // The temporal modules on conv1's activated output, registered last: TANet's TAM (MMAction2's TABlock: conv1 ->
  // tam -> conv2, the TABlock holds the block before its tam); TDN's long-term difference module and learnable
  // shift, in layer2..layer4 only (planes above the stem's width), as its authors' BottleneckShift.
  void make_temporal_modules(int64_t planes, const ResNetOptions& o, Generator& gen) {
    if (o.tam)
      tam = this->register_module("tam", std::make_shared<Tam<T>>(planes, o.frames, o.tam_options, o.stats_group_clips, gen));
    if (o.tdn && planes > o.width) {
      mse = this->register_module(
          "mse", std::make_shared<LongTermDifference<T>>(planes, o.frames, [&](int64_t c) { return detail::bn<T>(c, o); }, gen));
      tdn_shift = this->register_module("shift", std::make_shared<TemporalShiftConv<T>>(planes));
    }
  }
  Tensor<T> adapt(const Tensor<T>& y, const StageContext<T>& ctx) {
    if (tam) return tam->forward(y);
    if (mse) return tdn_shift->forward(mse->forward(y), ctx.frames);
    return y;
  }
  void make_downsample(int64_t in, int64_t out, int64_t stride, const ResNetOptions& o, Generator& gen) {
    if (stride == 1 && in == out) return;
    downsample = std::make_shared<nn::Sequential<T>>();
    downsample->push_back(detail::conv<T>(in, out, 1, stride, o, gen));
    downsample->push_back(detail::bn<T>(out, o));
    this->register_module("downsample", downsample);
  }

 public:
  std::shared_ptr<nn::BatchNorm2d<T>> bn1_, bn2_;
  std::shared_ptr<dnr::CrossLayerNorm<T>> cl_norm;
  std::shared_ptr<dnr::CrossTemporalNorm<T>> ct_norm;
  std::shared_ptr<nn::Sequential<T>> downsample;
  std::shared_ptr<Tam<T>> tam;
  std::shared_ptr<LongTermDifference<T>> mse;
  std::shared_ptr<TemporalShiftConv<T>> tdn_shift;

 private:
  bool shift_ = false;
  int64_t shift_div_ = 8;
};

template <class T = float>
class BasicBlock : public Block<T> {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, const ResNetOptions& o, Generator& gen) {
    conv1 = this->register_module("conv1", detail::conv<T>(inplanes, planes, 3, stride, o, gen));
    this->make_norm(NormSlot::CrossLayer, planes, o, gen);
    conv2 = this->register_module("conv2", detail::conv<T>(planes, planes, 3, 1, o, gen));
    this->make_norm(NormSlot::CrossTemporal, planes, o, gen);
    this->make_downsample(inplanes, planes, stride, o, gen);
    this->set_shift(o);
    this->make_temporal_modules(planes, o, gen);
  }
  Tensor<T> forward(Tensor<T> x, StageContext<T>& ctx) override {
    const Tensor<T> in = this->branch_input(x, ctx);
    Tensor<T> out = this->bn1_ ? nn::conv_bn(*conv1, *this->bn1_, in, Tensor<T>(), true)
                               : relu(this->norm1((*conv1)(in), ctx));
    out = this->adapt(out, ctx);
    if (this->bn2_) return nn::conv_bn(*conv2, *this->bn2_, out, this->residual(std::move(x)), true);
    out = this->norm2((*conv2)(out), ctx);
    return relu(add(out, this->residual(std::move(x))));
  }
  std::shared_ptr<nn::Conv2d<T>> conv1, conv2;
};

template <class T = float>
class Bottleneck : public Block<T> {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, const ResNetOptions& o, Generator& gen) {
    conv1 = this->register_module("conv1", detail::conv<T>(inplanes, planes, 1, 1, o, gen));
    this->make_norm(NormSlot::CrossLayer, planes, o, gen);
    conv2 = this->register_module("conv2", detail::conv<T>(planes, planes, 3, stride, o, gen));
    this->make_norm(NormSlot::CrossTemporal, planes, o, gen);
    conv3 = this->register_module("conv3", detail::conv<T>(planes, planes * expansion, 1, 1, o, gen));
    bn3 = this->register_module("bn3", detail::bn<T>(planes * expansion, o));
    this->make_downsample(inplanes, planes * expansion, stride, o, gen);
    this->set_shift(o);
    this->make_temporal_modules(planes, o, gen);
  }
  Tensor<T> forward(Tensor<T> x, StageContext<T>& ctx) override {
    Tensor<T> out;
    {  // (`in` let go before conv3, which may add x in place)
      const Tensor<T> in = this->branch_input(x, ctx);
      out = this->bn1_ ? nn::conv_bn(*conv1, *this->bn1_, in, Tensor<T>(), true) : relu(this->norm1((*conv1)(in), ctx));
    }
    out = this->adapt(out, ctx);
    out = this->bn2_ ? nn::conv_bn(*conv2, *this->bn2_, out, Tensor<T>(), true)
                     : relu(this->norm2((*conv2)(out), ctx));
    return nn::conv_bn(*conv3, *bn3, out, this->residual(std::move(x)), true);
  }
  std::shared_ptr<nn::Conv2d<T>> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm2d<T>> bn3;
};

// One stage: blocks "0", "1", ... and, with cross-layer DNR, the stage's relay cell "relay" whose state
// starts at zero at the stage's first block.
template <class T = float>
class ResLayer : public nn::Module<T> {
 public:
  template <class B>
  static std::shared_ptr<ResLayer> make(int64_t& inplanes, int64_t planes, int64_t blocks, int64_t stride,
                                        const ResNetOptions& o, Generator& gen) {
    auto layer = std::make_shared<ResLayer>();
    for (int64_t b = 0; b < blocks; ++b) {
      auto block = std::make_shared<B>(inplanes, planes, b == 0 ? stride : 1, o, gen);
      layer->blocks.push_back(layer->register_module(std::to_string(b), std::shared_ptr<Block<T>>(block)));
      inplanes = planes * B::expansion;
    }
    if (o.norm == Norm::Dnr && o.dnr.cross_layer)
      layer->relay = layer->register_module("relay", std::make_shared<dnr::RelayCell<T>>(planes, o.dnr.reduction, gen));
    return layer;
  }
  Tensor<T> forward(const Tensor<T>& x, int64_t frames) {
    StageContext<T> ctx{frames, relay.get(), {}};
    Tensor<T> y = x;
    for (auto& b : blocks) y = b->forward(std::move(y), ctx);
    return y;
  }
  std::vector<std::shared_ptr<Block<T>>> blocks;
  std::shared_ptr<dnr::RelayCell<T>> relay;
};

template <class T = float>
class ResNet : public nn::Module<T> {
 public:
  explicit ResNet(const ResNetOptions& o, Generator& gen = default_generator()) : options(o) {
    const std::vector<int64_t> blocks = stage_blocks(o.depth);
    conv1 = this->register_module(
        "conv1", std::make_shared<nn::Conv2d<T>>(nn::Conv2dOptions(3, o.width, 7).stride(2).padding(3).bias(o.tdn), gen));
    nn::init::kaiming_normal_(conv1->weight, nn::init::FanMode::FanOut, gen);
    bn1 = this->register_module("bn1", detail::bn<T>(o.width, o));
    if (o.tdn) make_short_term_module(blocks[0], gen);
    int64_t inplanes = o.width;
    for (int64_t s = 0; s < 4; ++s) {
      const int64_t planes = o.width << s, stride = s == 0 ? 1 : 2;
      layers.push_back(this->register_module("layer" + std::to_string(s + 1), make_stage(inplanes, planes, blocks[s], stride, gen)));
    }
    out_channels = inplanes;
  }
  static std::vector<int64_t> stage_blocks(int64_t depth) {
    switch (depth) {
      case 18: return {2, 2, 2, 2};
      case 34: case 50: return {3, 4, 6, 3};
      case 101: return {3, 4, 23, 3};
      case 152: return {3, 8, 36, 3};
    }
    TV_FAIL("ResNet: depth must be 18, 34, 50, 101 or 152, got ", depth);
  }
  // Input frames per clip: the frames (segments) the network works on, times 5 for TDN.
  int64_t input_frames() const { return options.frames * (options.tdn ? kTdnSegmentFrames : 1); }

  // x: N*F x 3 x H x W (F = input_frames()) -> N*T x out_channels x H/32 x W/32.
  Tensor<T> forward(const Tensor<T>& x) { return features(x, static_cast<int64_t>(layers.size())); }

  // The output of layer<stage> (1..4), or of the stem (0): Grad-CAM++ stops at an inner stage and goes on from there
  // with stages(). TDN fuses its difference branch into the stem's output and into layer1's.
  Tensor<T> features(const Tensor<T>& x, int64_t stage) {
    TV_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet: expected an input of shape N*T x 3 x H x W, got ", x.shape());
    TV_CHECK(x.size(0) % input_frames() == 0, "ResNet: the batch dim ", x.size(0), " is not a multiple of the frames per clip, ",
             input_frames(), options.tdn ? " (TDN: 5 per segment)" : "");
    TV_CHECK(0 <= stage && stage <= static_cast<int64_t>(layers.size()), "ResNet: stage ", stage, " is not within 0..",
             layers.size());
    if (!options.tdn) return stages(stem(x), 0, stage);
    // TDN: the RGB path sees each segment's centre frame; the difference branch, at half resolution, the 4
    // differences of its 5 frames. Both meet after the stem and again after layer1 (nearest upsampling).
    const Tensor<T> centre = x.view({x.size(0) / kTdnSegmentFrames, kTdnSegmentFrames, 3, x.size(2), x.size(3)}).select(1, 2);
    const Tensor<T> diff = max_pool2d(
        relu((*conv1_5)(avg_pool2d(frame_differences(x), AvgPool2dOptions(2).stride(2)))), MaxPool2dOptions(3).stride(2).padding(1));
    Tensor<T> y = fuse(stem(centre), diff);
    if (stage == 0) return y;
    y = fuse(layers[0]->forward(y, options.frames), resnext_layer1->forward(diff, options.frames));
    return stages(y, 1, stage);
  }
  // conv1, bn1, ReLU and the max pool: N*T x 3 x H x W -> N*T x width x H/4 x W/4.
  Tensor<T> stem(const Tensor<T>& x) {
    return max_pool2d(nn::conv_bn(*conv1, *bn1, x, Tensor<T>(), true), MaxPool2dOptions(3).stride(2).padding(1));
  }
  // Stages first..last-1 (layer1 is stage 0) on y, the output of the stage before (or of the stem): a caller may
  // stop after any stage and go on from there (Grad-CAM++ at an inner layer). DNR's relay runs within a stage.
  Tensor<T> stages(Tensor<T> y, int64_t first, int64_t last) {
    TV_CHECK(0 <= first && first <= last && last <= static_cast<int64_t>(layers.size()), "ResNet: stages ", first,
             "..", last, " are not within the ", layers.size(), " stages");
    TV_CHECK(!(options.tdn && first == 0 && last > 0), "ResNet: TDN's layer1 also takes the difference branch; run it "
             "through features()");
    for (int64_t s = first; s < last; ++s) y = layers[static_cast<size_t>(s)]->forward(y, options.frames);
    return y;
  }
  ResNetOptions options;
  int64_t out_channels;
  std::shared_ptr<nn::Conv2d<T>> conv1;
  std::shared_ptr<nn::BatchNorm2d<T>> bn1;
  std::vector<std::shared_ptr<ResLayer<T>>> layers;
  // TDN's short-term module, its authors' names: conv1_5 (7x7/2 conv of the 12 difference channels, bn, ReLU) and
  // resnext_layer1, a second layer1 on the differences.
  std::shared_ptr<nn::Sequential<T>> conv1_5;
  std::shared_ptr<ResLayer<T>> resnext_layer1;

 private:
  void make_short_term_module(int64_t blocks, Generator& gen) {
    const ResNetOptions& o = options;
    conv1_5 = this->register_module("conv1_5", std::make_shared<nn::Sequential<T>>());
    auto conv = std::make_shared<nn::Conv2d<T>>(
        nn::Conv2dOptions(3 * (kTdnSegmentFrames - 1), o.width, 7).stride(2).padding(3).bias(false), gen);
    // The authors start it from an RGB conv1's weights averaged over the colours, the same for each difference.
    Tensor<T> rgb = zeros<T>({o.width, 3, 7, 7});
    nn::init::kaiming_normal_(rgb, nn::init::FanMode::FanOut, gen);
    {
      NoGradGuard no_grad;
      conv->weight.copy_(mean(rgb, {1}, true));  // broadcast over the 12 input channels
    }
    conv1_5->push_back(conv);
    conv1_5->push_back(detail::bn<T>(o.width, o));
    int64_t inplanes = o.width;
    resnext_layer1 = this->register_module("resnext_layer1", make_stage(inplanes, o.width, blocks, 1, gen));
  }
  // A stage of the depth's block type (basic below ResNet-50, bottleneck from it).
  std::shared_ptr<ResLayer<T>> make_stage(int64_t& inplanes, int64_t planes, int64_t blocks, int64_t stride, Generator& gen) {
    return options.depth < 50 ? ResLayer<T>::template make<BasicBlock<T>>(inplanes, planes, blocks, stride, options, gen)
                              : ResLayer<T>::template make<Bottleneck<T>>(inplanes, planes, blocks, stride, options, gen);
  }
  // TDN's fusion: a x + b upsample(d), a = b = 1/2 for 8 segments, else 3/4 and 1/4 (the authors' two settings).
  Tensor<T> fuse(const Tensor<T>& x, const Tensor<T>& d) const {
    const T a = options.frames == 8 ? T(0.5) : T(0.75), b = T(1) - a;
    return add(mul(x, a), mul(upsample_nearest(d, x.size(2), x.size(3)), b));
  }
};

}  // namespace tv::models
