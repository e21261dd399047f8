#pragma once
// Grad-CAM++ (Chattopadhyay et al., arXiv 1710.11063): where in each frame a recognizer looks for a class.
// A = the output of a backbone stage (layer4 by default) for one clip (T x C x h x w), S = the class's score, g = dS/dA. With the paper's
// closed form for Y = exp(S) (its eq. 19), the weight of pixel (a, b) of channel k is
// alpha = g^2 / (2 g^2 + sum_ab A * g^3) (0 where g = 0), the channel's weight w_k = sum_ab alpha * relu(g),
// and the map of each frame relu(sum_k w_k A_k), upsampled to the frame (bilinear, half-pixel centres, as
// F.interpolate with align_corners=False). Checked against a PyTorch reference (tests/test_dnr.cpp,
// tools/fixtures/make_gradcam_fixtures.py).
//
//   auto cam = tv::viz::grad_cam_pp(*model, clip);              // clip: T x 3 x H x W, the model's input
//   tv::viz::cam_strip(tv::viz::cam_frames(clip, normalize, cam), "grow 0.93").save_png("cam.png");
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/data/transforms.hpp"
#include "tinyvid/models/recognizer.hpp"
#include "tinyvid/ops/device.hpp"
#include "tinyvid/ops/reduce.hpp"
#include "tinyvid/ops/softmax.hpp"
#include "tinyvid/viz/plot.hpp"

namespace tv::viz {

struct GradCam {
  Tensor<float> maps;        // T x h x w at the backbone output's resolution, >= 0, not normalized (host); one per
                             // frame, for TDN one per segment (its centre frame)
  int64_t class_index = 0;   // the class explained
  double probability = 0;    // its softmax probability for the clip
};

// Grad-CAM++ of one clip (F x 3 x H x W on the model's device, F = model.frames()) for `class_index`, or the
// top-scoring class when it is -1. The model runs in eval mode (restored afterwards); its weights' .grad is
// left as it was.
// `stage` (1..4): the maps of backbone.layer<stage>'s output (4: the backbone's output, the usual choice).
inline GradCam grad_cam_pp(models::Recognizer<float>& model, const Tensor<float>& clip, int64_t class_index = -1,
                           int64_t stage = 4) {
  const int64_t F = model.frames(), T = model.segments();  // maps: one per frame the network sees (TDN: per segment)
  TV_CHECK(clip.dim() == 4 && clip.size(0) == F && clip.size(1) == 3, "grad_cam_pp: expected one clip of ", F,
           " frames, F x 3 x H x W, got ", clip.shape());
  const bool was_training = model.is_training();
  model.eval();
  const auto stages = static_cast<int64_t>(model.backbone->layers.size());
  TV_CHECK(stage >= 1 && stage <= stages, "grad_cam_pp: stage ", stage, " is not one of the backbone's layer1..layer",
           stages);
  Tensor<float> A;
  {
    NoGradGuard no_grad;
    A = model.backbone->features(clip, stage);
  }
  A.requires_grad_();  // a leaf: the gradient of what follows lands in A.grad()
  // The weights stay out of this backward: their .grad (a training step's, say) is left as it was.
  std::vector<Tensor<float>> weights = model.parameters();
  std::vector<bool> required;
  for (Tensor<float>& p : weights) required.push_back(p.requires_grad()), p.requires_grad_(false);
  const Tensor<float> scores = model.cls_head->forward(model.backbone->stages(A, stage, stages), T);  // 1 x K
  for (size_t i = 0; i < weights.size(); ++i) weights[i].requires_grad_(required[i]);
  const int64_t K = scores.size(1);
  const std::vector<float> s = scores.detach().to(Device::CPU).to_vector();
  if (class_index < 0) class_index = std::max_element(s.begin(), s.end()) - s.begin();
  TV_CHECK(class_index < K, "grad_cam_pp: class ", class_index, " is not one of the model's ", K, " classes");
  sum(scores.narrow(1, class_index, 1)).backward();
  if (was_training) model.train();

  GradCam out;
  out.class_index = class_index;
  {
    NoGradGuard no_grad;
    out.probability = softmax(scores.detach(), 1).to(Device::CPU).at({0, class_index});
  }
  const Tensor<float> a = A.detach().to(Device::CPU).contiguous(), g = A.grad().to(Device::CPU).contiguous();
  const int64_t C = a.size(1), h = a.size(2), w = a.size(3), hw = h * w;
  out.maps = zeros<float>({T, h, w});
  float* map = out.maps.data();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t k = 0; k < C; ++k) {
      const float* ak = a.data() + (t * C + k) * hw;
      const float* gk = g.data() + (t * C + k) * hw;
      double sum_a = 0;
      for (int64_t i = 0; i < hw; ++i) sum_a += ak[i];
      double weight = 0;
      for (int64_t i = 0; i < hw; ++i) {
        const double gi = gk[i], g2 = gi * gi;
        if (gi == 0) continue;
        weight += g2 / (2 * g2 + sum_a * g2 * gi) * std::max(gi, 0.0);
      }
      for (int64_t i = 0; i < hw; ++i) map[t * hw + i] += static_cast<float>(weight * ak[i]);
    }
    for (int64_t i = 0; i < hw; ++i) map[t * hw + i] = std::max(map[t * hw + i], 0.0f);
  }
  return out;
}

