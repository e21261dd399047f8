#pragma once
// MMAction2's spatial transforms on a Clip (mmaction/datasets/transforms/processing.py, 1.x): every transform
// treats all frames of a clip alike, drawing its random parameters once per clip from a tv::Generator.
// Crop boxes are computed by functions of their own (box / boxes / sample_box) so they can be checked as
// data. Multi-view crops (ThreeCrop, TenCrop) return their views concatenated crop-major, as MMAction2.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/data/image.hpp"
#include "tinyvid/data/sampling.hpp"

namespace tv::data {

// A crop: left x, top y, width w, height h, in pixels of the frame it is cut from.
struct Box {
  int64_t x = 0, y = 0, w = 0, h = 0;
  bool operator==(const Box&) const = default;
};

namespace detail {
// All frames of a clip must share one size; returns it as (width, height).
inline std::pair<int64_t, int64_t> clip_size(const Clip& clip, const char* op) {
  TV_CHECK(!clip.empty(), op, ": expected a clip with at least one frame, got none");
  const Image& f = clip.front();
  for (size_t i = 1; i < clip.size(); ++i)
    TV_CHECK(clip[i].height == f.height && clip[i].width == f.width && clip[i].channels == f.channels, op,
             ": expected all frames of size ", f.height, "x", f.width, "x", f.channels, ", frame ", i, " is ",
             clip[i].height, "x", clip[i].width, "x", clip[i].channels);
  return {f.width, f.height};
}
// Python's random.randint(a, b): inclusive bounds.
inline int64_t randint_inclusive(Generator& gen, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(gen.randint(static_cast<uint64_t>(hi - lo + 1)));
}
template <class T>
const T& choice(const std::vector<T>& v, Generator& gen) {
  return v[static_cast<size_t>(gen.randint(v.size()))];
}
}  // namespace detail

inline Image crop(const Image& img, const Box& b) {
  TV_CHECK(b.x >= 0 && b.y >= 0 && b.w >= 1 && b.h >= 1 && b.x + b.w <= img.width && b.y + b.h <= img.height,
           "crop: expected a box inside the ", img.width, "x", img.height, " (w x h) frame, got x=", b.x, " y=", b.y,
           " w=", b.w, " h=", b.h);
  Image out(b.h, b.w, img.channels);
  const size_t row_bytes = static_cast<size_t>(b.w * img.channels);
  for (int64_t y = 0; y < b.h; ++y)
    std::copy_n(img.row(b.y + y) + b.x * img.channels, row_bytes, out.row(y));
  return out;
}

inline Clip crop(const Clip& clip, const Box& b) {
  detail::clip_size(clip, "crop");
  Clip out;
  out.reserve(clip.size());
  for (const Image& f : clip) out.push_back(crop(f, b));
  return out;
}

inline Image flip_horizontal(const Image& img) {
  Image out(img.height, img.width, img.channels);
  const int64_t c = img.channels;
  for (int64_t y = 0; y < img.height; ++y) {
    const uint8_t* s = img.row(y);
    uint8_t* d = out.row(y);
    for (int64_t x = 0; x < img.width; ++x) std::copy_n(s + (img.width - 1 - x) * c, c, d + x * c);
  }
  return out;
}

// cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR) on uint8, as OpenCV 4.x computes it
// (modules/imgproc/src/resize.cpp): half-pixel centres, no anti-aliasing, 11-bit fixed-point weights rounded
// from float, an integer horizontal pass, and the vertical pass of an x86 SSE2 build (VResizeLinearVec_32s8u:
// (row >> 4) * weight >> 16 per row, then (sum + 2) >> 2) for the first multiple of 16 bytes of each row and
// the exact scalar formula for the rest. An exact 2x downscale is INTER_AREA there (2x2 mean), and here.
inline Image resize_bilinear(const Image& src, int64_t out_w, int64_t out_h) {
  TV_CHECK(!src.empty(), "resize: expected a non-empty image, got ", src.width, "x", src.height);
  TV_CHECK(out_w >= 1 && out_h >= 1, "resize: expected an output size >= 1x1, got ", out_w, "x", out_h);
  const int64_t cn = src.channels, sw = src.width, sh = src.height;
  Image dst(out_h, out_w, cn);
  if (sw == out_w && sh == out_h) return src;
  if (sw == 2 * out_w && sh == 2 * out_h) {  // OpenCV switches INTER_LINEAR to its fast area path here
    for (int64_t y = 0; y < out_h; ++y) {
      const uint8_t* s0 = src.row(2 * y);
      const uint8_t* s1 = src.row(2 * y + 1);
      uint8_t* d = dst.row(y);
      for (int64_t x = 0; x < out_w; ++x)
        for (int64_t k = 0; k < cn; ++k) {
          int64_t i = 2 * x * cn + k;
          d[x * cn + k] = static_cast<uint8_t>((s0[i] + s0[i + cn] + s1[i] + s1[i + cn] + 2) >> 2);
        }
    }
    return dst;
  }
  constexpr int kScale = 2048;  // INTER_RESIZE_COEF_SCALE
  // Source position and weights of one output coordinate, as OpenCV: float fraction, weights rounded
  // separately (they need not sum to 2048).
  struct Tap {
    int64_t s;
    int a0, a1;
  };
  auto taps = [&](int64_t out_n, int64_t in_n, bool clamp) {
    std::vector<Tap> t(static_cast<size_t>(out_n));
    const double scale = 1.0 / (static_cast<double>(out_n) / static_cast<double>(in_n));
    for (int64_t d = 0; d < out_n; ++d) {
      float f = static_cast<float>((static_cast<double>(d) + 0.5) * scale - 0.5);
      int64_t s = static_cast<int64_t>(std::floor(f));
      f -= static_cast<float>(s);
      if (clamp) {  // columns clamp the position and drop the fraction; rows only clamp which rows are read
        if (s < 0) f = 0.f, s = 0;
        if (s >= in_n - 1) f = 0.f, s = in_n - 1;
      }
      t[static_cast<size_t>(d)] = {s, static_cast<int>(std::lrint((1.f - f) * kScale)),
                                   static_cast<int>(std::lrint(f * kScale))};
    }
    return t;
  };
  const std::vector<Tap> xt = taps(out_w, sw, true), yt = taps(out_h, sh, false);
  const int64_t row_n = out_w * cn;
  // Horizontal pass of one source row, cached since neighbouring output rows share source rows.
  std::vector<int> rows[2] = {std::vector<int>(static_cast<size_t>(row_n)), std::vector<int>(static_cast<size_t>(row_n))};
  int64_t cached[2] = {-1, -1};
  auto hrow = [&](int64_t sy, int slot) {
    if (cached[slot] == sy) return;
    if (cached[1 - slot] == sy) {
      rows[slot] = rows[1 - slot];
    } else {
      const uint8_t* s = src.row(sy);
      int* d = rows[slot].data();
      for (int64_t x = 0; x < out_w; ++x) {
        const Tap& t = xt[static_cast<size_t>(x)];
        for (int64_t k = 0; k < cn; ++k) {
          int v = s[t.s * cn + k] * t.a0;
          if (t.a1 != 0) v += s[(t.s + 1) * cn + k] * t.a1;
          d[x * cn + k] = v;
        }
      }
    }
    cached[slot] = sy;
  };
  for (int64_t y = 0; y < out_h; ++y) {
    const Tap& t = yt[static_cast<size_t>(y)];
    hrow(std::clamp<int64_t>(t.s, 0, sh - 1), 0);
    hrow(std::clamp<int64_t>(t.s + 1, 0, sh - 1), 1);
    const int* r0 = rows[0].data();
    const int* r1 = rows[1].data();
    uint8_t* d = dst.row(y);
    const int b0 = t.a0, b1 = t.a1;
    // OpenCV's vector path (16-bit high products) over the whole row, tail included: what Debian's OpenCV
    // 4.6 returns (tests/fixtures/opencv, rows of 339, 450 and 513 values).
    for (int64_t i = 0; i < row_n; ++i) {
      int v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16);
      d[i] = static_cast<uint8_t>(std::clamp((v + 2) >> 2, 0, 255));
    }
  }
  return dst;
}

