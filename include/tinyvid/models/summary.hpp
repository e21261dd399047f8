#pragma once
// A per-layer table of a recognizer for one clip (T frames of S x S; TDN: T segments of 5 frames): output shape,
// parameters and multiply-adds, as MMAction2's analysis tools print it. Multiply-adds count convolutions, the fc,
// TANet's TAMs, TDN's difference modules and DNR's relay cells (batch norm, ReLU, pooling and additions are memory passes, not counted, as the
// papers' GFLOPs figures do not count them).
#include <string>
#include <vector>

#include "tinyvid/models/recognizer.hpp"

namespace tv::models {

struct LayerSummary {
  std::string name;
  Shape output;  // for the whole clip: T x C x H x W, or classes
  int64_t params = 0;
  int64_t macs = 0;
};

namespace detail {
template <class T>
int64_t count_params(const nn::Module<T>& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}
// A conv's multiply-adds per frame on an H x W input; H and W become its output size.
template <class T>
int64_t conv_macs(const nn::Conv2d<T>& c, int64_t& H, int64_t& W) {
  const auto& o = c.options;
  const Pair k = o.kernel_size(), s = o.stride(), p = o.padding(), d = o.dilation();
  H = (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) / s[0] + 1;
  W = (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) / s[1] + 1;
  return o.out_channels() * H * W * (o.in_channels() / o.groups()) * k[0] * k[1];
}
// One relay step for one clip: the two bottleneck projections.
template <class T>
int64_t relay_macs(const dnr::RelayCell<T>& cell) {
  const int64_t C = cell.channels, mid = cell.input_proj->parameters()[0].size(0);
  return 2 * (C * mid + mid * 4 * C);
}
// TANet's TAM for one clip on h x w maps: the global branch's two linears per channel, the local branch's two
// temporal convolutions, and the adaptive temporal convolution (K taps per output element).
template <class T>
int64_t tam_macs(const Tam<T>& tam, int64_t h, int64_t w) {
  const int64_t C = tam.channels, Tn = tam.frames, K = tam.options.adaptive_kernel_size;
  const int64_t hidden = Tn * tam.options.alpha, mid = C / tam.options.beta;
  return C * (Tn * hidden + hidden * K) + Tn * (mid * C * tam.options.conv1d_kernel_size + C * mid) + Tn * C * h * w * K;
}
// TDN's long-term difference module for one frame on h x w maps: its convs (conv3 and the two smaller ones run
// for each direction; the half-scale one on 2x2-pooled maps) and the learnable shift's 3 taps.
template <class T>
int64_t long_term_difference_macs(const LongTermDifference<T>& m, int64_t h, int64_t w) {
  int64_t macs = 0, hh = h, ww = w;
  for (const nn::Conv2d<T>* c : {m.conv1.get(), m.conv2.get()}) macs += conv_macs(*c, hh, ww);
  for (const nn::Conv2d<T>* c : {m.conv3.get(), m.conv3_smallscale4.get()}) hh = h, ww = w, macs += 2 * conv_macs(*c, hh, ww);
  hh = h / 2, ww = w / 2;
  macs += 2 * conv_macs(*m.conv3_smallscale2, hh, ww);
  return macs + 3 * m.conv1->options.in_channels() * h * w;
}
}  // namespace detail

template <class T>
std::vector<LayerSummary> summarize(const Recognizer<T>& m, int64_t size) {
  TV_CHECK(size >= 32, "summary: the input size must be at least 32, got ", size);
  const int64_t frames = m.segments();  // the frames the network runs on (TDN: its segments)
  const ResNet<T>& net = *m.backbone;
  std::vector<LayerSummary> rows;
  int64_t H = size, W = size;
  LayerSummary stem{"backbone.conv1 + bn1 + maxpool", {}, 0, 0};
  stem.macs = frames * detail::conv_macs(*net.conv1, H, W);
  stem.params = detail::count_params(*net.conv1) + detail::count_params(*net.bn1);
  H = (H + 2 - 3) / 2 + 1;
  W = (W + 2 - 3) / 2 + 1;
  stem.output = {frames, net.options.width, H, W};
  rows.push_back(stem);
  // One stage's rows, on h x w maps (updated to its output's).
  auto add_stage = [&](const std::string& prefix, const ResLayer<T>& layer, int64_t& in_h, int64_t& in_w) {
    int64_t channels = 0;
    for (size_t b = 0; b < layer.blocks.size(); ++b) {
      const Block<T>& block = *layer.blocks[b];
      LayerSummary row{prefix + "." + std::to_string(b), {}, detail::count_params(block), 0};
      int64_t h = in_h, w = in_w;
      std::vector<const nn::Conv2d<T>*> convs;
      if (auto* bottleneck = dynamic_cast<const Bottleneck<T>*>(&block))
        convs = {bottleneck->conv1.get(), bottleneck->conv2.get(), bottleneck->conv3.get()};
      else if (auto* basic = dynamic_cast<const BasicBlock<T>*>(&block))
        convs = {basic->conv1.get(), basic->conv2.get()};
      for (const nn::Conv2d<T>* c : convs) {
        row.macs += frames * detail::conv_macs(*c, h, w);
        channels = c->options.out_channels();
        if (block.tam && c == convs.front()) row.macs += detail::tam_macs(*block.tam, h, w);  // on conv1's output
        if (block.mse && c == convs.front()) row.macs += frames * detail::long_term_difference_macs(*block.mse, h, w);
      }
      if (block.downsample) {
        int64_t dh = in_h, dw = in_w;
        row.macs += frames * detail::conv_macs(*std::dynamic_pointer_cast<nn::Conv2d<T>>((*block.downsample)[0]), dh, dw);
      }
      if (block.ct_norm) {
        const int64_t steps = (frames / block.ct_norm->group_frames) * (block.ct_norm->bidirectional ? 2 : 1);
        row.macs += steps * detail::relay_macs(*block.ct_norm->relay);
      }
      if (block.cl_norm && layer.relay) row.macs += detail::relay_macs(*layer.relay);  // one step per block
      in_h = h;
      in_w = w;
      row.output = {frames, channels, h, w};
      rows.push_back(row);
    }
    if (layer.relay) rows.push_back({prefix + ".relay (cross-layer cell, MACs in its blocks)", {}, detail::count_params(*layer.relay), 0});
  };
  if (net.conv1_5) {
    // TDN's difference branch: the 12 difference channels pooled to half size, conv1_5, max pool, resnext_layer1.
    int64_t h = size / 2, w = size / 2;
    LayerSummary diff{"backbone.conv1_5 + maxpool (frame differences)", {}, detail::count_params(*net.conv1_5), 0};
    diff.macs = frames * detail::conv_macs(*std::dynamic_pointer_cast<nn::Conv2d<T>>((*net.conv1_5)[0]), h, w);
    h = (h + 2 - 3) / 2 + 1;
    w = (w + 2 - 3) / 2 + 1;
    diff.output = {frames, net.options.width, h, w};
    rows.push_back(diff);
    add_stage("backbone.resnext_layer1", *net.resnext_layer1, h, w);
  }
  for (size_t s = 0; s < net.layers.size(); ++s) add_stage("backbone.layer" + std::to_string(s + 1), *net.layers[s], H, W);
  const auto& fc = *m.cls_head->fc_cls;
  rows.push_back({"cls_head (pool, consensus, fc_cls)", {fc.weight.size(0)}, detail::count_params(fc),
                  fc.weight.numel() * (m.options.consensus == Consensus::AfterFc ? frames : 1)});
  return rows;
}

}  // namespace tv::models
