#pragma once
// A per-layer table of a recognizer for one clip (T frames of S x S): output shape, parameters and
// multiply-adds, as MMAction2's analysis tools print it. Multiply-adds count convolutions, the fc,
// TANet's TAMs and DNR's relay cells (batch norm, ReLU, pooling and additions are memory passes, not counted, as the
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
}  // namespace detail

template <class T>
std::vector<LayerSummary> summarize(const Recognizer<T>& m, int64_t size) {
  TV_CHECK(size >= 32, "summary: the input size must be at least 32, got ", size);
  const int64_t frames = m.frames();
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
  for (size_t s = 0; s < net.layers.size(); ++s) {
    const ResLayer<T>& layer = *net.layers[s];
    const std::string prefix = "backbone.layer" + std::to_string(s + 1);
    int64_t channels = 0;
    for (size_t b = 0; b < layer.blocks.size(); ++b) {
      const Block<T>& block = *layer.blocks[b];
      LayerSummary row{prefix + "." + std::to_string(b), {}, detail::count_params(block), 0};
      int64_t h = H, w = W;
      std::vector<const nn::Conv2d<T>*> convs;
      if (auto* bottleneck = dynamic_cast<const Bottleneck<T>*>(&block))
        convs = {bottleneck->conv1.get(), bottleneck->conv2.get(), bottleneck->conv3.get()};
      else if (auto* basic = dynamic_cast<const BasicBlock<T>*>(&block))
        convs = {basic->conv1.get(), basic->conv2.get()};
      for (const nn::Conv2d<T>* c : convs) {
        row.macs += frames * detail::conv_macs(*c, h, w);
        channels = c->options.out_channels();
        if (block.tam && c == convs.front()) row.macs += detail::tam_macs(*block.tam, h, w);  // on conv1's output
      }
      if (block.downsample) {
        int64_t dh = H, dw = W;
        row.macs += frames * detail::conv_macs(*std::dynamic_pointer_cast<nn::Conv2d<T>>((*block.downsample)[0]), dh, dw);
      }
      if (block.ct_norm) {
        const int64_t steps = (frames / block.ct_norm->group_frames) * (block.ct_norm->bidirectional ? 2 : 1);
        row.macs += steps * detail::relay_macs(*block.ct_norm->relay);
      }
      if (block.cl_norm && layer.relay) row.macs += detail::relay_macs(*layer.relay);  // one step per block
      H = h;
      W = w;
      row.output = {frames, channels, H, W};
      rows.push_back(row);
    }
    if (layer.relay) rows.push_back({prefix + ".relay (cross-layer cell, MACs in its blocks)", {}, detail::count_params(*layer.relay), 0});
  }
  const auto& fc = *m.cls_head->fc_cls;
  rows.push_back({"cls_head (pool, consensus, fc_cls)", {fc.weight.size(0)}, detail::count_params(fc),
                  fc.weight.numel() * (m.options.consensus == Consensus::AfterFc ? frames : 1)});
  return rows;
}

}  // namespace tv::models