// Resize(scale, keep_ratio=True): `scale` (w, h) as in the config, where a -1 side means "the other number is
// the short side" ((-1, 256): short side to 256); or scale_factor > 0 for MMAction2's float scale. With
// keep_ratio=false the frame becomes exactly scale (w, h). Sizes follow mmcv.rescale_size: int(x * f + 0.5).
struct Resize {
  std::pair<int64_t, int64_t> scale{-1, -1};
  double scale_factor = 0.0;
  bool keep_ratio = true;

  // (new_w, new_h) for a w x h frame.
  std::pair<int64_t, int64_t> output_size(int64_t w, int64_t h) const {
    TV_CHECK(w >= 1 && h >= 1, "Resize: expected a frame of at least 1x1, got ", w, "x", h);
    double fw, fh;
    if (scale_factor > 0.0) {
      fw = fh = scale_factor;
    } else {
      auto [sw, sh] = scale;
      TV_CHECK((sw > 0 || sw == -1) && (sh > 0 || sh == -1) && !(sw == -1 && sh == -1),
               "Resize: expected scale (w, h) with positive sides or one side -1, or scale_factor > 0, got (", sw,
               ", ", sh, ") and scale_factor ", scale_factor);
      if (!keep_ratio) {
        TV_CHECK(sw > 0 && sh > 0, "Resize: keep_ratio=false needs an exact scale (w, h), got (", sw, ", ", sh, ")");
        return {sw, sh};
      }
      double max_long = static_cast<double>(std::max(sw, sh)), max_short = static_cast<double>(std::min(sw, sh));
      if (max_short == -1) max_short = max_long, max_long = std::numeric_limits<double>::infinity();
      fw = fh = std::min(max_long / static_cast<double>(std::max(w, h)), max_short / static_cast<double>(std::min(w, h)));
    }
    auto nw = static_cast<int64_t>(static_cast<double>(w) * fw + 0.5);
    auto nh = static_cast<int64_t>(static_cast<double>(h) * fh + 0.5);
    TV_CHECK(nw >= 1 && nh >= 1, "Resize: ", w, "x", h, " would become ", nw, "x", nh, "; expected at least 1x1");
    return {nw, nh};
  }