// maps T x h x w -> T x H x W, bilinear with half-pixel centres (F.interpolate(mode="bilinear",
// align_corners=False)): source coordinate (x + 0.5) * w / W - 0.5, clamped at 0 and at the last pixel.
inline Tensor<float> upsample_bilinear(const Tensor<float>& maps, int64_t H, int64_t W) {
  TV_CHECK(maps.dim() == 3 && maps.device() == Device::CPU && H >= 1 && W >= 1,
           "upsample_bilinear: expected host maps T x h x w and a size >= 1, got ", maps.shape(), " to ", H, "x", W);
  const Tensor<float> m = maps.contiguous();
  const int64_t T = m.size(0), h = m.size(1), w = m.size(2);
  Tensor<float> out = Tensor<float>::empty({T, H, W});
  auto source = [](int64_t i, int64_t in, int64_t out_size, int64_t& i0, int64_t& i1, double& f) {
    const double x = std::max((static_cast<double>(i) + 0.5) * static_cast<double>(in) / static_cast<double>(out_size) - 0.5, 0.0);
    i0 = std::min(static_cast<int64_t>(x), in - 1);
    i1 = std::min(i0 + 1, in - 1);
    f = x - static_cast<double>(i0);
  };
  for (int64_t t = 0; t < T; ++t)
    for (int64_t y = 0; y < H; ++y) {
      int64_t y0, y1, x0, x1;
      double fy, fx;
      source(y, h, H, y0, y1, fy);
      for (int64_t x = 0; x < W; ++x) {
        source(x, w, W, x0, x1, fx);
        const float* p = m.data() + t * h * w;
        const double top = p[y0 * w + x0] * (1 - fx) + p[y0 * w + x1] * fx;
        const double bottom = p[y1 * w + x0] * (1 - fx) + p[y1 * w + x1] * fx;
        out.data()[(t * H + y) * W + x] = static_cast<float>(top * (1 - fy) + bottom * fy);
      }
    }
  return out;
}

// The jet colour map at v in [0, 1] (blue, cyan, yellow, red).
inline Rgb jet(double v) {
  auto channel = [](double x) { return static_cast<uint8_t>(std::lround(255 * std::clamp(1.5 - std::abs(x), 0.0, 1.0))); };
  return {channel(4 * v - 3), channel(4 * v - 2), channel(4 * v - 1)};
}

// Frame t of the clip as the model saw it (Normalize undone) with the map blended over it: `alpha` of the
// map's colour. `scale` is the clip's largest map value, so that frames compare.
inline data::Image cam_overlay(const Tensor<float>& clip, const data::Normalize& norm, const Tensor<float>& up,
                               int64_t t, double scale, double alpha = 0.45) {
  const int64_t H = clip.size(2), W = clip.size(3), plane = H * W;
  data::Image img(H, W, 3);
  const float* x = clip.data() + t * 3 * plane;
  const float* m = up.data() + t * plane;
  for (int64_t y = 0; y < H; ++y) {
    uint8_t* row = img.row(y);
    for (int64_t i = 0; i < W; ++i) {
      const int64_t k = y * W + i;
      const Rgb c = jet(scale > 0 ? m[k] / scale : 0.0);
      const double heat[3] = {static_cast<double>(c.r), static_cast<double>(c.g), static_cast<double>(c.b)};
      for (int ch = 0; ch < 3; ++ch) {
        const double pixel = x[ch * plane + k] * norm.std[static_cast<size_t>(ch)] + norm.mean[static_cast<size_t>(ch)];
        row[i * 3 + ch] = static_cast<uint8_t>(std::lround(std::clamp((1 - alpha) * pixel + alpha * heat[ch], 0.0, 255.0)));
      }
    }
  }
  return img;
}

// Each frame of the clip as the model saw it with its map blended over it, the maps upsampled to the frame
// and scaled by the clip's largest value (so frames compare): the frames of tinyvid cam's strip and video.
// With fewer maps than frames (TDN: one per segment of 5), each segment's centre frame carries its map.
inline std::vector<data::Image> cam_frames(const Tensor<float>& clip, const data::Normalize& norm, const GradCam& cam) {
  Tensor<float> host = clip.to(Device::CPU).contiguous();
  const int64_t T = cam.maps.size(0), L = host.size(0) / T;
  TV_CHECK(host.size(0) == T * L, "cam_frames: ", host.size(0), " frames for ", T, " maps");
  if (L > 1) host = host.view({T, L, 3, host.size(2), host.size(3)}).select(1, L / 2).contiguous();
  const Tensor<float> up = upsample_bilinear(cam.maps, host.size(2), host.size(3));
  const std::vector<float> all = cam.maps.to_vector();
  const double scale = all.empty() ? 0.0 : *std::max_element(all.begin(), all.end());
  std::vector<data::Image> frames;
  for (int64_t t = 0; t < host.size(0); ++t) frames.push_back(cam_overlay(host, norm, up, t, scale));
  return frames;
}

// The frames of cam_frames side by side under a title line (the class and its probability): tinyvid cam's picture.
inline Canvas cam_strip(const std::vector<data::Image>& frames, const std::string& title) {
  TV_CHECK(!frames.empty(), "cam_strip: no frames");
  const int64_t T = static_cast<int64_t>(frames.size()), H = frames[0].height, W = frames[0].width, gap = 4, head = 24;
  Canvas cv(T * W + (T - 1) * gap, H + head);
  cv.text(4, 6, title, {0, 0, 0}, 2);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const uint8_t* p = frames[static_cast<size_t>(t)].row(y) + x * 3;
        cv.pixel(t * (W + gap) + x, head + y, {p[0], p[1], p[2]});
      }
  return cv;
}

}  // namespace tv::viz