  Clip operator()(const Clip& clip) const {
    auto [w, h] = detail::clip_size(clip, "Resize");
    auto [nw, nh] = output_size(w, h);
    Clip out;
    out.reserve(clip.size());
    for (const Image& f : clip) out.push_back(resize_bilinear(f, nw, nh));
    return out;
  }
};

// MultiScaleCrop(input_size, scales, max_wh_scale_gap, random_crop, num_fixed_crops): crop sizes from the short
// side times each scale, one (w, h) pair drawn among those whose scale indices differ by at most the gap, then
// one of 5 or 13 fixed positions (or a random one). Follow it with Resize{.scale = input_size, .keep_ratio = false}.
struct MultiScaleCrop {
  std::pair<int64_t, int64_t> input_size{224, 224};  // (w, h)
  std::vector<double> scales{1.0};
  int64_t max_wh_scale_gap = 1;
  bool random_crop = false;
  int64_t num_fixed_crops = 5;

  // The candidate crop sizes (w, h) of a W x H frame, in MMAction2's order, before the final 3-pixel snap.
  std::vector<std::pair<int64_t, int64_t>> candidate_sizes(int64_t img_w, int64_t img_h) const {
    TV_CHECK(!scales.empty(), "MultiScaleCrop: expected at least one scale, got none");
    TV_CHECK(num_fixed_crops == 5 || num_fixed_crops == 13, "MultiScaleCrop: num_fixed_crops must be 5 or 13, got ",
             num_fixed_crops);
    const double base = static_cast<double>(std::min(img_h, img_w));
    std::vector<int64_t> crop_w, crop_h;
    for (double s : scales) {
      auto c = static_cast<int64_t>(base * s);
      crop_h.push_back(std::llabs(c - input_size.second) < 3 ? input_size.second : c);
      crop_w.push_back(std::llabs(c - input_size.first) < 3 ? input_size.first : c);
    }
    std::vector<std::pair<int64_t, int64_t>> out;
    for (size_t i = 0; i < crop_h.size(); ++i)
      for (size_t j = 0; j < crop_w.size(); ++j)
        if (std::llabs(static_cast<int64_t>(i) - static_cast<int64_t>(j)) <= max_wh_scale_gap)
          out.emplace_back(crop_w[j], crop_h[i]);
    return out;
  }

  // The fixed crop positions (x, y) for a crop of cw x ch in a W x H frame: corners, centre, and with 13 also
  // the edge centres and the quarter points.
  static std::vector<std::pair<int64_t, int64_t>> fixed_offsets(int64_t img_w, int64_t img_h, int64_t cw, int64_t ch,
                                                                int64_t num_fixed_crops) {
    const int64_t ws = detail::floor_div(img_w - cw, 4), hs = detail::floor_div(img_h - ch, 4);
    std::vector<std::pair<int64_t, int64_t>> o = {{0, 0}, {4 * ws, 0}, {0, 4 * hs}, {4 * ws, 4 * hs}, {2 * ws, 2 * hs}};
    if (num_fixed_crops == 13)
      o.insert(o.end(), {{0, 2 * hs}, {4 * ws, 2 * hs}, {2 * ws, 4 * hs}, {2 * ws, 0}, {ws, hs}, {3 * ws, hs},
                         {ws, 3 * hs}, {3 * ws, 3 * hs}});
    return o;
  }

  Box sample_box(int64_t img_w, int64_t img_h, Generator& gen) const {
    auto [cw, ch] = detail::choice(candidate_sizes(img_w, img_h), gen);
    if (std::llabs(cw - input_size.first) < 3) cw = input_size.first;
    if (std::llabs(ch - input_size.second) < 3) ch = input_size.second;
    TV_CHECK(cw >= 1 && ch >= 1 && cw <= img_w && ch <= img_h, "MultiScaleCrop: crop ", cw, "x", ch,
             " does not fit the ", img_w, "x", img_h, " frame");
    if (random_crop)
      return {detail::randint_inclusive(gen, 0, img_w - cw), detail::randint_inclusive(gen, 0, img_h - ch), cw, ch};
    auto [x, y] = detail::choice(fixed_offsets(img_w, img_h, cw, ch, num_fixed_crops), gen);
    return {x, y, cw, ch};
  }

  Clip operator()(const Clip& clip, Generator& gen) const {
    auto [w, h] = detail::clip_size(clip, "MultiScaleCrop");
    return crop(clip, sample_box(w, h, gen));
  }
};

// RandomResizedCrop(area_range, aspect_ratio_range): 10 candidates (all aspects drawn first, then all areas,
// as MMAction2's vectorized draws), the first that fits wins; else the centred square of the short side.
struct RandomResizedCrop {
  std::pair<double, double> area_range{0.08, 1.0};
  std::pair<double, double> aspect_ratio_range{3.0 / 4.0, 4.0 / 3.0};

  Box sample_box(int64_t img_w, int64_t img_h, Generator& gen) const {
    TV_CHECK(area_range.first > 0 && area_range.first <= area_range.second && area_range.second <= 1.0,
             "RandomResizedCrop: expected 0 < min <= max <= 1 for area_range, got (", area_range.first, ", ",
             area_range.second, ")");
    TV_CHECK(aspect_ratio_range.first > 0 && aspect_ratio_range.first <= aspect_ratio_range.second,
             "RandomResizedCrop: expected 0 < min <= max for aspect_ratio_range, got (", aspect_ratio_range.first,
             ", ", aspect_ratio_range.second, ")");
    constexpr int kAttempts = 10;
    double aspect[kAttempts], area[kAttempts];
    for (double& a : aspect)
      a = std::exp(gen.uniform(std::log(aspect_ratio_range.first), std::log(aspect_ratio_range.second)));
    for (double& a : area)
      a = gen.uniform(area_range.first, area_range.second) * static_cast<double>(img_h) * static_cast<double>(img_w);
    for (int i = 0; i < kAttempts; ++i) {
      auto cw = static_cast<int64_t>(detail::round_half_even(std::sqrt(area[i] * aspect[i])));
      auto ch = static_cast<int64_t>(detail::round_half_even(std::sqrt(area[i] / aspect[i])));
      if (cw >= 1 && ch >= 1 && ch <= img_h && cw <= img_w) {
        int64_t x = detail::randint_inclusive(gen, 0, img_w - cw);
        int64_t y = detail::randint_inclusive(gen, 0, img_h - ch);
        return {x, y, cw, ch};
      }
    }
    const int64_t side = std::min(img_w, img_h);
    return {(img_w - side) / 2, (img_h - side) / 2, side, side};
  }

  Clip operator()(const Clip& clip, Generator& gen) const {
    auto [w, h] = detail::clip_size(clip, "RandomResizedCrop");
    return crop(clip, sample_box(w, h, gen));
  }

};

// RandomCrop(size): a square; offsets drawn with an exclusive upper bound (numpy's randint), y first.
struct RandomCrop {
  int64_t size = 224;

  Box sample_box(int64_t img_w, int64_t img_h, Generator& gen) const {
    TV_CHECK(size >= 1 && size <= img_h && size <= img_w, "RandomCrop: expected a size of at most the ", img_w, "x",
             img_h, " frame, got ", size);
    int64_t y = img_h > size ? static_cast<int64_t>(gen.randint(static_cast<uint64_t>(img_h - size))) : 0;
    int64_t x = img_w > size ? static_cast<int64_t>(gen.randint(static_cast<uint64_t>(img_w - size))) : 0;
    return {x, y, size, size};
  }

  Clip operator()(const Clip& clip, Generator& gen) const {
    auto [w, h] = detail::clip_size(clip, "RandomCrop");
    return crop(clip, sample_box(w, h, gen));
  }
};

namespace detail {
inline void check_crop_fits(const char* op, std::pair<int64_t, int64_t> cs, int64_t img_w, int64_t img_h) {
  TV_CHECK(cs.first >= 1 && cs.second >= 1 && cs.first <= img_w && cs.second <= img_h, op, ": expected a crop_size (w, h) ",
           "of at most the ", img_w, "x", img_h, " frame, got (", cs.first, ", ", cs.second, ")");
}
}  // namespace detail

// CenterCrop(crop_size) with crop_size (w, h).
struct CenterCrop {
  std::pair<int64_t, int64_t> crop_size{224, 224};

  Box box(int64_t img_w, int64_t img_h) const {
    detail::check_crop_fits("CenterCrop", crop_size, img_w, img_h);
    return {(img_w - crop_size.first) / 2, (img_h - crop_size.second) / 2, crop_size.first, crop_size.second};
  }
  Clip operator()(const Clip& clip) const {
    auto [w, h] = detail::clip_size(clip, "CenterCrop");
    return crop(clip, box(w, h));
  }
};

// ThreeCrop(crop_size): the crop spans the full height (left, right, middle) or the full width (top, bottom,
// middle). Output: all frames of crop 1, then crop 2, then crop 3.
struct ThreeCrop {
  std::pair<int64_t, int64_t> crop_size{224, 224};

  std::vector<Box> boxes(int64_t img_w, int64_t img_h) const {
    detail::check_crop_fits("ThreeCrop", crop_size, img_w, img_h);
    auto [cw, ch] = crop_size;
    TV_CHECK(ch == img_h || cw == img_w, "ThreeCrop: expected the crop to span the frame's height or width (",
             img_w, "x", img_h, "), got crop_size (", cw, ", ", ch, ")");
    if (ch == img_h) {
      int64_t s = (img_w - cw) / 2;
      return {{0, 0, cw, ch}, {2 * s, 0, cw, ch}, {s, 0, cw, ch}};
    }
    int64_t s = (img_h - ch) / 2;
    return {{0, 0, cw, ch}, {0, 2 * s, cw, ch}, {0, s, cw, ch}};
  }
  Clip operator()(const Clip& clip) const {
    auto [w, h] = detail::clip_size(clip, "ThreeCrop");
    Clip out;
    for (const Box& b : boxes(w, h)) {
      Clip c = crop(clip, b);
      out.insert(out.end(), std::make_move_iterator(c.begin()), std::make_move_iterator(c.end()));
    }
    return out;
  }
};

// TenCrop(crop_size): 5 positions (UL, UR, LL, LR, centre); for each, all frames, then the same frames flipped.
struct TenCrop {
  std::pair<int64_t, int64_t> crop_size{224, 224};

  // The 5 positions; the output holds each twice (plain, then flipped).
  std::vector<Box> boxes(int64_t img_w, int64_t img_h) const {
    detail::check_crop_fits("TenCrop", crop_size, img_w, img_h);
    auto [cw, ch] = crop_size;
    std::vector<Box> out;
    for (auto [x, y] : MultiScaleCrop::fixed_offsets(img_w, img_h, cw, ch, 5)) out.push_back({x, y, cw, ch});
    return out;
  }
  Clip operator()(const Clip& clip) const {
    auto [w, h] = detail::clip_size(clip, "TenCrop");
    Clip out;
    for (const Box& b : boxes(w, h)) {
      Clip c = crop(clip, b);
      for (const Image& f : c) out.push_back(flip_horizontal(f));
      out.insert(out.end() - static_cast<std::ptrdiff_t>(c.size()), std::make_move_iterator(c.begin()),
                 std::make_move_iterator(c.end()));
    }
    return out;
  }
};

// Flip(flip_ratio, direction='horizontal', flip_label_map): one coin per clip. (RGB only: no flow inversion.)
struct Flip {
  double flip_ratio = 0.5;
  // Labels swapped when a clip is flipped (classes that name a direction): Something-Something V1
  // {2:4, 4:2, 30:41, 41:30, 52:66, 66:52}, V2 {86:87, 87:86, 93:94, 94:93, 166:167, 167:166}.
  std::map<int64_t, int64_t> flip_label_map{};

  Clip operator()(const Clip& clip, Generator& gen) const {
    int64_t no_label = -1;
    return (*this)(clip, gen, no_label);
  }
  Clip operator()(const Clip& clip, Generator& gen, int64_t& label) const {
    detail::clip_size(clip, "Flip");
    if (!(gen.next_double() < flip_ratio)) return clip;
    if (auto it = flip_label_map.find(label); it != flip_label_map.end()) label = it->second;
    Clip out;
    out.reserve(clip.size());
    for (const Image& f : clip) out.push_back(flip_horizontal(f));
    return out;
  }
};

// Normalize + FormatShape('NCHW'): (x - mean) / std in float32 on RGB 0..255, frames in clip order (crop-major,
// as the crops above concatenate them) -> M x 3 x H x W. Defaults are MMAction2's ImageNet numbers.
struct Normalize {
  std::array<float, 3> mean{123.675f, 116.28f, 103.53f};
  std::array<float, 3> std{58.395f, 57.12f, 57.375f};

  Tensor<float> operator()(const Clip& clip) const {
    auto [w, h] = detail::clip_size(clip, "Normalize");
    TV_CHECK(clip.front().channels == 3, "Normalize: expected 3-channel RGB frames, got ", clip.front().channels,
             " channels");
    const auto m = static_cast<int64_t>(clip.size());
    Tensor<float> out = Tensor<float>::empty(Shape{m, 3, h, w});
    float* o = out.data();
    const int64_t plane = h * w;
    for (int64_t i = 0; i < m; ++i) {
      const uint8_t* p = clip[static_cast<size_t>(i)].pixels.data();
      for (int64_t c = 0; c < 3; ++c) {
        float* d = o + (i * 3 + c) * plane;
        const float mu = mean[static_cast<size_t>(c)], sd = std[static_cast<size_t>(c)];
        for (int64_t k = 0; k < plane; ++k) d[k] = (static_cast<float>(p[k * 3 + c]) - mu) / sd;
      }
    }
    return out;
  }
};

}  // namespace tv::data
